"""Tracking: the metadata store, runs, and the Python logging API."""
