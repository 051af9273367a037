"""Alembic environment of the nas store: runs on the connection `open_store` passes in.

`nas.storage.engine.upgrade_schema` builds the Alembic ``Config`` in code and puts an open
connection, already inside a transaction, in ``config.attributes["connection"]``, so the
version check and every migration commit (or roll back) together.
"""

from __future__ import annotations

from alembic import context

from nas.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("nas migrations run on a live connection: use nas.storage.open_store(url)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
