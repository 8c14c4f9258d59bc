"""Engines and migrations: where the database is, how it is opened, and bringing it to the current schema.

Pakati keeps its own engine and file (ComfyUI does not hand custom nodes a database session).
The URL comes from the caller, else ``PAKATI_DATABASE_URL``, else ``<user dir>/pakati/database.json``
(``{"url": "postgresql+psycopg://..."}``), else a SQLite file ``<user dir>/pakati/pakati.db``.
SQLite runs in WAL mode with a busy timeout and foreign keys on; a transaction that writes starts
with ``BEGIN IMMEDIATE`` so two processes writing at once wait for each other instead of failing
on a read-to-write upgrade; a read-only one starts with a plain ``BEGIN`` (in WAL mode it never
waits for a writer). A connection may carry a shorter busy timeout (execution option
``pakati_busy_ms``): what a server reads while answering a request gives up quickly instead of
holding the request. Migrations run under a lock (SQLite's write lock, PostgreSQL's
advisory lock), so two servers starting on one database never migrate it twice.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from ..jsonutil import strict_json
from .errors import StoreError, StoreUnavailableError

log = logging.getLogger("pakati.store")

ENV_URL = "PAKATI_DATABASE_URL"
CONFIG_FILE = "database.json"
SQLITE_FILE = "pakati.db"
VERSION_TABLE = "pakati_alembic_version"
BUSY_TIMEOUT_MS = 30_000
READ_OPTION = "pakati_read"  # execution option: the transaction only reads (plain BEGIN)
BUSY_OPTION = "pakati_busy_ms"  # execution option: how long this transaction waits for a lock
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x70616B617469  # "pakati"

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def _stored_json(value) -> str:
    """The engine's JSON writer: the core's one strict JSON (a NaN/Inf is refused, naming where it is)."""
    return strict_json(value, "the stored JSON value")


def default_user_dir() -> Path:
    """Where a plain-Python user's Pakati data lives when no ComfyUI user directory is given:
    ``PAKATI_USER_DIR`` (the directory the model layer reads its key and model files under), else
    the platform's data directory: ``$XDG_DATA_HOME`` or ``~/.local/share`` on Linux,
    ``~/Library/Application Support`` on macOS, ``%LOCALAPPDATA%`` on Windows. The database is
    ``<this>/pakati/pakati.db``, as under ComfyUI's user directory."""
    env = os.environ.get("PAKATI_USER_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    return Path(os.environ.get("XDG_DATA_HOME", "").strip() or Path.home() / ".local" / "share")


def resolve_url(url: str | None = None, user_dir: str | os.PathLike | None = None) -> str:
    """The database URL: argument, environment, config file under the user dir, or the SQLite default."""
    if url:
        return url
    if os.environ.get(ENV_URL, "").strip():
        return os.environ[ENV_URL].strip()
    if user_dir is None:
        raise StoreError(f"no database: pass a URL, set {ENV_URL}, or give the user directory for the SQLite default", "url")
    base = Path(user_dir) / "pakati"
    config = base / CONFIG_FILE
    if config.is_file():
        try:
            configured = json.loads(config.read_text(encoding="utf-8")).get("url", "")
        except (ValueError, AttributeError) as e:
            raise StoreError(f"{config} is not a JSON object with a 'url': {e}", "url") from e
        if configured:
            return configured
    return f"sqlite:///{base / SQLITE_FILE}"


def redacted(url: str) -> str:
    """The URL with its password hidden, for logs and error text."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        mode = cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal" and engine.url.database not in (None, "", ":memory:"):
            log.warning("Pakati store: SQLite journal mode is %s, not WAL (file system without shared memory?)", mode)
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        opts = conn.get_execution_options()
        busy = int(opts.get(BUSY_OPTION) or BUSY_TIMEOUT_MS)
        conn.exec_driver_sql(f"PRAGMA busy_timeout={busy}")  # per transaction: a short read never inherits a long wait
        conn.exec_driver_sql("BEGIN" if opts.get(READ_OPTION) else "BEGIN IMMEDIATE")


def _postgres_setup(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def on_begin(conn):
        busy = conn.get_execution_options().get(BUSY_OPTION)
        if busy:  # a bounded wait for locks and statements, for this transaction only
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(busy)}")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(busy)}")


def get_engine(url: str) -> Engine:
    """One engine per URL per process (thread-safe; the pool is shared by nodes and routes)."""
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            parsed = make_url(url)
        except ArgumentError as e:
            raise StoreError(f"not a database URL: {redacted(url)}", "url") from e
        if parsed.get_backend_name() == "sqlite":
            db = parsed.database
            if db and db != ":memory:":
                try:
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise StoreUnavailableError(f"cannot create the directory of {db}: {e.strerror or e}", "url") from e
            engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, json_serializer=_stored_json)
            _sqlite_setup(engine)
        else:
            try:
                engine = create_engine(parsed, pool_pre_ping=True, json_serializer=_stored_json)
                _postgres_setup(engine)
            except NoSuchModuleError as e:
                raise StoreError(
                    f"unknown database kind {parsed.drivername!r} in {redacted(url)} "
                    "(use sqlite:///path or postgresql+psycopg://user@host/db)",
                    "url",
                ) from e
            except ModuleNotFoundError as e:
                raise StoreError(
                    f"the database driver for {parsed.drivername} is not installed ({e.name}); "
                    "for PostgreSQL: pip install 'psycopg[binary]'",
                    "url",
                ) from e
        _engines[url] = engine
        return engine


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def migrate(engine: Engine, revision: str = "head", busy_ms: int | None = None) -> None:
    """Bring the database to ``revision`` (default: the newest), once, under a lock (waiting at most
    ``busy_ms`` for it, else the busy timeout)."""
    key = f"{engine.url!r}@{revision}"
    if key in _migrated:
        return
    cfg = _alembic_config()
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            if busy_ms:
                conn = conn.execution_options(**{BUSY_OPTION: int(busy_ms)})
            if sqlite:  # table copies (batch migrations) need foreign keys off, and that only outside a transaction
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():  # BEGIN IMMEDIATE on SQLite: the write lock is the migration lock
                    if engine.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
            finally:
                if sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    except OperationalError as e:
        raise StoreUnavailableError("cannot open or migrate the database: " + explain(e, redacted(str(engine.url)), True), "url") from e
    except SQLAlchemyError as e:
        raise StoreError(f"migrating {redacted(str(engine.url))} failed: {e}", "url") from e
    _migrated.add(key)


def dispose_all() -> None:
    """Close every pooled connection (tests, and processes that fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


def explain(e: OperationalError, url: str, write: bool) -> str:
    """Why a database operation failed, in words a user can act on (read-only, disk full, ...)."""
    msg = str(e.orig)
    low = msg.lower()
    if "readonly" in low or "read-only" in low or "read only" in low:
        why = "the database file or its directory is read-only"
    elif "disk is full" in low or "no space" in low or "could not extend" in low:
        why = "the disk is full"
    elif "unable to open" in low:
        why = "the database file cannot be opened (missing directory or no permission)"
    elif "locked" in low or "busy" in low or "lock timeout" in low or "statement timeout" in low:
        why = "another process held the database lock longer than the busy timeout"
    elif "connection" in low or "could not connect" in low:
        why = "the database server cannot be reached"
    else:
        why = "the database refused the operation"
    return f"{why} ({'writing' if write else 'reading'} {url}: {msg})"
