"""Grey pictures of circles, squares and triangles, drawn on the fly from the job's seed.

Each picture holds one white shape on black: its class, centre and half-extent are drawn at
random (the shape always lies inside the picture), then Gaussian noise of `noise` standard
deviation is added to every pixel on the [0, 1] scale, clipped, and stored as uint8.
"""

import torch

from service.specs import ShapesData
from service.training.datasets.kind import DatasetKind, Tensors, generator
from service.training.shapes import DataShape

CLASS_NAMES = ("circle", "square", "triangle")
# Half-extents as fractions of the side: small enough to move about, large enough to tell apart.
SMALLEST, LARGEST = 0.15, 0.4
# A square's half-side relative to a circle's radius, so the two cover similar areas.
SQUARE_HALF_SIDE = 0.85


def shape(data: ShapesData) -> DataShape:
    return DataShape(
        samples=data.samples,
        input_shape=(1, data.size, data.size),
        task="classification",
        num_classes=len(CLASS_NAMES),
        target_shape=(),
        class_names=CLASS_NAMES,
        images=True,
    )


def generate(data: ShapesData) -> Tensors:
    """uint8 pictures (samples, 1, size, size) and int64 labels: 0 circle, 1 square, 2 triangle.

    The draws, in order: labels, half-extents, centres, noise."""
    draw = generator(data.seed)
    count, side = data.samples, data.size
    labels = torch.randint(0, len(CLASS_NAMES), (count,), generator=draw)
    half = side * (SMALLEST + (LARGEST - SMALLEST) * torch.rand(count, generator=draw))
    centre = half.unsqueeze(1) + (side - 2 * half).unsqueeze(1) * torch.rand(
        count, 2, generator=draw
    )
    # Pixel centres, broadcast against one (x, y, half) per picture.
    grid = torch.arange(side, dtype=torch.float32) + 0.5
    x = grid.view(1, 1, side) - centre[:, 0].view(count, 1, 1)
    y = grid.view(1, side, 1) - centre[:, 1].view(count, 1, 1)
    r = half.view(count, 1, 1)
    circle = x.square() + y.square() <= r.square()
    square = (x.abs() <= SQUARE_HALF_SIDE * r) & (y.abs() <= SQUARE_HALF_SIDE * r)
    # Apex up at y = -r, base at y = +r as wide as the picture's 2r.
    triangle = (y.abs() <= r) & (x.abs() <= (y + r) / 2)
    chosen = labels.view(count, 1, 1)
    inside = torch.where(chosen == 0, circle, torch.where(chosen == 1, square, triangle))
    values = inside.float() + data.noise * torch.randn(count, side, side, generator=draw)
    pixels = (values.clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.unsqueeze(1), labels


KIND = DatasetKind(spec=ShapesData, shape=shape, generate=generate, random=True)
