"""The engine's train() beside the tutorials' own training loops, on the CPU.

    .venv/bin/python bench/train_vs_script.py [--epochs 100] [--repeats 9] [--threads 2]
        [--digits-epochs 25] [--only 002|001|digits]

Three workloads, each run as the tutorial's loop (A) and as the engine's train() with no-op hooks
(B), interleaved A, B, A, B ... so that a noisy machine slows both alike; the table shows each
one's median and the speed-up, tutorial time / engine time.

- seed 002: SimpleNN (Linear(784, 128), ReLU, Linear(128, 10)) on 1000 x 784 sum_bins data,
  Adam lr 1e-3, batch 64, shuffled, `--epochs` epochs. The tutorial iterates a
  DataLoader(TensorDataset(...)) and calls loss.item() every step, exactly as its script does.
  A third loop, the floor, is the least any eager loop does for it: forward, backward and
  the engine's fused Adam step on batches cut beforehand, with no shuffle, metrics,
  checkpoints or sync.
- seed 001: the spiral ReLU network with Adam, full batch, 1000 steps. The tutorial computes
  loss.item() and the accuracy every step. Both give the same final loss, bit for bit.
- digits: examples/digits-lenet.json's LeNet-style CNN on the 1,797 8x8 digits, Adam with a
  cosine schedule, batch 32, shuffled, `--digits-epochs` epochs, per-channel normalisation, no
  hold-out or augmentation. The tutorial way: a Dataset that converts each uint8 picture to
  float, scales and normalises it (ToTensor + Normalize), a DataLoader that collates each batch,
  and loss.item() every step.

The tutorial's clock covers its training loop only (its data is made beforehand, without its
slow per-sample loops); the engine's covers all of train(): data, network, loop, checkpoints.
Both wall time and this process's CPU time are shown: on a shared machine the CPU time is the
steadier of the two (with --threads 1 it is close to the work done).
"""

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from service.specs import JobSpec
from service.training.datasets import describe_dataset, make_dataset
from service.training.hooks import EpochResult, Snapshot, StopReason
from service.training.loop import train
from service.training.optimizers import step_function
from service.training.plan import plan

CPU = torch.device("cpu")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # seconds of this process's CPU time
    loss: float  # the last epoch's loss


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def finished(started: tuple[float, float], *, loss: float) -> Run:
    wall, cpu = clock()
    return Run(wall=wall - started[0], cpu=cpu - started[1], loss=loss)


class NoHooks:
    def on_epoch(self, metrics: EpochResult) -> None:
        self.last = metrics

    def on_checkpoint(self, snapshot: Snapshot) -> None:
        pass

    def should_stop(self, *, epoch: int) -> StopReason | None:
        return None


def example(name: str, **overrides: object) -> JobSpec:
    """A spec the service ships in examples/, the one its tests reproduce SEEDS.md with."""
    spec = json.loads((EXAMPLES / f"{name}.json").read_text())
    return JobSpec.model_validate(spec | overrides)


def tutorial_002(spec: JobSpec) -> Run:
    """Seed 002's train_model: DataLoader batches, loss.item() per step."""
    torch.manual_seed(spec.seed or 0)
    inputs, targets = make_dataset(spec.dataset)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    dataloader = DataLoader(TensorDataset(inputs, targets), batch_size=64, shuffle=True)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    started = clock()
    epoch_loss = math.nan
    for _ in range(spec.epochs):
        running_loss = 0.0
        for batch_inputs, batch_targets in dataloader:
            optimizer.zero_grad()
            outputs = model(batch_inputs)
            loss = criterion(outputs, batch_targets)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * batch_inputs.size(0)
        epoch_loss = running_loss / len(inputs)  # the script: len(dataloader.dataset)
    return finished(started, loss=epoch_loss)


def tutorial_001(spec: JobSpec) -> Run:
    """Seed 001's loop: full batch, loss.item() and accuracy every step."""
    torch.manual_seed(spec.seed or 0)
    x, y = make_dataset(spec.dataset)
    model = nn.Sequential(nn.Linear(2, 100), nn.ReLU(), nn.Linear(100, 3))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    started = clock()
    last = math.nan
    for _ in range(spec.epochs):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        _, predicted = torch.max(y_pred, 1)
        (y == predicted).sum().float() / len(y)
        last = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return finished(started, loss=last)


class Digits(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The tutorials' image dataset: each picture converted when it is asked for."""

    def __init__(self, pictures: torch.Tensor, labels: torch.Tensor) -> None:
        self.pictures, self.labels = pictures, labels
        scaled = pictures.double() / 255
        self.mean, self.std = scaled.mean().item(), scaled.std(correction=0).item()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        picture = self.pictures[index].float() / 255  # ToTensor
        return (picture - self.mean) / self.std, self.labels[index]  # Normalize


def tutorial_digits(spec: JobSpec) -> Run:
    """The LeNet-style CNN the tutorial way: Dataset, DataLoader, loss.item() per step."""
    torch.manual_seed(spec.seed or 0)
    pictures, labels = make_dataset(spec.dataset)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=spec.epochs)
    criterion = nn.CrossEntropyLoss()
    started = clock()
    dataloader = DataLoader(Digits(pictures, labels), batch_size=32, shuffle=True)
    epoch_loss = math.nan
    for _ in range(spec.epochs):
        running_loss = 0.0
        for batch_inputs, batch_targets in dataloader:
            optimizer.zero_grad()
            loss = criterion(model(batch_inputs), batch_targets)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * batch_inputs.size(0)
        schedule.step()
        epoch_loss = running_loss / len(labels)
    return finished(started, loss=epoch_loss)


def floor_002(spec: JobSpec) -> Run:
    """What any eager loop pays for seed 002: forward, loss, backward and the engine's fused Adam
    step on batches cut beforehand, with nothing else (no shuffle, metrics, checkpoints or sync)."""
    torch.manual_seed(spec.seed or 0)
    inputs, targets = make_dataset(spec.dataset)
    batches = list(zip(inputs.split(64), targets.split(64), strict=True))
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    parameters = list(model.parameters())
    step = step_function(torch.optim.Adam(parameters, lr=0.001, fused=True))
    started = clock()
    loss = torch.zeros(())
    for _ in range(spec.epochs):
        for batch_inputs, batch_targets in batches:
            loss = nn.functional.cross_entropy(model(batch_inputs), batch_targets)
            for parameter in parameters:
                parameter.grad = None
            loss.backward()
            step()
    return finished(started, loss=loss.item())


def engine(spec: JobSpec) -> Run:
    """train() end to end with no-op hooks."""
    hooks = NoHooks()
    started = clock()
    train(spec, device=CPU, hooks=hooks)
    return finished(started, loss=hooks.last.loss)


def compare(
    name: str,
    *,
    tutorial: Callable[[JobSpec], Run],
    spec: JobSpec,
    repeats: int,
    floor: Callable[[JobSpec], Run] | None = None,
) -> None:
    normalised = plan(spec, data=describe_dataset(spec.dataset)).spec
    runners = {"tutorial": tutorial, "engine": engine} | ({"floor": floor} if floor else {})
    runs: dict[str, list[Run]] = {label: [] for label in runners}
    for _ in range(repeats):
        for label, run in runners.items():
            runs[label].append(run(normalised))
    print(f"{name}  ({repeats} repeats, {torch.get_num_threads()} threads)")
    medians = {}
    for label, done in runs.items():
        medians[label] = (
            statistics.median(r.wall for r in done),
            statistics.median(r.cpu for r in done),
        )
        walls = " ".join(f"{r.wall:.2f}" for r in done)
        print(
            f"  {label:8s} wall {medians[label][0]:7.3f} s  cpu {medians[label][1]:7.3f} s  "
            f"(walls: {walls})  last loss {done[-1].loss:.8f}"
        )
    for label, title in (
        ("engine", "speed-up (tutorial / engine)"),
        ("floor", "floor (tutorial / bare loop)"),
    ):
        if label not in runs:
            continue
        wall_ratio = medians["tutorial"][0] / medians[label][0]
        cpu_ratio = medians["tutorial"][1] / medians[label][1]
        # Each repeat's own ratio: a run and the one beside it share the machine's mood, so
        # their median is steadier than the ratio of medians when the load drifts.
        paired = statistics.median(
            t.wall / r.wall for t, r in zip(runs["tutorial"], runs[label], strict=True)
        )
        print(
            f"  {title}: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x, "
            f"median of paired runs {paired:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=100, help="seed 002 epochs (default 100)")
    parser.add_argument("--repeats", type=int, default=9, help="runs of each (default 9)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--digits-epochs", type=int, default=25, help="digits epochs (25)")
    parser.add_argument("--only", choices=["002", "001", "digits"], help="one workload")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only in (None, "002"):
        compare(
            "seed 002: SimpleNN, 1000 x 784, batch 64, Adam",
            tutorial=tutorial_002,
            spec=example("sum-bins-simplenn", epochs=args.epochs),
            repeats=args.repeats,
            floor=floor_002,
        )
    if args.only in (None, "001"):
        compare(
            "seed 001: spiral ReLU + Adam, full batch, 1000 steps",
            tutorial=tutorial_001,
            spec=example("spiral-relu-adam"),
            repeats=args.repeats,
        )
    if args.only in (None, "digits"):
        compare(
            "digits: LeNet-style CNN, 1,797 x 1 x 8 x 8, batch 32, Adam + cosine",
            tutorial=tutorial_digits,
            spec=example(
                "digits-lenet",
                epochs=args.digits_epochs,
                validation_fraction=0.0,
                best_metric=None,
                augment=None,
            ),
            repeats=args.repeats,
        )


if __name__ == "__main__":
    main()
