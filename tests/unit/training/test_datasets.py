import math
import re
from typing import Any, get_args

import pytest
import torch
from pydantic import TypeAdapter

from service import specs
from service.errors import InvalidSpec
from service.training.datasets import KINDS, describe_dataset, inline, make_dataset, seeded


def tutorial_spiral(
    *, points: int, classes: int, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed 001's per-sample loop, ported literally (minus the .to(device) calls)."""
    x = torch.zeros(points * classes, 2)
    y = torch.zeros(points * classes, dtype=torch.long)
    for c in range(classes):
        index = 0
        t = torch.linspace(0, 1, points)
        inner_var = (
            torch.linspace((2 * math.pi / classes) * c, (2 * math.pi / classes) * (2 + c), points)
            + torch.randn(points) * noise
        )
        for ix in range(points * c, points * (c + 1)):
            x[ix] = t[index] * torch.FloatTensor(
                (math.sin(inner_var[index]), math.cos(inner_var[index]))
            )
            y[ix] = c
            index += 1  # noqa: SIM113 - the tutorial's own loop, kept literal
    return x, y


def tutorial_sum_bins(samples: int, features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed 002's generate_synthetic_data, ported literally."""
    inputs = torch.randn(samples, features)
    targets = torch.empty(samples, dtype=torch.long)
    for i in range(samples):
        feature_sum = inputs[i].sum().item()
        if feature_sum < -10:
            targets[i] = 0
        elif feature_sum < -5:
            targets[i] = 1
        elif feature_sum < 0:
            targets[i] = 2
        elif feature_sum < 5:
            targets[i] = 3
        elif feature_sum < 10:
            targets[i] = 4
        elif feature_sum < 15:
            targets[i] = 5
        elif feature_sum < 20:
            targets[i] = 6
        elif feature_sum < 25:
            targets[i] = 7
        elif feature_sum < 30:
            targets[i] = 8
        else:
            targets[i] = 9
    return inputs, targets


@pytest.mark.parametrize(
    ("seed", "classes", "points", "noise"), [(12345, 3, 1000, 0.2), (7, 5, 333, 0.5)]
)
def test_spiral_is_bit_equal_to_the_tutorial_loop(
    seed: int, classes: int, points: int, noise: float
) -> None:
    torch.manual_seed(seed)
    expected = tutorial_spiral(points=points, classes=classes, noise=noise)
    torch.manual_seed(seed)
    spec = specs.SpiralData(kind="spiral", classes=classes, points_per_class=points, noise=noise)
    inputs, targets = make_dataset(spec)
    assert torch.equal(inputs, expected[0])
    assert torch.equal(targets, expected[1])
    # The generator leaves the global stream where the loop leaves it, so the network that
    # follows draws the same initial weights.
    after_loop = torch.get_rng_state()
    torch.manual_seed(seed)
    tutorial_spiral(points=points, classes=classes, noise=noise)
    assert torch.equal(after_loop, torch.get_rng_state())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sum_bins_labels_equal_the_tutorial_loop(seed: int) -> None:
    torch.manual_seed(seed)
    expected_inputs, expected_targets = tutorial_sum_bins(1000, 784)
    torch.manual_seed(seed)
    inputs, targets = make_dataset(specs.SumBinsData(kind="sum_bins"))
    assert torch.equal(inputs, expected_inputs)
    assert torch.equal(targets, expected_targets)
    assert targets.dtype == torch.int64
    assert set(targets.tolist()) > {0, 9}  # both open-ended bins are reached


def test_sum_bins_with_custom_edges_counts_the_edges_at_or_below_the_sum() -> None:
    spec = specs.SumBinsData(kind="sum_bins", samples=200, features=3, edges=[-1.5, 0.25, 2])
    inputs, targets = make_dataset(spec)
    expected = [sum(1 for edge in spec.edges if row.sum().item() >= edge) for row in inputs]
    assert targets.tolist() == expected


def test_quadratic_follows_seed_004() -> None:
    torch.manual_seed(100)
    x = torch.unsqueeze(torch.linspace(-1, 1, 100), dim=1)
    y = 3 * x.pow(2) + 2 + 0.2 * torch.rand(x.size())
    torch.manual_seed(100)
    inputs, targets = make_dataset(specs.QuadraticData(kind="quadratic", samples=100, noise=0.2))
    assert torch.equal(inputs, x)
    assert torch.equal(targets, y)
    assert targets.shape == (100, 1)


def test_a_dataset_seed_gives_the_same_data_whatever_the_global_stream() -> None:
    spec = specs.SpiralData(kind="spiral", points_per_class=50, seed=9)
    torch.manual_seed(1)
    first = make_dataset(spec)
    torch.manual_seed(2)
    second = make_dataset(spec)
    assert torch.equal(first[0], second[0])


def test_inline_classification_and_regression_tensors() -> None:
    labelled = specs.InlineData(kind="inline", inputs=[[1, 2], [3, 4.5]], targets=[0, 2])
    inputs, targets = make_dataset(labelled)
    assert inputs.dtype == torch.float32
    assert inputs.tolist() == [[1.0, 2.0], [3.0, 4.5]]
    assert targets.dtype == torch.int64
    assert targets.tolist() == [0, 2]
    shape = inline.shape(labelled)
    assert (shape.task, shape.num_classes, shape.target_shape) == ("classification", 3, ())

    valued = specs.InlineData(kind="inline", inputs=[1, 2, 3], targets=[0.5, 1, 1.5])
    inputs, targets = make_dataset(valued)
    assert inputs.shape == (3, 1)
    assert targets.dtype == torch.float32
    assert targets.shape == (3, 1)
    assert inline.shape(valued).target_shape == (1,)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([[1, 2], [3]], "dataset.inputs[1] has shape [1] but dataset.inputs[0] has shape [2]"),
        ([[1, 2], [3, "x"]], "dataset.inputs[1][1] is 'x'; every entry must be a number"),
        ([[1, 2], [3, True]], "dataset.inputs[1][1] is True"),
        (
            [[[1], [2, 3]], [[1], [2]]],
            "dataset.inputs[0][1] has shape [2] but dataset.inputs[0][0]",
        ),
        ([[1, 2], []], "dataset.inputs[1] is an empty list"),
    ],
)
def test_inline_data_that_is_ragged_or_not_numeric_is_refused(
    inputs: list[object], message: str
) -> None:
    data = specs.InlineData(kind="inline", inputs=inputs, targets=[0] * len(inputs))
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        inline.shape(data)


def test_inline_nesting_is_bounded() -> None:
    deep: object = 0.5
    for _ in range(9):
        deep = [deep]
    data = specs.InlineData(kind="inline", inputs=[deep], targets=[0])
    with pytest.raises(InvalidSpec, match="nests lists deeper than 8 levels"):
        inline.shape(data)


def test_negative_class_labels_are_refused() -> None:
    data = specs.InlineData(kind="inline", inputs=[1, 2], targets=[0, -1])
    with pytest.raises(InvalidSpec, match="class label -1"):
        inline.shape(data)


def test_every_kind_in_the_spec_union_is_registered_with_its_spec_model() -> None:
    (union, *_) = get_args(specs.DatasetSpec)
    models = {get_args(m.model_fields["kind"].annotation)[0]: m for m in get_args(union)}
    assert {kind: registered.spec for kind, registered in KINDS.items()} == models


@pytest.mark.parametrize(
    "dataset",
    [
        {"kind": "spiral", "classes": 4, "points_per_class": 5},
        {"kind": "sum_bins", "samples": 7, "features": 3, "edges": [0.0]},
        {"kind": "quadratic", "samples": 9},
        {"kind": "inline", "inputs": [[[1, 2]], [[3, 4]]], "targets": [[1.5, 2], [0, 1]]},
        {"kind": "inline", "inputs": [1, 2, 3], "targets": [0, 2, 1]},
    ],
)
def test_each_kinds_shapes_are_those_of_the_tensors_it_makes(dataset: dict[str, Any]) -> None:
    spec: specs.DatasetSpec = TypeAdapter(specs.DatasetSpec).validate_python(dataset)
    shape = describe_dataset(spec)
    inputs, targets = make_dataset(spec)
    assert inputs.shape == (shape.samples, *shape.input_shape)
    assert targets.shape == (shape.samples, *shape.target_shape)
    if shape.task == "classification":
        assert targets.dtype == torch.int64
        assert shape.num_classes is not None
        assert int(targets.max()) < shape.num_classes


def test_seeded_gives_a_seed_only_to_random_data_that_names_none() -> None:
    spiral = specs.SpiralData(kind="spiral")
    assert seeded(spiral, seed=5) == specs.SpiralData(kind="spiral", seed=5)
    assert seeded(spiral) == specs.SpiralData(kind="spiral", seed=0)
    own = specs.SpiralData(kind="spiral", seed=9)
    assert seeded(own, seed=5) is own
    inline = specs.InlineData(kind="inline", inputs=[1], targets=[0])
    assert seeded(inline, seed=5) is inline
