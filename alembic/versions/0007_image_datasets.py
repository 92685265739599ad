"""datasets.class_names and datasets.images: uploads of pictures

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Reviewed by hand: two columns. class_names is nullable (an upload before this named no classes);
images is false for every existing row, whose inputs are all float32 features. Plain ALTER TABLE
on both backends, as in 0002: batch mode's table copy would cascade-delete under foreign_keys=ON.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("class_names", sa.JSON(), nullable=True))
    op.add_column(
        "datasets",
        sa.Column("images", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("datasets", "images")
    op.drop_column("datasets", "class_names")
