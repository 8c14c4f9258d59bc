"""Orchestration context, provider call records, the content-hash cache, and a run's parent.

``runs.parent_id`` is added through a batch operation: on SQLite that copies the table, which
is the step a migration test on a populated database must show keeps every row.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_runs_parent_id", "runs", ["parent_id"], ["id"], ondelete="SET NULL")
    op.create_table(
        "context_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("goal_key", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_context_owner_goal", "context_records", ["owner", "goal_key", "kind"])
    op.create_table(
        "api_calls",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("size", sa.String(32), nullable=True),
        sa.Column("estimated_cost_usd", sa.Float(), nullable=True),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_api_calls_owner", "api_calls", ["owner"])
    op.create_table(
        "cache_entries",
        sa.Column("owner", sa.String(128), primary_key=True),
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cache_entries")
    op.drop_table("api_calls")
    op.drop_index("ix_context_owner_goal", "context_records")
    op.drop_table("context_records")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("fk_runs_parent_id", type_="foreignkey")
        batch.drop_column("parent_id")
