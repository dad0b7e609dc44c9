"""Benchmarks of idservice (never part of the test suite): see bench/README.md."""
