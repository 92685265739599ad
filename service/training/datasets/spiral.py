"""Seeds 000/001: `classes` interleaved spiral arms in 2-D."""

import math

import torch

from service.specs import SpiralData
from service.training.datasets.kind import DatasetKind, Tensors, generator
from service.training.shapes import DataShape


def shape(data: SpiralData) -> DataShape:
    return DataShape(
        samples=data.classes * data.points_per_class,
        input_shape=(2,),
        task="classification",
        num_classes=data.classes,
        target_shape=(),
    )


def generate(data: SpiralData) -> Tensors:
    """Vectorised: the same points, bit for bit, as the tutorial's per-sample loop.

    The loop takes math.sin/math.cos (double precision) of each float32 angle, rounds the pair to
    float32 with torch.FloatTensor, then multiplies by the float32 radius. The random draws are
    one randn(points) per class, in class order.
    """
    draw = generator(data.seed)
    count, classes = data.points_per_class, data.classes
    inputs, targets = [], []
    for label in range(classes):
        radius = torch.linspace(0, 1, count)
        start, end = (2 * math.pi / classes) * label, (2 * math.pi / classes) * (2 + label)
        angle = torch.linspace(start, end, count) + torch.randn(count, generator=draw) * data.noise
        angle64 = angle.double()
        direction = torch.stack((angle64.sin(), angle64.cos()), dim=1).float()
        inputs.append(radius.unsqueeze(1) * direction)
        targets.append(torch.full((count,), label, dtype=torch.int64))
    return torch.cat(inputs), torch.cat(targets)


KIND = DatasetKind(spec=SpiralData, shape=shape, generate=generate, random=True)
