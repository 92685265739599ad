"""The stacked Linear's two forms compute each member's own Linear: the batched product with its
own backward (forward and every gradient), and the multiply-adds a compiled step uses."""

import pytest
import torch
from torch import Tensor
from torch.nn import functional

from service.training.fused.linear import stacked_linear, thin_linear
from service.training.fused.stack import StackedLayers

MEMBERS = 3


def members_alone(
    x: Tensor, weight: Tensor, bias: Tensor | None
) -> tuple[Tensor, list[Tensor | None]]:
    """Each member's F.linear, its outputs stacked, and the gradients of their sum's squares."""
    outputs, grads = [], []
    for m in range(MEMBERS):
        leaves = [t[m].detach().requires_grad_() for t in (x, weight, bias) if t is not None]
        out = functional.linear(*leaves)
        (out**2).sum().backward()
        outputs.append(out.detach())
        grads.append([leaf.grad for leaf in leaves])
    return torch.stack(outputs), [torch.stack(g) for g in zip(*grads, strict=True)]


def inputs(*, rows: int, features: tuple[int, int], bias: bool) -> list[Tensor]:
    torch.manual_seed(0)
    ins, outs = features
    x = torch.randn(MEMBERS, rows, ins)
    weight = torch.randn(MEMBERS, outs, ins) / ins**0.5
    return [x, weight] + ([torch.randn(MEMBERS, outs)] if bias else [])


# Seed 001's spiral layers, seed 002's SimpleNN layers, a regression head and its first layer.
SHAPES = [(3000, (2, 100)), (3000, (100, 3)), (64, (784, 128)), (64, (128, 10))]
SHAPES += [(100, (1, 50)), (100, (50, 1))]


@pytest.mark.parametrize(("rows", "features"), SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_the_batched_product_and_its_gradients_are_each_members_own(
    rows: int, features: tuple[int, int], bias: bool
) -> None:
    tensors = inputs(rows=rows, features=features, bias=bias)
    expected, expected_grads = members_alone(*tensors, *([None] if not bias else []))
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = stacked_linear(leaves[0], weight=leaves[1], bias=leaves[2] if bias else None)
    (out**2).sum().backward()
    torch.testing.assert_close(out.detach(), expected)
    for leaf, grad in zip(leaves, expected_grads, strict=True):
        assert leaf.grad is not None
        torch.testing.assert_close(leaf.grad, grad)


@pytest.mark.parametrize(("ins", "outs"), [(2, 16), (16, 3), (3, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_the_thin_form_computes_the_matrix_product(ins: int, outs: int, bias: bool) -> None:
    x, weight, *rest = inputs(rows=50, features=(ins, outs), bias=bias)
    b = rest[0] if rest else None
    expected, _ = members_alone(x, weight, b)
    torch.testing.assert_close(thin_linear(x, weight=weight, bias=b), expected)
    layers = StackedLayers([torch.nn.Linear(ins, outs, bias=bias)], thin=True)
    parameters = {"0.weight": weight} | ({"0.bias": b} if b is not None else {})
    torch.testing.assert_close(layers(parameters, x), expected)
