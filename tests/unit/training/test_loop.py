import math
import time

import pytest
import safetensors.torch
import torch

from service.errors import TrainingFailed
from service.training.checkpoints import decode_state
from service.training.epochs import CheckpointPace, checkpoint_kinds
from service.training.hooks import StopKind, StopReason
from service.training.loop import TrainingOutcome, train

from .runs import CPU, RecordingHooks, planned, run


def adam_steps(state: bytes) -> int:
    """Optimizer steps taken so far, read from Adam's per-parameter step count."""
    return int(decode_state(state).optimizer["state"][0]["step"].item())


@pytest.mark.parametrize(("drop_last", "steps"), [(False, 11), (True, 10)])
def test_87_samples_at_batch_8_is_11_steps_or_10_with_drop_last(
    drop_last: bool, steps: int
) -> None:
    spec = planned(
        dataset={"kind": "sum_bins", "samples": 87, "features": 12, "edges": [-2, 0, 2]},
        batch_size=8,
        drop_last=drop_last,
        epochs=1,
    )
    _, hooks = run(spec)
    assert adam_steps(hooks.checkpoints[-1].state) == steps


def test_a_full_batch_is_one_step_per_epoch() -> None:
    _, hooks = run(planned(batch_size=None, epochs=3))
    assert adam_steps(hooks.checkpoints[-1].state) == 3


def test_the_same_spec_and_seed_give_identical_metrics_and_weights() -> None:
    spec = planned(validation_fraction=0.25)
    _, first = run(spec)
    _, second = run(spec)
    assert [(m.loss, m.accuracy, m.val_loss, m.val_accuracy, m.lr) for m in first.epochs] == [
        (m.loss, m.accuracy, m.val_loss, m.val_accuracy, m.lr) for m in second.epochs
    ]
    assert first.checkpoints[-1].weights == second.checkpoints[-1].weights


def test_a_validation_split_leaves_the_initial_weights_unchanged() -> None:
    # lr 1e-30 moves no float32 weight, so the final weights are the initial ones.
    frozen = {"name": "sgd", "lr": 1e-30}
    _, without = run(planned(optimizer=frozen, schedule=None, epochs=1))
    _, with_split = run(
        planned(optimizer=frozen, schedule=None, epochs=1, validation_fraction=0.25)
    )
    assert without.checkpoints[-1].weights == with_split.checkpoints[-1].weights


def test_a_different_seed_gives_different_weights() -> None:
    _, first = run(planned(seed=1))
    _, second = run(planned(seed=2))
    assert first.checkpoints[-1].weights != second.checkpoints[-1].weights


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"validation_fraction": 0.2, "standardize": True, "max_grad_norm": 0.5},
        {
            "model": {
                "layers": [
                    {"type": "Linear", "out_features": 16},
                    {"type": "BatchNorm1d"},
                    {"type": "GELU"},
                    {"type": "Dropout", "p": 0.2},
                    {"type": "Linear", "out_features": 4},
                ]
            },
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
            "schedule": {"kind": "cosine"},
            "drop_last": True,
        },
    ],
    ids=["adam-step-dropout", "validation-standardize-clip", "batchnorm-sgd-cosine"],
)
def test_resuming_from_a_checkpoint_is_bit_identical_to_an_uninterrupted_run(
    overrides: dict[str, object],
) -> None:
    spec = planned(epochs=7, checkpoint_every=5, **overrides)
    uninterrupted_outcome, uninterrupted = run(spec)

    stopped_outcome, first_half = run(spec, stop_after=3)
    assert stopped_outcome == TrainingOutcome(
        epoch=3, stop=StopReason(kind=StopKind.SHUTDOWN, detail="stopped after epoch 3")
    )
    assert [c.epoch for c in first_half.checkpoints] == [3]
    resumed_outcome, second_half = run(spec, resume=first_half.resume_point())

    assert uninterrupted_outcome == TrainingOutcome(epoch=7, stop=None)
    assert resumed_outcome == TrainingOutcome(epoch=7, stop=None)
    assert [m.epoch for m in second_half.epochs] == [4, 5, 6, 7]
    assert first_half.losses + second_half.losses == uninterrupted.losses
    for resumed, original in zip(
        first_half.epochs + second_half.epochs, uninterrupted.epochs, strict=True
    ):
        assert (resumed.accuracy, resumed.val_loss, resumed.lr) == (
            original.accuracy,
            original.val_loss,
            original.lr,
        )
    assert second_half.checkpoints[-1].weights == uninterrupted.checkpoints[-1].weights


def test_checkpoint_kinds_periodic_best_and_final() -> None:
    spec = planned(
        epochs=6, checkpoint_every=2, batch_size=None, optimizer={"name": "adam", "lr": 0.05}
    )
    _, hooks = run(spec)
    kinds = [(c.epoch, sorted(c.kinds)) for c in hooks.checkpoints]
    assert kinds == [(2, ["best", "periodic"]), (4, ["best", "periodic"]), (6, ["best", "final"])]
    assert [c.metric for c in hooks.checkpoints] == [hooks.epochs[i].loss for i in (1, 3, 5)]


def test_a_pace_holds_back_default_checkpoints_but_not_a_stop_or_the_final_one() -> None:
    spec = planned(epochs=6, batch_size=None)  # the default cadence: every epoch of six
    _, hooks = run(spec, checkpoint_seconds=3600.0)
    assert [(c.epoch, sorted(c.kinds)) for c in hooks.checkpoints] == [(6, ["best", "final"])]
    _, stopped = run(spec, checkpoint_seconds=3600.0, stop_after=3)
    assert [(c.epoch, sorted(c.kinds)) for c in stopped.checkpoints] == [(3, ["best", "periodic"])]
    _, unpaced = run(spec, checkpoint_seconds=0.0)
    assert [c.epoch for c in unpaced.checkpoints] == [1, 2, 3, 4, 5, 6]
    # A cadence the spec names is kept to the epoch.
    _, named = run(planned(epochs=6, checkpoint_every=2), checkpoint_seconds=3600.0)
    assert [c.epoch for c in named.checkpoints] == [2, 4, 6]


def test_a_default_checkpoint_is_taken_once_the_pace_has_passed() -> None:
    spec = planned(epochs=20)  # the default cadence: every second epoch
    passed = CheckpointPace(seconds=10.0, last=time.monotonic() - 11.0)
    waiting = CheckpointPace(seconds=10.0, last=time.monotonic())
    assert checkpoint_kinds(spec, epoch=4, stop=None, pace=passed) == {"periodic"}
    assert checkpoint_kinds(spec, epoch=4, stop=None, pace=waiting) == set()
    # Only the cadence's epochs, paced or not.
    assert checkpoint_kinds(spec, epoch=5, stop=None, pace=passed) == set()


def test_a_worse_checkpoint_is_not_best() -> None:
    # best_metric accuracy on a network that cannot learn (lr tiny): ties keep the first.
    spec = planned(
        epochs=4, checkpoint_every=1, best_metric="accuracy", optimizer={"name": "sgd", "lr": 1e-9}
    )
    _, hooks = run(spec)
    best = [c.epoch for c in hooks.checkpoints if "best" in c.kinds]
    accuracies = [m.accuracy for m in hooks.epochs]
    expected, top = [], -1.0
    for epoch, accuracy in enumerate(accuracies, start=1):
        assert accuracy is not None
        if accuracy > top:
            expected.append(epoch)
            top = accuracy
    assert best == expected


def test_metrics_follow_the_design() -> None:
    spec = planned(validation_fraction=0.25, epochs=3)
    _, hooks = run(spec)
    assert [m.epoch for m in hooks.epochs] == [1, 2, 3]
    assert [m.lr for m in hooks.epochs] == [0.01, 0.01, 0.005]  # step schedule: halved after 2
    for metrics in hooks.epochs:
        assert metrics.accuracy is not None
        assert 0 <= metrics.accuracy <= 1
        assert metrics.val_loss is not None
        assert metrics.val_accuracy is not None
        # 30 validation samples: accuracy is a multiple of 1/30.
        assert round(metrics.val_accuracy * 30, 6).is_integer()
        assert metrics.seconds > 0


def test_regression_has_no_accuracy() -> None:
    spec = planned(
        dataset={"kind": "quadratic"},
        model={"layers": [{"type": "Linear", "out_features": 1}]},
        validation_fraction=0.2,
        standardize=True,
        epochs=2,
    )
    _, hooks = run(spec)
    assert all(m.accuracy is None and m.val_accuracy is None for m in hooks.epochs)
    assert all(m.val_loss is not None for m in hooks.epochs)


def test_a_full_batch_epoch_reports_the_loss_of_its_one_forward_pass() -> None:
    spec = planned(
        dataset={"kind": "inline", "inputs": [[1.0], [2.0]], "targets": [[1.0], [3.0]]},
        model={"layers": [{"type": "Linear", "out_features": 1}]},
        loss="half_sum_squared",
        optimizer={"name": "sgd", "lr": 0.1},
        schedule=None,
        batch_size=None,
        epochs=1,
    )
    _, hooks = run(spec)
    weights = safetensors.torch.load(hooks.checkpoints[0].weights)
    # Undo the one SGD step to find the initial weights, then recompute the loss they gave.
    torch.manual_seed(spec.seed or 0)
    initial = torch.nn.Linear(1, 1)
    x, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [3.0]])
    loss = 0.5 * ((initial(x) - y) ** 2).sum()
    loss.backward()
    assert initial.weight.grad is not None
    torch.testing.assert_close(
        weights["0.weight"], initial.weight.detach() - 0.1 * initial.weight.grad
    )
    assert hooks.epochs[0].loss == loss.item()


def test_divergence_fails_naming_the_epoch_and_never_checkpoints_non_finite_weights() -> None:
    spec = planned(
        dataset={"kind": "quadratic"},
        model={"layers": [{"type": "Pow", "exponent": 2}, {"type": "Linear", "out_features": 1}]},
        loss="half_sum_squared",
        optimizer={"name": "sgd", "lr": 1e6},
        schedule=None,
        batch_size=None,
        epochs=50,
        checkpoint_every=1,
    )
    hooks = RecordingHooks()
    with pytest.raises(
        TrainingFailed, match=r"became \S+ at epoch (\d+); lower the learning rate"
    ) as caught:
        train(spec, device=CPU, hooks=hooks)
    failed_epoch = int(caught.value.message.split("at epoch ")[1].split(";")[0])
    assert 1 <= failed_epoch < 50
    assert all(math.isfinite(m.loss) for m in hooks.epochs)
    assert all(c.epoch < failed_epoch for c in hooks.checkpoints)
    for checkpoint in hooks.checkpoints:
        for tensor in safetensors.torch.load(checkpoint.weights).values():
            assert torch.isfinite(tensor).all()
