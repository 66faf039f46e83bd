"""The CI job in one command: CI-system detection, workflow files, pull-request comments."""
