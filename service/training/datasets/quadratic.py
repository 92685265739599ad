"""Seed 004: x = linspace(-1, 1, samples) as a column, y = 3 x^2 + 2 + noise * rand."""

import torch

from service.specs import QuadraticData
from service.training.datasets.kind import DatasetKind, Tensors, generator
from service.training.shapes import DataShape


def shape(data: QuadraticData) -> DataShape:
    return DataShape(
        samples=data.samples,
        input_shape=(1,),
        task="regression",
        num_classes=None,
        target_shape=(1,),
    )


def generate(data: QuadraticData) -> Tensors:
    x = torch.linspace(-1, 1, data.samples).unsqueeze(1)
    y = 3 * x.pow(2) + 2 + data.noise * torch.rand(x.size(), generator=generator(data.seed))
    return x, y


KIND = DatasetKind(spec=QuadraticData, shape=shape, generate=generate, random=True)
