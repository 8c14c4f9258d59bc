"""Pakati's persistence: one SQLAlchemy database (SQLite by default, PostgreSQL when shared).

``open_store()`` resolves the URL (argument, ``PAKATI_DATABASE_URL``, ``<user dir>/pakati/database.json``,
else ``<user dir>/pakati/pakati.db``), brings the schema to the newest Alembic revision on first
use, and returns a ``Store`` bound to one user.
"""
from __future__ import annotations

import os

from .engine import ENV_URL, current_revision, default_user_dir, dispose_all, get_engine, head_revision, migrate, redacted, resolve_url
from .errors import StoreError, StoreUnavailableError, TemplateNameError, TemplateNotFoundError
from .images import content_key, image_hash
from .legacy import import_context_dir, import_legacy, import_understanding_dir, import_what_worked_file
from .store import CONTEXT_KINDS, DEFAULT_OWNER, TEMPLATE_FORMAT, TEMPLATE_VERSION, Store, validate_template_name


def open_store(url: str | None = None, user_dir: str | os.PathLike | None = None, owner: str = DEFAULT_OWNER) -> Store:
    """The store for ``owner`` on the resolved database, migrated to the current schema."""
    engine = get_engine(resolve_url(url, user_dir))
    migrate(engine)
    return Store(engine, owner)


__all__ = [
    "CONTEXT_KINDS", "DEFAULT_OWNER", "ENV_URL", "Store", "StoreError", "StoreUnavailableError", "TEMPLATE_FORMAT", "TEMPLATE_VERSION",
    "TemplateNameError", "TemplateNotFoundError", "content_key", "current_revision", "default_user_dir", "dispose_all", "get_engine", "head_revision",
    "image_hash", "import_context_dir", "import_legacy", "import_understanding_dir", "import_what_worked_file", "migrate", "open_store", "redacted",
    "resolve_url", "validate_template_name",
]
