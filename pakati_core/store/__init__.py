"""Pakati's persistence: one SQLAlchemy database (SQLite by default, PostgreSQL when shared).

``open_store()`` resolves the URL (argument, ``PAKATI_DATABASE_URL``, ``<user dir>/pakati/database.json``,
else ``<user dir>/pakati/pakati.db``), brings the schema to the newest Alembic revision on first
use, and returns a ``Store`` bound to one user: one repository per concern (runs, references,
understandings, what worked, plans and checks, provider calls, the content-hash cache, templates)
over one engine (``database.Database``: sessions, blobs, the owner).
"""

from __future__ import annotations

import os

from .calls import CallRepository
from .context import CONTEXT_KINDS, ContextRepository
from .database import DEFAULT_OWNER, Database
from .engine import ENV_URL, current_revision, default_user_dir, dispose_all, get_engine, head_revision, migrate, redacted, resolve_url
from .errors import StoreError, StoreUnavailableError, TemplateNameError, TemplateNotFoundError, UnknownUserError
from .images import content_key, image_hash
from .legacy import import_context_dir, import_legacy, import_understanding_dir, import_what_worked_file
from .references import ReferenceRepository
from .results import CacheRepository
from .runs import RunRepository
from .templates import TEMPLATE_FORMAT, TEMPLATE_VERSION, TemplateRepository, validate_template_name
from .understandings import UnderstandingRepository
from .what_worked import WhatWorkedRepository


class Store(Database):
    """The database seen by one owner, as one small repository per concern over the shared engine:
    ``runs`` (history), ``references``, ``understandings``, ``what_worked``, ``context`` (plans and
    checks: the orchestration's ContextStore), ``calls`` (the model layer's CallRecorder), ``cache``
    (the content-hash ResultCache) and ``templates``."""

    def __init__(self, engine, owner: str = DEFAULT_OWNER, record_prompts: bool | None = None, busy_ms: int | None = None):
        super().__init__(engine, owner, record_prompts, busy_ms)
        self.runs = RunRepository(self)
        self.references = ReferenceRepository(self)
        self.understandings = UnderstandingRepository(self)
        self.what_worked = WhatWorkedRepository(self)
        self.context = ContextRepository(self)
        self.calls = CallRepository(self)
        self.cache = CacheRepository(self)
        self.templates = TemplateRepository(self)

    def for_user(self, owner: str) -> Store:
        return Store(self.engine, owner, self.record_prompts, self.busy_ms)

    def waiting_at_most(self, seconds: float) -> Store:
        """The same store whose transactions wait at most ``seconds`` for a lock (then StoreUnavailableError):
        what a server uses while answering a request, so a busy database never holds the request long."""
        return Store(self.engine, self.owner, self.record_prompts, max(1, int(seconds * 1000)))


def open_store(
    url: str | None = None, user_dir: str | os.PathLike | None = None, owner: str = DEFAULT_OWNER, wait_s: float | None = None
) -> Store:
    """The store for ``owner`` on the resolved database, migrated to the current schema; with
    ``wait_s``, every transaction (the migration included) waits at most that long for a lock."""
    engine = get_engine(resolve_url(url, user_dir))
    busy_ms = max(1, int(wait_s * 1000)) if wait_s else None
    migrate(engine, busy_ms=busy_ms)
    return Store(engine, owner, busy_ms=busy_ms)


__all__ = [
    "CONTEXT_KINDS",
    "DEFAULT_OWNER",
    "ENV_URL",
    "TEMPLATE_FORMAT",
    "TEMPLATE_VERSION",
    "CacheRepository",
    "CallRepository",
    "ContextRepository",
    "Database",
    "ReferenceRepository",
    "RunRepository",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "TemplateNameError",
    "TemplateNotFoundError",
    "TemplateRepository",
    "UnderstandingRepository",
    "UnknownUserError",
    "WhatWorkedRepository",
    "content_key",
    "current_revision",
    "default_user_dir",
    "dispose_all",
    "get_engine",
    "head_revision",
    "image_hash",
    "import_context_dir",
    "import_legacy",
    "import_understanding_dir",
    "import_what_worked_file",
    "migrate",
    "open_store",
    "redacted",
    "resolve_url",
    "validate_template_name",
]
