"""Job specs for tests: plain functions with overridable defaults, one per kind of job the tests
train. Each returns the JSON a client would submit; `overrides` replace whole top-level keys."""

from typing import Any


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """A job that trains in milliseconds: 8 inline 2-D points, 2 classes, 3 epochs."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "dataset": {
            "kind": "inline",
            "inputs": [
                [0.0, 0.1],
                [0.2, 0.1],
                [0.9, 1.0],
                [1.0, 0.8],
                [0.1, 0.3],
                [0.8, 0.9],
                [0.3, 0.0],
                [0.7, 1.1],
            ],
            "targets": [0, 0, 1, 1, 0, 1, 0, 1],
        },
        "model": {
            "layers": [
                {"type": "Linear", "out_features": 4},
                {"type": "ReLU"},
                {"type": "Linear", "out_features": 2},
            ]
        },
        "optimizer": {"name": "adam", "lr": 0.01},
        "epochs": 3,
        "seed": 7,
    }
    spec.update(overrides)
    return spec


def small_spec(**overrides: Any) -> dict[str, Any]:
    """A small classification job that trains in well under a second: mini-batches, shuffle,
    Dropout, a schedule and Adam, so it exercises every random stream."""
    spec: dict[str, Any] = {
        "name": "small",
        "dataset": {"kind": "sum_bins", "samples": 120, "features": 12, "edges": [-2, 0, 2]},
        "model": {
            "layers": [
                {"type": "Linear", "out_features": 16},
                {"type": "ReLU"},
                {"type": "Dropout", "p": 0.3},
                {"type": "Linear", "out_features": 4},
            ]
        },
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": {"kind": "step", "step_size": 2, "gamma": 0.5},
        "epochs": 6,
        "batch_size": 16,
        "seed": 3,
    }
    spec.update(overrides)
    return spec


def early_stopping_spec(**overrides: Any) -> dict[str, Any]:
    """small_spec at Adam lr 0.05 with a quarter held out, 30 epochs: its val_loss is lowest at
    epoch 4, so patience 3 stops it at epoch 7 (tests/unit/training/test_early_stopping.py lists
    its metrics)."""
    spec = small_spec(
        name="stops-early",
        optimizer={"name": "adam", "lr": 0.05},
        validation_fraction=0.25,
        epochs=30,
        checkpoint_every=2,
        early_stopping={"patience": 3},
    )
    spec.update(overrides)
    return spec


def uploaded_spec(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    """A linear classifier of two classes on an uploaded dataset (`POST /v1/datasets`)."""
    spec: dict[str, Any] = {
        "dataset": {"kind": "uploaded", "id": dataset_id},
        "model": {"layers": [{"type": "Linear", "out_features": 2}]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "epochs": 5,
        "seed": 1,
    }
    spec.update(overrides)
    return spec


def diverging_spec(**overrides: Any) -> dict[str, Any]:
    """A regression whose learning rate of 1e6 makes the loss non-finite within a few epochs."""
    spec = tiny_spec(
        dataset={"kind": "quadratic", "samples": 20},
        model={"layers": [{"type": "Linear", "out_features": 1}]},
        optimizer={"name": "sgd", "lr": 1e6},
        epochs=200,
    )
    spec.update(overrides)
    return spec


def spiral_spec(**overrides: Any) -> dict[str, Any]:
    """Seed 001's ReLU + Adam experiment, shortened by default."""
    spec: dict[str, Any] = {
        "name": "spiral-relu-adam",
        "dataset": {"kind": "spiral", "classes": 3, "points_per_class": 1000, "noise": 0.2},
        "model": {
            "layers": [
                {"type": "Linear", "out_features": 100},
                {"type": "ReLU"},
                {"type": "Linear", "out_features": 3},
            ]
        },
        "optimizer": {"name": "adam", "lr": 0.001, "weight_decay": 1e-5},
        "epochs": 20,
        "batch_size": None,
        "seed": 12345,
    }
    spec.update(overrides)
    return spec


def quadratic_spec(**overrides: Any) -> dict[str, Any]:
    """Seed 004's experiment: y = w x^2 + b fitted to noisy points by plain SGD, full batch."""
    spec: dict[str, Any] = {
        "name": "quadratic",
        "dataset": {"kind": "quadratic", "samples": 100, "noise": 0.2},
        "model": {
            "layers": [{"type": "Pow", "exponent": 2}, {"type": "Linear", "out_features": 1}]
        },
        "loss": "half_sum_squared",
        "optimizer": {"name": "sgd", "lr": 0.001},
        "epochs": 800,
        "batch_size": None,
        "seed": 100,
    }
    spec.update(overrides)
    return spec


def stochastic_spec(**overrides: Any) -> dict[str, Any]:
    """All a resume must restore exactly: shuffled mini-batches, Dropout, Adam, a schedule."""
    spec: dict[str, Any] = {
        "name": "stochastic",
        "dataset": {"kind": "sum_bins", "samples": 256, "features": 16},
        "model": {
            "layers": [
                {"type": "Linear", "out_features": 32},
                {"type": "ReLU"},
                {"type": "Dropout", "p": 0.3},
                {"type": "Linear", "out_features": 10},
            ]
        },
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": {"kind": "step", "step_size": 50, "gamma": 0.5},
        "epochs": 300,
        "batch_size": 32,
        "shuffle": True,
        "checkpoint_every": 20,
        "seed": 2024,
    }
    spec.update(overrides)
    return spec
