"""Inloop: keep the customer dialogue in-house."""

__version__ = "0.1.0"
