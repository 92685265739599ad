"""The fused Adam step against torch's own optimizer.step(): the same bits, every time."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from pydantic import TypeAdapter
from torch import nn

from service import specs
from service.training.optimizers import FusedAdamStep, build_optimizer, step_function

ADAM_SPECS = [
    {"name": "adam", "lr": 0.01},
    {"name": "adam", "lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
    {"name": "adam", "lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-6},
    {"name": "adamw", "lr": 0.01},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.3, "amsgrad": True},
]


def optimizer_spec(fields: dict[str, Any]) -> specs.OptimizerSpec:
    return TypeAdapter(specs.OptimizerSpec).validate_python(fields)


def network() -> nn.Sequential:
    torch.manual_seed(0)
    # The last layer is never used, so its parameters never get a gradient.
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3), nn.Linear(3, 3))


def run_steps(
    fields: dict[str, Any],
    *,
    steps: int,
    make_step: Callable[[torch.optim.Optimizer], Callable[[], object]],
    resume: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler] | None = None,
) -> tuple[nn.Sequential, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """`steps` steps of a small regression with a schedule halving lr every two steps; from
    the optimizer's and schedule's states in `resume`, as a resumed job loads them."""
    net = network()
    optimizer = build_optimizer(optimizer_spec(fields), parameters=net.parameters())
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    if resume is not None:
        # A copy: load_state_dict keeps the very tensors it is given, and steps update them.
        optimizer.load_state_dict(copy.deepcopy(resume[0].state_dict()))
        schedule.load_state_dict(resume[1].state_dict())
    step = make_step(optimizer)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=generator)
        loss = net[:3](x).square().mean()
        for parameter in net.parameters():
            parameter.grad = None
        loss.backward()
        step()
        schedule.step()
    return net, optimizer, schedule


def assert_same_bits(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("fields", ADAM_SPECS, ids=lambda f: "-".join(map(str, f.values())))
def test_fused_step_is_bit_identical_to_optimizer_step(fields: dict[str, Any]) -> None:
    expected_net, expected, _ = run_steps(fields, steps=7, make_step=lambda o: o.step)
    net, optimizer, _ = run_steps(fields, steps=7, make_step=FusedAdamStep)

    # The parameters without a gradient were left alone, and got no state.
    assert torch.equal(net[3].weight, network()[3].weight)
    assert len(optimizer.state) == 4
    assert_same_bits(net.state_dict(), expected_net.state_dict())
    for parameter, expected_parameter in zip(
        optimizer.param_groups[0]["params"], expected.param_groups[0]["params"], strict=True
    ):
        assert_same_bits(optimizer.state[parameter], expected.state[expected_parameter])
    assert optimizer.state_dict()["param_groups"] == expected.state_dict()["param_groups"]
    assert optimizer.state[net[0].weight]["step"].item() == 7.0


def test_fused_step_continues_from_a_loaded_state() -> None:
    """A resumed run's optimizer gets its state from load_state_dict, not from a first step."""
    fields = ADAM_SPECS[1]
    _, *first = run_steps(fields, steps=3, make_step=lambda o: o.step)
    expected_net, *_ = run_steps(fields, steps=4, make_step=lambda o: o.step, resume=first)
    net, *_ = run_steps(fields, steps=4, make_step=FusedAdamStep, resume=first)

    assert_same_bits(net.state_dict(), expected_net.state_dict())


@pytest.mark.parametrize(
    ("fields", "fused"),
    [
        ({"name": "adam"}, True),
        ({"name": "adamw"}, True),
        ({"name": "sgd", "momentum": 0.9}, False),
        ({"name": "rmsprop"}, False),
        ({"name": "adagrad"}, False),
    ],
)
def test_step_function_takes_the_fused_step_for_adam_only(
    fields: dict[str, Any], *, fused: bool
) -> None:
    optimizer = build_optimizer(optimizer_spec(fields), parameters=network().parameters())
    step = step_function(optimizer)
    assert isinstance(step, FusedAdamStep) is fused
    if not fused:
        assert step == optimizer.step


def test_step_function_leaves_mixed_dtypes_to_torch() -> None:
    """The kernel takes one device and dtype; torch regroups anything else itself."""
    net = network()
    net[2].double()
    optimizer = torch.optim.Adam(net.parameters(), fused=True)
    assert step_function(optimizer) == optimizer.step
