"""Templates: saved configurations (canvas plus settings) to start new work from, and their JSON documents to share."""
from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from .database import Database, finite, iso
from .errors import StoreError, TemplateNameError, TemplateNotFoundError
from .images import THUMBNAIL_SIDE, png_bytes
from .schema import Template, utcnow

TEMPLATE_FORMAT = "pakati.template"
TEMPLATE_VERSION = 1
TEMPLATE_NAME_MAX = 128


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




class TemplateRepository:
    def __init__(self, db: Database):
        self.db = db

    def save(self, name: str, canvas: dict, settings: dict | None = None, description: str = "",
                      thumbnail: np.ndarray | bytes | None = None) -> dict:
        """Insert or replace this user's template ``name``."""
        name = validate_template_name(name)
        if not isinstance(canvas, dict) or canvas.get("version") != 1:
            raise StoreError("a template's canvas must be Region JSON v1 (an object with version 1)", "canvas")
        settings = settings or {}
        finite(canvas, "canvas")
        finite(settings, "settings")
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

    def _dict(self, s: Session, row: Template, thumbnail: bool) -> dict:
        out = {"name": row.name, "description": row.description, "canvas": row.canvas, "settings": row.settings,
               "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}
        if thumbnail:
            data = self.db.blob(s, row.thumbnail)
            out["thumbnail_png"] = data
        return out

    def load(self, name: str) -> dict:
        name = validate_template_name(name)
        with self.db.session(write=False) as s:
            row = s.scalars(select(Template).where(Template.owner == self.db.owner, Template.name == name)).first()
            if row is None:
                raise TemplateNotFoundError(f"no template named {name!r}", "name")
            return self._dict(s, row, thumbnail=True)

    def names(self) -> list[str]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(Template.name).where(Template.owner == self.db.owner).order_by(Template.name)))

    def delete(self, name: str) -> bool:
        name = validate_template_name(name)
        with self.db.session() as s:
            row = s.scalars(select(Template).where(Template.owner == self.db.owner, Template.name == name)).first()
            if row is None:
                return False
            s.delete(row)
            return True

    def export(self, name: str) -> dict:
        """The template as a self-contained JSON document (thumbnail as base64 PNG)."""
        t = self.load(name)
        thumb = t.pop("thumbnail_png")
        return {"format": TEMPLATE_FORMAT, "version": TEMPLATE_VERSION, "name": t["name"], "description": t["description"],
                "canvas": t["canvas"], "settings": t["settings"],
                "thumbnail_png_base64": base64.b64encode(thumb).decode() if thumb else None}

    def import_document(self, document: dict, name: str | None = None, overwrite: bool = False) -> dict:
        """Store a document made by ``export_template`` (under ``name`` if given)."""
        if not isinstance(document, dict) or document.get("format") != TEMPLATE_FORMAT:
            raise StoreError(f"not a Pakati template: the document's format must be {TEMPLATE_FORMAT!r}", "document")
        if document.get("version") != TEMPLATE_VERSION:
            raise StoreError(f"template version {document.get('version')!r}; this build reads version {TEMPLATE_VERSION}", "document")
        target = validate_template_name(name if name is not None else str(document.get("name", "")))
        if not overwrite and target in self.names():
            raise StoreError(f"a template named {target!r} exists; pass overwrite to replace it", "name")
        thumb_b64 = document.get("thumbnail_png_base64")
        try:
            thumb = base64.b64decode(thumb_b64, validate=True) if thumb_b64 else None
        except ValueError as e:
            raise StoreError(f"the thumbnail is not base64: {e}", "thumbnail_png_base64") from e
        if thumb is not None and not thumb.startswith(b"\x89PNG\r\n\x1a\n"):
            raise StoreError("the thumbnail is not a PNG", "thumbnail_png_base64")
        return self.save(target, document.get("canvas"), document.get("settings") or {}, str(document.get("description", "")), thumb)

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
