"""Fused training against the same jobs trained one after another, in one process, on the CPU.

    .venv/bin/python bench/fused.py [--jobs 16] [--group 4,8,16] [--spiral-epochs 300]
        [--simplenn-epochs 5] [--repeats 3] [--threads 2] [--vmap] [--leave] [--compile] [--nudge]

Two workloads, each `--jobs` configurations (learning rate x weight decay x seed) of a tutorial
job with no-op hooks: seed 001's spiral network (2 -> 100 -> 3, 603 parameters, 3000 points, full
batch, Adam) and seed 002's SimpleNN (784 -> 128 -> 10 on 1000 sum_bins samples, batch 64, Adam).
`sequential` trains each with train(); `fused xG` trains them with train_fused() in groups of G,
one group after another. The runs are interleaved, each repeat runs every variant once, and the
table shows each one's median wall and CPU time and the speed-up, sequential / fused.

`--compile` also trains the groups with the compiled step (train_fused(compiled=True),
SERVICE_FUSE_COMPILE), after timing its compile once as a worker pays it.

`--vmap` also times one training step of the stacked spiral networks two ways: the stack's
batched operators (baddbmm) and torch.func's vmap over functional_call, forward and backward.
`--leave` times what a stack does once half its members have left: a step of the whole stack,
as masking them out would go on paying, against repacking it (what train_fused does) and a step
of the half that stays.
`--nudge` trains each spiral configuration alone twice, the second time with one initial weight
moved by one float32 step, and prints how far apart their losses get: the difference any change
in the order of a sum (another kernel, a compiled step) can grow into for that configuration;
it runs nothing else.
"""

import argparse
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from service.specs import JobSpec
from service.training.datasets import describe_dataset
from service.training.fused.loop import train_fused
from service.training.fused.members import Member
from service.training.fused.stack import StackedNetwork, member_losses
from service.training.hooks import EpochResult, Snapshot, StopReason
from service.training.job_data import prepare_data
from service.training.loop import train
from service.training.memory import keep_freed_memory
from service.training.networks import build_network
from service.training.plan import plan

CPU = torch.device("cpu")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class NoHooks:
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_epoch(self, metrics: EpochResult) -> None:
        self.losses.append(metrics.loss)

    def on_checkpoint(self, snapshot: Snapshot) -> None:
        pass

    def should_stop(self, *, epoch: int) -> StopReason | None:
        return None


def configurations(example: str, *, jobs: int, epochs: int) -> list[JobSpec]:
    """`jobs` normalised specs of an example: learning rate x weight decay x seed."""
    base = json.loads((EXAMPLES / f"{example}.json").read_text())
    # Every learning rate x weight decay pair with seed 1, then with seed 2... (16 pairs x seeds).
    grid = itertools.product(range(1, 1000), (1e-3, 3e-3, 1e-2, 3e-2), (0.0, 1e-5, 1e-4, 1e-3))
    specs = []
    for seed, lr, weight_decay in itertools.islice(grid, jobs):
        optimizer = base["optimizer"] | {"lr": lr, "weight_decay": weight_decay}
        raw = base | {"optimizer": optimizer, "seed": seed, "epochs": epochs}
        spec = JobSpec.model_validate(raw)
        specs.append(plan(spec, data=describe_dataset(spec.dataset)).spec)
    return specs


def sequential(specs: list[JobSpec]) -> list[list[float]]:
    losses = []
    for spec in specs:
        hooks = NoHooks()
        train(spec, device=CPU, hooks=hooks)
        losses.append(hooks.losses)
    return losses


def fused(specs: list[JobSpec], *, group: int, compiled: bool = False) -> list[list[float]]:
    losses: list[list[float]] = []
    for start in range(0, len(specs), group):
        hooks = [NoHooks() for _ in specs[start : start + group]]
        members = [Member(spec=s, hooks=h) for s, h in zip(specs[start:], hooks, strict=False)]
        train_fused(members, device=CPU, compiled=compiled)
        losses.extend(h.losses for h in hooks)
    return losses


def largest_difference(mine: list[list[float]], theirs: list[list[float]]) -> float:
    """The largest relative difference of any member's loss at any epoch."""
    return max(
        abs(a - b) / abs(b)
        for m, t in zip(mine, theirs, strict=True)
        for a, b in zip(m, t, strict=True)
    )


def compare(
    name: str, *, specs: list[JobSpec], groups: list[int], repeats: int, compiled: bool
) -> None:
    runners: dict[str, Callable[[], list[list[float]]]] = {"sequential": lambda: sequential(specs)}
    for group in groups:
        runners[f"fused x{group}"] = lambda group=group: fused(specs, group=group)  # type: ignore[misc]
    if compiled:
        # Compiled as a worker compiles it: for the first size of group, then once more for any
        # size (timed here, an epoch of each group size).
        started = time.perf_counter()
        once = [spec.model_copy(update={"epochs": 1}) for spec in specs]
        for group in groups:
            fused(once[:group], group=group, compiled=True)
        print(f"{name}: compiling the fused step took {time.perf_counter() - started:.1f} s")
        for group in groups:
            runners[f"compiled x{group}"] = lambda group=group: fused(  # type: ignore[misc]
                specs, group=group, compiled=True
            )
    walls: dict[str, list[float]] = {label: [] for label in runners}
    cpus: dict[str, list[float]] = {label: [] for label in runners}
    losses: dict[str, list[list[float]]] = {}
    for _ in range(repeats):
        for label, runner in runners.items():
            wall, cpu = time.perf_counter(), time.process_time()
            losses[label] = runner()
            walls[label].append(time.perf_counter() - wall)
            cpus[label].append(time.process_time() - cpu)
    print(f"{name}: {len(specs)} jobs, {repeats} repeats, {torch.get_num_threads()} threads")
    base_wall, base_cpu = (
        statistics.median(walls["sequential"]),
        statistics.median(cpus["sequential"]),
    )
    for label in runners:
        wall, cpu = statistics.median(walls[label]), statistics.median(cpus[label])
        line = f"  {label:13s} wall {wall:7.2f} s  cpu {cpu:7.2f} s"
        if label != "sequential":
            paired = statistics.median(
                s / f for s, f in zip(walls["sequential"], walls[label], strict=True)
            )
            difference = largest_difference(losses[label], losses["sequential"])
            line += (
                f"  speed-up wall {base_wall / wall:.2f}x (paired {paired:.2f}x), "
                f"cpu {base_cpu / cpu:.2f}x; largest loss difference {difference:.1e}"
            )
        print(line)


def spiral_networks(specs: list[JobSpec]) -> list[torch.nn.Sequential]:
    networks = []
    for spec in specs:
        torch.manual_seed(spec.seed or 0)
        networks.append(build_network(spec.model.layers, device=CPU))
    return networks


def stacked_step(stack: StackedNetwork) -> Callable[[], None]:
    """One full-batch forward and backward of a stack of spiral networks (3000 points each)."""
    x = torch.randn(stack.members, 3000, 2)
    y = torch.randint(0, 3, (stack.members, 3000))

    def step() -> None:
        loss = member_losses(stack(x), y, loss="cross_entropy").sum()
        torch.autograd.grad(loss, list(stack.parameters.values()))

    return step


def per_step(run: Callable[[], None], *, steps: int) -> float:
    run()
    started = time.perf_counter()
    for _ in range(steps):
        run()
    return (time.perf_counter() - started) / steps


def leave_costs(specs: list[JobSpec], *, steps: int) -> None:
    """When half a stack's members have left: a step of the whole stack (what masking them out
    would go on paying) against a step of the half that stays, and the repacking itself."""
    stack = StackedNetwork(spiral_networks(specs))
    whole = per_step(stacked_step(stack), steps=steps)
    started = time.perf_counter()
    stack.keep(torch.arange(0, stack.members, 2))
    repack = time.perf_counter() - started
    half = per_step(stacked_step(stack), steps=steps)
    print(
        f"  {len(specs)} spiral networks, half left: masked {whole * 1e3:7.2f} ms per step, "
        f"repacked {half * 1e3:7.2f} ms per step after {repack * 1e3:.2f} ms repacking"
    )


def step_times(specs: list[JobSpec], *, steps: int) -> None:
    """One full-batch training step of the stacked networks: batched operators against vmap."""
    networks = spiral_networks(specs)
    members = len(networks)
    x = torch.randn(members, 3000, 2)
    y = torch.randint(0, 3, (members, 3000))
    batched = stacked_step(StackedNetwork(networks))

    parameters, buffers = stack_module_state(networks)
    template = networks[0]

    def one(
        p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xi: torch.Tensor
    ) -> torch.Tensor:
        return functional_call(template, (p, b), (xi,))

    forward = vmap(one)

    def vmapped() -> None:
        out = forward(parameters, buffers, x)
        loss = member_losses(out, y, loss="cross_entropy").sum()
        torch.autograd.grad(loss, list(parameters.values()))

    for label, run in (("batched operators", batched), ("torch.func vmap", vmapped)):
        took = per_step(run, steps=steps)
        print(f"  {members} spiral networks, {label:18s} {took * 1e3:7.2f} ms per step")


def nudged_losses(spec: JobSpec, *, nudged: bool) -> list[float]:
    """A full-batch spiral configuration's losses, trained alone with fused Adam; `nudged`: its
    first weight one float32 step larger."""
    x, y = prepare_data(spec, seed=spec.seed or 0, device=CPU, uploaded=None).train
    torch.manual_seed(spec.seed or 0)
    network = build_network(spec.model.layers, device=CPU)
    if nudged:
        with torch.no_grad():
            first = next(network.parameters()).view(-1)
            first[0] = torch.nextafter(first[0], torch.tensor(math.inf))
    numbers = spec.optimizer.model_dump()
    optimizer = torch.optim.Adam(
        network.parameters(), lr=numbers["lr"], weight_decay=numbers["weight_decay"], fused=True
    )
    losses = []
    for _ in range(spec.epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(network(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def nudge(specs: list[JobSpec]) -> None:
    print(f"seed 001 spiral, {specs[0].epochs} epochs alone, one weight nudged by one step:")
    for spec in specs:
        plain, nudged = (nudged_losses(spec, nudged=n) for n in (False, True))
        numbers = spec.optimizer.model_dump()
        print(
            f"  lr {numbers['lr']:<6} weight decay {numbers['weight_decay']:<6} "
            f"largest loss difference {largest_difference([nudged], [plain]):.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--group", default="4,8,16")
    parser.add_argument("--spiral-epochs", type=int, default=300)
    parser.add_argument("--simplenn-epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vmap", action="store_true")
    parser.add_argument("--leave", action="store_true")
    parser.add_argument("--nudge", action="store_true")
    parser.add_argument("--only", choices=("spiral", "simplenn"))
    parser.add_argument("--compile", action="store_true", help="also the compiled fused step")
    args = parser.parse_args()
    keep_freed_memory()  # as the worker runs (service/cli.py)
    torch.set_num_threads(args.threads)
    groups = [int(g) for g in args.group.split(",")]
    if args.vmap:
        for members in groups:
            step_times(configurations("spiral-relu-adam", jobs=members, epochs=1), steps=50)
    if args.leave:
        for members in groups:
            leave_costs(configurations("spiral-relu-adam", jobs=members, epochs=1), steps=50)
    if args.nudge:
        nudge(configurations("spiral-relu-adam", jobs=16, epochs=args.spiral_epochs))
        return
    workloads = {
        "spiral": ("seed 001 spiral", "spiral-relu-adam", args.spiral_epochs),
        "simplenn": ("seed 002 SimpleNN", "sum-bins-simplenn", args.simplenn_epochs),
    }
    for key, (label, example, epochs) in workloads.items():
        if args.only in (None, key):
            specs = configurations(example, jobs=args.jobs, epochs=epochs)
            compare(label, specs=specs, groups=groups, repeats=args.repeats, compiled=args.compile)


if __name__ == "__main__":
    main()
