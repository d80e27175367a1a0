"""Benchmarks that print numbers (recorded in docs/benchmarks.md and the README); never timed assertions in tests."""
