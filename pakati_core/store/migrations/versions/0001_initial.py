"""Initial tables: blobs, runs (history), references, understandings, what worked, templates, legacy imports.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("prompt_id", sa.String(64), nullable=True),
        sa.Column("canvas", sa.JSON(), nullable=True),
        sa.Column("prompts", sa.JSON(), nullable=False),
        sa.Column("seeds", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("model_name", sa.String(512), nullable=True),
        sa.Column("model_hash", sa.String(64), nullable=True),
        sa.Column("image_hash", sa.String(64), nullable=True),
        sa.Column("thumbnail", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
    )
    op.create_index("ix_runs_owner", "runs", ["owner"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_table(
        "reference_images",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("image_hash", sa.String(64), nullable=False),
        sa.Column("aspect", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("image", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("owner", "image_hash", "aspect", "description", name="uq_reference"),
    )
    op.create_index("ix_reference_images_owner", "reference_images", ["owner"])
    op.create_table(
        "understandings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("image_hash", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("image", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=True),
        sa.Column("preview", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("owner", "image_hash", "fingerprint", name="uq_understanding"),
    )
    op.create_index("ix_understandings_owner", "understandings", ["owner"])
    op.create_table(
        "what_worked",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("run", sa.String(64), nullable=False),
        sa.Column("pass_index", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("gain", sa.Float(), nullable=False),
        sa.Column("kept", sa.Boolean(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("import_key", sa.String(96), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("owner", "import_key", name="uq_what_worked_import"),
    )
    op.create_index("ix_what_worked_owner_action", "what_worked", ["owner", "action"])
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("canvas", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("thumbnail", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_template_name"),
    )
    op.create_index("ix_templates_owner", "templates", ["owner"])
    op.create_table(
        "legacy_imports",
        sa.Column("owner", sa.String(128), primary_key=True),
        sa.Column("source", sa.String(1024), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("imported_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("legacy_imports", "templates", "what_worked", "understandings", "reference_images", "runs", "blobs"):
        op.drop_table(table)
