"""Uploaded datasets: parsed once at upload, stored as safetensors ("x", "y") in the database.

x is float32 features, or uint8 pictures (N, channels, height, width); y int64 labels or float32
values.
"""

import hashlib
import json
import struct
import tempfile
from typing import BinaryIO

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from sqlalchemy.orm import Session

from service import repository_datasets, storage
from service.errors import Conflict, NotFound
from service.ids import new_id
from service.image_uploads import ImageOptions
from service.tables import Dataset
from service.training.shapes import DataShape
from service.uploads import parse_upload, upload_shape

SAFETENSORS_DTYPES = {"uint8": "U8", "int64": "I64", "float32": "F32"}
HASH_CHUNK = 1 << 20


def _file_digest(file: BinaryIO) -> tuple[str, int]:
    """sha256 and size of the spooled upload, read in chunks; leaves it at its start."""
    digest, size = hashlib.sha256(), 0
    while chunk := file.read(HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    file.seek(0)
    return digest.hexdigest(), size


def encode_parts(arrays: dict[str, np.ndarray]) -> list[memoryview]:
    """The safetensors bytes of these arrays as parts to join: the header, then a view of each
    array's own memory, so nothing is copied until the database takes them."""
    header: dict[str, object] = {}
    offset = 0
    for name, array in arrays.items():
        size = array.nbytes
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    views = [
        np.ascontiguousarray(array).reshape(-1).view(np.uint8).data for array in arrays.values()
    ]
    return [memoryview(struct.pack("<Q", len(encoded)) + encoded), *views]


def store_upload(
    session: Session,
    *,
    owner_id: str,
    filename: str,
    file: BinaryIO,
    options: ImageOptions,
    max_bytes: int,
    limit_bytes: int | None = None,
) -> Dataset:
    """Parse a CSV, NPZ or ZIP upload (InvalidUpload if it is none of them) and store its arrays.
    `file` is the spooled upload; `max_bytes` bounds the arrays it may hold uncompressed;
    StorageQuotaExceeded if they would take the key past `limit_bytes`."""
    sha256, size = _file_digest(file)
    parsed = parse_upload(filename=filename, file=file, options=options, max_bytes=max_bytes)
    shape = upload_shape(parsed)
    dataset = Dataset(
        id=new_id(),
        owner_id=owner_id,
        filename=filename[:200],
        format=parsed.format,
        samples=shape.samples,
        input_shape=list(shape.input_shape),
        task=shape.task,
        num_classes=shape.num_classes,
        target_shape=list(shape.target_shape),
        class_names=None if shape.class_names is None else list(shape.class_names),
        images=shape.images,
        sha256=sha256,
        size_bytes=size,
    )
    with tempfile.TemporaryFile() as staged:
        # On disk, so the arrays can go before the database driver makes its copies of them.
        for part in encode_parts({"x": parsed.x, "y": np.ascontiguousarray(parsed.y)}):
            staged.write(part)
        del parsed
        stored = staged.tell()
        staged.seek(0)
        storage.check_room(
            session,
            owner_id=owner_id,
            adding=stored,
            what=f"the dataset {filename[:200]!r}",
            limit_bytes=limit_bytes,
        )
        repository_datasets.add_dataset(session, dataset=dataset, data=staged, size=stored)
    return dataset


def get(session: Session, *, dataset_id: str, owner_id: str) -> Dataset:
    dataset = repository_datasets.get_dataset(session, dataset_id=dataset_id, owner_id=owner_id)
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
        class_names=None if dataset.class_names is None else tuple(dataset.class_names),
        images=dataset.images,
    )


def load_arrays(session: Session, *, dataset_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored inputs and targets of a dataset a job or a request named, for training,
    evaluating or drawing; Conflict if it was deleted since."""
    dataset = repository_datasets.get_dataset(session, dataset_id=dataset_id, with_data=True)
    if dataset is None:
        raise Conflict(f"dataset {dataset_id!r} no longer exists, so its samples cannot be read")
    tensors = load_tensors(dataset.data)
    return tensors["x"], tensors["y"]
