"""Every member's optimizer step at once, on stacked parameters [members, ...], with each
member's hyper-parameters as a tensor [members].

The arithmetic is torch.optim's (the `foreach` SGD, Adagrad and RMSprop and the fused Adam and
AdamW the solo path uses), term by term, so a member follows its solo run to float32 rounding.
State goes in and out in the form of each member's own torch optimizer (see members.py), so a
checkpoint is the solo layout.

Boolean choices (SGD's nesterov, Adam's amsgrad, RMSprop's centered) and the optimizer itself
are the same for every member of a stack (grouping.py keeps them in the fusion key); every number
may differ. A member whose momentum is 0 keeps no momentum buffer in its checkpoint, as torch's
own does not.
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from service import specs

# The numeric hyper-parameters each optimizer takes per member (lr comes from each member's own
# torch optimizer every epoch, so schedules apply).
NUMBERS: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum", "dampening", "weight_decay"),
    "adagrad": ("lr_decay", "weight_decay", "eps"),
    "rmsprop": ("alpha", "eps", "weight_decay", "momentum"),
    "adam": ("beta1", "beta2", "eps", "weight_decay"),
    "adamw": ("beta1", "beta2", "eps", "weight_decay"),
}
# State tensors per parameter, as torch names them, and which members keep each one.
BUFFERS: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum_buffer",),
    "adagrad": ("sum",),
    "rmsprop": ("square_avg", "momentum_buffer", "grad_avg"),
    "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
}


def _numbers(spec: specs.OptimizerSpec) -> dict[str, float]:
    values = spec.model_dump(exclude={"name"})
    if "betas" in values:
        values["beta1"], values["beta2"] = values.pop("betas")
    return {name: float(values[name]) for name in NUMBERS[spec.name]}


class StackedOptimizer:
    """One optimizer of `name` over every member's stacked parameters."""

    def __init__(
        self, optimizers: Sequence[specs.OptimizerSpec], *, parameters: dict[str, Tensor]
    ) -> None:
        first = optimizers[0]
        self.name = first.name
        self.flags: dict[str, Any] = {
            "nesterov": getattr(first, "nesterov", False),
            "amsgrad": getattr(first, "amsgrad", False),
            "centered": getattr(first, "centered", False),
        }
        device = next(iter(parameters.values())).device
        numbers = [_numbers(each) for each in optimizers]
        self.hyper = {
            name: torch.tensor([n[name] for n in numbers], dtype=torch.float64, device=device)
            for name in NUMBERS[self.name]
        }
        members = len(optimizers)
        self.lr = torch.ones(members, dtype=torch.float64, device=device)
        self.steps = torch.zeros(members, dtype=torch.float64, device=device)
        # SGD's first step copies the gradient into a member's new momentum buffer.
        self.has_buffer = torch.zeros(members, dtype=torch.bool, device=device)
        self.state: dict[str, dict[str, Tensor]] = {
            name: {buffer: torch.zeros_like(p.detach()) for buffer in BUFFERS[self.name]}
            for name, p in parameters.items()
        }

    def keep(self, indices: Tensor) -> None:
        """Keep only the members at `indices`."""
        self.hyper = {name: t.index_select(0, indices) for name, t in self.hyper.items()}
        self.lr, self.steps = self.lr.index_select(0, indices), self.steps.index_select(0, indices)
        self.has_buffer = self.has_buffer.index_select(0, indices)
        for buffers in self.state.values():
            for name, t in buffers.items():
                buffers[name] = t.index_select(0, indices)

    def _view(self, values: Tensor, *, like: Tensor) -> Tensor:
        """Per-member values [members] in float32, broadcasting over a stacked tensor."""
        return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, parameters: dict[str, Tensor]) -> None:
        self.steps += 1
        for name, p in parameters.items():
            if p.grad is None:
                continue
            getattr(self, f"_{self.name.removesuffix('w')}")(p, p.grad, self.state[name])
        self.has_buffer.fill_(True)

    def _sgd(self, p: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        h = {name: self._view(t, like=p) for name, t in self.hyper.items()}
        grad = grad + h["weight_decay"] * p
        momentum, buffer = h["momentum"], state["momentum_buffer"]
        has_buffer = self._view(self.has_buffer, like=p).bool()
        buffer.copy_(torch.where(has_buffer, buffer * momentum + (1 - h["dampening"]) * grad, grad))
        if self.flags["nesterov"]:
            grad = grad + momentum * buffer
        else:
            # A member without momentum steps with its gradient, as torch's does.
            grad = torch.where(momentum > 0, buffer, grad)
        p.sub_(self._view(self.lr, like=p) * grad)

    def _adagrad(self, p: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        h = {name: self._view(t, like=p) for name, t in self.hyper.items()}
        grad = grad + h["weight_decay"] * p
        clr = self.lr / (1 + (self.steps - 1) * self.hyper["lr_decay"])
        state["sum"].addcmul_(grad, grad)
        std = state["sum"].sqrt() + h["eps"]
        p.sub_(self._view(clr, like=p) * grad / std)

    def _rmsprop(self, p: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        h = {name: self._view(t, like=p) for name, t in self.hyper.items()}
        grad = grad + h["weight_decay"] * p
        alpha, square_avg = h["alpha"], state["square_avg"]
        square_avg.mul_(alpha).addcmul_(grad, grad * (1 - alpha))
        if self.flags["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg.lerp_(grad, 1 - alpha)
            avg = (square_avg - grad_avg * grad_avg).sqrt_() + h["eps"]
        else:
            avg = square_avg.sqrt() + h["eps"]
        lr, momentum, buffer = self._view(self.lr, like=p), h["momentum"], state["momentum_buffer"]
        buffer.mul_(momentum).add_(grad / avg)
        # Without momentum the buffer is grad / avg exactly: the plain RMSprop step.
        p.sub_(lr * buffer)

    def _adam(self, p: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        h = {name: self._view(t, like=p) for name, t in self.hyper.items()}
        lr = self._view(self.lr, like=p)
        if self.name == "adamw":
            p.mul_(1 - lr * h["weight_decay"])
        else:
            grad = grad + h["weight_decay"] * p
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - h["beta1"])
        exp_avg_sq.mul_(h["beta2"]).addcmul_(grad, grad * (1 - h["beta2"]))
        # The corrections in float64, as the fused kernel computes them.
        correction1 = 1 - self.hyper["beta1"] ** self.steps
        correction2_sqrt = (1 - self.hyper["beta2"] ** self.steps).sqrt()
        step_size = self._view(self.lr / correction1, like=p)
        second = exp_avg_sq
        if self.flags["amsgrad"]:
            second = torch.maximum(state["max_exp_avg_sq"], exp_avg_sq)
            state["max_exp_avg_sq"].copy_(second)
        denominator = second.sqrt() / self._view(correction2_sqrt, like=p) + h["eps"]
        p.sub_(step_size * exp_avg / denominator)

    # --- state in and out, one member at a time, in torch's per-parameter form ---------------

    def buffers_kept(self, member: int) -> tuple[str, ...]:
        """The state tensors torch's own optimizer keeps for this member."""
        momentum = float(self.hyper.get("momentum", torch.zeros(member + 1))[member])
        kept = {
            "sgd": ("momentum_buffer",) if momentum != 0 else (),
            "adagrad": ("sum",),
            "rmsprop": ("square_avg",)
            + (("momentum_buffer",) if momentum > 0 else ())
            + (("grad_avg",) if self.flags["centered"] else ()),
            "adam": ("exp_avg", "exp_avg_sq")
            + (("max_exp_avg_sq",) if self.flags["amsgrad"] else ()),
        }
        return kept[self.name.removesuffix("w")]

    def member_state(self, member: int, *, parameter: str) -> dict[str, Tensor]:
        """What torch's optimizer would hold for one member's parameter (empty before SGD's first
        step, as torch's)."""
        if self.name == "sgd" and not bool(self.has_buffer[member]):
            return {}
        state = {
            name: self.state[parameter][name][member].clone() for name in self.buffers_kept(member)
        }
        if self.name != "sgd":
            state["step"] = torch.tensor(float(self.steps[member]), dtype=torch.float32)
        return state

    def load_member(self, member: int, *, parameter: str, state: dict[str, Any]) -> None:
        """Put one member's torch optimizer state for a parameter into the stack."""
        if not state:
            return
        for name, value in state.items():
            if name == "step":
                self.steps[member] = float(value)
            elif name in self.state[parameter]:
                self.state[parameter][name][member].copy_(value)
        if "momentum_buffer" in state:
            self.has_buffer[member] = True
