"""Pictures -> uint8 arrays of shape (channels, height, width), one way for uploads and predict.

Pillow decodes PNG and JPEG only. Channels are converted as Pillow converts modes ("L" is
ITU-R 601-2 luma, "RGB" repeats a grey level three times); a resize, when the size differs, is
Pillow's bilinear filter (antialiased when it shrinks). An upload and a predict request go
through the same function, so a network sees its pictures the same way in both.
"""

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

FORMATS = ("PNG", "JPEG")
EXTENSIONS = (".png", ".jpg", ".jpeg")
# Modes holding one grey level per pixel: an upload of only these defaults to 1 channel.
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
# Far above any picture a small network takes; refused before decoding, so a PNG that declares
# a huge canvas (a decompression bomb) costs nothing.
MAX_PIXELS = 4096 * 4096


class NotAnImage(ValueError):
    """The bytes are not a PNG or JPEG picture this module can decode; the message says why."""


def open_image(data: bytes) -> Image.Image:
    """The picture's header read, its pixels not yet decoded; NotAnImage if it is no PNG/JPEG."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, OSError, ValueError) as exc:
        raise NotAnImage("it is not a PNG or JPEG image") from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise NotAnImage(
            f"it is {width}x{height} pixels, more than the {MAX_PIXELS:,} pixels allowed"
        )
    return image


def natural_channels(image: Image.Image) -> int:
    """1 for a grey picture, 3 for one in colour (RGB, palette, CMYK; alpha or not)."""
    return 1 if image.mode in GRAYSCALE_MODES else 3


def to_array(image: Image.Image, *, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 (channels, height, width); `size` (height, width) resizes when it differs.
    NotAnImage if the pixels cannot be decoded (a truncated or corrupt file)."""
    try:
        converted = image.convert("L" if channels == 1 else "RGB")
        if size is not None and converted.size != (size[1], size[0]):
            converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(converted, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage(f"its pixels cannot be decoded ({exc})") from exc
    return array[np.newaxis] if channels == 1 else array.transpose(2, 0, 1)


def decode(data: bytes, *, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """A PNG or JPEG's bytes -> uint8 (channels, height, width); NotAnImage if it is not one."""
    return to_array(open_image(data), channels=channels, size=size)


def luma(rgb: np.ndarray, *, axis: int) -> np.ndarray:
    """Grey levels of uint8 RGB along `axis`, as Pillow's convert("L") computes them."""
    r, g, b = (np.take(rgb, i, axis=axis).astype(np.uint32) for i in range(3))
    grey = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
    return np.expand_dims(grey.astype(np.uint8), axis)


def resize_all(images: np.ndarray, *, size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, C, H, W) resized one picture at a time with Pillow, as `to_array` resizes."""
    count, channels = images.shape[:2]
    out = np.empty((count, channels, *size), dtype=np.uint8)
    for index, picture in enumerate(images):
        for channel in range(channels):
            plane = Image.fromarray(np.ascontiguousarray(picture[channel]))
            out[index, channel] = np.asarray(
                plane.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            )
    return out
