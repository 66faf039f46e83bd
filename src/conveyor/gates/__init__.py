"""Quality gates: checks a candidate must pass before it is promoted (thresholds, comparisons
with a baseline and their statistical significance, slices, data validation, drift, behavioural
tests, budgets, the project's own tests), and the reports that show their verdicts."""
