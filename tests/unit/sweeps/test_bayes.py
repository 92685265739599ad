"""Bayes trials: TPE asked after replaying the finished trials; the same history gives the same
next trial, and no configuration is asked twice."""

from service.sweeps.bayes import Finished, next_params
from service.sweeps.spec import SweepSpec
from tests.factories import tiny_spec

SPACE = {
    "optimizer": {"values": [{"name": "sgd", "lr": 0.1}, {"name": "adam", "lr": 0.01}]},
    "model.layers.1.type": {"values": ["ReLU", "Tanh"]},
}


def bayes_sweep(parameters: dict, **fields: object) -> SweepSpec:
    return SweepSpec.model_validate(
        {
            "base": tiny_spec(),
            "method": "bayes",
            "max_trials": 10,
            "parameters": parameters,
            "metric": {"name": "loss"},
            **fields,
        }
    )


def test_a_space_of_values_is_tried_once_each_then_runs_out() -> None:
    spec = bayes_sweep(SPACE)
    taken: list[dict] = []
    finished: list[Finished] = []
    for trial in range(4):
        params = next_params(spec, trial=trial, finished=finished, taken=taken)
        assert params is not None
        assert params not in taken
        taken.append(params)
        finished.append(Finished(params=params, value=float(trial)))

    assert next_params(spec, trial=4, finished=finished, taken=taken) is None


def test_the_same_finished_trials_give_the_same_next_trial() -> None:
    spec = bayes_sweep({"optimizer.lr": {"distribution": "log_uniform", "min": 1e-4, "max": 1}})
    finished = [
        Finished(params={"optimizer.lr": 10 ** -(1 + i / 4)}, value=abs(i - 5) / 10)
        for i in range(12)
    ]
    finished.append(Finished(params={"optimizer.lr": 0.5}, value=None))
    finished.append(Finished(params={"optimizer.lr": 0.7}, value=3.0, pruned=True))
    taken = [done.params for done in finished]

    first = next_params(spec, trial=14, finished=finished, taken=taken)
    again = next_params(spec, trial=14, finished=finished, taken=taken)

    assert first == again
    assert first is not None
    assert first not in taken
    assert 1e-4 <= first["optimizer.lr"] <= 1
