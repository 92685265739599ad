"""A stacked Linear: x [members, ..., in] and weight [members, out, in] to [members, ..., out].

Eagerly it is one batched matrix product (`stacked_linear`), whose backward this module writes
itself for one reason: speed. Autograd's own backward of `baddbmm` computes the weight's gradient
as x^T g (in x out) whatever the shapes, and with few outputs that product is slow on the CPU:
for 8 members of seed 001's spiral network (3000 points), its 100 -> 3 layer's took 1.0 ms as
x^T g and 0.19 ms as g^T x, while its 2 -> 100 layer's took 0.12 ms as x^T g and 1.0 ms as g^T x.
So the narrower operand is the one transposed (the solo Linear's backward, torch's mm, picks its
layout too). That made the spiral network's stacked forward and backward a fifth faster (0.35 ms
a member in a stack of 4, from 0.44). The products are the same sums; for seed 001's network
they come out bit for bit as the solo run's (tests/unit/training/fused/test_stack.py), while
another shape's kernel may round the last bit differently (DESIGN.md's tolerance covers it).

In a compiled step, a Linear with at most THIN_FEATURES inputs or outputs is instead written as
that many multiply-adds over the activations (`thin_linear`): Inductor then fuses it with the
layers around it into one loop, where a matrix product this thin is bound by writing its output.
"""

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

# In a compiled step, a Linear with at most this many inputs or outputs is written as
# multiply-adds (see above; bench/fused.py --compile).
THIN_FEATURES = 4


class _StackedLinear(torch.autograd.Function):
    """x [members, rows, in] @ weight^T (+ bias) with the backward described above."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.biased = bias is not None  # type: ignore[attr-defined]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        wants_x, wants_weight, wants_bias = ctx.needs_input_grad
        grad_x = torch.bmm(grad, weight) if wants_x else None
        grad_weight = None
        if wants_weight:
            outputs, inputs = weight.shape[1:]
            if outputs <= inputs:
                grad_weight = torch.bmm(grad.transpose(1, 2), x)
            else:
                grad_weight = torch.bmm(x.transpose(1, 2), grad).transpose(1, 2)
        grad_bias = grad.sum(1) if ctx.biased and wants_bias else None
        return grad_x, grad_weight, grad_bias


def stacked_linear(x: Tensor, *, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Each member's Linear on its own activations, as one batched matrix product."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    out = _StackedLinear.apply(flat, weight, bias)
    return out.view(*x.shape[:-1], weight.shape[1])


def thin_linear(x: Tensor, *, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A stacked Linear as multiply-adds over its fewer side: one product of x per input, or one
    sum over x's last dimension per output."""
    outputs, inputs = weight.shape[1:]
    w = weight.view(weight.shape[0], *([1] * (x.dim() - 2)), outputs, inputs)
    if inputs <= outputs:
        out = x[..., 0:1] * w[..., 0]
        for k in range(1, inputs):
            out = out + x[..., k : k + 1] * w[..., k]
    else:
        out = torch.cat([(x * w[..., j, :]).sum(-1, keepdim=True) for j in range(outputs)], -1)
    if bias is not None:
        out = out + bias.view(bias.shape[0], *([1] * (x.dim() - 2)), outputs)
    return out
