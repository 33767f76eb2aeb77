"""Benchmarks of the ``queues`` app against plain RQ (see README.md here and docs/benchmarks.md)."""
