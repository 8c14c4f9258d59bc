"""One owner's view of the database: sessions, blobs and the helpers every repository shares.

A ``Database`` is bound to one owner (ComfyUI's user id); ``for_user`` gives the same engine
seen as another user. Every repository method opens a short session and commits before it
returns, so a record is either fully there or not at all; a database that cannot be written
raises ``StoreUnavailableError`` saying why (read-only file system, full disk, server down).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import NonFiniteError
from .engine import BUSY_OPTION, READ_OPTION, explain
from .errors import StoreError, StoreUnavailableError
from .images import content_key
from .schema import Blob, utcnow

DEFAULT_OWNER = "default"
RECORD_PROMPTS_ENV = "PAKATI_RECORD_PROMPTS"


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()


def epoch(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp(), 6)


def finite(value: Any, field: str) -> Any:
    """``value`` unchanged, or a StoreError naming the first NaN/Inf inside it."""

    def walk(v: Any, path: str) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            raise StoreError(f"{path} is {v}: only finite numbers can be stored", path)
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}")
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")

    walk(value, field)
    return value


class Database:
    """The engine seen by one owner. Cheap to copy (``for_user``): the engine is shared."""

    def __init__(self, engine: Engine, owner: str = DEFAULT_OWNER, record_prompts: bool | None = None, busy_ms: int | None = None):
        if not owner or not isinstance(owner, str) or len(owner) > 128:
            raise StoreError(f"not a user id: {str(owner)[:140]!r}", "user")
        self.engine = engine
        self.owner = owner
        self.record_prompts = os.environ.get(RECORD_PROMPTS_ENV, "") == "1" if record_prompts is None else record_prompts
        self.busy_ms = busy_ms
        busy = {BUSY_OPTION: int(busy_ms)} if busy_ms else {}
        self._sessions = sessionmaker(engine.execution_options(**busy) if busy else engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(engine.execution_options(**{READ_OPTION: True}, **busy), expire_on_commit=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """One transaction (``write=False``: it only reads, and never takes the write lock); errors
        become StoreErrors that say what failed and where."""
        try:
            with (self._sessions if write else self._read_sessions)() as session, session.begin():
                yield session
        except StoreError:
            raise
        except OperationalError as e:
            raise StoreUnavailableError(explain(e, self.url, write), "database") from e
        except NonFiniteError as e:  # the engine's JSON writer, called outside SQLAlchemy's wrapping by psycopg
            raise StoreError(f"a value cannot be stored as JSON: {e}", "record") from e
        except StatementError as e:
            if isinstance(e.orig, (ValueError, TypeError)):  # a JSON value that is not strict JSON
                raise StoreError(f"a value cannot be stored as JSON: {e.orig}", "record") from e
            raise StoreError(f"the database refused a statement: {e.orig}", "database") from e
        except IntegrityError as e:  # another writer made the same row at the same moment
            raise StoreError(f"a conflicting record was written at the same time; try again ({e.orig})", "database") from e
        except SQLAlchemyError as e:
            raise StoreError(f"database error on {self.url}: {e}", "database") from e

    @staticmethod
    def insert_ignore(session: Session, model, values: dict, keys: list[str]) -> None:
        """INSERT that does nothing when a row with the same keys exists (safe between processes)."""
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            stmt = postgresql.insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
        elif dialect == "sqlite":
            stmt = sqlite.insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
        else:
            if session.get(model, tuple(values[k] for k in keys)) is not None:
                return
            stmt = model.__table__.insert().values(**values)
        session.execute(stmt)

    def put_blob(self, session: Session, data: bytes, media_type: str = "image/png") -> str:
        key = content_key(data)
        self.insert_ignore(session, Blob, {"sha256": key, "media_type": media_type, "data": data, "created_at": utcnow()}, ["sha256"])
        return key

    @staticmethod
    def blob(session: Session, key: str | None) -> bytes | None:
        if not key:
            return None
        row = session.get(Blob, key)
        return row.data if row else None

    def ping(self) -> None:
        """Open a transaction and write nothing: raises StoreUnavailableError when the database cannot be used."""
        with self.session(write=True) as s:
            s.execute(select(1))
