"""Alembic environment for Pakati's store.

Pakati runs its migrations itself (``pakati_core.store.engine.migrate``) on a connection it
hands over in ``config.attributes["connection"]``; nothing here reads alembic.ini or imports
the pack (ComfyUI imports the pack under its file path, so absolute imports would fail).
"""

from alembic import context

VERSION_TABLE = "pakati_alembic_version"


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("Pakati's migrations run through pakati_core.store (open_store or `python -m pakati_core.store upgrade`)")

    context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


# Alembic runs this file inside its EnvironmentContext (where ``context.config`` exists); a plain
# import (tools that walk the package) only defines the function.
if hasattr(context, "config"):
    run_migrations()
