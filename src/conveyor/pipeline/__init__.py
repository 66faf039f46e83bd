"""Pipelines: stage config, DAG, lock, planner, run-cache and executors."""
