"""sweeps, and jobs as their trials (sweep_id, sweep_trial, params)

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-29

Reviewed by hand: a new table and three nullable columns, so existing jobs need no value (they
belong to no sweep). jobs.sweep_id has no foreign key: SQLite cannot drop a column that has one
without batch mode's table copy, which would cascade-delete the jobs' metrics and checkpoints
under foreign_keys=ON; the unique index on (sweep_id, sweep_trial) is what the scheduling
relies on (a trial number is created once).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("planned", sa.JSON(), nullable=True),
        sa.Column("max_trials", sa.Integer(), nullable=False),
        sa.Column("trials_created", sa.Integer(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["api_keys.id"],
            name="fk_sweeps_owner_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sweeps"),
    )
    op.create_index("ix_sweeps_owner_id_id", "sweeps", ["owner_id", "id"])
    op.add_column("jobs", sa.Column("sweep_id", sa.String(32), nullable=True))
    op.add_column("jobs", sa.Column("sweep_trial", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("params", sa.JSON(), nullable=True))
    op.create_index(
        "ix_jobs_sweep_id_sweep_trial", "jobs", ["sweep_id", "sweep_trial"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_sweep_id_sweep_trial", table_name="jobs")
    op.drop_column("jobs", "params")
    op.drop_column("jobs", "sweep_trial")
    op.drop_column("jobs", "sweep_id")
    op.drop_index("ix_sweeps_owner_id_id", table_name="sweeps")
    op.drop_table("sweeps")
