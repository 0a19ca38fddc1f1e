"""Benchmarks of the demo service: ``python -m benchmarks.backend`` (see README.md)."""
