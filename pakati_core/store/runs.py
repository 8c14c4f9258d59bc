"""Runs (the history): one row per generation, with its image as a hash and a small thumbnail."""

from __future__ import annotations

import base64

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .database import Database, finite, iso
from .errors import StoreError
from .images import THUMBNAIL_SIDE, image_hash, png_bytes
from .schema import Run, utcnow


class RunRepository:
    def __init__(self, db: Database):
        self.db = db

    def add(
        self,
        node: str,
        *,
        image: np.ndarray | None = None,
        canvas: dict | None = None,
        prompts: dict | None = None,
        seeds: list | None = None,
        params: dict | None = None,
        model_name: str | None = None,
        model_hash: str | None = None,
        scores: dict | None = None,
        timings: dict | None = None,
        prompt_id: str | None = None,
        parent_id: int | None = None,
    ) -> int:
        """Keep one generation; returns its id. The image is kept as a hash and a small thumbnail."""
        values = {
            "prompts": prompts or {},
            "seeds": list(seeds or []),
            "params": params or {},
            "scores": scores or {},
            "timings": timings or {},
            "canvas": canvas,
        }
        for k, v in values.items():
            finite(v, k)
        thumb = png_bytes(image, THUMBNAIL_SIDE) if image is not None else None
        img_key = image_hash(image) if image is not None else None
        with self.db.session() as s:
            if parent_id is not None:
                parent = s.get(Run, int(parent_id))
                if parent is None or parent.owner != self.db.owner:  # another user's run is not there for this one
                    raise StoreError(f"no run {parent_id} of this user to be the parent", "parent_id")
            run = Run(
                owner=self.db.owner,
                node=node,
                prompt_id=prompt_id,
                model_name=model_name,
                model_hash=model_hash,
                image_hash=img_key,
                thumbnail=self.db.put_blob(s, thumb) if thumb else None,
                parent_id=parent_id,
                created_at=utcnow(),
                **values,
            )
            s.add(run)
            s.flush()
            return run.id

    def _dict(self, s: Session, run: Run, thumbnails: bool) -> dict:
        out = {
            "id": run.id,
            "created_at": iso(run.created_at),
            "node": run.node,
            "prompt_id": run.prompt_id,
            "canvas": run.canvas,
            "prompts": run.prompts,
            "seeds": run.seeds,
            "params": run.params,
            "model_name": run.model_name,
            "model_hash": run.model_hash,
            "image_hash": run.image_hash,
            "scores": run.scores,
            "timings": run.timings,
            "parent_id": run.parent_id,
        }
        if thumbnails:
            data = self.db.blob(s, run.thumbnail)
            out["thumbnail"] = "data:image/png;base64," + base64.b64encode(data).decode() if data else None
        return out

    def newest(self, limit: int = 50, offset: int = 0, thumbnails: bool = True) -> list[dict]:
        """This user's runs, newest first."""
        limit, offset = max(0, min(int(limit), 500)), max(0, int(offset))
        with self.db.session(write=False) as s:
            rows = s.scalars(select(Run).where(Run.owner == self.db.owner).order_by(Run.id.desc()).limit(limit).offset(offset)).all()
            return [self._dict(s, r, thumbnails) for r in rows]

    def count(self) -> int:
        with self.db.session(write=False) as s:
            return s.scalar(select(func.count()).select_from(Run).where(Run.owner == self.db.owner)) or 0

    def get(self, run_id: int, thumbnails: bool = True) -> dict | None:
        with self.db.session(write=False) as s:
            run = s.get(Run, int(run_id))
            return self._dict(s, run, thumbnails) if run is not None and run.owner == self.db.owner else None
