"""Epoch totals: the mean loss and the accuracy of an epoch's steps, however they are counted."""

import pytest
import torch

from service.training import metrics
from service.training.metrics import EpochTotals, read_totals


def steps(*, binary: bool) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(loss, output, target) of 7 steps of 16 samples and a last one of 5, seeded."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for size in [16] * 7 + [5]:
        if binary:
            output = torch.randn(size, 1, generator=generator)
            target = torch.randint(0, 2, (size, 1), generator=generator).float()
        else:
            output = torch.randn(size, 4, generator=generator)
            target = torch.randint(0, 4, (size,), generator=generator)
        out.append((torch.rand((), generator=generator), output, target))
    return out


@pytest.mark.parametrize("pending_elements", [1, 50, 1 << 20])
@pytest.mark.parametrize("binary", [False, True])
def test_totals_count_every_step_once_whenever_they_count(
    monkeypatch: pytest.MonkeyPatch, pending_elements: int, *, binary: bool
) -> None:
    """Counting after every step, every few steps, or once at the end gives the same numbers."""
    monkeypatch.setattr(metrics, "PENDING_ELEMENTS", pending_elements)
    totals = EpochTotals(loss="bce_with_logits" if binary else "cross_entropy", classification=True)
    data = steps(binary=binary)
    for loss, output, target in data:
        totals.add(loss=loss, output=output, target=target)

    [(mean_loss, accuracy)] = read_totals(totals)

    samples = sum(len(target) for _, _, target in data)
    assert samples == 117
    expected_loss = sum(loss.item() * len(target) for loss, _, target in data) / samples
    if binary:
        correct = sum(((o > 0) == (t > 0.5)).sum().item() for _, o, t in data)
    else:
        correct = sum((o.argmax(dim=1) == t).sum().item() for _, o, t in data)
    assert mean_loss == pytest.approx(expected_loss, rel=1e-12)
    assert accuracy == correct / samples
    assert 0 < correct < samples


def test_totals_hold_no_more_than_the_pending_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "PENDING_ELEMENTS", 100)
    totals = EpochTotals(loss="cross_entropy", classification=True)
    for loss, output, target in steps(binary=False):
        totals.add(loss=loss, output=output, target=target)
        assert totals.pending_elements < 100
    # 16 x 4 outputs a step: counted every second step; the last two steps when read.
    assert len(totals.correct) == 3
    read_totals(totals)
    assert len(totals.correct) == 4


def test_regression_totals_have_no_accuracy() -> None:
    totals = EpochTotals(loss="mse", classification=False)
    totals.add(loss=torch.tensor(2.0), output=torch.zeros(3, 1), target=torch.ones(3, 1))
    totals.add(loss=torch.tensor(5.0), output=torch.zeros(1, 1), target=torch.ones(1, 1))
    assert read_totals(totals) == [((2.0 * 3 + 5.0) / 4, None)]
