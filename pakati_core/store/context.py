"""Orchestration context (plans, alignment checks, generations per goal): the orchestration's ``ContextStore``."""

from __future__ import annotations

from sqlalchemy import select

from .database import Database, epoch, finite
from .errors import StoreError
from .schema import ContextRecord, utcnow

CONTEXT_KINDS = ("plan", "check", "generation")


class ContextRepository:
    def __init__(self, db: Database):
        self.db = db

    def save_record(self, goal_key: str, kind: str, record: dict) -> None:
        if kind not in CONTEXT_KINDS:
            raise StoreError(f"kind must be one of {', '.join(CONTEXT_KINDS)}, got {kind!r}", "kind")
        if not goal_key or len(goal_key) > 256:
            raise StoreError("a goal key has 1 to 256 characters", "goal_key")
        finite(record, "record")
        with self.db.session() as s:
            s.add(ContextRecord(owner=self.db.owner, goal_key=goal_key, kind=kind, record=record, created_at=utcnow()))

    def load_records(self, goal_key: str, kind: str | None = None) -> list[dict]:
        """Records of this goal (of one kind, or all), oldest first, each with its ``kind`` and ``time``
        (epoch seconds) added as the JSON-lines store does."""
        q = select(ContextRecord).where(ContextRecord.owner == self.db.owner, ContextRecord.goal_key == goal_key)
        if kind is not None:
            q = q.where(ContextRecord.kind == kind)
        with self.db.session(write=False) as s:
            rows = s.scalars(q.order_by(ContextRecord.id)).all()
            out = [{"kind": r.kind, "time": epoch(r.created_at), **r.record} for r in rows]
        return sorted(out, key=lambda r: r.get("time", 0))
