"""A stack's losses are each member's solo loss, and seed 001's spiral network trains in a
stack with the very gradients it has alone."""

import pytest
import torch
from torch import nn

from service.specs import LossName
from service.training.fused.stack import StackedLayers, member_losses
from service.training.losses import LOSSES

MEMBERS = 3


def targets(loss: LossName, *, shape: tuple[int, ...]) -> torch.Tensor:
    if loss == "cross_entropy":
        return torch.randint(0, shape[-1], shape[:-1])
    if loss == "bce_with_logits":
        return torch.randint(0, 2, shape).float()
    return torch.randn(shape)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_each_members_loss_and_gradient_are_its_solo_ones(loss: LossName) -> None:
    torch.manual_seed(0)
    shape = (MEMBERS, 200, 5 if loss == "cross_entropy" else 1)
    output = (torch.randn(shape) * 3).requires_grad_()
    target = targets(loss, shape=shape)
    losses = member_losses(output, target, loss=loss)
    losses.sum().backward()
    for m in range(MEMBERS):
        alone = output[m].detach().requires_grad_()
        solo = LOSSES[loss](alone, target[m])
        solo.backward()
        torch.testing.assert_close(losses[m], solo.detach())
        assert output.grad is not None
        assert alone.grad is not None
        torch.testing.assert_close(output.grad[m], alone.grad)


def test_the_spiral_networks_gradients_are_the_solo_ones_bit_for_bit() -> None:
    """Seed 001's 2 -> 100 -> 3 network on 3000 points, forward, cross entropy and backward:
    what keeps its fused members' weights their solo runs' exactly (README, Fused training), on
    this CPU's kernels."""
    torch.manual_seed(0)
    x = torch.randn(MEMBERS, 3000, 2)
    y = torch.randint(0, 3, (MEMBERS, 3000))
    networks = [
        nn.Sequential(nn.Linear(2, 100), nn.ReLU(), nn.Linear(100, 3)) for _ in range(MEMBERS)
    ]
    for m, network in enumerate(networks):
        LOSSES["cross_entropy"](network(x[m]), y[m]).backward()
    names = [name for name, _ in networks[0].named_parameters()]
    stacked = {
        name: torch.stack([n.get_parameter(name).detach() for n in networks]).requires_grad_()
        for name in names
    }
    logits = StackedLayers(list(networks[0]))(stacked, x)
    member_losses(logits, y, loss="cross_entropy").sum().backward()
    for name in names:
        solo = torch.stack([n.get_parameter(name).grad for n in networks])
        assert torch.equal(stacked[name].grad, solo), name
