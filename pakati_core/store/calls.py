"""Provider calls: who called what, how long it took, what it cost (the model layer's ``CallRecorder``).
Keys never: extra fields that look like secrets are dropped; the prompt only when allowed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import select

from ..redaction import is_secret_name, looks_secret
from .database import Database, finite, iso
from .schema import ApiCall, utcnow


class CallRepository:
    def __init__(self, db: Database):
        self.db = db

    def record(self, call: Any) -> None:
        """Keep one provider call. Keys never: extra fields that look like secrets are dropped;
        the prompt only when PAKATI_RECORD_PROMPTS=1 (or ``record_prompts``)."""
        data = asdict(call) if hasattr(call, "__dataclass_fields__") else dict(call)
        extra = {k: v for k, v in (data.get("extra") or {}).items() if not is_secret_name(k) and not looks_secret(v)}
        finite(extra, "extra")
        row = ApiCall(
            owner=self.db.owner,
            provider=str(data["provider"]),
            model=str(data["model"]),
            operation=str(data["operation"]),
            duration_s=float(data["duration_s"]),
            ok=bool(data["ok"]),
            size=data.get("size"),
            estimated_cost_usd=data.get("estimated_cost_usd"),
            error_kind=data.get("error_kind"),
            prompt=data.get("prompt") if self.db.record_prompts else None,
            extra=extra,
            created_at=utcnow(),
        )
        finite([row.duration_s, row.estimated_cost_usd or 0.0], "call")
        with self.db.session() as s:
            s.add(row)

    def recent(self, limit: int = 100) -> list[dict]:
        with self.db.session(write=False) as s:
            rows = s.scalars(select(ApiCall).where(ApiCall.owner == self.db.owner).order_by(ApiCall.id.desc()).limit(limit)).all()
            return [
                {
                    "provider": r.provider,
                    "model": r.model,
                    "operation": r.operation,
                    "duration_s": r.duration_s,
                    "ok": r.ok,
                    "size": r.size,
                    "estimated_cost_usd": r.estimated_cost_usd,
                    "error_kind": r.error_kind,
                    "prompt": r.prompt,
                    "extra": r.extra,
                    "created_at": iso(r.created_at),
                }
                for r in rows
            ]
