"""Alembic environment: run from code by :func:`mirrorkeeper.store.store.migrate` with a
connection in ``config.attributes``; no alembic.ini for the admin to keep."""

from alembic import context

from mirrorkeeper.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
