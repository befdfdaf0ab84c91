"""Integration tests of the warehouse backends."""
