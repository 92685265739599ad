"""Early stopping: the rule on scripted metric sequences, then in the loop on a tiny seeded
network, where a resumed run must stop where an uninterrupted one does."""

from typing import Any

import pytest

from service.specs import EarlyStopping, JobSpec, MetricName
from service.training.early_stopping import Patience, observe
from service.training.hooks import EpochResult, StopKind, StopReason
from service.training.loop import TrainingOutcome
from tests.factories import early_stopping_spec

from .runs import normalised, run


def epoch_result(epoch: int, metric: MetricName, value: float) -> EpochResult:
    fields: dict[str, Any] = {"loss": 1.0, "accuracy": None, "val_loss": None, "val_accuracy": None}
    return EpochResult.model_validate(
        {**fields, metric: value, "epoch": epoch, "lr": 0.01, "seconds": 0.1}
    )


def stop_of(
    values: list[float], *, metric: MetricName = "val_loss", **rule: Any
) -> tuple[int, str] | None:
    """The epoch and the reason the rule stops at for a scripted sequence, one value per epoch
    from epoch 1; None if it never does."""
    early_stopping = EarlyStopping(metric=metric, **rule)
    patience = Patience()
    for epoch, value in enumerate(values, start=1):
        patience, stop = observe(
            patience,
            rule=early_stopping,
            epoch=epoch,
            metrics=epoch_result(epoch, metric, value),
        )
        if stop is not None:
            assert stop.kind == StopKind.EARLY_STOPPED
            return epoch, stop.detail
    return None


def test_a_loss_stops_patience_epochs_after_its_lowest_value() -> None:
    values = [1.0, 0.8, 0.6, 0.7, 0.65, 0.61, 0.9]
    assert stop_of(values, patience=3) == (
        6,
        "early stopping: val_loss did not improve for 3 epochs (best 0.6 at epoch 3)",
    )


def test_an_improvement_resets_the_count() -> None:
    # 0.59 at epoch 6 beats 0.6 just in time: counting starts again from there.
    values = [1.0, 0.8, 0.6, 0.7, 0.65, 0.59, 0.7, 0.7, 0.7, 0.5]
    assert stop_of(values, patience=3) == (
        9,
        "early stopping: val_loss did not improve for 3 epochs (best 0.59 at epoch 6)",
    )


def test_a_tie_is_not_an_improvement() -> None:
    assert stop_of([0.5, 0.5], patience=1) == (
        2,
        "early stopping: val_loss did not improve for 1 epoch (best 0.5 at epoch 1)",
    )


@pytest.mark.parametrize("metric", ["accuracy", "val_accuracy"])
def test_an_accuracy_improves_upwards(metric: MetricName) -> None:
    values = [0.5, 0.7, 0.6, 0.69, 0.7, 0.95]
    assert stop_of(values, metric=metric, patience=3) == (
        5,
        f"early stopping: {metric} did not improve for 3 epochs (best 0.7 at epoch 2)",
    )


@pytest.mark.parametrize("metric", ["loss", "val_loss"])
def test_a_loss_improves_downwards(metric: MetricName) -> None:
    # Rising accuracies read as a loss get worse every epoch.
    assert stop_of([0.5, 0.7, 0.6, 0.69, 0.7], metric=metric, patience=2) == (
        3,
        f"early stopping: {metric} did not improve for 2 epochs (best 0.5 at epoch 1)",
    )


def test_only_an_improvement_beyond_min_delta_counts() -> None:
    # Each step down is 0.25 (exact in binary): more than 0.125, but not more than 0.25.
    values = [1.0, 0.75, 0.5, 0.25, 0.0]
    assert stop_of(values, patience=1, min_delta=0.125) is None
    assert stop_of(values, patience=1, min_delta=0.25) == (
        2,
        "early stopping: val_loss did not improve by more than 0.25 for 1 epoch "
        "(best 1 at epoch 1)",
    )


def test_a_small_improvement_does_not_move_the_best() -> None:
    # 0.97 and 0.94 each improve on the epoch before by less than min_delta 0.05, but 0.94
    # improves on 1.0 by more: the best stays 1.0 until then, so the count restarts at epoch 3.
    values = [1.0, 0.97, 0.94, 0.93, 0.92]
    assert stop_of(values, patience=2, min_delta=0.05) == (
        5,
        "early stopping: val_loss did not improve by more than 0.05 for 2 epochs "
        "(best 0.94 at epoch 3)",
    )


def test_epochs_before_start_epoch_are_not_watched() -> None:
    # The best value, 0.1 at epoch 2, is before start_epoch 4: epoch 4 sets the best.
    values = [1.0, 0.1, 0.9, 0.8, 0.85, 0.85, 0.85, 0.7]
    assert stop_of(values, patience=3) == (
        5,
        "early stopping: val_loss did not improve for 3 epochs (best 0.1 at epoch 2)",
    )
    assert stop_of(values, patience=3, start_epoch=4) == (
        7,
        "early stopping: val_loss did not improve for 3 epochs (best 0.8 at epoch 4)",
    )


# --- in the loop: a tiny seeded network ---------------------------------------------------------
#
# early_stopping_spec: small_spec at Adam lr 0.05 with a quarter held out. Its metrics, epoch by
# epoch (4 digits):
#   val_loss  1.269 1.048 0.9337 0.8892 0.8955 0.9303 0.941  0.9534 ...  (lowest at epoch 4)
#   loss      1.21  0.7854 0.5554 0.5124 0.4189 0.4226 0.3953 0.4156 0.3989 0.3747 0.3443 0.3641
#             0.394 0.3545 ...
#   accuracy  0.544 0.656 0.822 0.811 0.844 0.822 0.867 0.833 0.833 0.867 0.9 ...


def spec_stopping_early(**early_stopping: Any) -> JobSpec:
    return normalised(early_stopping_spec(early_stopping=early_stopping))


@pytest.mark.parametrize(
    ("rule", "epoch", "detail"),
    [
        (
            {"patience": 3},
            7,
            "val_loss did not improve for 3 epochs (best 0.8892 at epoch 4)",
        ),
        (
            {"metric": "loss", "patience": 3},
            14,
            "loss did not improve for 3 epochs (best 0.3443 at epoch 11)",
        ),
        (
            {"metric": "loss", "patience": 3, "min_delta": 0.05},
            8,
            "loss did not improve by more than 0.05 for 3 epochs (best 0.4189 at epoch 5)",
        ),
        (
            {"metric": "accuracy", "patience": 3},
            10,
            "accuracy did not improve for 3 epochs (best 0.8667 at epoch 7)",
        ),
        (
            {"patience": 3, "start_epoch": 6},
            9,
            "val_loss did not improve for 3 epochs (best 0.9303 at epoch 6)",
        ),
    ],
    ids=["val_loss", "loss", "min_delta", "accuracy", "start_epoch"],
)
def test_training_stops_at_the_epoch_the_rule_gives(
    rule: dict[str, Any], epoch: int, detail: str
) -> None:
    outcome, hooks = run(spec_stopping_early(**rule))

    assert outcome == TrainingOutcome(
        epoch=epoch,
        stop=StopReason(kind=StopKind.EARLY_STOPPED, detail=f"early stopping: {detail}"),
    )
    assert [m.epoch for m in hooks.epochs] == list(range(1, epoch + 1))
    assert hooks.checkpoints[-1].epoch == epoch
    assert "final" in hooks.checkpoints[-1].kinds


def test_the_early_stopped_epoch_is_final_and_the_best_checkpoint_stays_marked() -> None:
    _, hooks = run(spec_stopping_early(patience=3))

    # best_metric is val_loss too: lowest at epoch 4, which was checkpointed.
    assert [(c.epoch, sorted(c.kinds)) for c in hooks.checkpoints] == [
        (2, ["best", "periodic"]),
        (4, ["best", "periodic"]),
        (6, ["periodic"]),
        (7, ["final"]),
    ]


def test_a_stop_due_on_the_last_epoch_is_no_early_stop() -> None:
    spec = normalised(early_stopping_spec(epochs=7))
    outcome, hooks = run(spec)

    assert outcome == TrainingOutcome(epoch=7, stop=None)
    assert sorted(hooks.checkpoints[-1].kinds) == ["final"]


def test_early_stopping_goes_before_the_hooks_asking_to_stop() -> None:
    # A shutdown at the same epoch would hand the job back to resume past where it stopped.
    outcome, _ = run(spec_stopping_early(patience=3), stop_after=7)
    assert outcome.stop is not None
    assert outcome.stop.kind == StopKind.EARLY_STOPPED


def test_a_resumed_run_keeps_the_count_and_stops_where_an_uninterrupted_one_does() -> None:
    spec = spec_stopping_early(patience=3)
    uninterrupted_outcome, uninterrupted = run(spec)

    # Shut down after epoch 5: its checkpoint holds one epoch without improvement since 4.
    # Were the count lost, the resumed run would take epoch 6 as its best and stop at 9.
    _, first_half = run(spec, stop_after=5)
    assert first_half.checkpoints[-1].epoch == 5
    resumed_outcome, second_half = run(spec, resume=first_half.resume_point())

    assert uninterrupted_outcome.epoch == 7
    assert resumed_outcome == uninterrupted_outcome
    assert [m.epoch for m in second_half.epochs] == [6, 7]
    assert first_half.losses + second_half.losses == uninterrupted.losses
    assert second_half.checkpoints[-1].weights == uninterrupted.checkpoints[-1].weights
    assert second_half.checkpoints[-1].kinds == uninterrupted.checkpoints[-1].kinds
