"""The store as the nodes see it: which database, which user, and history that never breaks a generation.

The database is ``pakati_core.store.open_store`` with ComfyUI's user directory (SQLite file
``<user dir>/pakati/pakati.db`` unless ``PAKATI_DATABASE_URL`` or ``<user dir>/pakati/database.json``
names another). On first use in a process, the JSON files earlier builds kept under
``<user dir>/pakati`` are imported once for the default user.

The user: ComfyUI does not tell a node who queued its prompt, so ``routes.install`` remembers
the ``comfy-user`` of each POST /prompt (under ``--multi-user``) by prompt id, and the request
being served for routes and /object_info; outside a server, or without ``--multi-user``, it is
"default". Under ``--multi-user`` a prompt or request whose user ComfyUI does not know has no
user: the store refuses it (``UnknownUserError``), it never acts as "default".

Prompt ids: a mapping is never overwritten. A client's id that is already mapped, is not text
or is longer than 128 characters is replaced by a fresh uuid4 before ComfyUI sees it (ComfyUI
then runs the prompt under that id); an entry is dropped when ComfyUI refuses the prompt and
once its prompt has left the queue, and there are at most 10,000.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import folder_paths

from ..pakati_core.cache import BestEffortCache
from ..pakati_core.store import DEFAULT_OWNER, Store, StoreError, import_legacy, open_store
from ..pakati_core.store.errors import UnknownUserError

log = logging.getLogger("pakati")

request_user: contextvars.ContextVar[str | None] = contextvars.ContextVar("pakati_request_user", default=None)
_prompt_users: OrderedDict[str, tuple[str, float]] = OrderedDict()  # prompt id -> (user, when it was queued)
_PROMPT_USERS_MAX = 10_000
PROMPT_ID_MAX = 128
PROMPT_GRACE_S = 120.0  # an entry younger than this is kept while ComfyUI validates and queues its prompt
REQUEST_WAIT_S = 1.0  # what a route waits for a locked database before answering 503
SCHEMA_WAIT_S = 0.2  # what /object_info (on the event loop) waits before listing no templates
SECRET_FILE = "user_hash.key"
UNKNOWN_USER = (
    "under --multi-user this prompt's user is unknown: queue it with the comfy-user header of a user "
    "that /users lists (the front end sends it once a user is chosen)"
)
_lock = threading.Lock()
_imported: set[str] = set()
_secret: dict[str, bytes] = {}


def multi_user() -> bool:
    """Whether this ComfyUI runs with --multi-user (then a user it does not know is nobody, never "default")."""
    try:
        from comfy.cli_args import args
    except ImportError:
        return False
    return bool(getattr(args, "multi_user", False))


def claim_prompt_id(json_data: dict, user: str, live_ids: Callable[[], Iterable[str]] | None = None) -> str:
    """Map the prompt of a POST /prompt to ``user`` and return its id. The client's id is kept only
    when it is text of 1-128 characters that no entry maps yet; otherwise ``json_data["prompt_id"]``
    becomes a fresh uuid4 (ComfyUI runs the prompt under it). Entries older than the grace period
    whose prompt is no longer queued or running (``live_ids``) are dropped first."""
    asked = json_data.get("prompt_id")
    with _lock:
        if live_ids is not None:
            _expire(live_ids)
        pid = asked if isinstance(asked, str) and 0 < len(asked) <= PROMPT_ID_MAX else None
        if pid is None or pid in _prompt_users:
            pid = str(uuid.uuid4())
        _prompt_users[pid] = (user, time.time())
        while len(_prompt_users) > _PROMPT_USERS_MAX:
            _prompt_users.popitem(last=False)
    json_data["prompt_id"] = pid
    return pid


def _expire(live_ids: Callable[[], Iterable[str]]) -> None:
    cutoff = time.time() - PROMPT_GRACE_S
    old = [pid for pid, (_, t) in _prompt_users.items() if t < cutoff]
    if old:
        live = set(live_ids())
        for pid in old:
            if pid not in live:
                del _prompt_users[pid]


def forget_prompt(prompt_id: str) -> None:
    """Drop a mapping (ComfyUI refused the prompt, or it finished)."""
    with _lock:
        _prompt_users.pop(prompt_id, None)


def prompt_user_count() -> int:
    with _lock:
        return len(_prompt_users)


def current_user() -> str | None:
    """Who the current request or executing prompt belongs to: "default" when nobody says and the
    server is single-user; None under --multi-user when ComfyUI does not know the user."""
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
            entry = _prompt_users.get(ctx.prompt_id)
        if entry is not None:
            return entry[0]
    return None if multi_user() else DEFAULT_OWNER


def prompt_queued_at(prompt_id: str | None) -> float | None:
    """When the server received the prompt (time.time()), or None when it was not seen."""
    with _lock:
        entry = _prompt_users.get(prompt_id) if prompt_id else None
    return entry[1] if entry else None


def install_secret(directory: str | os.PathLike) -> bytes:
    """This install's secret for hashing user ids (``<directory>/user_hash.key``, 32 random bytes,
    mode 0600, beside the SQLite database), made on first use."""
    path = Path(directory) / SECRET_FILE
    key = str(path)
    with _lock:
        if key in _secret:
            return _secret[key]
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        data = path.read_bytes()
        if len(data) < 32:
            raise StoreError(f"{path} holds {len(data)} bytes, not a 32-byte secret: delete it to make a new one", "secret")
        _secret[key] = data
        return data


def user_hash(user: str | None) -> str:
    """HMAC-SHA256 of the user id under this install's secret (16 hex digits): names no user outside this server.
    Where the secret cannot be written (a read-only user directory) a secret of this process is used, logged once."""
    directory = Path(folder_paths.get_user_directory()) / "pakati"
    try:
        secret = install_secret(directory)
    except (OSError, StoreError) as e:
        with _lock:
            if "process" not in _secret:
                log.warning("Pakati: cannot keep the user-hash secret under %s (%s); using one for this process only", directory, e)
                _secret["process"] = secrets.token_bytes(32)
            secret = _secret["process"]
    return hmac.new(secret, ("pakati-user:" + (user or "")).encode(), hashlib.sha256).hexdigest()[:16]


def user_fingerprint(*parts) -> str:
    """A ``fingerprint_inputs`` value for a node that reads or writes the current user's rows: ComfyUI's
    output cache is shared by every user of a server, so the user is part of the key (two users
    queueing the same graph never get each other's cached output, and each one's rows are written).
    ComfyUI writes fingerprints into the saved prompt (PNG metadata), so the user is a keyed hash
    (``user_hash``), not a name, and not a plain hash of an id that /users lists."""
    return json.dumps([user_hash(current_user()), *parts], default=str)


def executing_prompt_id() -> str | None:
    try:
        from comfy_execution.utils import get_executing_context

        ctx = get_executing_context()
    except ImportError:
        return None
    return ctx.prompt_id if ctx is not None else None


def pakati_store(user: str | None = None, wait_s: float | None = None) -> Store:
    """The store for ``user`` (default: the current one), migrated, legacy JSON imported once; with
    ``wait_s`` every transaction waits at most that long for a lock. Raises UnknownUserError under
    --multi-user when the current prompt or request has no user ComfyUI knows."""
    who = user or current_user()
    if not who:
        raise UnknownUserError(UNKNOWN_USER, "user")
    user_dir = folder_paths.get_user_directory()
    store = open_store(user_dir=user_dir, wait_s=wait_s)
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
    return store.for_user(who)


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
