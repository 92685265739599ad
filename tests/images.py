"""Pictures for tests: PNG/JPEG bytes and ZIPs of class folders, drawn from fixed seeds."""

import io
import zipfile

import numpy as np
from PIL import Image


def picture(*, seed: int, size: tuple[int, int] = (6, 5), mode: str = "RGB") -> np.ndarray:
    """uint8 pixels (height, width[, 3]) from a seed."""
    shape = size if mode == "L" else (*size, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def encode(pixels: np.ndarray, *, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def png(*, seed: int, size: tuple[int, int] = (6, 5), mode: str = "RGB") -> bytes:
    return encode(picture(seed=seed, size=size, mode=mode))


def zip_of(members: dict[str, bytes], *, folders: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            archive.writestr(zipfile.ZipInfo(folder), b"")
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
