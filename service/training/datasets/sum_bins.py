"""Seed 002: standard-normal features, labelled by which bin their sum falls in."""

import torch

from service.specs import SumBinsData
from service.training.datasets.kind import DatasetKind, Tensors, generator
from service.training.shapes import DataShape


def shape(data: SumBinsData) -> DataShape:
    return DataShape(
        samples=data.samples,
        input_shape=(data.features,),
        task="classification",
        num_classes=len(data.edges) + 1,
        target_shape=(),
    )


def generate(data: SumBinsData) -> Tensors:
    """randn features labelled by the bin of their sum.

    With edges e0 < e1 < ...: sum < e0 is class 0, e0 <= sum < e1 is class 1, ..., and
    sum >= the last edge is class len(edges). The comparison is in double precision, as the
    tutorial compares `sum().item()` (a Python float) with the edges.
    """
    inputs = torch.randn(data.samples, data.features, generator=generator(data.seed))
    edges = torch.tensor(data.edges, dtype=torch.float64)
    targets = torch.bucketize(inputs.sum(dim=1).double(), edges, right=True)
    return inputs, targets


KIND = DatasetKind(spec=SumBinsData, shape=shape, generate=generate, random=True)
