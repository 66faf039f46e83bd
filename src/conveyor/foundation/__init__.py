"""Errors, configuration, paths and primitives that every other layer builds on."""
