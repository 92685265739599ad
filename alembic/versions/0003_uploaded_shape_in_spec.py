"""jobs.spec: a job on an uploaded dataset records the upload's shapes in its spec

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Reviewed by hand: data only, no schema change. Since this revision the service writes an
uploaded dataset's shapes into the job's normalised spec at submission (`dataset.shape`), and
predict reads them from there, so a job keeps predicting after its dataset is deleted. Jobs
submitted before it get the same field from their dataset's row here; a job whose dataset row
is already gone is left as it was (there is nothing to copy; predict says so with a 409).
Downgrade removes the field again, which the older code would refuse as an unknown field.
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("spec", sa.JSON))
datasets = sa.table(
    "datasets",
    sa.column("id", sa.String),
    sa.column("samples", sa.Integer),
    sa.column("input_shape", sa.JSON),
    sa.column("task", sa.String),
    sa.column("num_classes", sa.Integer),
    sa.column("target_shape", sa.JSON),
)


def _uploaded_jobs(connection: sa.Connection) -> list[tuple[str, dict[str, Any]]]:
    rows = connection.execute(sa.select(jobs.c.id, jobs.c.spec)).all()
    found = []
    for job_id, spec in rows:
        spec = json.loads(spec) if isinstance(spec, str) else spec
        if isinstance(spec, dict) and spec.get("dataset", {}).get("kind") == "uploaded":
            found.append((job_id, spec))
    return found


def upgrade() -> None:
    connection = op.get_bind()
    for job_id, spec in _uploaded_jobs(connection):
        if spec["dataset"].get("shape") is not None:
            continue
        row = connection.execute(
            sa.select(datasets).where(datasets.c.id == spec["dataset"]["id"])
        ).one_or_none()
        if row is None:
            continue
        spec["dataset"]["shape"] = {
            "samples": row.samples,
            "input_shape": list(row.input_shape),
            "task": "classification" if row.task == "classification" else "regression",
            "num_classes": row.num_classes,
            "target_shape": list(row.target_shape),
        }
        connection.execute(sa.update(jobs).where(jobs.c.id == job_id).values(spec=spec))


def downgrade() -> None:
    connection = op.get_bind()
    for job_id, spec in _uploaded_jobs(connection):
        if spec["dataset"].pop("shape", None) is not None:
            connection.execute(sa.update(jobs).where(jobs.c.id == job_id).values(spec=spec))
