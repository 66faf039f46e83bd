"""The model registry: models, their versions, aliases and the history of alias moves.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(256), sa.ForeignKey("models.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("package", sa.String(80), nullable=False),  # the package folder's tree ref
        sa.Column("flavor", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("user", sa.String(128), nullable=False, server_default=""),
        sa.Column("lineage", sa.Text, nullable=False, server_default="{}"),  # JSON
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(256), sa.ForeignKey("models.name"), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),  # None: the alias was deleted
        sa.Column("previous", sa.Integer, nullable=True),
        sa.Column("user", sa.String(128), nullable=False, server_default=""),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("alias_history", "model_aliases", "model_versions", "models"):
        op.drop_table(table)
