"""Interpreter sources: uv-managed Pythons and local CPythons made relocatable."""
