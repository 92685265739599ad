import pytest
import safetensors.torch
import torch

from service.errors import ServiceError
from service.training.checkpoints import (
    TrainingState,
    decode_state,
    encode_state,
    load_weights,
    read_metadata,
    read_standardization,
)
from service.training.early_stopping import Patience
from service.training.networks import build_network

from .runs import CPU, planned, run


def test_weights_load_strictly_into_the_network_the_spec_describes() -> None:
    spec = planned(epochs=2)
    _, hooks = run(spec)
    final = hooks.checkpoints[-1]
    network = build_network(spec.model.layers, device=CPU)
    network.load_state_dict(safetensors.torch.load(final.weights), strict=True)
    again = build_network(spec.model.layers, device=CPU)
    load_weights(again, final.weights)
    network.eval()
    again.eval()
    inputs = torch.randn(5, 12)
    with torch.inference_mode():
        assert torch.equal(network(inputs), again(inputs))
    assert {name for name, _ in network.named_parameters()} == set(
        safetensors.torch.load(final.weights)
    )


def test_weights_for_another_network_are_refused() -> None:
    spec = planned(epochs=1)
    _, hooks = run(spec)
    other = build_network(
        planned(model={"layers": [{"type": "Linear", "out_features": 4}]}).model.layers, device=CPU
    )
    with pytest.raises(ServiceError, match="do not fit the network"):
        load_weights(other, hooks.checkpoints[-1].weights)


def test_state_decodes_with_optimizer_schedule_and_generators() -> None:
    spec = planned(epochs=3, checkpoint_every=1)
    _, hooks = run(spec)
    state = decode_state(hooks.checkpoints[1].state)
    assert state.epoch == 2
    assert set(state.optimizer["state"]) == {0, 1, 2, 3}  # two Linear layers: weight and bias each
    assert set(state.optimizer["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert state.optimizer["param_groups"][0]["lr"] == 0.005
    assert state.schedule is not None
    assert state.schedule["last_epoch"] == 2
    assert set(state.rng) == {"cpu", "shuffle"}
    assert all(t.dtype == torch.uint8 for t in state.rng.values())
    assert state.best == hooks.epochs[1].loss
    assert state.standardization is None
    assert state.patience is None  # the spec does not stop early
    metadata = read_metadata(hooks.checkpoints[1].state)
    assert metadata["format_version"] == "1"
    assert metadata["early_stopping"] == "null"
    assert read_standardization(hooks.checkpoints[1].state) is None


def test_standardization_statistics_round_trip() -> None:
    spec = planned(
        dataset={"kind": "quadratic", "samples": 50},
        model={"layers": [{"type": "Linear", "out_features": 1}]},
        standardize=True,
        epochs=1,
    )
    _, hooks = run(spec)
    statistics = read_standardization(hooks.checkpoints[-1].state)
    assert statistics is not None
    x = torch.linspace(-1, 1, 50).unsqueeze(1)
    torch.testing.assert_close(statistics.x_mean, x.mean(dim=0))
    torch.testing.assert_close(statistics.x_std, x.std(dim=0, correction=0))
    assert statistics.y_mean is not None
    assert statistics.y_std is not None
    assert statistics.y_mean.shape == (1,)
    # Outputs map back to the targets' units.
    standardised = statistics.targets(torch.tensor([[3.0]]))
    torch.testing.assert_close(statistics.outputs(standardised), torch.tensor([[3.0]]))
    assert set(safetensors.torch.load(hooks.checkpoints[-1].state)) >= {
        "standardize.x_mean",
        "standardize.x_std",
        "standardize.y_mean",
        "standardize.y_std",
    }


def test_classification_standardises_inputs_only() -> None:
    _, hooks = run(planned(standardize=True, epochs=1))
    statistics = read_standardization(hooks.checkpoints[-1].state)
    assert statistics is not None
    assert statistics.x_mean.shape == (12,)
    assert statistics.y_mean is None


def test_garbage_state_is_refused() -> None:
    with pytest.raises(ServiceError, match="checkpoint state is unreadable"):
        decode_state(b"not a checkpoint")


def test_early_stopping_count_round_trips_in_the_metadata() -> None:
    spec = planned(
        epochs=10, checkpoint_every=1, validation_fraction=0.25, early_stopping={"patience": 8}
    )
    _, hooks = run(spec)
    losses = [m.val_loss for m in hooks.epochs]
    state = decode_state(hooks.checkpoints[-1].state)
    assert state.patience is not None
    assert state.patience.best == min(v for v in losses if v is not None)
    assert state.patience.best_epoch == losses.index(state.patience.best) + 1
    assert state.patience.stale == 10 - state.patience.best_epoch
    assert read_metadata(hooks.checkpoints[-1].state)["early_stopping"] == (
        f'{{"best": {state.patience.best!r}, "best_epoch": {state.patience.best_epoch}, '
        f'"stale": {state.patience.stale}}}'
    )


def test_a_state_written_before_early_stopping_existed_reads_without_a_count() -> None:
    _, hooks = run(planned(epochs=1))
    state = decode_state(hooks.checkpoints[-1].state)
    with_count = encode_state(
        TrainingState(**{**vars(state), "patience": Patience(best=0.5, best_epoch=1, stale=2)})
    )
    tensors = safetensors.torch.load(with_count)
    metadata = read_metadata(with_count)
    del metadata["early_stopping"]
    old = safetensors.torch.save(tensors, metadata=metadata)

    assert decode_state(with_count).patience == Patience(best=0.5, best_epoch=1, stale=2)
    assert decode_state(old).patience is None
