"""The demo service's routes, one module per pressure point."""
