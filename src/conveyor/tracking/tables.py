"""The metadata store's tables (SQLAlchemy Core). Changes go through a migration in migrations/.

Values a user chose (params, tags) are stored as JSON text so that 0.1, "0.1" and [1, 2] come
back as they went in; metrics are floats. ``latest_metrics`` holds each metric's last value so
that listing and sorting thousands of runs never scans their histories.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, default=""),
    sa.Column("kind", sa.String(32), nullable=False, default="api"),  # pipeline, api, experiment
    sa.Column("parent_id", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, default="running"),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("ended", sa.Float, nullable=True),
    sa.Column("user", sa.String(128), nullable=False, default=""),
    sa.Column("git_commit", sa.String(64), nullable=True),
    sa.Column("git_branch", sa.String(256), nullable=True),
    sa.Column("git_dirty", sa.Boolean, nullable=True),
    sa.Column("diff_hash", sa.String(64), nullable=True),
    sa.Column("environment", sa.Text, nullable=False, default="{}"),  # JSON
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # JSON
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("step", sa.Integer, nullable=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Index("ix_metrics_run_key", "run_id", "key"),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("step", sa.Integer, nullable=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)

stages = sa.Table(
    "stages",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("stage", sa.String(256), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),  # ran, restored, up to date, failed...
    sa.Column("duration", sa.Float, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
)

hashes = sa.Table(
    "hashes",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("role", sa.String(8), primary_key=True),  # dep or out
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("hash", sa.String(80), nullable=False),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("hash", sa.String(80), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)

# Spool files already applied: applying is idempotent even if a crash comes between the
# commit and the removal of the file.
applied = sa.Table(
    "applied_batches",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("applied", sa.Float, nullable=False),
)

# The model registry (migration 0002).
models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", sa.String(256), sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("package", sa.String(80), nullable=False),
    sa.Column("flavor", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("user", sa.String(128), nullable=False, default=""),
    sa.Column("lineage", sa.Text, nullable=False, default="{}"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("name", sa.String(256), sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("previous", sa.Integer, nullable=True),
    sa.Column("user", sa.String(128), nullable=False, default=""),
    sa.Column("at", sa.Float, nullable=False),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("name", sa.String(256), sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),  # 0: a tag of the model itself
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# An append-only log of what happened to the things a team ships (migration 0004): an alias
# moved, a rollout stepped, promoted or aborted. Written in the transaction of the change it
# records (see :mod:`conveyor.tracking.events`), never updated or deleted.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),  # "alias.moved", "rollout.promoted", ...
    sa.Column("subject", sa.String(512), nullable=False),  # "classifier@production", an env
    sa.Column("data", sa.Text, nullable=False, default="{}"),  # JSON: the inputs of a decision
    sa.Index("ix_events_subject", "subject", "id"),
)

# One row per environment (migration 0005): what its servers serve and how far a rollout has
# come (see :class:`conveyor.registry.deployment.Deployment`). Rewritten only when ``revision``
# is still the one the writer read, together with its events (:mod:`conveyor.registry.deployments`).
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("env", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("stable", sa.Integer, nullable=True),  # None before the first deploy
    sa.Column("candidate", sa.Integer, nullable=True),
    sa.Column("mode", sa.String(16), nullable=False),  # canary, ab, shadow, blue_green
    sa.Column("status", sa.String(16), nullable=False),  # idle, progressing, paused, ...
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("weight", sa.Float, nullable=False),  # percent to the candidate
    sa.Column("sticky", sa.String(256), nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("step_started", sa.Float, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("previous", sa.Integer, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),  # the optimistic lock: see save()
    sa.Column("updated", sa.Float, nullable=False),  # wall clock of the last write
)
