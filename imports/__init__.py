"""Imports (issue 14)."""
