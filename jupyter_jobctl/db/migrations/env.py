"""Alembic environment: always run programmatically by Store.upgrade() on a given connection."""

from alembic import context

from jupyter_jobctl.db.models import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
