"""Uploaded dataset files -> arrays, checked; nothing in a file is ever executed or unpickled.

Three formats: CSV with a header row, a `target` column and numeric feature columns; NPZ with
arrays `x` (samples first), `y` and optionally `class_names`, where a uint8 `x` of 3 or 4
dimensions holds pictures; a ZIP of class folders of PNG or JPEG pictures (image_uploads.py).
The file is read from the spooled upload, never held whole in memory but for CSV text. Every
refusal is an InvalidUpload saying what was wrong and what is expected.
"""

import csv
import io
import math
import zipfile
from dataclasses import dataclass, replace
from typing import BinaryIO, Literal

import numpy as np

from service.errors import InvalidUpload
from service.image_uploads import (
    LAYOUTS,
    ImageOptions,
    check_class_names,
    image_layout,
    is_image_array,
    parse_zip,
)
from service.training.shapes import DataShape

CSV_EXPECTED = "a CSV file with a header row, a 'target' column and numeric feature columns"
NPZ_EXPECTED = "an NPZ file (numpy.savez) with numeric arrays 'x' (samples first) and 'y'"
ZIP_EXPECTED = "a ZIP of class folders holding PNG or JPEG pictures"
EXPECTED = f"expected {CSV_EXPECTED}, {NPZ_EXPECTED}, or {ZIP_EXPECTED}"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"  # an archive of no members starts with its end record
PICKLE_MAGIC = b"\x80"


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


def _inflated_size(archive: zipfile.ZipFile, *, max_bytes: int) -> None:
    # A compressed archive can inflate far beyond the body limit; refuse before inflating.
    inflated = sum(member.file_size for member in archive.infolist())
    if inflated > max_bytes:
        raise InvalidUpload(
            f"the NPZ file's arrays take {inflated:,} bytes uncompressed, more than the "
            f"{max_bytes:,} allowed (SERVICE_MAX_DATASET_BYTES); upload fewer samples"
        )


def _read_npz(file: BinaryIO) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    try:
        with np.load(file, allow_pickle=False) as archive:
            missing = [name for name in ("x", "y") if name not in archive.files]
            if missing:
                raise InvalidUpload(
                    f"the NPZ file holds arrays {archive.files[:10]} but no "
                    f"{' or '.join(missing)}; expected {NPZ_EXPECTED}"
                )
            names = archive["class_names"] if "class_names" in archive.files else None
            return archive["x"], archive["y"], names
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, MemoryError) as exc:
        # allow_pickle=False makes numpy refuse object arrays with a ValueError; a header that
        # declares a huge shape fails to allocate (MemoryError) or to read (ValueError).
        raise InvalidUpload(
            f"the NPZ file cannot be read as plain numeric arrays ({exc}); {EXPECTED}"
        ) from exc


def _parse_npz(file: BinaryIO, *, options: ImageOptions, max_bytes: int) -> "ParsedUpload":
    x, y, names = _read_npz(file)
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
    class_names = None if names is None else check_class_names(names, labels=y)
    if is_image_array(x):
        return ParsedUpload(
            x=image_layout(x, options=options, max_bytes=max_bytes),
            y=y,
            format="npz",
            class_names=class_names,
        )
    _no_image_options(options, what=f"array 'x' of dtype {x.dtype} and shape {list(x.shape)}")
    x = x.astype(np.float32)
    return ParsedUpload(
        x=x.reshape(len(x), -1) if x.ndim == 1 else x, y=y, format="npz", class_names=class_names
    )


def _no_image_options(options: ImageOptions, *, what: str) -> None:
    if options.given:
        raise InvalidUpload(
            f"image_size and channels apply to pictures (a ZIP of class folders, or uint8 'x' "
            f"of {LAYOUTS}), not to {what}; leave them out"
        )


def _integer_valued(y: np.ndarray) -> bool:
    return y.dtype.kind in "biu" or bool(np.all(y == np.round(y)))


@dataclass(frozen=True)
class ParsedUpload:
    """An upload's arrays: x float32 (N, *features), or uint8 (N, C, H, W) for pictures."""

    x: np.ndarray
    y: np.ndarray
    format: Literal["csv", "npz", "zip"]
    class_names: tuple[str, ...] | None = None

    @property
    def images(self) -> bool:
        return self.x.dtype == np.uint8


def _is_npz(archive: zipfile.ZipFile, *, filename: str) -> bool:
    return filename.lower().endswith(".npz") or any(
        name.endswith(".npy") and "/" not in name for name in archive.namelist()
    )


def _parse_zip(
    file: BinaryIO, *, filename: str, options: ImageOptions, max_bytes: int
) -> ParsedUpload:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise InvalidUpload(
            f"the file {filename!r} is not a readable zip archive ({exc}); {EXPECTED}"
        ) from exc
    with archive:
        if not _is_npz(archive, filename=filename):
            x, y, names = parse_zip(archive, options=options, max_bytes=max_bytes)
            return ParsedUpload(x=x, y=y, format="zip", class_names=names)
        _inflated_size(archive, max_bytes=max_bytes)
    file.seek(0)
    return _parse_npz(file, options=options, max_bytes=max_bytes)


def parse_upload(
    *, filename: str, file: BinaryIO, options: ImageOptions, max_bytes: int
) -> ParsedUpload:
    """The arrays of an uploaded file, read from its start: y int64 (N,) when its values are
    whole numbers, else float32. A zip archive is an NPZ file when it holds .npy arrays, else a
    ZIP of class folders of pictures; anything else must be CSV text. `max_bytes`: the most the
    arrays may take uncompressed."""
    head = file.read(len(ZIP_MAGIC))
    file.seek(0)
    if not head:
        raise InvalidUpload(f"the file {filename!r} is empty; {EXPECTED}")
    if head.startswith(PICKLE_MAGIC):
        raise InvalidUpload(
            f"the file {filename!r} looks like a Python pickle, which is never loaded; {EXPECTED}"
        )
    if head in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        parsed = _parse_zip(file, filename=filename, options=options, max_bytes=max_bytes)
    elif filename.lower().endswith((".npz", ".npy", ".zip")):
        raise InvalidUpload(
            f"the file {filename!r} is not a zip archive, so not an NPZ or ZIP file; {EXPECTED}"
        )
    else:
        _no_image_options(options, what="a CSV file")
        content = file.read(max_bytes + 1)
        if len(content) > max_bytes:
            raise InvalidUpload(
                f"the CSV file is larger than {max_bytes:,} bytes (SERVICE_MAX_DATASET_BYTES); "
                "upload fewer rows, or an NPZ file"
            )
        x, y = _parse_csv(content)
        parsed = ParsedUpload(x=x, y=y, format="csv")
    y = parsed.y
    y = y.astype(np.int64) if _integer_valued(y) else y.astype(np.float32)
    return replace(parsed, y=y)


def upload_shape(parsed: ParsedUpload) -> DataShape:
    """The DataShape stored with an upload, for plan().

    Classification when y is 1-D, integer-valued (integers, or floats that are all whole
    numbers) and non-negative: labels 0..max(y). Anything else is regression, with a 1-D y read
    as one value per sample (target_shape (1,)). A job can still set `task: regression`.
    """
    x, y = parsed.x, parsed.y
    if y.ndim == 1 and _integer_valued(y) and y.min() >= 0:
        return DataShape(
            samples=len(x),
            input_shape=tuple(x.shape[1:]),
            task="classification",
            num_classes=int(y.max()) + 1,
            target_shape=(),
            class_names=parsed.class_names,
            images=parsed.images,
        )
    return DataShape(
        samples=len(x),
        input_shape=tuple(x.shape[1:]),
        task="regression",
        num_classes=None,
        target_shape=tuple(y.shape[1:]) or (1,),
        images=parsed.images,
    )
