"""Early stopping: the rule a job's `early_stopping` spec sets, applied one epoch at a time.

Plain values in, plain values out: the loop keeps a `Patience` per run, stores it in every
checkpoint, and so a resumed run stops at the epoch, and for the reason, an uninterrupted one
would.
"""

from dataclasses import dataclass, replace

from service.specs import EarlyStopping, MetricName
from service.training.hooks import EpochResult, StopKind, StopReason
from service.training.metrics import improves


@dataclass(frozen=True)
class Patience:
    """Where early stopping stands after an epoch."""

    best: float | None = None  # the best value of the metric since start_epoch
    best_epoch: int | None = None
    stale: int = 0  # epochs in a row since best_epoch without enough improvement


def observe(
    patience: Patience, *, rule: EarlyStopping, epoch: int, metrics: EpochResult
) -> tuple[Patience, StopReason | None]:
    """Patience after `epoch`'s metrics, and a reason to stop there if it ran out.

    Epochs before `rule.start_epoch` change nothing; the first one watched sets the best.
    """
    metric = rule.metric
    if metric is None:
        raise ValueError("early stopping needs a normalised spec; pass it through plan() first")
    if epoch < rule.start_epoch:
        return patience, None
    value = getattr(metrics, metric)
    if improves(value, best=patience.best, metric=metric, min_delta=rule.min_delta):
        return Patience(best=value, best_epoch=epoch, stale=0), None
    patience = replace(patience, stale=patience.stale + 1)
    if patience.stale < rule.patience:
        return patience, None
    return patience, StopReason(kind=StopKind.EARLY_STOPPED, detail=_why(patience, rule, metric))


def _why(patience: Patience, rule: EarlyStopping, metric: MetricName) -> str:
    by = f" by more than {rule.min_delta:g}" if rule.min_delta else ""
    epochs = "epoch" if rule.patience == 1 else "epochs"
    return (
        f"early stopping: {metric} did not improve{by} for {rule.patience} {epochs} "
        f"(best {patience.best:.4g} at epoch {patience.best_epoch})"
    )
