"""Webhooks (issue 14)."""
