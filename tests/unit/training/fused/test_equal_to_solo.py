"""Each fused member's per-epoch metrics equal its solo run's to 1e-3 relative (DESIGN.md,
"Fused execution"), for every optimizer and every layer type the stack accepts."""

from typing import Any

import pytest
import torch

from service.specs import JobSpec
from service.training.fused.grouping import fusion_key
from service.training.fused.loop import MemberResult, train_fused
from service.training.fused.members import Member
from tests.unit.training.runs import CPU, RecordingHooks, normalised, run

TOLERANCE = 1e-3
SMALL = {
    "name": "fused",
    "dataset": {"kind": "sum_bins", "samples": 60, "features": 6, "edges": [-1, 0, 1]},
    "model": {
        "layers": [
            {"type": "Linear", "out_features": 8},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 4},
        ]
    },
    "optimizer": {"name": "adam", "lr": 0.01},
    "epochs": 5,
    "batch_size": 16,
    "seed": 1,
}


def spec(**overrides: Any) -> JobSpec:
    return normalised(SMALL | overrides)


def fused(
    specs: list[JobSpec], *, compiled: bool = False, **kwargs: Any
) -> tuple[list[MemberResult], list[RecordingHooks]]:
    hooks = [RecordingHooks() for _ in specs]
    members = [Member(spec=s, hooks=h, **kwargs) for s, h in zip(specs, hooks, strict=True)]
    return train_fused(members, device=CPU, compiled=compiled), hooks


def assert_like_solo(specs: list[JobSpec], *, compiled: bool = False) -> list[RecordingHooks]:
    """Train the specs fused and each solo; every epoch's metrics agree to the tolerance."""
    assert len({fusion_key(s) for s in specs}) == 1, "the specs must fuse"
    results, hooks = fused(specs, compiled=compiled)
    for each, result, recorded in zip(specs, results, hooks, strict=True):
        assert result.error is None
        outcome, solo = run(each)
        assert result.outcome == outcome
        assert [m.epoch for m in recorded.epochs] == [m.epoch for m in solo.epochs]
        for field in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            mine = [getattr(m, field) for m in recorded.epochs]
            theirs = [getattr(m, field) for m in solo.epochs]
            if theirs[0] is None:
                assert mine == theirs
            else:
                torch.testing.assert_close(mine, theirs, rtol=TOLERANCE, atol=0)
        assert [c.epoch for c in recorded.checkpoints] == [c.epoch for c in solo.checkpoints]
        assert [c.kinds for c in recorded.checkpoints] == [c.kinds for c in solo.checkpoints]
    return hooks


OPTIMIZERS = [
    [
        {"name": "sgd", "lr": 0.1},
        {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
    ],
    [
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
        {"name": "sgd", "lr": 0.02, "momentum": 0.5, "nesterov": True, "weight_decay": 0.1},
    ],
    [{"name": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.3}, {"name": "sgd", "lr": 0.3}],
    [
        {"name": "adagrad", "lr": 0.1},
        {
            "name": "adagrad",
            "lr": 0.05,
            "lr_decay": 0.01,
            "weight_decay": 0.01,
            "initial_accumulator_value": 0.1,
        },
    ],
    [
        {"name": "rmsprop", "lr": 0.01},
        {"name": "rmsprop", "lr": 0.003, "momentum": 0.9, "alpha": 0.9, "weight_decay": 0.01},
    ],
    [
        {"name": "rmsprop", "lr": 0.01, "centered": True},
        {"name": "rmsprop", "lr": 0.003, "centered": True, "momentum": 0.5},
    ],
    [
        {"name": "adam", "lr": 0.01},
        {"name": "adam", "lr": 0.003, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.01},
    ],
    [{"name": "adam", "lr": 0.01, "amsgrad": True}, {"name": "adam", "lr": 0.02, "amsgrad": True}],
    [{"name": "adamw", "lr": 0.01}, {"name": "adamw", "lr": 0.003, "weight_decay": 0.1}],
]


@pytest.mark.parametrize("optimizers", OPTIMIZERS, ids=lambda o: o[0]["name"])
def test_every_optimizer_matches_solo_with_its_own_hyper_parameters(optimizers: list[Any]) -> None:
    seeds = (1, 2, 3)
    specs = [spec(optimizer=o, seed=s) for o in optimizers for s in seeds]
    assert_like_solo(specs)


LAYERS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "activations": (
        [
            {"type": "Linear", "out_features": 8},
            {"type": "LeakyReLU", "negative_slope": 0.1},
            {"type": "Linear", "out_features": 8},
            {"type": "ELU"},
            {"type": "Linear", "out_features": 8},
            {"type": "GELU"},
            {"type": "Linear", "out_features": 8},
            {"type": "Hardshrink", "lambd": 0.1},
            {"type": "Tanh"},
            {"type": "Softplus"},
            {"type": "SiLU"},
            {"type": "Sigmoid"},
            {"type": "Identity"},
            {"type": "Linear", "out_features": 4, "bias": False},
        ],
        {},
    ),
    "prelu": (
        [
            {"type": "Linear", "out_features": 8},
            {"type": "PReLU"},
            {"type": "Linear", "out_features": 8},
            {"type": "PReLU", "num_parameters": 8},
            {"type": "Linear", "out_features": 4},
        ],
        {},
    ),
    "pow": (
        [{"type": "Pow", "exponent": 2}, {"type": "Linear", "out_features": 1}],
        {
            "dataset": {"kind": "quadratic", "samples": 40, "noise": 0.1},
            "optimizer": {"name": "sgd", "lr": 0.01},
        },
    ),
    "layer_norm": (
        [
            {"type": "Linear", "out_features": 8},
            {"type": "LayerNorm"},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 4},
        ],
        {},
    ),
    "convolution": (
        [
            {"type": "Unflatten", "dim": 1, "unflattened_size": [1, 4, 4]},
            {"type": "Conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"type": "ReLU"},
            {"type": "MaxPool2d", "kernel_size": 2},
            {"type": "Conv2d", "out_channels": 4, "kernel_size": 1, "groups": 1},
            {"type": "AvgPool2d", "kernel_size": 2},
            {"type": "AdaptiveAvgPool2d", "output_size": 1},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 4},
        ],
        {"dataset": {"kind": "sum_bins", "samples": 60, "features": 16, "edges": [-1, 0, 1]}},
    ),
    "conv1d": (
        [
            {"type": "Unflatten", "dim": 1, "unflattened_size": [2, 3]},
            {"type": "Conv1d", "out_channels": 4, "kernel_size": 2, "groups": 2},
            {"type": "Flatten", "start_dim": 1},
            {"type": "Linear", "out_features": 4},
        ],
        {},
    ),
}


@pytest.mark.parametrize("case", LAYERS)
def test_every_fusable_layer_type_matches_solo(case: str) -> None:
    layers, overrides = LAYERS[case]
    specs = [spec(model={"layers": layers}, seed=s, **overrides) for s in (1, 2, 3)]
    assert_like_solo(specs)


def test_full_batch_validation_schedules_and_clipping_match_solo() -> None:
    specs = [
        spec(batch_size=None, validation_fraction=0.25, max_grad_norm=0.5, seed=1, epochs=4),
        spec(
            batch_size=None,
            validation_fraction=0.25,
            max_grad_norm=0.5,
            seed=2,
            schedule={"kind": "step", "step_size": 2, "gamma": 0.5},
            epochs=6,
        ),
        spec(
            batch_size=None,
            validation_fraction=0.25,
            max_grad_norm=0.5,
            seed=3,
            schedule={"kind": "cosine"},
        ),
    ]
    assert_like_solo(specs)


def test_mini_batches_with_drop_last_standardize_and_regression_match_solo() -> None:
    data = {"kind": "quadratic", "samples": 50, "noise": 0.1}
    layers = [
        {"type": "Linear", "out_features": 6},
        {"type": "Tanh"},
        {"type": "Linear", "out_features": 1},
    ]
    specs = [
        spec(
            dataset=data,
            model={"layers": layers},
            drop_last=True,
            standardize=True,
            seed=s,
            loss=loss,
        )
        for s in (4, 5)
        for loss in ("mse",)
    ]
    assert_like_solo(specs)
