"""jobs.stop_reason: why a job ended before its last epoch

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Reviewed by hand: one nullable column, so existing rows need no value (a job that ended before
this column existed says nothing about why). Plain ALTER TABLE on both backends: SQLite has
dropped columns since 3.35, and batch mode's table copy would cascade-delete the jobs' metrics
and checkpoints under foreign_keys=ON.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("stop_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "stop_reason")
