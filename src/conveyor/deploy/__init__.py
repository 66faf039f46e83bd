"""Progressive delivery: environments, rollout analysis and the rollout decision.

    config     the ``deploy:`` section of conveyor.yaml: environments, strategies, checks
    analysis   candidate against stable on the same interval: each check's verdict (pure)
    decide     a deployment record, this tick's verdicts and the clock -> the next record and
               its events (pure)

The controller that observes a server and applies the decision, and the flows the CLI calls,
sit next to these; docs/deploy.md is the user's guide. This package is above
:mod:`conveyor.serve`: a server never imports it, it follows the deployment record instead.
"""
