"""What worked: each tried refinement action and how much it moved the score (rows are only ever added)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select

from .database import Database, finite
from .errors import StoreError
from .schema import WhatWorked, utcnow


class WhatWorkedRepository:
    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    def row(owner: str, rec: dict, import_key: str | None = None) -> dict:
        if "action" not in rec:
            raise StoreError("a what-worked record needs an 'action'", "action")
        finite(rec, "record")
        return {
            "owner": owner,
            "run": str(rec.get("run", "")),
            "pass_index": int(rec.get("pass", 0)),
            "action": str(rec["action"]),
            "gain": float(rec.get("gain", 0.0)),
            "kept": bool(rec.get("kept", False)),
            "record": rec,
            "import_key": import_key,
            "created_at": utcnow(),
        }

    def append(self, records: Iterable[dict]) -> int:
        rows = [self.row(self.db.owner, dict(r)) for r in records]
        if not rows:
            return 0
        with self.db.session() as s:
            s.execute(WhatWorked.__table__.insert(), rows)
        return len(rows)

    def load(self) -> list[dict]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(WhatWorked.record).where(WhatWorked.owner == self.db.owner).order_by(WhatWorked.id)))

    def revision(self) -> str:
        """Changes whenever this user's what-worked records change (rows are only ever added)."""
        with self.db.session(write=False) as s:
            n, top = s.execute(select(func.count(), func.max(WhatWorked.id)).where(WhatWorked.owner == self.db.owner)).one()
        return f"{n}:{top}" if n else "empty"

    def gains(self) -> dict[str, tuple[int, float]]:
        """action -> (number of records, mean gain), computed in the database."""
        with self.db.session(write=False) as s:
            rows = s.execute(
                select(WhatWorked.action, func.count(), func.avg(WhatWorked.gain))
                .where(WhatWorked.owner == self.db.owner)
                .group_by(WhatWorked.action)
            ).all()
        return {a: (int(n), float(g)) for a, n, g in rows}
