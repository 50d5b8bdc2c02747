"""A package with non-ASCII metadata."""
