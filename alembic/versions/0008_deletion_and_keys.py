"""SQLite gives deleted bytes back to the file system; API keys record when they were last used
and when they were revoked

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

Reviewed by hand. SQLite: `auto_vacuum=INCREMENTAL`, so that `PRAGMA incremental_vacuum` after
a delete (service/storage.py) truncates the file by the pages the delete freed. An existing
database takes the setting only through a VACUUM, which rewrites the whole file (as long as the
file takes to copy; it needs that much free disk) and cannot run inside a transaction: it runs
in an autocommit block. PostgreSQL needs nothing: its autovacuum makes deleted rows' space
reusable. Both: `api_keys.last_used_at` and `api_keys.revoked_at`, null for existing keys.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite_auto_vacuum(mode: str) -> None:
    """Set SQLite's auto_vacuum and VACUUM so that it takes effect, between transactions: the
    service's SQLite connections issue BEGIN and COMMIT themselves (service/db.py), so the
    migration's transaction is committed here and a new one begun after the VACUUM."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    raw = bind.connection.driver_connection
    raw.execute("COMMIT")
    try:
        raw.execute(f"PRAGMA auto_vacuum={mode}")
        raw.execute("VACUUM")
    finally:
        raw.execute("BEGIN IMMEDIATE")


def upgrade() -> None:
    # First: a VACUUM that fails (a full disk) leaves the schema as it was.
    _sqlite_auto_vacuum("INCREMENTAL")
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("last_used_at")
    _sqlite_auto_vacuum("NONE")
