"""Alembic's entry point: migrations run on the connection conveyor hands over."""

from __future__ import annotations

from alembic import context

from conveyor.tracking.reads import VERSION_TABLE
from conveyor.tracking.tables import metadata

connection = context.config.attributes["connection"]
# Optuna keeps its studies in the same database with its own Alembic history, in the default
# "alembic_version" table: conveyor's history lives in a table of its own.
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
