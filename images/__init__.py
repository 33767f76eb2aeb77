"""Images (issue 14)."""
