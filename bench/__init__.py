"""Benchmarks: each prints CPU microseconds per span and spans per second, and records them."""
