"""Dataset specs -> (inputs, targets) tensors on the CPU, drawn exactly as the tutorials draw them.

A generated dataset draws from torch's global stream (seeded by the job, as in the tutorials),
or from its own generator when the dataset spec names a `seed`. Classification targets are int64
labels of shape (N,); regression targets are float32 of shape (N, k).
"""

import math

import torch

from service import specs
from service.training.inline import inline_tensors

Tensors = tuple[torch.Tensor, torch.Tensor]


def _generator(seed: int | None) -> torch.Generator | None:
    # None: draw from torch's global stream, which the job has seeded.
    return None if seed is None else torch.Generator().manual_seed(seed)


def spiral(data: specs.SpiralData) -> Tensors:
    """Seeds 000/001, vectorised: the same points, bit for bit, as the tutorial's per-sample loop.

    The loop takes math.sin/math.cos (double precision) of each float32 angle, rounds the pair to
    float32 with torch.FloatTensor, then multiplies by the float32 radius. The random draws are
    one randn(points) per class, in class order.
    """
    generator = _generator(data.seed)
    count, classes = data.points_per_class, data.classes
    inputs, targets = [], []
    for label in range(classes):
        radius = torch.linspace(0, 1, count)
        start, end = (2 * math.pi / classes) * label, (2 * math.pi / classes) * (2 + label)
        angle = (
            torch.linspace(start, end, count) + torch.randn(count, generator=generator) * data.noise
        )
        angle64 = angle.double()
        direction = torch.stack((angle64.sin(), angle64.cos()), dim=1).float()
        inputs.append(radius.unsqueeze(1) * direction)
        targets.append(torch.full((count,), label, dtype=torch.int64))
    return torch.cat(inputs), torch.cat(targets)


def sum_bins(data: specs.SumBinsData) -> Tensors:
    """Seed 002: randn features labelled by the bin of their sum.

    With edges e0 < e1 < ...: sum < e0 is class 0, e0 <= sum < e1 is class 1, ..., and
    sum >= the last edge is class len(edges). The comparison is in double precision, as the
    tutorial compares `sum().item()` (a Python float) with the edges.
    """
    inputs = torch.randn(data.samples, data.features, generator=_generator(data.seed))
    edges = torch.tensor(data.edges, dtype=torch.float64)
    targets = torch.bucketize(inputs.sum(dim=1).double(), edges, right=True)
    return inputs, targets


def quadratic(data: specs.QuadraticData) -> Tensors:
    """Seed 004: x = linspace(-1, 1, samples) as a column, y = 3 x^2 + 2 + noise * rand."""
    x = torch.linspace(-1, 1, data.samples).unsqueeze(1)
    y = 3 * x.pow(2) + 2 + data.noise * torch.rand(x.size(), generator=_generator(data.seed))
    return x, y


def make_dataset(spec: specs.DatasetSpec, *, uploaded: Tensors | None = None) -> Tensors:
    """The dataset's (inputs, targets) on the CPU; `uploaded`: an uploaded dataset's tensors."""
    match spec:
        case specs.SpiralData():
            return spiral(spec)
        case specs.SumBinsData():
            return sum_bins(spec)
        case specs.QuadraticData():
            return quadratic(spec)
        case specs.InlineData():
            return inline_tensors(spec)
        case specs.UploadedData():
            if uploaded is None:
                raise ValueError(f"dataset {spec.id!r} is an upload; pass its tensors as uploaded")
            return uploaded
