"""A sweep's early stopping: which trials to end `pruned`, decided from the metric values trials
have reported. Pure functions: the same reports, in the same order, give the same decisions.

`asha` (asynchronous successive halving, as Ray Tune and Optuna run it): rungs at epochs
min_epochs * reduction_factor^k; a trial reaching a rung is compared with the values the trials
before it reported at that rung, and continues only if it ranks in the top
ceil(n / reduction_factor) of those n (itself included; a tie counts in its favour). So the
first trial to reach a rung always continues.

`median` (Optuna's MedianPruner, Vizier's median stopping rule): from min_epochs on, a trial
whose best value so far is worse than the median of the other trials' best values up to the
same epoch is pruned, once min_trials others have reached that epoch.
"""

import math
import statistics
from collections.abc import Sequence

from service.sweeps.spec import AshaRule, MedianRule


def asha_rungs(rule: AshaRule, *, epochs: int) -> list[int]:
    """The rung epochs of a trial of `epochs` epochs; one at its last epoch would save nothing."""
    rungs: list[int] = []
    rung = rule.min_epochs
    while rung < epochs:
        rungs.append(rung)
        rung *= rule.reduction_factor
    return rungs


def _better(a: float, b: float, *, maximize: bool) -> bool:
    return a > b if maximize else a < b


def asha(
    rule: AshaRule,
    *,
    metric: str,
    maximize: bool,
    epoch: int,
    value: float,
    earlier: Sequence[float],
) -> str | None:
    """The stop reason if a trial reporting `value` at rung `epoch` is pruned, else None.
    `earlier`: the values other trials reported at this rung before it."""
    reached = len(earlier) + 1
    rank = 1 + sum(_better(other, value, maximize=maximize) for other in earlier)
    keep = math.ceil(reached / rule.reduction_factor)
    if rank <= keep:
        return None
    return (
        f"pruned by the sweep at epoch {epoch}: {metric} {value:.4g} ranked {rank} of {reached} "
        f"at that rung (asha keeps the top {keep})"
    )


def median(
    rule: MedianRule,
    *,
    metric: str,
    maximize: bool,
    epoch: int,
    best: float,
    others: Sequence[float],
) -> str | None:
    """The stop reason if a trial whose best value up to `epoch` is `best` is pruned, else
    None. `others`: each other trial's best value up to `epoch`, for those that reached it."""
    if epoch < rule.min_epochs or len(others) < rule.min_trials:
        return None
    middle = statistics.median(others)
    if not _better(middle, best, maximize=maximize):
        return None
    return (
        f"pruned by the sweep at epoch {epoch}: its best {metric} {best:.4g} is worse than the "
        f"median {middle:.4g} of the {len(others)} other trials at that epoch"
    )
