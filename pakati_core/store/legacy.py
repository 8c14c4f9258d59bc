"""One-time import of the JSON files earlier builds wrote (understanding records, what worked).

Each file is imported in one transaction and remembered by path and content digest, so a
second start (or a second server starting at the same moment) imports nothing twice; rows
carry keys that make a repeated insert a no-op. The files are left where they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from sqlalchemy.orm import Session

from .database import Database
from .schema import ContextRecord, LegacyImport, UnderstandingRow, WhatWorked, utcnow
from .what_worked import WhatWorkedRepository

log = logging.getLogger("pakati.store")

UNDERSTANDING_FORMAT = "pakati.understanding-store"
UNDERSTANDING_VERSION = 1
WHAT_WORKED_VERSION = 1
WHAT_WORKED_FILE = f"what_worked.v{WHAT_WORKED_VERSION}.jsonl"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _import_done(store: Database, s: Session, source: str, digest: str) -> bool:
    return s.get(LegacyImport, (store.owner, source, digest)) is not None


def _mark_imported(store: Database, s: Session, source: str, digest: str, rows: int) -> None:
    store.insert_ignore(
        s,
        LegacyImport,
        {"owner": store.owner, "source": source, "digest": digest, "rows": rows, "imported_at": utcnow()},
        ["owner", "source", "digest"],
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def import_understanding_dir(store: Database, directory: str | os.PathLike) -> int:
    """Import ``<hash>.json`` files (with their ``<hash>.png`` and previews); returns the records added."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    added = 0
    for path in sorted(directory.glob("*.json")):
        key = path.stem
        if not key or any(c not in "0123456789abcdef" for c in key):
            continue
        raw = path.read_bytes()
        source, digest = str(path.resolve()), _digest(raw)
        try:
            data = json.loads(raw)
        except ValueError:
            log.warning("Pakati store: %s is not JSON; not imported", path)
            continue
        if not isinstance(data, dict) or data.get("format") != UNDERSTANDING_FORMAT or data.get("version") != UNDERSTANDING_VERSION:
            log.warning(
                "Pakati store: %s is %s v%s, not %s v%s; not imported",
                path,
                data.get("format") if isinstance(data, dict) else "?",
                data.get("version") if isinstance(data, dict) else "?",
                UNDERSTANDING_FORMAT,
                UNDERSTANDING_VERSION,
            )
            continue
        png = directory / f"{key}.png"
        image_png = png.read_bytes() if png.is_file() else None
        with store.session() as s:
            if _import_done(store, s, source, digest):
                continue
            image_blob = store.put_blob(s, image_png) if image_png else None
            n = 0
            for fp, record in (data.get("runs") or {}).items():
                preview = directory / f"{key}-{fp}.preview.png"
                preview_blob = store.put_blob(s, preview.read_bytes()) if preview.is_file() else None
                exists = s.query(UnderstandingRow.id).filter_by(owner=store.owner, image_hash=key, fingerprint=fp).first()
                if exists:
                    continue
                store.insert_ignore(
                    s,
                    UnderstandingRow,
                    {
                        "owner": store.owner,
                        "image_hash": key,
                        "fingerprint": fp,
                        "format_version": UNDERSTANDING_VERSION,
                        "record": record,
                        "image": image_blob,
                        "preview": preview_blob,
                        "updated_at": utcnow(),
                    },
                    ["owner", "image_hash", "fingerprint"],
                )
                n += 1
            _mark_imported(store, s, source, digest, n)
        added += n
    return added


def import_what_worked_file(store: Database, path: str | os.PathLike) -> int:
    """Import a ``what_worked.v1.jsonl`` file line by line; returns the rows added.

    Each line's key is its hash plus how many identical lines came before it, so a file that
    grew since the last import adds only its new lines.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    raw = path.read_bytes()
    source, digest = str(path.resolve()), _digest(raw)
    seen: dict[str, int] = {}
    rows = []
    skipped = 0
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        h = _digest(line.encode())
        seen[h] = seen.get(h, 0) + 1
        try:
            rec = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if not isinstance(rec, dict) or rec.get("version") != WHAT_WORKED_VERSION or "action" not in rec:
            skipped += 1
            continue
        try:
            rows.append(WhatWorkedRepository.row(store.owner, rec, import_key=f"{h}:{seen[h]}"))
        except Exception:  # a line with NaN or a broken field: skipped, as the JSON-lines reader did
            skipped += 1
    with store.session() as s:
        if _import_done(store, s, source, digest):
            return 0
        before = s.query(WhatWorked.id).filter_by(owner=store.owner).count()
        for row in rows:
            store.insert_ignore(s, WhatWorked, row, ["owner", "import_key"])
        added = s.query(WhatWorked.id).filter_by(owner=store.owner).count() - before
        _mark_imported(store, s, source, digest, added)
    if skipped:
        log.info("Pakati store: %d line(s) of %s were not what-worked v%d records; skipped", skipped, path, WHAT_WORKED_VERSION)
    return added


def import_context_dir(store: Database, directory: str | os.PathLike) -> int:
    """Import the orchestration's ``<goal key>.<kind>.jsonl`` files; returns the records added."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    added = 0
    for path in sorted(directory.glob("*.jsonl")):
        parts = path.name.split(".")
        if len(parts) != 3 or parts[1] not in ("plan", "check", "generation"):
            continue
        key, kind = parts[0], parts[1]
        raw = path.read_bytes()
        source, digest = str(path.resolve()), _digest(raw)
        records = []
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line, parse_constant=_reject_constant)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
        with store.session() as s:
            if s.query(LegacyImport).filter_by(owner=store.owner, source=source).first() is not None:
                continue  # context files are imported once, as they were then
            new = records
            for rec in new:
                s.add(ContextRecord(owner=store.owner, goal_key=key, kind=kind, record=rec, created_at=utcnow()))
            _mark_imported(store, s, source, digest, len(new))
        added += len(new)
    return added


def import_legacy(store: Database, pakati_dir: str | os.PathLike) -> dict[str, int]:
    """Import what earlier builds kept under ``<user dir>/pakati`` (understanding/, refine/, context/)."""
    base = Path(pakati_dir)
    return {
        "understanding": import_understanding_dir(store, base / "understanding"),
        "what_worked": import_what_worked_file(store, base / "refine" / WHAT_WORKED_FILE),
        "context": import_context_dir(store, base / "context"),
    }
