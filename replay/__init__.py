"""Rebuilds, as-of cut-offs, review reports and audit verification."""
