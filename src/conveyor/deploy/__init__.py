"""Progressive delivery: environments, rollouts and the controller that observes and decides."""
