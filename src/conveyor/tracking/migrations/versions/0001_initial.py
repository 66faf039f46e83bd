"""The first schema: runs, params, tags, metrics (history and latest), stages, hashes,
artifacts, applied spool batches.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, server_default=""),
        sa.Column("kind", sa.String(32), nullable=False, server_default="api"),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("ended", sa.Float, nullable=True),
        sa.Column("user", sa.String(128), nullable=False, server_default=""),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("git_branch", sa.String(256), nullable=True),
        sa.Column("git_dirty", sa.Boolean, nullable=True),
        sa.Column("diff_hash", sa.String(64), nullable=True),
        sa.Column("environment", sa.Text, nullable=False, server_default="{}"),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "params",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "tags",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_metrics_run_key", "metrics", ["run_id", "key"])
    op.create_table(
        "latest_metrics",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_table(
        "stages",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("stage", sa.String(256), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("duration", sa.Float, nullable=True),
        sa.Column("exit_code", sa.Integer, nullable=True),
    )
    op.create_table(
        "hashes",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("role", sa.String(8), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("hash", sa.String(80), nullable=False),
    )
    op.create_table(
        "artifacts",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("hash", sa.String(80), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "applied_batches",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("applied", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "applied_batches",
        "artifacts",
        "hashes",
        "stages",
        "latest_metrics",
        "metrics",
        "tags",
        "params",
        "runs",
    ):
        op.drop_table(table)
