"""Templates: saved configurations (canvas plus settings) to start new work from, and their JSON documents to share.

A template name is shown by front ends (ComfyUI builds its combo entries as HTML), written into
file names and download names, so it is a safe alphabet, checked here and nowhere else: letters
and digits of any script (with their combining marks), space and ``- _ . ( ) ,``; 1-128
characters; never starting with '.'. Rows written by earlier builds under another name are
listed and loaded under a safe display name (never dropped). Pakati relies on no front end's
escaping for it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import unicodedata
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..canvas import Canvas
from ..errors import PakatiError
from .database import Database, finite, iso
from .errors import StoreError, TemplateNameError, TemplateNotFoundError
from .images import THUMBNAIL_SIDE, png_bytes
from .schema import Template, utcnow

TEMPLATE_FORMAT = "pakati.template"
TEMPLATE_VERSION = 1
TEMPLATE_NAME_MAX = 128
NAME_PUNCTUATION = " -_.(),"
DESCRIPTION_MAX = 10_000
DOCUMENT_DEPTH_MAX = 32
REFERENCES_MAX = 64
_HASH = re.compile(r"^[0-9a-f]{64}$")


def _name_char(c: str, first: bool) -> bool:
    cat = unicodedata.category(c)
    return cat[0] in "LN" or (cat[0] == "M" and not first) or c in NAME_PUNCTUATION


def is_safe_template_name(name: str) -> bool:
    """True when ``name`` is in the safe alphabet (what validate_template_name accepts, already stripped)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= TEMPLATE_NAME_MAX
        and name == name.strip()
        and not name.startswith(".")
        and all(_name_char(c, i == 0) for i, c in enumerate(name))
    )


def display_name(stored: str, taken: set[str]) -> str:
    """A safe name for a row an earlier build stored under an unsafe one: each character outside the
    alphabet becomes '_', and a number is added where that collides with a name in ``taken``."""
    base = "".join(c if _name_char(c, i == 0) else "_" for i, c in enumerate(stored.strip() or "_")).lstrip(".") or "_"
    base = base[: TEMPLATE_NAME_MAX - 8].strip() or "_"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base} ({n})"
    return name


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
    bad = sorted({c for i, c in enumerate(stripped) if not _name_char(c, i == 0)})
    if bad:
        shown = " ".join(repr(c) for c in bad[:8])
        raise TemplateNameError(f"a template name may hold letters, digits, spaces and - _ . ( ) , only; not {shown}", "name")
    return stripped


def _depth(value, limit: int, field: str, depth: int = 0) -> None:
    """Refuse JSON nested deeper than ``limit`` (before anything recursive walks it)."""
    if depth > limit:
        raise StoreError(f"{field} is nested deeper than {limit} levels", field)
    if isinstance(value, dict):
        for v in value.values():
            _depth(v, limit, field, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _depth(v, limit, field, depth + 1)


def validate_canvas(canvas) -> dict:
    """A template's canvas: Region JSON v1 that the canvas parser accepts (the same check Load Template makes)."""
    if not isinstance(canvas, dict) or canvas.get("version") != 1:
        raise StoreError("a template's canvas must be Region JSON v1 (an object with version 1)", "canvas")
    _depth(canvas, DOCUMENT_DEPTH_MAX, "canvas")
    try:
        Canvas.from_dict(canvas)
    except PakatiError as e:
        raise StoreError(f"the canvas is not valid Region JSON: {e}", "canvas") from e
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        raise StoreError(f"the canvas is not valid Region JSON ({type(e).__name__}: {e})", "canvas") from e
    return canvas


def validate_settings(settings) -> dict:
    """A template's settings: a JSON object; its ``references``, when present, a list of
    {image_hash: 64 hex, aspect: text, description: text, weight: finite number}."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise StoreError(f"a template's settings must be a JSON object, got {type(settings).__name__}", "settings")
    _depth(settings, DOCUMENT_DEPTH_MAX, "settings")
    finite(settings, "settings")
    refs = settings.get("references")
    if refs is None:
        return settings
    if not isinstance(refs, list) or len(refs) > REFERENCES_MAX:
        raise StoreError(f"settings.references must be a list of at most {REFERENCES_MAX} references", "settings.references")
    for i, r in enumerate(refs):
        where = f"settings.references[{i}]"
        if not isinstance(r, dict):
            raise StoreError(f"{where} must be an object", where)
        if not isinstance(r.get("image_hash"), str) or not _HASH.match(r["image_hash"]):
            raise StoreError(f"{where}.image_hash must be a SHA-256 (64 lower-case hex digits)", where)
        for key in ("aspect", "description"):
            if key in r and (not isinstance(r[key], str) or len(r[key]) > DESCRIPTION_MAX):
                raise StoreError(f"{where}.{key} must be text", where)
        w = r.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise StoreError(f"{where}.weight must be a number", where)
    return settings


class TemplateRepository:
    def __init__(self, db: Database):
        self.db = db

    def save(
        self, name: str, canvas: dict, settings: dict | None = None, description: str = "", thumbnail: np.ndarray | bytes | None = None
    ) -> dict:
        """Insert or replace this user's template ``name``."""
        name = validate_template_name(name)
        validate_canvas(canvas)
        settings = validate_settings(settings)
        if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
            raise StoreError(f"a template's description is text of at most {DESCRIPTION_MAX} characters", "description")
        finite(canvas, "canvas")
        thumb = thumbnail if isinstance(thumbnail, (bytes, type(None))) else png_bytes(thumbnail, THUMBNAIL_SIDE)
        with self.db.session() as s:
            key = self.db.put_blob(s, thumb) if thumb else None
            row = s.scalars(select(Template).where(Template.owner == self.db.owner, Template.name == name)).first()
            if row is None:
                row = Template(owner=self.db.owner, name=name, created_at=utcnow())
                s.add(row)
            row.description, row.canvas, row.settings, row.updated_at = description, canvas, settings, utcnow()
            row.thumbnail = key if key else row.thumbnail
            s.flush()
            return self._dict(s, row, thumbnail=False)

    def _dict(self, s: Session, row: Template, thumbnail: bool, name: str | None = None) -> dict:
        out = {
            "name": name or row.name,
            "description": row.description,
            "canvas": row.canvas,
            "settings": row.settings,
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
        }
        if thumbnail:
            data = self.db.blob(s, row.thumbnail)
            out["thumbnail_png"] = data
        return out

    def _shown(self, s: Session) -> dict[str, int]:
        """Display name -> row id for this user: safe names as stored; rows an earlier build stored
        under an unsafe name under a safe display name (oldest row first, never colliding)."""
        rows = s.execute(select(Template.id, Template.name).where(Template.owner == self.db.owner).order_by(Template.id)).all()
        shown = {name: rid for rid, name in rows if is_safe_template_name(name)}
        for rid, name in rows:
            if not is_safe_template_name(name):
                shown[display_name(name, set(shown))] = rid
        return shown

    def _find(self, s: Session, name: str) -> tuple[str, Template] | None:
        rid = self._shown(s).get(name)
        return (name, s.get(Template, rid)) if rid is not None else None

    def load(self, name: str) -> dict:
        name = validate_template_name(name)
        with self.db.session(write=False) as s:
            found = self._find(s, name)
            if found is None:
                raise TemplateNotFoundError(f"no template named {name!r}", "name")
            return self._dict(s, found[1], thumbnail=True, name=found[0])

    def names(self) -> list[str]:
        """This user's template names, every one in the safe alphabet."""
        with self.db.session(write=False) as s:
            return sorted(self._shown(s))

    def delete(self, name: str) -> bool:
        name = validate_template_name(name)
        with self.db.session() as s:
            found = self._find(s, name)
            if found is None:
                return False
            s.delete(found[1])
            return True

    def export(self, name: str) -> dict:
        """The template as a self-contained JSON document (thumbnail as base64 PNG)."""
        t = self.load(name)
        thumb = t.pop("thumbnail_png")
        return {
            "format": TEMPLATE_FORMAT,
            "version": TEMPLATE_VERSION,
            "name": t["name"],
            "description": t["description"],
            "canvas": t["canvas"],
            "settings": t["settings"],
            "thumbnail_png_base64": base64.b64encode(thumb).decode() if thumb else None,
        }

    def import_document(self, document: dict, name: str | None = None, overwrite: bool = False) -> dict:
        """Store a document made by ``export_template`` (under ``name`` if given)."""
        if not isinstance(document, dict) or document.get("format") != TEMPLATE_FORMAT:
            raise StoreError(f"not a Pakati template: the document's format must be {TEMPLATE_FORMAT!r}", "document")
        if document.get("version") != TEMPLATE_VERSION:
            raise StoreError(
                f"template version {str(document.get('version'))[:40]!r}; this build reads version {TEMPLATE_VERSION}", "document"
            )
        _depth(document, DOCUMENT_DEPTH_MAX + 2, "document")
        raw_name = name if name is not None else document.get("name", "")
        if not isinstance(raw_name, str):
            raise TemplateNameError(f"a template name must be text, got {type(raw_name).__name__}", "name")
        target = validate_template_name(raw_name)
        validate_canvas(document.get("canvas"))
        validate_settings(document.get("settings"))
        description = document.get("description", "")
        if not isinstance(description, str):
            raise StoreError(f"the description must be text, got {type(description).__name__}", "description")
        if not overwrite and target in self.names():
            raise StoreError(f"a template named {target!r} exists; pass overwrite to replace it", "name")
        thumb_b64 = document.get("thumbnail_png_base64")
        if thumb_b64 is not None and not isinstance(thumb_b64, str):
            raise StoreError("the thumbnail must be base64 text", "thumbnail_png_base64")
        try:
            thumb = base64.b64decode(thumb_b64, validate=True) if thumb_b64 else None
        except ValueError as e:
            raise StoreError(f"the thumbnail is not base64: {e}", "thumbnail_png_base64") from e
        if thumb is not None and not thumb.startswith(b"\x89PNG\r\n\x1a\n"):
            raise StoreError("the thumbnail is not a PNG", "thumbnail_png_base64")
        return self.save(target, document.get("canvas"), document.get("settings") or {}, description, thumb)

    def export_file(self, name: str, directory: str | os.PathLike) -> Path:
        """Write ``<directory>/<name>.json`` (strict JSON); the name was validated, so it stays inside."""
        doc = self.export(name)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{doc['name']}.json"
        if path.resolve().parent != directory.resolve():
            raise TemplateNameError(f"{name!r} would be written outside {directory}", "name")
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def import_file(self, path: str | os.PathLike, overwrite: bool = False) -> dict:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read template file {path}: {e}", "path") from e
        return self.import_document(doc, overwrite=overwrite)
