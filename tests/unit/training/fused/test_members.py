"""A fused member is still its own run: solo checkpoints, resumes either way, and it leaves the
stack alone when it diverges, stops early, is stopped, or runs out of epochs."""

import pytest
import safetensors.torch
import torch

from service.errors import TrainingFailed
from service.training.fused.grouping import fusion_key, why_solo
from service.training.fused.loop import train_fused
from service.training.fused.members import Member
from service.training.hooks import Resume, StopKind
from service.training.networks import build_network
from tests.unit.training.runs import CPU, RecordingHooks, run

from .test_equal_to_solo import TOLERANCE, fused, spec


def close(mine: list[float], theirs: list[float]) -> None:
    torch.testing.assert_close(mine, theirs, rtol=TOLERANCE, atol=0)


def test_a_fused_checkpoint_loads_into_the_plain_network_and_predicts_as_the_solo_ones() -> None:
    specs = [spec(seed=1), spec(seed=2, optimizer={"name": "adam", "lr": 0.003})]
    _, hooks = fused(specs)
    inputs = torch.linspace(-2, 2, 30).view(5, 6)
    for each, recorded in zip(specs, hooks, strict=True):
        network = build_network(each.model.layers, device=CPU)
        network.load_state_dict(
            safetensors.torch.load(recorded.checkpoints[-1].weights), strict=True
        )
        _, solo = run(each)
        reference = build_network(each.model.layers, device=CPU)
        reference.load_state_dict(safetensors.torch.load(solo.checkpoints[-1].weights))
        torch.testing.assert_close(network(inputs), reference(inputs), rtol=1e-3, atol=1e-5)


def test_a_fused_checkpoint_resumes_solo_and_a_solo_one_resumes_fused() -> None:
    optimizers = [
        {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        {"name": "rmsprop", "lr": 0.01, "momentum": 0.5, "centered": True},
        {"name": "adagrad", "lr": 0.1},
        {"name": "adam", "lr": 0.01},
    ]
    for optimizer in optimizers:
        schedule = {"kind": "step", "step_size": 2, "gamma": 0.5}
        whole = spec(optimizer=optimizer, schedule=schedule, epochs=6, checkpoint_every=1)
        _, uninterrupted = run(whole)
        # Fused for 3 epochs (stopped by its hooks), then solo for the rest.
        hooks = RecordingHooks(stop_after=3)
        partner = whole.model_copy(update={"seed": 9})
        [first, _] = train_fused(
            [Member(spec=whole, hooks=hooks), Member(spec=partner, hooks=RecordingHooks())],
            device=CPU,
        )
        assert first.outcome is not None
        assert first.outcome.stop is not None
        assert first.outcome.stop.kind == StopKind.SHUTDOWN
        _, rest = run(whole, resume=hooks.resume_point())
        close(hooks.losses + rest.losses, uninterrupted.losses)
        # Solo for 3 epochs, then fused with a fresh partner for the rest.
        _, solo = run(whole, stop_after=3)
        later = RecordingHooks()
        resume = solo.resume_point()
        results = train_fused(
            [
                Member(spec=whole, hooks=later, resume=resume),
                Member(spec=partner, hooks=RecordingHooks()),
            ],
            device=CPU,
        )
        assert results[0].outcome is not None
        assert results[0].outcome.epoch == 6
        assert [m.epoch for m in later.epochs] == [4, 5, 6]
        close(solo.losses + later.losses, uninterrupted.losses)
        assert [m.lr for m in solo.epochs + later.epochs] == [m.lr for m in uninterrupted.epochs]


def test_a_member_that_diverges_fails_alone_with_its_epoch() -> None:
    wild = spec(seed=2, optimizer={"name": "sgd", "lr": 1e30}, epochs=4)
    calm = [
        spec(seed=1, optimizer={"name": "sgd", "lr": 0.1}, epochs=4),
        spec(seed=3, optimizer={"name": "sgd", "lr": 0.05}, epochs=4),
    ]
    results, hooks = fused([calm[0], wild, calm[1]])
    assert isinstance(results[1].error, TrainingFailed)
    with pytest.raises(TrainingFailed) as solo_error:
        run(wild)
    assert results[1].error.message == solo_error.value.message
    assert "at epoch 1;" in results[1].error.message
    for each, result, recorded in zip(
        calm, (results[0], results[2]), (hooks[0], hooks[2]), strict=True
    ):
        assert result.outcome is not None
        assert result.outcome.epoch == 4
        _, solo = run(each)
        close(recorded.losses, solo.losses)


def test_members_leave_as_their_epochs_or_early_stopping_end_them() -> None:
    stopping = {"metric": "loss", "patience": 1, "min_delta": 10.0}
    specs = [
        spec(seed=1, epochs=2),
        spec(seed=2, epochs=7, early_stopping=stopping),
        spec(seed=3, epochs=7),
        spec(seed=4, epochs=5, checkpoint_every=2),
    ]
    results, hooks = fused(specs)
    for each, result, recorded in zip(specs, results, hooks, strict=True):
        outcome, solo = run(each)
        assert result.outcome == outcome
        close(recorded.losses, solo.losses)
        assert [c.kinds for c in recorded.checkpoints] == [c.kinds for c in solo.checkpoints]
    assert results[1].outcome is not None
    assert results[1].outcome.stop is not None
    assert results[1].outcome.stop.kind == StopKind.EARLY_STOPPED
    assert [len(h.epochs) for h in hooks] == [2, 2, 7, 5]


def test_a_members_periodic_checkpoints_keep_its_pace() -> None:
    # The default cadence: every epoch of four.
    specs = [
        spec(seed=1, epochs=4, checkpoint_every=None),
        spec(seed=2, epochs=4, checkpoint_every=None),
    ]
    paced, unpaced = RecordingHooks(), RecordingHooks()
    train_fused(
        [
            Member(spec=specs[0], hooks=paced, checkpoint_seconds=3600.0),
            Member(spec=specs[1], hooks=unpaced, checkpoint_seconds=0.0),
        ],
        device=CPU,
    )
    assert [c.epoch for c in paced.checkpoints] == [4]
    assert [c.epoch for c in unpaced.checkpoints] == [1, 2, 3, 4]


def test_a_member_whose_hooks_raise_leaves_with_that_error() -> None:
    class Broken(RecordingHooks):
        def should_stop(self, *, epoch: int) -> None:
            raise ConnectionError("lease store unreachable")

    specs = [spec(seed=1), spec(seed=2)]
    ok = RecordingHooks()
    results = train_fused(
        [Member(spec=specs[0], hooks=Broken()), Member(spec=specs[1], hooks=ok)], device=CPU
    )
    assert isinstance(results[0].error, ConnectionError)
    assert results[1].outcome is not None
    assert len(ok.epochs) == 5


def test_a_member_resumed_past_its_last_epoch_ends_at_once() -> None:
    done = spec(seed=1, epochs=2)
    _, solo = run(done)
    results, hooks = fused(
        [done],
        resume=Resume(
            epoch=2, weights=solo.checkpoints[-1].weights, state=solo.checkpoints[-1].state
        ),
    )
    assert results[0].outcome is not None
    assert results[0].outcome.epoch == 2
    assert hooks[0].epochs == []


def test_what_fuses() -> None:
    base = spec()
    assert fusion_key(base) == fusion_key(
        spec(
            name="other",
            seed=7,
            epochs=9,
            optimizer={"name": "adam", "lr": 0.5, "weight_decay": 0.1},
            schedule={"kind": "exponential", "gamma": 0.9},
            early_stopping={"patience": 2},
            checkpoint_every=3,
        )
    )
    assert fusion_key(base) != fusion_key(
        spec(optimizer={"name": "adam", "lr": 0.01, "amsgrad": True})
    )
    assert fusion_key(base) != fusion_key(spec(optimizer={"name": "adamw", "lr": 0.01}))
    assert fusion_key(base) != fusion_key(spec(batch_size=8))
    dropout = spec(model={"layers": [{"type": "Linear", "out_features": 4}, {"type": "Dropout"}]})
    assert fusion_key(dropout) is None
    assert why_solo(dropout) == "layer 1 (Dropout) does not fuse"
    batch_norm = spec(
        model={"layers": [{"type": "Linear", "out_features": 4}, {"type": "BatchNorm1d"}]}
    )
    assert fusion_key(batch_norm) is None
