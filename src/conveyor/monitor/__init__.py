"""Monitoring: what a served model did in production, read back for drift statistics, online
metrics from feedback and alerts.

It sits below :mod:`conveyor.serve` (the server writes what this package reads) and never imports
the server, the pipeline or tuning, so a monitoring job installs without either stack.
"""
