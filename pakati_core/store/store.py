"""The one store of the pack: history, references, understanding, what worked, orchestration
context, provider calls, the content-hash cache and templates, on one SQLAlchemy engine.

A ``Store`` is bound to one owner (ComfyUI's user id); ``for_user`` gives the same database
seen as another user. Every method opens a short session and commits before it returns, so a
record is either fully there or not at all; a database that cannot be written raises
``StoreUnavailableError`` saying why (read-only file system, full disk, server down).
"""
from __future__ import annotations

import base64
import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from .engine import explain
from .errors import StoreError, StoreUnavailableError, TemplateNameError, TemplateNotFoundError
from .images import THUMBNAIL_SIDE, content_key, image_hash, png_bytes, png_to_array
from .schema import (ApiCall, Blob, CacheEntry, ContextRecord, LegacyImport, ReferenceImage, Run, Template, UnderstandingRow,
                     WhatWorked, utcnow)

DEFAULT_OWNER = "default"
CONTEXT_KINDS = ("plan", "check", "generation")
TEMPLATE_FORMAT = "pakati.template"
TEMPLATE_VERSION = 1
TEMPLATE_NAME_MAX = 128
RECORD_PROMPTS_ENV = "PAKATI_RECORD_PROMPTS"
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|token|password|authori[sz]ation|credential|cookie)", re.I)
_SECRET_VALUE = re.compile(r"^(sk-|sk_|Bearer\s|xai-|AIza)", re.I)


def strict_json(value: Any) -> str:
    """JSON as the store writes it: NaN and infinities refused (they are not JSON)."""
    return json.dumps(value, allow_nan=False, sort_keys=True)


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()


def _epoch(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp(), 6)


def _finite(value: Any, field: str) -> Any:
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


def validate_template_name(name: str) -> str:
    """The name, stripped; refused when it is empty, too long, or could name a path outside the store."""
    if not isinstance(name, str):
        raise TemplateNameError(f"a template name must be text, got {type(name).__name__}", "name")
    if "\x00" in name:
        raise TemplateNameError("a template name cannot contain a NUL byte", "name")
    stripped = name.strip()
    if not stripped:
        raise TemplateNameError("a template name cannot be empty", "name")
    if len(stripped) > TEMPLATE_NAME_MAX:
        raise TemplateNameError(f"a template name has at most {TEMPLATE_NAME_MAX} characters ({len(stripped)} given)", "name")
    if any(ord(c) < 32 or ord(c) == 127 for c in stripped):
        raise TemplateNameError("a template name cannot contain control characters", "name")
    if "/" in stripped or "\\" in stripped or os.path.isabs(stripped) or re.match(r"^[A-Za-z]:", stripped):
        raise TemplateNameError(f"{stripped!r} looks like a path: a template name cannot contain '/' or '\\' or a drive", "name")
    if stripped in (".", "..") or stripped.startswith("."):
        raise TemplateNameError(f"{stripped!r}: a template name cannot start with '.'", "name")
    return stripped


class Store:
    """The database seen by one owner. Cheap to copy (``for_user``): the engine is shared."""

    def __init__(self, engine: Engine, owner: str = DEFAULT_OWNER, record_prompts: bool | None = None):
        if not owner or not isinstance(owner, str) or len(owner) > 128:
            raise StoreError(f"not a user id: {owner!r}", "user")
        self.engine = engine
        self.owner = owner
        self.record_prompts = os.environ.get(RECORD_PROMPTS_ENV, "") == "1" if record_prompts is None else record_prompts
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def for_user(self, owner: str) -> "Store":
        return Store(self.engine, owner, self.record_prompts)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # -- sessions ---------------------------------------------------------------------------
    @contextmanager
    def _session(self, write: bool = True) -> Iterator[Session]:
        """One transaction; errors become StoreErrors that say what failed and where."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except StoreError:
            raise
        except OperationalError as e:
            raise StoreUnavailableError(explain(e, self.url, write), "database") from e
        except StatementError as e:
            if isinstance(e.orig, (ValueError, TypeError)):  # a JSON value that is not strict JSON
                raise StoreError(f"a value cannot be stored as JSON: {e.orig}", "record") from e
            raise StoreError(f"the database refused a statement: {e.orig}", "database") from e
        except IntegrityError as e:  # another writer made the same row at the same moment
            raise StoreError(f"a conflicting record was written at the same time; try again ({e.orig})", "database") from e
        except SQLAlchemyError as e:
            raise StoreError(f"database error on {self.url}: {e}", "database") from e

    def _insert_ignore(self, session: Session, model, values: dict, keys: list[str]) -> None:
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

    def _put_blob(self, session: Session, data: bytes, media_type: str = "image/png") -> str:
        key = content_key(data)
        self._insert_ignore(session, Blob, {"sha256": key, "media_type": media_type, "data": data, "created_at": utcnow()}, ["sha256"])
        return key

    @staticmethod
    def _blob(session: Session, key: str | None) -> bytes | None:
        if not key:
            return None
        row = session.get(Blob, key)
        return row.data if row else None

    def ping(self) -> None:
        """Open a transaction and write nothing: raises StoreUnavailableError when the database cannot be used."""
        with self._session(write=True) as s:
            s.execute(select(1))

    # -- history --------------------------------------------------------------------------------
    def record_run(self, node: str, *, image: np.ndarray | None = None, canvas: dict | None = None,
                   prompts: dict | None = None, seeds: list | None = None, params: dict | None = None,
                   model_name: str | None = None, model_hash: str | None = None, scores: dict | None = None,
                   timings: dict | None = None, prompt_id: str | None = None, parent_id: int | None = None) -> int:
        """Keep one generation; returns its id. The image is kept as a hash and a small thumbnail."""
        values = {"prompts": prompts or {}, "seeds": list(seeds or []), "params": params or {}, "scores": scores or {},
                  "timings": timings or {}, "canvas": canvas}
        for k, v in values.items():
            _finite(v, k)
        thumb = png_bytes(image, THUMBNAIL_SIDE) if image is not None else None
        img_key = image_hash(image) if image is not None else None
        with self._session() as s:
            if parent_id is not None:
                parent = s.get(Run, int(parent_id))
                if parent is None or parent.owner != self.owner:  # another user's run is not there for this one
                    raise StoreError(f"no run {parent_id} of this user to be the parent", "parent_id")
            run = Run(owner=self.owner, node=node, prompt_id=prompt_id, model_name=model_name, model_hash=model_hash,
                      image_hash=img_key, thumbnail=self._put_blob(s, thumb) if thumb else None, parent_id=parent_id,
                      created_at=utcnow(), **values)
            s.add(run)
            s.flush()
            return run.id

    def _run_dict(self, s: Session, run: Run, thumbnails: bool) -> dict:
        out = {"id": run.id, "created_at": _iso(run.created_at), "node": run.node, "prompt_id": run.prompt_id,
               "canvas": run.canvas, "prompts": run.prompts, "seeds": run.seeds, "params": run.params,
               "model_name": run.model_name, "model_hash": run.model_hash, "image_hash": run.image_hash,
               "scores": run.scores, "timings": run.timings, "parent_id": run.parent_id}
        if thumbnails:
            data = self._blob(s, run.thumbnail)
            out["thumbnail"] = "data:image/png;base64," + base64.b64encode(data).decode() if data else None
        return out

    def list_runs(self, limit: int = 50, offset: int = 0, thumbnails: bool = True) -> list[dict]:
        """This user's runs, newest first."""
        limit, offset = max(0, min(int(limit), 500)), max(0, int(offset))
        with self._session(write=False) as s:
            rows = s.scalars(select(Run).where(Run.owner == self.owner).order_by(Run.id.desc()).limit(limit).offset(offset)).all()
            return [self._run_dict(s, r, thumbnails) for r in rows]

    def count_runs(self) -> int:
        with self._session(write=False) as s:
            return s.scalar(select(func.count()).select_from(Run).where(Run.owner == self.owner)) or 0

    def get_run(self, run_id: int, thumbnails: bool = True) -> dict | None:
        with self._session(write=False) as s:
            run = s.get(Run, int(run_id))
            return self._run_dict(s, run, thumbnails) if run is not None and run.owner == self.owner else None

    # -- references -----------------------------------------------------------------------------
    def put_reference(self, image: np.ndarray, aspect: str, description: str = "", weight: float = 1.0) -> str:
        """Keep a reference image (once per image, aspect and description); returns its content hash."""
        _finite(float(weight), "weight")
        key = image_hash(image)
        with self._session() as s:
            blob = self._put_blob(s, png_bytes(image))
            self._insert_ignore(s, ReferenceImage, {"owner": self.owner, "image_hash": key, "aspect": aspect, "description": description,
                                                    "weight": float(weight), "image": blob, "created_at": utcnow()},
                                ["owner", "image_hash", "aspect", "description"])
        return key

    def list_references(self) -> list[dict]:
        with self._session(write=False) as s:
            rows = s.scalars(select(ReferenceImage).where(ReferenceImage.owner == self.owner).order_by(ReferenceImage.id)).all()
            return [{"image_hash": r.image_hash, "aspect": r.aspect, "description": r.description, "weight": r.weight,
                     "created_at": _iso(r.created_at)} for r in rows]

    def reference_image(self, key: str) -> np.ndarray | None:
        with self._session(write=False) as s:
            row = s.scalars(select(ReferenceImage).where(ReferenceImage.owner == self.owner, ReferenceImage.image_hash == key)).first()
            data = self._blob(s, row.image) if row else None
            return png_to_array(data) if data else None

    # -- understanding --------------------------------------------------------------------------
    def get_understanding(self, key: str, fingerprint: str, format_version: int) -> dict | None:
        """The record learned from this image with these settings, or None (also for another format version)."""
        with self._session(write=False) as s:
            row = s.scalars(select(UnderstandingRow).where(UnderstandingRow.owner == self.owner, UnderstandingRow.image_hash == key,
                                                           UnderstandingRow.fingerprint == fingerprint)).first()
            return row.record if row is not None and row.format_version == format_version else None

    def put_understanding(self, record: dict, image: np.ndarray | None, format_version: int) -> None:
        """Insert or replace the record for (image hash, settings fingerprint)."""
        key, fp = record["image_hash"], record["settings"]["fingerprint"]
        _finite(record, "record")
        png = png_bytes(image) if image is not None else None
        with self._session() as s:
            blob = self._put_blob(s, png) if png else None
            row = s.scalars(select(UnderstandingRow).where(UnderstandingRow.owner == self.owner, UnderstandingRow.image_hash == key,
                                                           UnderstandingRow.fingerprint == fp)).first()
            if row is None:
                self._insert_ignore(s, UnderstandingRow, {"owner": self.owner, "image_hash": key, "fingerprint": fp, "format_version": format_version,
                                                          "record": record, "image": blob, "updated_at": utcnow()},
                                    ["owner", "image_hash", "fingerprint"])
                row = s.scalars(select(UnderstandingRow).where(UnderstandingRow.owner == self.owner, UnderstandingRow.image_hash == key,
                                                               UnderstandingRow.fingerprint == fp)).one()
            row.record, row.format_version, row.updated_at = record, format_version, utcnow()
            if blob:
                row.image = blob

    def understanding_image(self, key: str) -> np.ndarray | None:
        with self._session(write=False) as s:
            row = s.scalars(select(UnderstandingRow).where(UnderstandingRow.owner == self.owner, UnderstandingRow.image_hash == key,
                                                           UnderstandingRow.image.is_not(None))).first()
            data = self._blob(s, row.image) if row else None
            return png_to_array(data) if data else None

    def put_understanding_preview(self, key: str, fingerprint: str, grid: np.ndarray) -> None:
        png = png_bytes(grid)
        with self._session() as s:
            row = s.scalars(select(UnderstandingRow).where(UnderstandingRow.owner == self.owner, UnderstandingRow.image_hash == key,
                                                           UnderstandingRow.fingerprint == fingerprint)).first()
            if row is None:
                raise StoreError(f"no understanding {key[:12]}…/{fingerprint} to attach a preview to", "key")
            row.preview = self._put_blob(s, png)

    def understanding_preview(self, key: str, fingerprint: str) -> np.ndarray | None:
        with self._session(write=False) as s:
            row = s.scalars(select(UnderstandingRow).where(UnderstandingRow.owner == self.owner, UnderstandingRow.image_hash == key,
                                                           UnderstandingRow.fingerprint == fingerprint)).first()
            data = self._blob(s, row.preview) if row else None
            return png_to_array(data) if data else None

    def list_understandings(self) -> list[dict]:
        with self._session(write=False) as s:
            rows = s.scalars(select(UnderstandingRow).where(UnderstandingRow.owner == self.owner).order_by(UnderstandingRow.id)).all()
            return [{"image_hash": r.image_hash, "fingerprint": r.fingerprint, "format_version": r.format_version,
                     "updated_at": _iso(r.updated_at)} for r in rows]

    def understanding_revision(self) -> str:
        """Changes whenever one of this user's understandings is written, replaced or removed."""
        with self._session(write=False) as s:
            n, top, last = s.execute(select(func.count(), func.max(UnderstandingRow.id), func.max(UnderstandingRow.updated_at))
                                     .where(UnderstandingRow.owner == self.owner)).one()
        return f"{n}:{top}:{_iso(last)}" if n else "empty"

    # -- what worked ----------------------------------------------------------------------------
    @staticmethod
    def _what_worked_row(owner: str, rec: dict, import_key: str | None = None) -> dict:
        if "action" not in rec:
            raise StoreError("a what-worked record needs an 'action'", "action")
        _finite(rec, "record")
        return {"owner": owner, "run": str(rec.get("run", "")), "pass_index": int(rec.get("pass", 0)), "action": str(rec["action"]),
                "gain": float(rec.get("gain", 0.0)), "kept": bool(rec.get("kept", False)), "record": rec,
                "import_key": import_key, "created_at": utcnow()}

    def append_what_worked(self, records: Iterable[dict]) -> int:
        rows = [self._what_worked_row(self.owner, dict(r)) for r in records]
        if not rows:
            return 0
        with self._session() as s:
            s.execute(WhatWorked.__table__.insert(), rows)
        return len(rows)

    def load_what_worked(self) -> list[dict]:
        with self._session(write=False) as s:
            return list(s.scalars(select(WhatWorked.record).where(WhatWorked.owner == self.owner).order_by(WhatWorked.id)))

    def what_worked_revision(self) -> str:
        """Changes whenever this user's what-worked records change (rows are only ever added)."""
        with self._session(write=False) as s:
            n, top = s.execute(select(func.count(), func.max(WhatWorked.id)).where(WhatWorked.owner == self.owner)).one()
        return f"{n}:{top}" if n else "empty"

    def what_worked_gains(self) -> dict[str, tuple[int, float]]:
        """action -> (number of records, mean gain), computed in the database."""
        with self._session(write=False) as s:
            rows = s.execute(select(WhatWorked.action, func.count(), func.avg(WhatWorked.gain))
                             .where(WhatWorked.owner == self.owner).group_by(WhatWorked.action)).all()
        return {a: (int(n), float(g)) for a, n, g in rows}

    # -- orchestration context (ContextStore) ---------------------------------------------------
    def save_record(self, goal_key: str, kind: str, record: dict) -> None:
        if kind not in CONTEXT_KINDS:
            raise StoreError(f"kind must be one of {', '.join(CONTEXT_KINDS)}, got {kind!r}", "kind")
        if not goal_key or len(goal_key) > 256:
            raise StoreError("a goal key has 1 to 256 characters", "goal_key")
        _finite(record, "record")
        with self._session() as s:
            s.add(ContextRecord(owner=self.owner, goal_key=goal_key, kind=kind, record=record, created_at=utcnow()))

    def load_records(self, goal_key: str, kind: str | None = None) -> list[dict]:
        """Records of this goal (of one kind, or all), oldest first, each with its ``kind`` and ``time``
        (epoch seconds) added as the JSON-lines store does."""
        q = select(ContextRecord).where(ContextRecord.owner == self.owner, ContextRecord.goal_key == goal_key)
        if kind is not None:
            q = q.where(ContextRecord.kind == kind)
        with self._session(write=False) as s:
            rows = s.scalars(q.order_by(ContextRecord.id)).all()
            out = [{"kind": r.kind, "time": _epoch(r.created_at), **r.record} for r in rows]
        return sorted(out, key=lambda r: r.get("time", 0))

    # -- provider calls (CallRecorder) ------------------------------------------------------------
    def record(self, call: Any) -> None:
        """Keep one provider call. Keys never: extra fields that look like secrets are dropped;
        the prompt only when PAKATI_RECORD_PROMPTS=1 (or ``record_prompts``)."""
        data = asdict(call) if hasattr(call, "__dataclass_fields__") else dict(call)
        extra = {k: v for k, v in (data.get("extra") or {}).items()
                 if not _SECRET_KEY.search(str(k)) and not (isinstance(v, str) and _SECRET_VALUE.match(v))}
        _finite(extra, "extra")
        row = ApiCall(owner=self.owner, provider=str(data["provider"]), model=str(data["model"]), operation=str(data["operation"]),
                      duration_s=float(data["duration_s"]), ok=bool(data["ok"]), size=data.get("size"),
                      estimated_cost_usd=data.get("estimated_cost_usd"), error_kind=data.get("error_kind"),
                      prompt=data.get("prompt") if self.record_prompts else None, extra=extra, created_at=utcnow())
        _finite([row.duration_s, row.estimated_cost_usd or 0.0], "call")
        with self._session() as s:
            s.add(row)

    def api_calls(self, limit: int = 100) -> list[dict]:
        with self._session(write=False) as s:
            rows = s.scalars(select(ApiCall).where(ApiCall.owner == self.owner).order_by(ApiCall.id.desc()).limit(limit)).all()
            return [{"provider": r.provider, "model": r.model, "operation": r.operation, "duration_s": r.duration_s, "ok": r.ok,
                     "size": r.size, "estimated_cost_usd": r.estimated_cost_usd, "error_kind": r.error_kind, "prompt": r.prompt,
                     "extra": r.extra, "created_at": _iso(r.created_at)} for r in rows]

    # -- cache -------------------------------------------------------------------------------------
    def cache_get(self, namespace: str, key: str) -> tuple[Any, bytes | None] | None:
        """(value, data) stored under the content hash ``key``, or None."""
        with self._session(write=False) as s:
            row = s.get(CacheEntry, (self.owner, namespace, key))
            return (row.value, row.data) if row is not None else None

    def cache_put(self, namespace: str, key: str, value: Any = None, data: bytes | None = None) -> None:
        """Keep a result; a second writer of the same key (same inputs, same result) is a no-op."""
        _finite(value, "value")
        with self._session() as s:
            self._insert_ignore(s, CacheEntry, {"owner": self.owner, "namespace": namespace, "key": key, "value": value, "data": data,
                                                "created_at": utcnow()}, ["owner", "namespace", "key"])

    # -- templates ----------------------------------------------------------------------------------
    def save_template(self, name: str, canvas: dict, settings: dict | None = None, description: str = "",
                      thumbnail: np.ndarray | bytes | None = None) -> dict:
        """Insert or replace this user's template ``name``."""
        name = validate_template_name(name)
        if not isinstance(canvas, dict) or canvas.get("version") != 1:
            raise StoreError("a template's canvas must be Region JSON v1 (an object with version 1)", "canvas")
        settings = settings or {}
        _finite(canvas, "canvas")
        _finite(settings, "settings")
        thumb = thumbnail if isinstance(thumbnail, (bytes, type(None))) else png_bytes(thumbnail, THUMBNAIL_SIDE)
        with self._session() as s:
            key = self._put_blob(s, thumb) if thumb else None
            row = s.scalars(select(Template).where(Template.owner == self.owner, Template.name == name)).first()
            if row is None:
                row = Template(owner=self.owner, name=name, created_at=utcnow())
                s.add(row)
            row.description, row.canvas, row.settings, row.updated_at = description, canvas, settings, utcnow()
            row.thumbnail = key if key else row.thumbnail
            s.flush()
            return self._template_dict(s, row, thumbnail=False)

    def _template_dict(self, s: Session, row: Template, thumbnail: bool) -> dict:
        out = {"name": row.name, "description": row.description, "canvas": row.canvas, "settings": row.settings,
               "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at)}
        if thumbnail:
            data = self._blob(s, row.thumbnail)
            out["thumbnail_png"] = data
        return out

    def load_template(self, name: str) -> dict:
        name = validate_template_name(name)
        with self._session(write=False) as s:
            row = s.scalars(select(Template).where(Template.owner == self.owner, Template.name == name)).first()
            if row is None:
                raise TemplateNotFoundError(f"no template named {name!r}", "name")
            return self._template_dict(s, row, thumbnail=True)

    def template_names(self) -> list[str]:
        with self._session(write=False) as s:
            return list(s.scalars(select(Template.name).where(Template.owner == self.owner).order_by(Template.name)))

    def delete_template(self, name: str) -> bool:
        name = validate_template_name(name)
        with self._session() as s:
            row = s.scalars(select(Template).where(Template.owner == self.owner, Template.name == name)).first()
            if row is None:
                return False
            s.delete(row)
            return True

    def export_template(self, name: str) -> dict:
        """The template as a self-contained JSON document (thumbnail as base64 PNG)."""
        t = self.load_template(name)
        thumb = t.pop("thumbnail_png")
        return {"format": TEMPLATE_FORMAT, "version": TEMPLATE_VERSION, "name": t["name"], "description": t["description"],
                "canvas": t["canvas"], "settings": t["settings"],
                "thumbnail_png_base64": base64.b64encode(thumb).decode() if thumb else None}

    def import_template(self, document: dict, name: str | None = None, overwrite: bool = False) -> dict:
        """Store a document made by ``export_template`` (under ``name`` if given)."""
        if not isinstance(document, dict) or document.get("format") != TEMPLATE_FORMAT:
            raise StoreError(f"not a Pakati template: the document's format must be {TEMPLATE_FORMAT!r}", "document")
        if document.get("version") != TEMPLATE_VERSION:
            raise StoreError(f"template version {document.get('version')!r}; this build reads version {TEMPLATE_VERSION}", "document")
        target = validate_template_name(name if name is not None else str(document.get("name", "")))
        if not overwrite and target in self.template_names():
            raise StoreError(f"a template named {target!r} exists; pass overwrite to replace it", "name")
        thumb_b64 = document.get("thumbnail_png_base64")
        try:
            thumb = base64.b64decode(thumb_b64, validate=True) if thumb_b64 else None
        except ValueError as e:
            raise StoreError(f"the thumbnail is not base64: {e}", "thumbnail_png_base64") from e
        if thumb is not None and not thumb.startswith(b"\x89PNG\r\n\x1a\n"):
            raise StoreError("the thumbnail is not a PNG", "thumbnail_png_base64")
        return self.save_template(target, document.get("canvas"), document.get("settings") or {}, str(document.get("description", "")), thumb)

    def export_template_file(self, name: str, directory: str | os.PathLike) -> Path:
        """Write ``<directory>/<name>.json`` (strict JSON); the name was validated, so it stays inside."""
        doc = self.export_template(name)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{doc['name']}.json"
        if path.resolve().parent != directory.resolve():
            raise TemplateNameError(f"{name!r} would be written outside {directory}", "name")
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def import_template_file(self, path: str | os.PathLike, overwrite: bool = False) -> dict:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read template file {path}: {e}", "path") from e
        return self.import_template(doc, overwrite=overwrite)

    # -- legacy JSON imports ----------------------------------------------------------------------
    def _import_done(self, s: Session, source: str, digest: str) -> bool:
        return s.get(LegacyImport, (self.owner, source, digest)) is not None

    def _mark_imported(self, s: Session, source: str, digest: str, rows: int) -> None:
        self._insert_ignore(s, LegacyImport, {"owner": self.owner, "source": source, "digest": digest, "rows": rows,
                                              "imported_at": utcnow()}, ["owner", "source", "digest"])
