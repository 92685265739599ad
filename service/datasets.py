"""Uploaded datasets: parsed once at upload, stored as safetensors ("x", "y") in the database."""

import hashlib

import numpy as np
import torch
from safetensors.numpy import save as save_arrays
from safetensors.torch import load as load_tensors
from sqlalchemy.orm import Session

from service import repository, storage
from service.errors import Conflict, NotFound
from service.ids import new_id
from service.tables import Dataset
from service.training.shapes import DataShape
from service.uploads import parse_upload, upload_shape

ZIP_MAGIC = b"PK\x03\x04"


def store_upload(
    session: Session,
    *,
    owner_id: str,
    filename: str,
    content: bytes,
    limit_bytes: int | None = None,
) -> Dataset:
    """Parse a CSV or NPZ upload (InvalidUpload if it is neither) and store its arrays;
    StorageQuotaExceeded if they would take the key past `limit_bytes`."""
    x, y = parse_upload(filename=filename, content=content)
    shape = upload_shape(x, y)
    data = save_arrays({"x": np.ascontiguousarray(x), "y": np.ascontiguousarray(y)})
    storage.check_room(
        session,
        owner_id=owner_id,
        adding=len(data),
        what=f"the dataset {filename[:200]!r}",
        limit_bytes=limit_bytes,
    )
    dataset = Dataset(
        id=new_id(),
        owner_id=owner_id,
        filename=filename[:200],
        format="npz" if content.startswith(ZIP_MAGIC) else "csv",
        samples=shape.samples,
        input_shape=list(shape.input_shape),
        task=shape.task,
        num_classes=shape.num_classes,
        target_shape=list(shape.target_shape),
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        data=data,
    )
    repository.add_dataset(session, dataset=dataset)
    return dataset


def get(session: Session, *, dataset_id: str, owner_id: str) -> Dataset:
    dataset = repository.get_dataset(session, dataset_id=dataset_id, owner_id=owner_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    return dataset


def shape_of(dataset: Dataset) -> DataShape:
    """The stored dataset's shapes, as the training plan reads them."""
    return DataShape(
        samples=dataset.samples,
        input_shape=tuple(dataset.input_shape),
        task="classification" if dataset.task == "classification" else "regression",
        num_classes=dataset.num_classes,
        target_shape=tuple(dataset.target_shape),
    )


def load_arrays(session: Session, *, dataset_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored inputs and targets of a dataset a job or a request named, for training,
    evaluating or drawing; Conflict if it was deleted since."""
    dataset = repository.get_dataset(session, dataset_id=dataset_id, with_data=True)
    if dataset is None:
        raise Conflict(f"dataset {dataset_id!r} no longer exists, so its samples cannot be read")
    tensors = load_tensors(dataset.data)
    return tensors["x"], tensors["y"]
