"""The SQL of uploaded datasets: inserting one with its blob (streamed into place on SQLite)
and reading one back, with or without its data; split off repository.py by subject. Callers
own the transaction."""

from typing import BinaryIO

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.orm import Session, defer

from service.tables import Dataset

BLOB_CHUNK_BYTES = 8 * 1024 * 1024


def add_dataset(session: Session, *, dataset: Dataset, data: BinaryIO, size: int) -> None:
    """Insert the dataset with its blob read from `data` (`size` bytes, staged on disk).

    PostgreSQL's driver takes the value whole. SQLite copies a bound value twice (binding it,
    then building the row), so there the row gets a zeroblob of the right size, which it fills
    in place from the file, a chunk at a time.
    """
    if session.get_bind().dialect.name != "sqlite":
        dataset.data = data.read()
        session.add(dataset)
        session.flush()
        return
    # Set in Core: the ORM would read a SQL expression's value back (the whole blob of zeros).
    dataset.data = b""
    session.add(dataset)
    session.flush()
    session.execute(
        update(Dataset).where(Dataset.id == dataset.id).values(data=func.zeroblob(size))
    )
    rowid: int = session.execute(
        select(literal_column("rowid")).select_from(Dataset).where(Dataset.id == dataset.id)
    ).scalar_one()
    raw = session.connection().connection.driver_connection
    with raw.blobopen("datasets", "data", rowid) as blob:  # type: ignore[union-attr]
        while chunk := data.read(BLOB_CHUNK_BYTES):
            blob.write(chunk)


def get_dataset(
    session: Session, *, dataset_id: str, owner_id: str | None = None, with_data: bool = False
) -> Dataset | None:
    query = select(Dataset).where(Dataset.id == dataset_id)
    if owner_id is not None:
        query = query.where(Dataset.owner_id == owner_id)
    if not with_data:
        query = query.options(defer(Dataset.data))
    return session.scalars(query).one_or_none()
