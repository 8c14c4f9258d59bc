"""Reference images someone refined towards (kept once per image, aspect and description)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from .database import Database, finite, iso
from .images import image_hash, png_bytes, png_to_array
from .schema import ReferenceImage, utcnow


class ReferenceRepository:
    def __init__(self, db: Database):
        self.db = db

    def put(self, image: np.ndarray, aspect: str, description: str = "", weight: float = 1.0) -> str:
        """Keep a reference image (once per image, aspect and description); returns its content hash."""
        finite(float(weight), "weight")
        key = image_hash(image)
        with self.db.session() as s:
            blob = self.db.put_blob(s, png_bytes(image))
            self.db.insert_ignore(
                s,
                ReferenceImage,
                {
                    "owner": self.db.owner,
                    "image_hash": key,
                    "aspect": aspect,
                    "description": description,
                    "weight": float(weight),
                    "image": blob,
                    "created_at": utcnow(),
                },
                ["owner", "image_hash", "aspect", "description"],
            )
        return key

    def all(self) -> list[dict]:
        with self.db.session(write=False) as s:
            rows = s.scalars(select(ReferenceImage).where(ReferenceImage.owner == self.db.owner).order_by(ReferenceImage.id)).all()
            return [
                {
                    "image_hash": r.image_hash,
                    "aspect": r.aspect,
                    "description": r.description,
                    "weight": r.weight,
                    "created_at": iso(r.created_at),
                }
                for r in rows
            ]

    def image(self, key: str) -> np.ndarray | None:
        with self.db.session(write=False) as s:
            row = s.scalars(select(ReferenceImage).where(ReferenceImage.owner == self.db.owner, ReferenceImage.image_hash == key)).first()
            data = self.db.blob(s, row.image) if row else None
            return png_to_array(data) if data else None
