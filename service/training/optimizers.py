"""Optimizer and learning-rate schedule specs -> torch objects, and gradient clipping."""

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import lr_scheduler

from service import specs

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


# Adam and AdamW use torch's fused kernel: one pass over each parameter instead of a dozen
# multi-tensor ops, which makes Adam's step several times cheaper on the CPU. It rounds a little
# differently from the default loop the tutorials ran: seed 001's ReLU + Adam run ends at loss
# 0.16170528 instead of 0.16170534, the same to the six printed digits (asserted in the tests).
# The others use `foreach`, which gives bit-identical numbers to the default loop.
FUSED = frozenset({"adam", "adamw"})


def build_optimizer(
    spec: specs.OptimizerSpec, *, parameters: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """The optimizer, with the spec's fields as torch's keyword arguments."""
    kwargs = spec.model_dump(exclude={"name"})
    implementation = {"fused": True} if spec.name in FUSED else {"foreach": True}
    return OPTIMIZERS[spec.name](parameters, **implementation, **kwargs)


class FusedAdamStep:
    """`optimizer.step()` for a fused Adam or AdamW, minus the Python around the kernel.

    torch's step spends ~115 us per call on a SimpleNN (1 CPU thread) before it reaches the one
    fused kernel that does the arithmetic (~80 us): it regroups the tensors by device and dtype,
    re-checks every group and goes through profiler spans and hook dispatch. This calls the same
    kernel, `torch._fused_adam_` (`_fused_adamw_`), with the same arguments, in the same order, so
    the weights and the optimizer's state come out bit-identical (tests/unit/training/
    test_optimizers.py holds it to that, and fails first if a torch upgrade changes the private
    kernel's signature; pyproject.toml pins torch). The optimizer still owns the state and the
    hyper-parameters: schedules, state_dict() and load_state_dict() work as before.

    A step where some parameter has no state yet (the first) goes through optimizer.step(),
    which creates it.
    """

    def __init__(self, optimizer: torch.optim.Adam) -> None:
        self.optimizer = optimizer

    def __call__(self) -> None:
        groups = self.optimizer.param_groups
        tensors = [self._tensors(group) for group in groups]
        ready = [each for each in tensors if each is not None]
        if len(ready) < len(tensors):
            self.optimizer.step()
            return
        with torch.no_grad():
            for group, (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps) in zip(
                groups, ready, strict=True
            ):
                if not params:
                    continue
                kernel = (
                    torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
                )
                beta1, beta2 = group["betas"]
                torch._foreach_add_(steps, 1)
                kernel(
                    params,
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    max_exp_avg_sqs,
                    steps,
                    amsgrad=group["amsgrad"],
                    lr=group["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group["weight_decay"],
                    eps=group["eps"],
                    maximize=group["maximize"],
                    grad_scale=None,
                    found_inf=None,
                )

    def _tensors(self, group: dict[str, Any]) -> tuple[list[Tensor], ...] | None:
        """The kernel's tensor lists for a group's parameters that have a gradient: params,
        grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs (amsgrad), steps. None if one of those
        parameters has no state yet."""
        lists: tuple[list[Tensor], ...] = ([], [], [], [], [], [])
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = lists
        for p in group["params"]:
            if p.grad is None:
                continue
            p_state = self.optimizer.state.get(p)
            if not p_state:
                return None
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(p_state["exp_avg"])
            exp_avg_sqs.append(p_state["exp_avg_sq"])
            if group["amsgrad"]:
                max_exp_avg_sqs.append(p_state["max_exp_avg_sq"])
            steps.append(p_state["step"])
        return lists


def step_function(optimizer: torch.optim.Optimizer) -> Callable[[], object]:
    """What a training step calls to update the weights: FusedAdamStep for a fused Adam or
    AdamW whose parameters share one device and dtype (the kernel takes one such group), else
    optimizer.step itself."""
    groups = optimizer.param_groups
    tensors = {(p.device, p.dtype) for group in groups for p in group["params"]}
    fused = all(
        group.get("fused") and not group["differentiable"] and not group["capturable"]
        for group in groups
    )
    if isinstance(optimizer, torch.optim.Adam) and fused and len(tensors) == 1:
        return FusedAdamStep(optimizer)
    return optimizer.step


def build_schedule(
    spec: specs.ScheduleSpec | None, *, optimizer: torch.optim.Optimizer, epochs: int
) -> lr_scheduler.LRScheduler | None:
    """The learning-rate schedule, stepped once per epoch; None for a constant rate."""
    match spec:
        case None:
            return None
        case specs.StepSchedule():
            return lr_scheduler.StepLR(optimizer, step_size=spec.step_size, gamma=spec.gamma)
        case specs.ExponentialSchedule():
            return lr_scheduler.ExponentialLR(optimizer, gamma=spec.gamma)
        case specs.CosineSchedule():
            t_max = spec.t_max or epochs
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=spec.eta_min)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def clip_gradients(parameters: list[torch.nn.Parameter], *, max_norm: float | None) -> None:
    """Scale gradients down to a total norm of max_norm (no sync: the norm stays on the device)."""
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)
