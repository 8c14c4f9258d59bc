"""Understandings: what learning a reference found, per (reference content hash, settings fingerprint),
with the reference pixels and the preview grid kept as content-addressed PNGs beside it."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from .database import Database, finite, iso
from .errors import StoreError
from .images import png_bytes, png_to_array
from .schema import UnderstandingRow, utcnow


class UnderstandingRepository:
    def __init__(self, db: Database):
        self.db = db

    def get(self, key: str, fingerprint: str, format_version: int) -> dict | None:
        """The record learned from this image with these settings, or None (also for another format version)."""
        with self.db.session(write=False) as s:
            row = s.scalars(
                select(UnderstandingRow).where(
                    UnderstandingRow.owner == self.db.owner, UnderstandingRow.image_hash == key, UnderstandingRow.fingerprint == fingerprint
                )
            ).first()
            return row.record if row is not None and row.format_version == format_version else None

    def put(self, record: dict, image: np.ndarray | None, format_version: int) -> None:
        """Insert or replace the record for (image hash, settings fingerprint)."""
        key, fp = record["image_hash"], record["settings"]["fingerprint"]
        finite(record, "record")
        png = png_bytes(image) if image is not None else None
        with self.db.session() as s:
            blob = self.db.put_blob(s, png) if png else None
            row = s.scalars(
                select(UnderstandingRow).where(
                    UnderstandingRow.owner == self.db.owner, UnderstandingRow.image_hash == key, UnderstandingRow.fingerprint == fp
                )
            ).first()
            if row is None:
                self.db.insert_ignore(
                    s,
                    UnderstandingRow,
                    {
                        "owner": self.db.owner,
                        "image_hash": key,
                        "fingerprint": fp,
                        "format_version": format_version,
                        "record": record,
                        "image": blob,
                        "updated_at": utcnow(),
                    },
                    ["owner", "image_hash", "fingerprint"],
                )
                row = s.scalars(
                    select(UnderstandingRow).where(
                        UnderstandingRow.owner == self.db.owner, UnderstandingRow.image_hash == key, UnderstandingRow.fingerprint == fp
                    )
                ).one()
            row.record, row.format_version, row.updated_at = record, format_version, utcnow()
            if blob:
                row.image = blob

    def image(self, key: str) -> np.ndarray | None:
        with self.db.session(write=False) as s:
            row = s.scalars(
                select(UnderstandingRow).where(
                    UnderstandingRow.owner == self.db.owner, UnderstandingRow.image_hash == key, UnderstandingRow.image.is_not(None)
                )
            ).first()
            data = self.db.blob(s, row.image) if row else None
            return png_to_array(data) if data else None

    def put_preview(self, key: str, fingerprint: str, grid: np.ndarray) -> None:
        png = png_bytes(grid)
        with self.db.session() as s:
            row = s.scalars(
                select(UnderstandingRow).where(
                    UnderstandingRow.owner == self.db.owner, UnderstandingRow.image_hash == key, UnderstandingRow.fingerprint == fingerprint
                )
            ).first()
            if row is None:
                raise StoreError(f"no understanding {key[:12]}…/{fingerprint} to attach a preview to", "key")
            row.preview = self.db.put_blob(s, png)

    def preview(self, key: str, fingerprint: str) -> np.ndarray | None:
        with self.db.session(write=False) as s:
            row = s.scalars(
                select(UnderstandingRow).where(
                    UnderstandingRow.owner == self.db.owner, UnderstandingRow.image_hash == key, UnderstandingRow.fingerprint == fingerprint
                )
            ).first()
            data = self.db.blob(s, row.preview) if row else None
            return png_to_array(data) if data else None

    def all(self) -> list[dict]:
        with self.db.session(write=False) as s:
            rows = s.scalars(select(UnderstandingRow).where(UnderstandingRow.owner == self.db.owner).order_by(UnderstandingRow.id)).all()
            return [
                {
                    "image_hash": r.image_hash,
                    "fingerprint": r.fingerprint,
                    "format_version": r.format_version,
                    "updated_at": iso(r.updated_at),
                }
                for r in rows
            ]

    def revision(self) -> str:
        """Changes whenever one of this user's understandings is written, replaced or removed."""
        with self.db.session(write=False) as s:
            n, top, last = s.execute(
                select(func.count(), func.max(UnderstandingRow.id), func.max(UnderstandingRow.updated_at)).where(
                    UnderstandingRow.owner == self.db.owner
                )
            ).one()
        return f"{n}:{top}:{iso(last)}" if n else "empty"
