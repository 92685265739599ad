"""Every member's optimizer step at once, on stacked parameters [members, ...], with each
member's hyper-parameters as a tensor [members].

Adam and AdamW call the fused kernel the solo run steps with, on each member's slices of the
stack, so a member's step is its solo step bit for bit. SGD, Adagrad and RMSprop are torch's
`foreach` arithmetic written out term by term over the stack, so a member follows its solo run to
float32 rounding.
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
        # Host copies for Adam's kernel calls, so a step reads nothing back from the device (a
        # sync per step on a GPU): each member's (lr, numbers...) and its step count as the
        # kernel takes it, a float32 scalar on the device, stepped in place.
        self._host_numbers = [tuple(n[name] for name in NUMBERS[self.name]) for n in numbers]
        self._host_lr = [1.0] * members
        self._step_tensors = [
            torch.zeros((), dtype=torch.float32, device=device) for _ in range(members)
        ]
        # SGD's first step copies the gradient into a member's new momentum buffer.
        self.has_buffer = torch.zeros(members, dtype=torch.bool, device=device)
        self.state: dict[str, dict[str, Tensor]] = {
            name: {buffer: torch.zeros_like(p.detach()) for buffer in BUFFERS[self.name]}
            for name, p in parameters.items()
        }

    def set_lr(self, values: list[float]) -> None:
        """Each member's learning rate for the steps to come (its schedule's, per epoch)."""
        self._host_lr = list(values)
        self.lr = torch.tensor(values, dtype=torch.float64, device=self.lr.device)

    def keep(self, indices: Tensor) -> None:
        """Keep only the members at `indices`."""
        kept = indices.tolist()
        self._host_numbers = [self._host_numbers[i] for i in kept]
        self._host_lr = [self._host_lr[i] for i in kept]
        self._step_tensors = [self._step_tensors[i] for i in kept]
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
        if self.name in ("adam", "adamw"):
            torch._foreach_add_(self._step_tensors, 1)
            self._fused_adam(parameters)
        else:
            for name, p in parameters.items():
                if p.grad is not None:
                    getattr(self, f"_{self.name}")(p, p.grad, self.state[name])
        self.has_buffer.fill_(True)

    def _fused_adam(self, parameters: dict[str, Tensor]) -> None:
        """Adam and AdamW through torch's own fused kernel, the one the solo run steps with: one
        call per set of members with equal hyper-parameters, over their slices of the stack.
        The kernel works tensor by tensor, so each member's arithmetic is its solo run's, bit
        for bit; one call per member would cost the step's time in calls for small networks."""
        kernel = torch._fused_adamw_ if self.name == "adamw" else torch._fused_adam_
        names = [name for name, p in parameters.items() if p.grad is not None]
        steps = self._step_tensors
        groups: dict[tuple[float, ...], list[int]] = {}
        for member, (lr, numbers) in enumerate(zip(self._host_lr, self._host_numbers, strict=True)):
            groups.setdefault((lr, *numbers), []).append(member)
        amsgrad = bool(self.flags["amsgrad"])
        buffers = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
        # Every member's slice of each tensor in one call per tensor: a stack of 16 SimpleNNs'
        # optimizer step took 0.58 ms so, 0.66 ms indexing member by member.
        slices: dict[str, list[tuple[Tensor, ...]]] = {}
        for name in names:
            p, grad = parameters[name], parameters[name].grad
            assert grad is not None
            state = [self.state[name][buffer].unbind(0) for buffer in buffers]
            slices[name] = [p.detach().unbind(0), grad.unbind(0), *state]
        for (lr, beta1, beta2, eps, weight_decay), members in groups.items():
            tensors: list[list[Tensor]] = [[] for _ in range(2 + len(buffers))]
            counts: list[Tensor] = []
            for member in members:
                for name in names:
                    for each, member_slices in zip(tensors, slices[name], strict=True):
                        each.append(member_slices[member])
                    counts.append(steps[member])
            params, grads, exp_avgs, exp_avg_sqs, *max_exp_avg_sqs = tensors
            kernel(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                max_exp_avg_sqs[0] if amsgrad else [],
                counts,
                amsgrad=amsgrad,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=weight_decay,
                eps=eps,
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )

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
                self._step_tensors[member].fill_(float(value))
            elif name in self.state[parameter]:
                self.state[parameter][name][member].copy_(value)
        if "momentum_buffer" in state:
            self.has_buffer[member] = True
