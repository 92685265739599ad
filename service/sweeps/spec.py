"""The SweepSpec: what a client sends to POST /v1/sweeps (DESIGN.md, Sweeps).

A sweep is a base JobSpec, parameters that change it (dotted paths into it, applied in the
order written), how trials are chosen, and how many run at once. Every default sits here.
"""

import math
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from service.spec_types import PositiveInt, Seed, Strict
from service.specs import ACCURACY_METRICS, MetricName

# A sweep's trials are jobs; this caps one sweep's rows (grid combinations, random draws).
MAX_TRIALS = 10_000
Method = Literal["grid", "random", "bayes"]


class ValuesParameter(Strict):
    """Choose among these values: any JSON, whole objects included."""

    values: list[Any] = Field(min_length=1)


class FloatParameter(Strict):
    """A real number drawn between min and max; log_uniform draws its logarithm uniformly."""

    distribution: Literal["uniform", "log_uniform"]
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> "FloatParameter":
        _check_range(self.distribution, self.min, self.max)
        return self


class IntParameter(Strict):
    """A whole number drawn from min to max, both included."""

    distribution: Literal["int_uniform", "int_log_uniform"]
    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> "IntParameter":
        _check_range(self.distribution, self.min, self.max)
        return self


def _check_range(distribution: str, low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"{distribution} needs finite min < max; got min {low}, max {high}")
    if "log" in distribution and low <= 0:
        raise ValueError(f"{distribution} needs min > 0 (it draws a logarithm); got min {low}")


def _parameter_kind(data: Any) -> str | None:
    """Which kind of parameter a body (when parsing) or a model (when serialising) is."""
    if isinstance(data, ValuesParameter | FloatParameter | IntParameter):
        data = data.model_dump()
    if not isinstance(data, dict):
        return None
    if "values" in data:
        return "values"
    return {
        "uniform": "float",
        "log_uniform": "float",
        "int_uniform": "int",
        "int_log_uniform": "int",
    }.get(str(data.get("distribution")))


Parameter = Annotated[
    Annotated[ValuesParameter, Tag("values")]
    | Annotated[FloatParameter, Tag("float")]
    | Annotated[IntParameter, Tag("int")],
    Discriminator(
        _parameter_kind,
        custom_error_type="parameter",
        custom_error_message="a parameter is {'values': [...]} or {'distribution': 'uniform', "
        "'log_uniform', 'int_uniform' or 'int_log_uniform', 'min': ..., 'max': ...}",
    ),
]


class SweepMetric(Strict):
    """The metric trials are ranked by, at each trial's best epoch."""

    # Left out: val_loss when the base holds out a validation split, else loss.
    name: MetricName
    # None: minimize a loss, maximize an accuracy.
    goal: Literal["minimize", "maximize"] | None = None

    @property
    def maximize(self) -> bool:
        if self.goal is None:
            return self.name in ACCURACY_METRICS
        return self.goal == "maximize"


class AshaRule(Strict):
    """Asynchronous successive halving: at epochs min_epochs * reduction_factor^k, a trial
    outside the top 1/reduction_factor of the trials that reached that epoch is pruned."""

    kind: Literal["asha"]
    min_epochs: PositiveInt = 1
    reduction_factor: int = Field(default=3, ge=2)


class MedianRule(Strict):
    """Prune a trial whose best metric so far is worse than the median of the other trials'
    at the same epoch, once min_trials others reached it and from min_epochs on."""

    kind: Literal["median"]
    min_epochs: PositiveInt = 1
    min_trials: PositiveInt = 3


class SweepSpec(Strict):
    name: str = Field(default="", max_length=150)
    base: dict[str, Any] = Field(
        description="A JobSpec, or the part of one that the parameters complete."
    )
    method: Method = "grid"
    # Paths into the JobSpec, list items by index ("model.layers.1.type"); applied in order.
    parameters: dict[str, Parameter] = Field(min_length=1)
    metric: SweepMetric
    # None: grid runs every combination; random and bayes need a number.
    max_trials: int | None = Field(default=None, ge=1, le=MAX_TRIALS)
    # Trials queued or running at once.
    parallel: PositiveInt = 4
    # Seeds random and bayes draws, and trials whose base sets no seed.
    seed: Seed = 0
    early_stopping: Annotated[AshaRule | MedianRule, Field(discriminator="kind")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_metric(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        metric = data.get("metric", {})
        if isinstance(metric, dict) and "name" not in metric:
            base = data.get("base")
            split = base.get("validation_fraction") if isinstance(base, dict) else None
            held_out = isinstance(split, int | float) and split > 0
            data = {**data, "metric": {**metric, "name": "val_loss" if held_out else "loss"}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "SweepSpec":
        for path in self.parameters:
            if not path or any(part == "" for part in path.split(".")):
                raise ValueError(f"parameter {path!r} is not a dotted path like 'optimizer.lr'")
        if self.method == "grid":
            drawn = [path for path, p in self.parameters.items() if not _is_values(p)]
            if drawn:
                raise ValueError(
                    f"grid takes only lists of values; {', '.join(drawn)} is a distribution: "
                    "give values, or use method random or bayes"
                )
        elif self.max_trials is None:
            raise ValueError(f"method {self.method} needs max_trials, e.g. 20")
        return self


def _is_values(parameter: Any) -> bool:
    return isinstance(parameter, ValuesParameter)
