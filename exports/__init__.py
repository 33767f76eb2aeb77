"""Exports (issue 14)."""
