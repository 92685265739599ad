"""From a sweep spec to its trials' params, and from params to a trial's JobSpec.

`params` are {dotted path: value}, in the order the sweep spec wrote its parameters, so
`optimizer.lr` after `optimizer` sets the lr of whichever optimizer was chosen. Grid and random
trials are all known at submission (`planned_params`); bayes trials are drawn one at a time
(service/sweeps/bayes.py).
"""

import copy
import itertools
import json
import math
import random
from typing import Any

from pydantic import ValidationError

from service.errors import InvalidSpec
from service.specs import JobSpec
from service.sweeps.spec import (
    MAX_TRIALS,
    FloatParameter,
    IntParameter,
    SweepSpec,
    ValuesParameter,
)

Params = dict[str, Any]


def combinations(spec: SweepSpec) -> float:
    """How many different trials the values allow; math.inf with any distribution."""
    total = 1.0
    for parameter in spec.parameters.values():
        if not isinstance(parameter, ValuesParameter):
            return math.inf
        total *= len(parameter.values)
    return total


def trial_count(spec: SweepSpec) -> int:
    """Trials the sweep runs: grid every combination (the first max_trials of them, if given);
    random max_trials draws; bayes max_trials, fewer if its values run out first."""
    if spec.method == "random":
        assert spec.max_trials is not None
        return spec.max_trials
    total = combinations(spec)
    if spec.max_trials is not None:
        total = min(total, spec.max_trials)
    if total > MAX_TRIALS:
        raise InvalidSpec(
            f"the grid has {total:,} combinations; one sweep runs at most {MAX_TRIALS:,}: "
            "give fewer values, or set max_trials"
        )
    return int(total)


def planned_params(spec: SweepSpec) -> list[Params] | None:
    """Every trial's params for grid and random, in trial order; None for bayes."""
    count = trial_count(spec)
    if spec.method == "grid":
        choices = [p.values for p in spec.parameters.values()]  # type: ignore[union-attr]
        paths = list(spec.parameters)
        return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*choices)][
            :count
        ]
    if spec.method == "random":
        rng = random.Random(spec.seed)
        return [
            {path: draw(parameter, rng) for path, parameter in spec.parameters.items()}
            for _ in range(count)
        ]
    return None


def draw(parameter: ValuesParameter | FloatParameter | IntParameter, rng: random.Random) -> Any:
    """One value of a parameter from `rng`, the same for the same state of `rng`."""
    if isinstance(parameter, ValuesParameter):
        return copy.deepcopy(parameter.values[math.floor(rng.random() * len(parameter.values))])
    low, high = parameter.min, parameter.max
    match parameter.distribution:
        case "uniform":
            return low + (high - low) * rng.random()
        case "log_uniform":
            return math.exp(math.log(low) + (math.log(high) - math.log(low)) * rng.random())
        case "int_uniform":
            return int(low) + math.floor(rng.random() * (int(high) - int(low) + 1))
        case "int_log_uniform":
            # Uniform in log over [min, max + 1), floored: each integer gets its share of logs.
            value = math.exp(math.log(low) + (math.log(high + 1) - math.log(low)) * rng.random())
            return min(int(high), math.floor(value))
    raise AssertionError(f"no draw for {parameter!r}")


def apply(base: dict[str, Any], params: Params) -> dict[str, Any]:
    """A copy of `base` with each path set to its value, in order; InvalidSpec for a path that
    does not lead anywhere in the spec as it stands."""
    spec = copy.deepcopy(base)
    for path, value in params.items():
        *parents, last = path.split(".")
        node: Any = spec
        for depth, part in enumerate(parents):
            node = _child(node, part, path=path, at=".".join(parents[: depth + 1]))
        _set(node, last, copy.deepcopy(value), path=path)
    return spec


def _child(node: Any, part: str, *, path: str, at: str) -> Any:
    if isinstance(node, dict):
        if part not in node or not isinstance(node[part], dict | list):
            raise InvalidSpec(
                f"parameter {path!r}: the spec has no object or list at {at!r}; "
                "set it in base, or as an earlier parameter"
            )
        return node[part]
    if isinstance(node, list):
        return node[_index(node, part, path=path)]
    raise InvalidSpec(f"parameter {path!r}: {at!r} is a value, not an object or list")


def _set(node: Any, key: str, value: Any, *, path: str) -> None:
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list):
        node[_index(node, key, path=path)] = value
    else:
        raise InvalidSpec(f"parameter {path!r} goes inside a value, not an object or list")


def _index(node: list[Any], part: str, *, path: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise InvalidSpec(
            f"parameter {path!r}: {part!r} is not an index of a list of {len(node)} items "
            f"(0 to {len(node) - 1})"
        )
    return int(part)


def trial_spec(sweep: SweepSpec, *, params: Params, trial: int) -> JobSpec:
    """The JobSpec of trial number `trial` (0-based), validated; InvalidSpec naming the params.

    A trial is named after the sweep unless a parameter names it; one whose spec sets no seed
    gets one drawn from the sweep's seed and its number, so the same sweep gives the same
    trials."""
    fields = apply(sweep.base, params)
    if "name" not in params:
        fields["name"] = f"{sweep.name or 'sweep'} trial {trial + 1}"
    if fields.get("seed") is None:
        fields["seed"] = random.Random(f"{sweep.seed}:{trial}").randrange(2**63)
    try:
        return JobSpec.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'spec'}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        raise InvalidSpec(
            f"the trial with {describe(params)} is not a valid job: {problems}"
        ) from error


def describe(params: Params) -> str:
    """Params as a person reads them: `optimizer.lr=0.01, model.layers.1.type="ReLU"`."""
    return ", ".join(
        f"{path}={json.dumps(value, separators=(',', ':'))}" for path, value in params.items()
    )
