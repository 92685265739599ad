"""Bayes trials: Optuna's TPE sampler, used as a library.

Our tables stay the one record of a sweep: for each new trial, the finished ones are replayed
into a fresh in-memory study (no Optuna storage, no tables of its own) and TPE is asked once.
The sampler is seeded by the sweep's seed and the trial's number, so the same finished trials
give the same next trial. A `values` parameter is a categorical over its indices, since Optuna's
choices cannot be objects.
"""

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from service.sweeps.expansion import Params, combinations
from service.sweeps.spec import SweepSpec, ValuesParameter

# Optuna logs every trial it is told of at INFO; the service logs its own trials.
optuna.logging.set_verbosity(optuna.logging.WARNING)
# Asks of TPE before a trial whose configuration no trial had, past that the first untried grid
# combination (a space of values only) is taken instead.
DUPLICATE_ASKS = 50


@dataclass(frozen=True)
class Finished:
    """A trial that ended: its params, and the sweep's metric at its best epoch (None: it
    failed, or stored no value of the metric)."""

    params: Params
    value: float | None
    pruned: bool = False


def distributions(spec: SweepSpec) -> dict[str, BaseDistribution]:
    found: dict[str, BaseDistribution] = {}
    for path, parameter in spec.parameters.items():
        if isinstance(parameter, ValuesParameter):
            found[path] = CategoricalDistribution(list(range(len(parameter.values))))
        elif parameter.distribution in ("uniform", "log_uniform"):
            log = parameter.distribution == "log_uniform"
            found[path] = FloatDistribution(parameter.min, parameter.max, log=log)
        else:
            log = parameter.distribution == "int_log_uniform"
            found[path] = IntDistribution(int(parameter.min), int(parameter.max), log=log)
    return found


def _to_optuna(spec: SweepSpec, params: Params) -> dict[str, Any]:
    return {
        path: parameter.values.index(params[path])
        if isinstance(parameter, ValuesParameter)
        else params[path]
        for path, parameter in spec.parameters.items()
    }


def _from_optuna(spec: SweepSpec, chosen: dict[str, Any]) -> Params:
    return {
        path: parameter.values[chosen[path]]
        if isinstance(parameter, ValuesParameter)
        else chosen[path]
        for path, parameter in spec.parameters.items()
    }


def next_params(
    spec: SweepSpec, *, trial: int, finished: Sequence[Finished], taken: Sequence[Params]
) -> Params | None:
    """The params of trial number `trial`, asked of TPE after replaying `finished` (in trial
    order); never one of `taken` (every trial so far, finished or not). None when the values
    allow no configuration that is not taken."""
    if len(taken) >= combinations(spec):
        return None
    space = distributions(spec)
    sampler = optuna.samplers.TPESampler(
        seed=random.Random(f"{spec.seed}:{trial}").randrange(2**32)
    )
    study = optuna.create_study(
        direction="maximize" if spec.metric.maximize else "minimize", sampler=sampler
    )
    for done in finished:
        study.add_trial(_replayed(spec, done, space=space))
    for _ in range(DUPLICATE_ASKS):
        params = _from_optuna(spec, study.ask(space).params)
        if params not in taken:
            return params
    return _first_untried(spec, taken=taken)


def _replayed(
    spec: SweepSpec, done: Finished, *, space: dict[str, BaseDistribution]
) -> optuna.trial.FrozenTrial:
    params = _to_optuna(spec, done.params)
    if done.value is None:
        return create_trial(params=params, distributions=space, state=TrialState.FAIL)
    if done.pruned:
        return create_trial(
            params=params,
            distributions=space,
            state=TrialState.PRUNED,
            intermediate_values={0: done.value},
        )
    return create_trial(params=params, distributions=space, value=done.value)


def _first_untried(spec: SweepSpec, *, taken: Sequence[Params]) -> Params | None:
    """For a space of values only: the first combination in grid order that no trial has."""
    if not all(isinstance(p, ValuesParameter) for p in spec.parameters.values()):
        return None
    paths = list(spec.parameters)
    choices = [p.values for p in spec.parameters.values()]  # type: ignore[union-attr]
    for combo in itertools.product(*choices):
        params = dict(zip(paths, combo, strict=True))
        if params not in taken:
            return params
    return None
