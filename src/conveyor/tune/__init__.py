"""Tuning: Optuna searches the params space; every trial is a tracked pipeline run."""
