"""PostgreSQL: checkpoint and dataset blobs stored out of line without compression

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Reviewed by hand: storage only, no change to what is stored. PostgreSQL compresses a large
bytea value (pglz) before it moves it out of line. Weights, optimizer state and dataset arrays
are float32 bytes that do not compress, so the work was wasted: inserting seed 002's checkpoint
(about 1.2 MB with Adam's state) took 16 ms, 3 ms as EXTERNAL. New values are stored the new
way; existing ones stay as they are until rewritten. SQLite has no such setting: nothing to do.
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BLOBS = (("checkpoints", "weights"), ("checkpoints", "state"), ("datasets", "data"))


def _set_storage(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in BLOBS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE {storage}")


def upgrade() -> None:
    _set_storage("EXTERNAL")


def downgrade() -> None:
    _set_storage("EXTENDED")
