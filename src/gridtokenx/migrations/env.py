"""Alembic environment: runs on the connection handed over by `gridtokenx.core.migrate`."""

from __future__ import annotations

from alembic import context

from gridtokenx.models_registry import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the project always passes a connection
    raise RuntimeError("run migrations with `gridtokenx db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
