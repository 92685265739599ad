"""The UCI handwritten digits: 1,797 grey 8x8 pictures of the digits 0-9, shipped in files/.

files/DIGITS-LICENSE.txt gives the source, the citation and the licence (CC BY 4.0). The file
holds pixel counts 0..16, stretched here to 0..255 so the pictures are uint8 like any other.
"""

import gzip
from functools import cache
from importlib import resources

import numpy as np
import torch

from service.specs import DigitsData
from service.training.datasets.kind import DatasetKind, Tensors
from service.training.shapes import DataShape

SAMPLES = 1797
CLASS_NAMES = tuple(str(digit) for digit in range(10))


@cache
def _read() -> tuple[np.ndarray, np.ndarray]:
    stored = resources.files(__package__).joinpath("files/digits.csv.gz")
    with stored.open("rb") as compressed, gzip.open(compressed) as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.float64)
    pixels = np.round(table[:, :64] * 255 / 16).astype(np.uint8).reshape(-1, 1, 8, 8)
    return pixels, table[:, 64].astype(np.int64)


def shape(data: DigitsData) -> DataShape:
    return DataShape(
        samples=SAMPLES,
        input_shape=(1, 8, 8),
        task="classification",
        num_classes=10,
        target_shape=(),
        class_names=CLASS_NAMES,
        images=True,
    )


def generate(data: DigitsData) -> Tensors:
    """uint8 pictures (1797, 1, 8, 8) and int64 digits (1797,), in the file's order."""
    pixels, digits = _read()
    return torch.from_numpy(pixels.copy()), torch.from_numpy(digits.copy())


KIND = DatasetKind(spec=DigitsData, shape=shape, generate=generate)
