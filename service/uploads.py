"""Uploaded dataset files -> arrays, checked; nothing in a file is ever executed or unpickled.

Two formats: CSV with a header row, a `target` column and numeric feature columns; NPZ with
arrays `x` (samples first) and `y`. Every refusal is an InvalidUpload saying what was wrong and
what is expected.
"""

import csv
import io
import math
import zipfile

import numpy as np

from service.errors import InvalidUpload
from service.training.shapes import DataShape

CSV_EXPECTED = "a CSV file with a header row, a 'target' column and numeric feature columns"
NPZ_EXPECTED = "an NPZ file (numpy.savez) with numeric arrays 'x' (samples first) and 'y'"
EXPECTED = f"expected {CSV_EXPECTED}, or {NPZ_EXPECTED}"
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"
MAX_INFLATED_BYTES = 2**30  # 1 GiB of arrays, uncompressed


def _find_bad_cell(*, header: list[str], rows: list[list[str]]) -> None:
    """Raise InvalidUpload naming the first row or cell that is not a finite number."""
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InvalidUpload(
                f"line {line} of the CSV has {len(row)} cells but the header has {len(header)}"
            )
        for name, cell in zip(header, row, strict=True):
            try:
                value = float(cell)
            except ValueError:
                raise InvalidUpload(
                    f"line {line}, column {name!r} of the CSV holds {cell.strip()!r}, "
                    "not a number; every cell must be a number"
                ) from None
            if not math.isfinite(value):
                raise InvalidUpload(
                    f"line {line}, column {name!r} of the CSV holds {cell.strip()!r}; "
                    "every cell must be a finite number"
                )


def _parse_csv(content: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = content.decode("utf-8-sig")  # tolerate the byte-order mark spreadsheets write
    except UnicodeDecodeError as exc:
        raise InvalidUpload(
            f"the file is neither UTF-8 text nor a zip archive; {EXPECTED}"
        ) from exc
    # newline="": the csv module reads line breaks itself, so a bare CR (old Mac files, or one
    # inside a field) is a line break or part of a quoted cell, not an error.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:  # e.g. a cell longer than csv.field_size_limit()
        raise InvalidUpload(
            f"line {reader.line_num} of the CSV cannot be read ({exc}); expected {CSV_EXPECTED}"
        ) from exc
    if not rows:
        raise InvalidUpload(f"the file is empty; {EXPECTED}")
    header = [name.strip() for name in rows[0]]
    if "target" not in header:
        raise InvalidUpload(
            f"the CSV header {header[:10]} has no 'target' column; expected {CSV_EXPECTED}"
        )
    if len(header) < 2:
        raise InvalidUpload(
            f"the CSV has a 'target' column but no features; expected {CSV_EXPECTED}"
        )
    if len(rows) < 2:
        raise InvalidUpload("the CSV has a header but no data rows; add one row per sample")
    try:
        values = np.array(rows[1:], dtype=np.float64)
    except ValueError:
        values = None  # ragged rows or a cell that is not a number; _find_bad_cell says which
    if (
        values is None
        or values.shape != (len(rows) - 1, len(header))
        or not np.isfinite(values).all()
    ):
        _find_bad_cell(header=header, rows=rows[1:])
        raise InvalidUpload(f"the CSV cannot be read as numbers; expected {CSV_EXPECTED}")
    target = header.index("target")
    x = np.delete(values, target, axis=1).astype(np.float32)
    return x, values[:, target]


def _parse_npz(content: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        # A compressed archive can inflate far beyond the body limit; refuse before inflating.
        inflated = sum(
            member.file_size for member in zipfile.ZipFile(io.BytesIO(content)).infolist()
        )
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise InvalidUpload(
            f"the NPZ file is not a readable zip archive ({exc}); {EXPECTED}"
        ) from exc
    if inflated > MAX_INFLATED_BYTES:
        raise InvalidUpload(
            f"the NPZ file's arrays take {inflated} bytes uncompressed, more than the "
            f"{MAX_INFLATED_BYTES} allowed; upload fewer samples"
        )
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            missing = [name for name in ("x", "y") if name not in archive.files]
            if missing:
                raise InvalidUpload(
                    f"the NPZ file holds arrays {archive.files[:10]} but no "
                    f"{' or '.join(missing)}; expected {NPZ_EXPECTED}"
                )
            x, y = archive["x"], archive["y"]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, MemoryError) as exc:
        # allow_pickle=False makes numpy refuse object arrays with a ValueError; a header that
        # declares a huge shape fails to allocate (MemoryError) or to read (ValueError).
        raise InvalidUpload(
            f"the NPZ file cannot be read as plain numeric arrays ({exc}); {EXPECTED}"
        ) from exc
    for name, array in (("x", x), ("y", y)):
        if array.dtype.kind not in "biuf":
            raise InvalidUpload(
                f"array {name!r} has dtype {array.dtype}; "
                "expected integer or floating-point numbers"
            )
        if array.ndim == 0 or len(array) == 0:
            raise InvalidUpload(f"array {name!r} holds no samples; expected {NPZ_EXPECTED}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidUpload(
                f"array {name!r} holds NaN or infinite values; every value must be finite"
            )
    if len(x) != len(y):
        raise InvalidUpload(
            f"'x' has {len(x)} samples but 'y' has {len(y)}; give one target per sample"
        )
    return x.astype(np.float32).reshape(len(x), -1) if x.ndim == 1 else x.astype(np.float32), y


def _integer_valued(y: np.ndarray) -> bool:
    return y.dtype.kind in "biu" or bool(np.all(y == np.round(y)))


def parse_upload(*, filename: str, content: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from an uploaded file: x float32 (N, *features); y int64 (N,) when its values are
    whole numbers, else float32. NPZ is recognised by its zip signature, anything else must be
    CSV text."""
    if not content:
        raise InvalidUpload(f"the file {filename!r} is empty; {EXPECTED}")
    if content.startswith(PICKLE_MAGIC):
        raise InvalidUpload(
            f"the file {filename!r} looks like a Python pickle, which is never loaded; {EXPECTED}"
        )
    if content.startswith(ZIP_MAGIC):
        x, y = _parse_npz(content)
    elif filename.lower().endswith((".npz", ".npy")):
        raise InvalidUpload(
            f"the file {filename!r} is not a zip archive, so not an NPZ file; {EXPECTED}"
        )
    else:
        x, y = _parse_csv(content)
    return x, y.astype(np.int64) if _integer_valued(y) else y.astype(np.float32)


def upload_shape(x: np.ndarray, y: np.ndarray) -> DataShape:
    """The DataShape stored with an upload, for plan().

    Classification when y is 1-D, integer-valued (integers, or floats that are all whole
    numbers) and non-negative: labels 0..max(y). Anything else is regression, with a 1-D y read
    as one value per sample (target_shape (1,)). A job can still set `task: regression`.
    """
    if y.ndim == 1 and _integer_valued(y) and y.min() >= 0:
        return DataShape(
            samples=len(x),
            input_shape=tuple(x.shape[1:]),
            task="classification",
            num_classes=int(y.max()) + 1,
            target_shape=(),
        )
    return DataShape(
        samples=len(x),
        input_shape=tuple(x.shape[1:]),
        task="regression",
        num_classes=None,
        target_shape=tuple(y.shape[1:]) or (1,),
    )
