"""A sweep spec to its trials' params and specs: grid combinations, seeded random draws, and
dotted paths applied in the order written."""

from typing import Any

import pytest
from pydantic import ValidationError

from service.errors import InvalidSpec
from service.sweeps.expansion import apply, planned_params, trial_count, trial_spec
from service.sweeps.spec import SweepSpec
from tests.factories import tiny_spec

SGD = {"name": "sgd", "lr": 0.5, "momentum": 0.9}
ADAM = {"name": "adam", "lr": 0.01}


def sweep(**fields: Any) -> SweepSpec:
    body: dict[str, Any] = {"base": tiny_spec(), "parameters": {"epochs": {"values": [1, 2]}}}
    body.update(fields)
    return SweepSpec.model_validate(body)


def test_grid_is_every_combination_in_the_order_written() -> None:
    spec = sweep(
        parameters={
            "optimizer": {"values": [SGD, ADAM]},
            "model.layers.1.type": {"values": ["ReLU", "Tanh", "GELU"]},
        }
    )

    assert trial_count(spec) == 6
    assert planned_params(spec) == [
        {"optimizer": optimizer, "model.layers.1.type": layer}
        for optimizer in (SGD, ADAM)
        for layer in ("ReLU", "Tanh", "GELU")
    ]


def test_grid_max_trials_takes_the_first_combinations() -> None:
    spec = sweep(parameters={"seed": {"values": [1, 2, 3, 4]}}, max_trials=3)

    assert planned_params(spec) == [{"seed": 1}, {"seed": 2}, {"seed": 3}]


def test_grid_refuses_a_distribution_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"grid takes only lists of values; optimizer\.lr is"):
        sweep(parameters={"optimizer.lr": {"distribution": "uniform", "min": 0.1, "max": 1}})


def test_random_and_bayes_need_max_trials() -> None:
    with pytest.raises(ValidationError, match="method random needs max_trials"):
        sweep(method="random")


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"distribution": "log_uniform", "min": 0, "max": 1}, "log_uniform needs min > 0"),
        ({"distribution": "uniform", "min": 2, "max": 1}, "uniform needs finite min < max"),
        ({"distribution": "normal", "min": 0, "max": 1}, "a parameter is {'values'"),
        ({"values": []}, "at least 1 item"),
    ],
)
def test_a_bad_parameter_says_what_a_parameter_is(parameter: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        sweep(method="random", max_trials=2, parameters={"optimizer.lr": parameter})


def test_random_draws_are_the_same_for_the_same_spec_and_seed() -> None:
    fields = {
        "method": "random",
        "max_trials": 20,
        "seed": 4,
        "parameters": {
            "optimizer": {"values": [SGD, ADAM]},
            "optimizer.lr": {"distribution": "log_uniform", "min": 1e-4, "max": 1e-1},
            "model.layers.0.out_features": {"distribution": "int_log_uniform", "min": 2, "max": 64},
            "validation_fraction": {"distribution": "uniform", "min": 0.1, "max": 0.3},
            "epochs": {"distribution": "int_uniform", "min": 1, "max": 3},
        },
    }
    first, again = planned_params(sweep(**fields)), planned_params(sweep(**fields))
    other = planned_params(sweep(**{**fields, "seed": 5}))

    assert first == again
    assert first != other
    assert first is not None
    assert len(first) == 20
    for params in first:
        assert params["optimizer"] in (SGD, ADAM)
        assert 1e-4 <= params["optimizer.lr"] <= 1e-1
        assert 2 <= params["model.layers.0.out_features"] <= 64
        assert 0.1 <= params["validation_fraction"] <= 0.3
        assert params["epochs"] in (1, 2, 3)
    # Twenty draws of two values and of three epochs see each of them.
    assert {p["optimizer"]["name"] for p in first} == {"sgd", "adam"}
    assert {p["epochs"] for p in first} == {1, 2, 3}


def test_parameters_apply_in_order_so_lr_goes_to_the_chosen_optimizer() -> None:
    fields = apply(tiny_spec(), {"optimizer": SGD, "optimizer.lr": 0.2})

    assert fields["optimizer"] == {"name": "sgd", "lr": 0.2, "momentum": 0.9}
    assert SGD["lr"] == 0.5  # the sweep's own value is not changed


def test_a_path_that_leads_nowhere_is_invalid_naming_it() -> None:
    with pytest.raises(InvalidSpec, match=r"'model\.layers\.7\.type': '7' is not an index"):
        apply(tiny_spec(), {"model.layers.7.type": "ReLU"})
    with pytest.raises(InvalidSpec, match="no object or list at 'schedule'"):
        apply(tiny_spec(), {"schedule.gamma": 0.5})


def test_a_trial_is_named_after_its_sweep_and_seeded_from_it_when_the_base_is_not() -> None:
    base = {key: value for key, value in tiny_spec().items() if key != "seed"}
    spec = sweep(name="acts", base=base, seed=3)

    first = trial_spec(spec, params={"epochs": 1}, trial=0)
    assert first.name == "acts trial 1"
    assert first.seed == trial_spec(spec, params={"epochs": 1}, trial=0).seed
    assert first.seed != trial_spec(spec, params={"epochs": 1}, trial=1).seed


def test_a_trial_that_is_not_a_job_names_its_params() -> None:
    spec = sweep(parameters={"optimizer.lr": {"values": [-1]}})

    with pytest.raises(InvalidSpec, match=r"the trial with optimizer.lr=-1 is not a valid job: "):
        trial_spec(spec, params={"optimizer.lr": -1}, trial=0)
