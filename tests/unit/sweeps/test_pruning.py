"""ASHA and the median rule on scripted reports: the decisions follow from the values and the
order they came in."""

import pytest

from service.sweeps.pruning import asha, asha_rungs, median
from service.sweeps.spec import AshaRule, MedianRule

ASHA = AshaRule(kind="asha", min_epochs=2, reduction_factor=3)


def test_asha_rungs_grow_by_the_reduction_factor_below_the_last_epoch() -> None:
    assert asha_rungs(ASHA, epochs=60) == [2, 6, 18, 54]
    assert asha_rungs(ASHA, epochs=54) == [2, 6, 18]


def test_asha_prunes_the_expected_trials_for_a_scripted_order_of_reports() -> None:
    # Eight trials reach rung 2 in this order with these val_losses (lower is better).
    reports = [0.50, 0.60, 0.40, 0.45, 0.90, 0.30, 0.41, 0.80]
    decisions = []
    for index, value in enumerate(reports):
        reason = asha(
            ASHA, metric="val_loss", maximize=False, epoch=2, value=value, earlier=reports[:index]
        )
        decisions.append(reason)

    pruned = [index for index, reason in enumerate(decisions) if reason is not None]
    # 1st: alone, kept. 2nd: 0.60 ranks 2 of 2, keep 1. 3rd: 0.40 best. 4th: 0.45 ranks 2 of
    # 4, keep 2. 5th: 0.90 ranks 5 of 5. 6th: 0.30 best. 7th: 0.41 ranks 3 of 7, keep 3.
    # 8th: 0.80 ranks 7 of 8.
    assert pruned == [1, 4, 7]
    assert decisions[4] == (
        "pruned by the sweep at epoch 2: val_loss 0.9 ranked 5 of 5 at that rung "
        "(asha keeps the top 2)"
    )


def test_asha_maximizes_an_accuracy_and_a_tie_counts_for_the_trial() -> None:
    kept = asha(ASHA, metric="val_accuracy", maximize=True, epoch=6, value=0.8, earlier=[0.8, 0.7])
    pruned = asha(ASHA, metric="val_accuracy", maximize=True, epoch=6, value=0.7, earlier=[0.8])

    assert kept is None
    assert pruned == (
        "pruned by the sweep at epoch 6: val_accuracy 0.7 ranked 2 of 2 at that rung "
        "(asha keeps the top 1)"
    )


@pytest.mark.parametrize(
    ("epoch", "best", "others", "pruned"),
    [
        (3, 0.9, [0.1, 0.2, 0.3], False),  # before min_epochs
        (5, 0.9, [0.1, 0.2], False),  # fewer than min_trials others
        (5, 0.25, [0.1, 0.2, 0.3], True),  # worse than the median 0.2
        (5, 0.2, [0.1, 0.2, 0.3], False),  # equal to it
        (5, 0.15, [0.1, 0.2, 0.3, 0.4], False),  # better than 0.25
    ],
)
def test_median_prunes_a_trial_worse_than_the_others_median(
    epoch: int, best: float, others: list[float], pruned: bool
) -> None:
    rule = MedianRule(kind="median", min_epochs=5, min_trials=3)

    reason = median(rule, metric="loss", maximize=False, epoch=epoch, best=best, others=others)

    assert (reason is not None) == pruned
    if pruned:
        assert reason == (
            "pruned by the sweep at epoch 5: its best loss 0.25 is worse than the median 0.2 "
            "of the 3 other trials at that epoch"
        )
