"""Uploads of pictures: a ZIP of class folders, or NPZ uint8 arrays in one of three layouts.

Either way the result is uint8 (N, channels, height, width): stored as it is (a quarter of
float32's bytes) and scaled to [0, 1] only when a batch is made. Class folders are sorted by name,
as torchvision's ImageFolder sorts them, and a folder's pictures by their path. Every refusal is
an InvalidUpload naming the file or folder at fault and saying what is expected.
"""

import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from service import pixels
from service.errors import InvalidUpload

ZIP_EXPECTED = (
    "expected a ZIP of class folders holding PNG or JPEG pictures (cat/0001.png, dog/0002.jpg)"
)
LAYOUTS = "[N, H, W], [N, H, W, C] or [N, C, H, W] with C 1 or 3"


@dataclass(frozen=True)
class ImageOptions:
    """The upload's form fields: resize to a square side, and the channels wanted (1 or 3)."""

    size: int | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.channels not in (None, 1, 3):
            raise InvalidUpload(f"channels is {self.channels}; use 1 (grey) or 3 (RGB)")

    @property
    def given(self) -> bool:
        return self.size is not None or self.channels is not None

    @property
    def square(self) -> tuple[int, int] | None:
        return None if self.size is None else (self.size, self.size)


def _ignored(parts: tuple[str, ...]) -> bool:
    # What macOS and file managers add to an archive: never pictures, never classes.
    return any(part == "__MACOSX" or part.startswith(".") for part in parts)


def _class_members(
    archive: zipfile.ZipFile,
) -> dict[str, list[tuple[str, zipfile.ZipInfo]]]:
    """{class folder: [(path, member)]}, sorted; one folder around them all is looked into."""
    files: list[tuple[tuple[str, ...], zipfile.ZipInfo]] = []
    folders: set[tuple[str, ...]] = set()
    for info in archive.infolist():
        parts = PurePosixPath(info.filename).parts
        if not parts or _ignored(parts):
            continue
        if info.is_dir():
            folders.add(parts)
        else:
            files.append((parts, info))
    if not files:
        raise InvalidUpload(f"the ZIP holds no files; {ZIP_EXPECTED}")
    # `zip -r pictures.zip pictures/` puts every class folder inside pictures/: look into it.
    while all(len(parts) >= 3 for parts, _ in files) and len({p[0] for p, _ in files}) == 1:
        files = [(parts[1:], info) for parts, info in files]
        folders = {parts[1:] for parts in folders if len(parts) > 1}
    classes: dict[str, list[tuple[str, zipfile.ZipInfo]]] = {}
    for parts, info in files:
        if len(parts) == 1:
            raise InvalidUpload(f"{info.filename} is not inside a class folder; {ZIP_EXPECTED}")
        classes.setdefault(parts[0], []).append((info.filename, info))
    for parts in sorted(folders):
        if parts[0] not in classes:
            raise InvalidUpload(
                f"the class folder {parts[0]}/ holds no pictures; put pictures in it or leave "
                "it out"
            )
    if len(classes) < 2:
        raise InvalidUpload(
            f"the ZIP has one class folder ({next(iter(classes))}/); a classifier needs two or "
            f"more; {ZIP_EXPECTED}"
        )
    return {name: sorted(classes[name]) for name in sorted(classes)}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, never more than it declares: a forged size is refused, not trusted."""
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise InvalidUpload(f"{info.filename} cannot be extracted ({exc}); {ZIP_EXPECTED}") from exc
    if len(data) > info.file_size:
        raise InvalidUpload(
            f"{info.filename} inflates to more than the {info.file_size:,} bytes it declares; "
            "the ZIP is refused"
        )
    return data


def _decode_members(
    archive: zipfile.ZipFile,
    classes: dict[str, list[tuple[str, zipfile.ZipInfo]]],
    *,
    options: ImageOptions,
    max_bytes: int,
) -> tuple[list[np.ndarray], list[int]]:
    pictures: list[np.ndarray] = []
    labels: list[int] = []
    first: tuple[str, tuple[int, int]] | None = None
    total = 0
    for label, members in enumerate(classes.values()):
        for path, info in members:
            if not path.lower().endswith(pixels.EXTENSIONS):
                raise InvalidUpload(f"{path} is not a PNG or JPEG file; {ZIP_EXPECTED}")
            try:
                image = pixels.open_image(_read_member(archive, info))
                size = (image.height, image.width)
                if options.size is None and first is not None and size != first[1]:
                    raise InvalidUpload(
                        f"{path} is {size[1]}x{size[0]} pixels but {first[0]} is "
                        f"{first[1][1]}x{first[1][0]}; give image_size to resize every picture "
                        "to one square side, or upload pictures of one size"
                    )
                first = first or (path, size)
                channels = options.channels or pixels.natural_channels(image)
                picture = pixels.to_array(image, channels=channels, size=options.square)
            except pixels.NotAnImage as exc:
                raise InvalidUpload(f"{path} cannot be read: {exc}; {ZIP_EXPECTED}") from exc
            total += picture.nbytes
            if total > max_bytes:
                raise InvalidUpload(
                    f"the pictures take more than {max_bytes:,} bytes as uint8 arrays "
                    f"(SERVICE_MAX_DATASET_BYTES), reached at {path}; upload fewer pictures or "
                    "give a smaller image_size"
                )
            pictures.append(picture)
            labels.append(label)
    return pictures, labels


def parse_zip(
    archive: zipfile.ZipFile, *, options: ImageOptions, max_bytes: int
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """uint8 (N, C, H, W) pictures, int64 labels and the class names from a ZIP of folders."""
    declared = sum(info.file_size for info in archive.infolist())
    if declared > max_bytes:
        # Refused by what the members declare, before anything is inflated: a ZIP bomb.
        raise InvalidUpload(
            f"the ZIP's files declare {declared:,} bytes uncompressed, more than the "
            f"{max_bytes:,} allowed (SERVICE_MAX_DATASET_BYTES); upload fewer pictures"
        )
    classes = _class_members(archive)
    pictures, labels = _decode_members(archive, classes, options=options, max_bytes=max_bytes)
    if options.channels is None and len({p.shape[0] for p in pictures}) > 1:
        # Colour and grey pictures mixed: grey ones become RGB, as Pillow's convert("RGB").
        pictures = [np.repeat(p, 3, axis=0) if p.shape[0] == 1 else p for p in pictures]
    return np.stack(pictures), np.array(labels, dtype=np.int64), tuple(classes)


def is_image_array(x: np.ndarray) -> bool:
    """uint8 arrays of 3 or 4 dimensions are pictures (DESIGN.md, Image data)."""
    return x.dtype == np.uint8 and x.ndim in (3, 4)


def image_layout(x: np.ndarray, *, options: ImageOptions, max_bytes: int) -> np.ndarray:
    """uint8 pictures in any of the three layouts -> (N, C, H, W), channels and size as asked.

    Four dimensions are channels-last when the last axis is 1 or 3 (NumPy's and Pillow's order),
    else channels-first when the second is.
    """
    if x.ndim == 3:
        x = x[:, np.newaxis]
    elif x.shape[3] in (1, 3):
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    elif x.shape[1] not in (1, 3):
        raise InvalidUpload(
            f"array 'x' of shape {list(x.shape)} has no axis of 1 or 3 channels; uint8 pictures "
            f"are {LAYOUTS}"
        )
    if options.channels == 1 and x.shape[1] == 3:
        x = pixels.luma(x, axis=1)
    elif options.channels == 3 and x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    square = options.square
    if square is not None and x.shape[2:] != square:
        resized = x.shape[0] * x.shape[1] * square[0] * square[1]
        if resized > max_bytes:
            raise InvalidUpload(
                f"image_size {options.size} makes the pictures {resized:,} bytes, more than the "
                f"{max_bytes:,} allowed (SERVICE_MAX_DATASET_BYTES); give a smaller image_size"
            )
        x = pixels.resize_all(x, size=square)
    return np.ascontiguousarray(x)


def check_class_names(names: np.ndarray, *, labels: np.ndarray) -> tuple[str, ...]:
    """An NPZ's optional `class_names` array: one string per class, label i named names[i]."""
    if names.dtype.kind != "U" or names.ndim != 1:
        raise InvalidUpload(
            f"array 'class_names' has dtype {names.dtype} and shape {list(names.shape)}; "
            "expected one string per class, e.g. np.array(['cat', 'dog'])"
        )
    classes = int(labels.max()) + 1 if labels.dtype.kind in "iu" and labels.ndim == 1 else None
    if classes != len(names):
        raise InvalidUpload(
            f"array 'class_names' names {len(names)} classes but 'y' has "
            f"{'no class labels' if classes is None else f'{classes} (0..{classes - 1})'}; "
            "give one name per class"
        )
    return tuple(str(name) for name in names)
