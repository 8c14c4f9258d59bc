"""The store as the nodes see it: which database, which user, and history that never breaks a generation.

The database is ``pakati_core.store.open_store`` with ComfyUI's user directory (SQLite file
``<user dir>/pakati/pakati.db`` unless ``PAKATI_DATABASE_URL`` or ``<user dir>/pakati/database.json``
names another). On first use in a process, the JSON files earlier builds kept under
``<user dir>/pakati`` are imported once for the default user.

The user: ComfyUI does not tell a node who queued its prompt, so ``routes.install`` remembers
the ``comfy-user`` of each POST /prompt (under ``--multi-user``) by prompt id, and the request
being served for routes and /object_info; outside a server, or without ``--multi-user``, it is
"default".
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict

import folder_paths

from ..pakati_core.cache import BestEffortCache
from ..pakati_core.store import DEFAULT_OWNER, Store, StoreError, import_legacy, open_store

log = logging.getLogger("pakati")

request_user: contextvars.ContextVar[str | None] = contextvars.ContextVar("pakati_request_user", default=None)
_prompt_users: OrderedDict[str, tuple[str, float]] = OrderedDict()  # prompt id -> (user, when it was queued)
_PROMPT_USERS_MAX = 10_000
_lock = threading.Lock()
_imported: set[str] = set()


def remember_prompt_user(prompt_id: str, user: str) -> None:
    with _lock:
        _prompt_users[prompt_id] = (user, time.time())
        while len(_prompt_users) > _PROMPT_USERS_MAX:
            _prompt_users.popitem(last=False)


def current_user() -> str:
    """Who the current request or executing prompt belongs to ("default" when nobody says)."""
    user = request_user.get()
    if user:
        return user
    try:
        from comfy_execution.utils import get_executing_context

        ctx = get_executing_context()
    except ImportError:  # an older host without execution contexts: single user
        ctx = None
    if ctx is not None:
        with _lock:
            return _prompt_users.get(ctx.prompt_id, (DEFAULT_OWNER, 0.0))[0]
    return DEFAULT_OWNER


def prompt_queued_at(prompt_id: str | None) -> float | None:
    """When the server received the prompt (time.time()), or None when it was not seen."""
    with _lock:
        entry = _prompt_users.get(prompt_id) if prompt_id else None
    return entry[1] if entry else None


def user_fingerprint(*parts) -> str:
    """A ``fingerprint_inputs`` value for a node that reads or writes the current user's rows: ComfyUI's
    output cache is shared by every user of a server, so the user is part of the key (two users
    queueing the same graph never get each other's cached output, and each one's rows are written).
    ComfyUI writes fingerprints into the saved prompt (PNG metadata), so the user is a hash, not a name."""
    user = hashlib.sha256(("pakati-user:" + current_user()).encode()).hexdigest()[:16]
    return json.dumps([user, *parts], default=str)


def executing_prompt_id() -> str | None:
    try:
        from comfy_execution.utils import get_executing_context

        ctx = get_executing_context()
    except ImportError:
        return None
    return ctx.prompt_id if ctx is not None else None


def pakati_store(user: str | None = None) -> Store:
    """The store for ``user`` (default: the current one), migrated, legacy JSON imported once."""
    user_dir = folder_paths.get_user_directory()
    store = open_store(user_dir=user_dir)
    if store.url not in _imported:
        with _lock:
            first = store.url not in _imported
            _imported.add(store.url)
        if first:
            try:
                counts = import_legacy(store, f"{user_dir}/pakati")
                if any(counts.values()):
                    log.info("Pakati: imported %s from the JSON files under %s/pakati (the files are left in place)", counts, user_dir)
            except (StoreError, OSError) as e:
                log.error("Pakati: importing the JSON files under %s/pakati failed: %s", user_dir, e)
    return store.for_user(user or current_user())


def record_history(node: str, **fields) -> int | None:
    """Keep a run in the history, best effort: a database that cannot be written is logged with
    the reason, and the generation that called this still returns its result."""
    try:
        return pakati_store().runs.add(node, prompt_id=executing_prompt_id(), **fields)
    except (StoreError, OSError) as e:
        log.error("Pakati: the history of this %s run was not recorded (the result is unaffected): %s", node, e)
        return None


def user_store_or_none(what: str) -> Store | None:
    """The current user's store, or None (logged) when the database cannot be opened."""
    try:
        return pakati_store()
    except StoreError as e:
        log.error("Pakati: the database cannot be opened, %s without it: %s", what, e)
        return None


def user_cache(what: str) -> BestEffortCache:
    """The current user's content-hash cache (the database); a broken database means no cache, never a failure."""
    store = user_store_or_none(what)
    return BestEffortCache(store.cache if store is not None else None)


class BestEffortContext:
    """The orchestration's ContextStore on the database, for the nodes: a database that cannot be
    used is logged, reads as no earlier context, and never fails a plan or a check."""

    def __init__(self):
        self.store: Store | None = None
        try:
            self.store = pakati_store()
        except StoreError as e:
            log.error("Pakati: the orchestration context cannot be opened, planning without it: %s", e)

    def save_record(self, goal_key: str, kind: str, record: dict) -> None:
        try:
            if self.store is not None:
                self.store.context.save_record(goal_key, kind, record)
        except StoreError as e:
            log.error("Pakati: this %s was not remembered (the result is unaffected): %s", kind, e)

    def load_records(self, goal_key: str, kind: str | None = None) -> list[dict]:
        try:
            return self.store.context.load_records(goal_key, kind) if self.store is not None else []
        except StoreError as e:
            log.error("Pakati: earlier plans and checks cannot be read, planning without them: %s", e)
            return []


class BestEffortRecorder:
    """The model layer's CallRecorder for the nodes: each provider call is logged (as the model
    layer's LoggingRecorder does) and kept in the ``api_calls`` table of the current user; a
    database that cannot be written is logged, never raised into the call."""

    def __init__(self):
        from ..pakati_core.models.recording import LoggingRecorder

        self.log = LoggingRecorder()
        self.user = current_user()

    def record(self, call) -> None:
        self.log.record(call)
        try:
            pakati_store(self.user).calls.record(call)
        except StoreError as e:
            log.error("Pakati: a %s call record was not kept (the call is unaffected): %s", getattr(call, "provider", "provider"), e)
