"""The tables, as SQLAlchemy 2.x mapped classes.

Every row a person makes carries ``owner`` (ComfyUI's user id; "default" outside
``--multi-user``), so one database serves several users without one seeing another's rows.
The Alembic revisions under ``migrations/versions`` create exactly these tables; a change
here needs a new revision there (``tests/test_store.py`` compares the two).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

OWNER_LEN = 128


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Blob(Base):
    """Content-addressed bytes (PNG images): referenced by rows, never listed on their own."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Run(Base):
    """One generation: what went in (canvas, prompts, seeds, sampler settings, model) and what came out."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LEN), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    node: Mapped[str] = mapped_column(String(128))
    prompt_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    canvas: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    prompts: Mapped[dict] = mapped_column(JSON, default=dict)
    seeds: Mapped[list] = mapped_column(JSON, default=list)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    model_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    model_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    thumbnail: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    scores: Mapped[dict] = mapped_column(JSON, default=dict)
    timings: Mapped[dict] = mapped_column(JSON, default=dict)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL", name="fk_runs_parent_id"), nullable=True
    )  # revision 0002


class ReferenceImage(Base):
    """A reference image someone refined towards, with what it was said to show."""

    __tablename__ = "reference_images"
    __table_args__ = (UniqueConstraint("owner", "image_hash", "aspect", "description", name="uq_reference"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LEN), index=True)
    image_hash: Mapped[str] = mapped_column(String(64))
    aspect: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    image: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UnderstandingRow(Base):
    """What learning a reference found, per (reference content hash, settings fingerprint)."""

    __tablename__ = "understandings"
    __table_args__ = (UniqueConstraint("owner", "image_hash", "fingerprint", name="uq_understanding"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LEN), index=True)
    image_hash: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    format_version: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict] = mapped_column(JSON)
    image: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    preview: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WhatWorked(Base):
    """One tried refinement action and how much it moved the score."""

    __tablename__ = "what_worked"
    __table_args__ = (
        UniqueConstraint("owner", "import_key", name="uq_what_worked_import"),
        Index("ix_what_worked_owner_action", "owner", "action"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LEN))
    run: Mapped[str] = mapped_column(String(64))
    pass_index: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    gain: Mapped[float] = mapped_column(Float)
    kept: Mapped[bool] = mapped_column(Boolean, default=False)
    record: Mapped[dict] = mapped_column(JSON)
    import_key: Mapped[str | None] = mapped_column(String(96), nullable=True)  # set only for rows imported from JSON lines
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Template(Base):
    """A saved configuration (canvas plus settings) to start new work from."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_template_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LEN), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    canvas: Mapped[dict] = mapped_column(JSON)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    thumbnail: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LegacyImport(Base):
    """Which JSON files (by path and content digest) were already imported."""

    __tablename__ = "legacy_imports"
    owner: Mapped[str] = mapped_column(String(OWNER_LEN), primary_key=True)
    source: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ContextRecord(Base):
    """Orchestration context: plans, alignment checks and generations for one goal (revision 0002)."""

    __tablename__ = "context_records"
    __table_args__ = (Index("ix_context_owner_goal", "owner", "goal_key", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LEN))
    goal_key: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32))
    record: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiCall(Base):
    """One provider call: who, what, how long, what it cost. Never a key; a prompt only when allowed (revision 0002)."""

    __tablename__ = "api_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LEN), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    operation: Mapped[str] = mapped_column(String(64))
    duration_s: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    size: Mapped[str | None] = mapped_column(String(32), nullable=True)
    estimated_cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CacheEntry(Base):
    """An expensive result (JSON and/or bytes) keyed by the content hash of its inputs (revision 0002)."""

    __tablename__ = "cache_entries"
    owner: Mapped[str] = mapped_column(String(OWNER_LEN), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[dict | list | None] = mapped_column(JSON, nullable=True)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
