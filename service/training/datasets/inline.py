"""Datasets written into the spec as JSON lists: their shapes, checked, and their tensors.

Targets that are all JSON integers are class labels (classification); anything else is a
regression target. A job can still treat integer targets as values with `task: regression`.
"""

import math
from typing import TypeGuard

import torch

from service.errors import InvalidSpec
from service.specs import InlineData
from service.training.datasets.kind import DatasetKind, Tensors
from service.training.shapes import DataShape

# Deeper nesting than this is a mistake, not data (images are [channels, height, width]).
MAX_DEPTH = 8


def _is_number(value: object) -> TypeGuard[int | float]:
    return type(value) is int or type(value) is float  # not bool, although bool is an int


def _shape_of(value: object, *, where: str, depth: int = 0) -> tuple[int, ...]:
    """The shape of a number or nested list of numbers; InvalidSpec naming the first bad entry."""
    if _is_number(value):
        if not math.isfinite(value):
            raise InvalidSpec(f"{where} is {value}; every entry must be a finite number")
        return ()
    if not isinstance(value, list):
        raise InvalidSpec(
            f"{where} is {value!r}; every entry must be a number or a list of numbers"
        )
    if not value:
        raise InvalidSpec(f"{where} is an empty list; every entry must hold at least one number")
    if depth == MAX_DEPTH:
        raise InvalidSpec(f"{where} nests lists deeper than {MAX_DEPTH} levels")
    # The common case, a flat list of finite numbers, without a message built per number.
    if all(map(_is_number, value)) and all(map(math.isfinite, value)):
        return (len(value),)
    first = _shape_of(value[0], where=f"{where}[0]", depth=depth + 1)
    for index, item in enumerate(value[1:], start=1):
        shape = _shape_of(item, where=f"{where}[{index}]", depth=depth + 1)
        if shape != first:
            raise InvalidSpec(
                f"{where}[{index}] has shape {list(shape)} but {where}[0] has shape {list(first)}; "
                "lists must not be ragged"
            )
    return (len(value), *first)


def _sample_shape(samples: list[object], *, where: str) -> tuple[int, ...]:
    """The common shape of every sample in the list; samples of different shapes are refused."""
    first = _shape_of(samples[0], where=f"{where}[0]")
    for index, sample in enumerate(samples[1:], start=1):
        shape = _shape_of(sample, where=f"{where}[{index}]")
        if shape != first:
            raise InvalidSpec(
                f"{where}[{index}] has shape {list(shape)} but {where}[0] has shape "
                f"{list(first)}; every sample must have the same shape"
            )
    return first


def is_labelled(data: InlineData) -> bool:
    """True when every target is a JSON integer: class labels."""
    return all(isinstance(t, int) and not isinstance(t, bool) for t in data.targets)


def shape(data: InlineData) -> DataShape:
    """The DataShape of inline data, checking every entry (InvalidSpec for the first bad one)."""
    # A sample that is a single number is a sample of one feature.
    input_shape = _sample_shape(data.inputs, where="dataset.inputs") or (1,)
    if is_labelled(data):
        labels: list[int] = data.targets
        if min(labels) < 0:
            raise InvalidSpec(
                f"dataset.targets holds the class label {min(labels)}; "
                "class labels are 0, 1, ..., classes - 1"
            )
        return DataShape(
            samples=len(labels),
            input_shape=input_shape,
            task="classification",
            num_classes=max(labels) + 1,
            target_shape=(),
        )
    target_shape = _sample_shape(data.targets, where="dataset.targets") or (1,)
    return DataShape(
        samples=len(data.targets),
        input_shape=input_shape,
        task="regression",
        num_classes=None,
        target_shape=target_shape,
    )


def generate(data: InlineData) -> Tensors:
    """float32 inputs (N, *input_shape); int64 labels (N,) or float32 targets (N, *target_shape)."""
    known = shape(data)
    inputs = torch.tensor(data.inputs, dtype=torch.float32).reshape(
        known.samples, *known.input_shape
    )
    if known.task == "classification":
        return inputs, torch.tensor(data.targets, dtype=torch.int64)
    targets = torch.tensor(data.targets, dtype=torch.float32)
    return inputs, targets.reshape(known.samples, *known.target_shape)


KIND = DatasetKind(spec=InlineData, shape=shape, generate=generate, task_from_targets=True)
