"""Helpers for tests, benchmarks and smoke checks (need the `dev` extra)."""
