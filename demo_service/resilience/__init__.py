"""Resilience mechanisms, one module each; every one exports its state as metrics."""
