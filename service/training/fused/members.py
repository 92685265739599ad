"""Each member of a fused run, set up exactly as its solo run sets itself up, and written out in
the solo checkpoint layout.

A member keeps its own torch network, optimizer and schedule beside the stack: they draw its
initial weights (from its seed, after its data, as train() does), read a resume checkpoint,
step its learning-rate schedule, and at each checkpoint take the member's slice of the stack to
write what a solo run would write. Training itself happens on the stack.
"""

from dataclasses import dataclass, field

import torch
from torch.optim.lr_scheduler import LRScheduler

from service.specs import JobSpec
from service.training import randomness
from service.training.checkpoints import TrainingState, decode_state, encode_state, load_weights
from service.training.early_stopping import Patience
from service.training.epochs import CheckpointPace
from service.training.hooks import Resume, TrainingHooks
from service.training.job_data import PreparedData, Tensors, prepare_data
from service.training.networks import build_network
from service.training.optimizers import build_optimizer, build_schedule, current_lr


@dataclass(frozen=True)
class Member:
    """One job to train in a fused run: what train() takes for it."""

    spec: JobSpec  # normalised
    hooks: TrainingHooks
    resume: Resume | None = None
    uploaded: Tensors | None = None
    checkpoint_seconds: float = 0.0  # train()'s


@dataclass
class MemberRun:
    """A member while it trains: its own torch objects and where its run stands."""

    member: Member
    network: torch.nn.Sequential
    optimizer: torch.optim.Optimizer
    schedule: LRScheduler | None
    data: PreparedData
    shuffle: torch.Generator
    rng: torch.Tensor  # torch's global generator state, as the solo run would checkpoint it
    epoch: int  # the last finished epoch
    best: float | None = None
    patience: Patience = field(default_factory=Patience)
    pace: CheckpointPace = field(default_factory=CheckpointPace)

    @property
    def spec(self) -> JobSpec:
        return self.member.spec

    @property
    def lr(self) -> float:
        return current_lr(self.optimizer)


def start(member: Member, *, device: torch.device) -> MemberRun:
    """The member as train() would start it: seed, data, network, optimizer, then the resume."""
    spec = member.spec
    if spec.seed is None or spec.loss is None or spec.best_metric is None:
        raise ValueError("a fused member needs a normalised spec; pass it through plan() first")
    randomness.seed_everything(spec.seed)
    data = prepare_data(spec, seed=spec.seed, device=device, uploaded=member.uploaded)
    network = build_network(spec.model.layers, device=device)
    optimizer = build_optimizer(spec.optimizer, parameters=network.parameters())
    # The stack takes this optimizer's steps; the schedule would otherwise warn that its own
    # step() comes before any optimizer.step().
    optimizer._opt_called = True  # type: ignore[attr-defined]
    run = MemberRun(
        member=member,
        network=network,
        optimizer=optimizer,
        schedule=build_schedule(spec.schedule, optimizer=optimizer, epochs=spec.epochs),
        data=data,
        shuffle=randomness.generator(spec.seed, stream="shuffle"),
        rng=torch.get_rng_state(),
        epoch=0,
        pace=CheckpointPace(member.checkpoint_seconds),
    )
    if member.resume is not None:
        state = decode_state(member.resume.state)
        load_weights(network, member.resume.weights)
        optimizer.load_state_dict(state.optimizer)
        if run.schedule is not None and state.schedule is not None:
            run.schedule.load_state_dict(state.schedule)
        run.rng = state.rng["cpu"]
        run.shuffle.set_state(state.rng["shuffle"])
        run.best = state.best
        run.patience = state.patience or run.patience
        run.epoch = member.resume.epoch
    return run


def parameter_states(run: MemberRun) -> dict[str, dict[str, torch.Tensor]]:
    """The member's torch optimizer state by parameter name (empty where it has none)."""
    return {
        name: dict(run.optimizer.state.get(p, {})) for name, p in run.network.named_parameters()
    }


def training_state(
    run: MemberRun,
    *,
    weights: dict[str, torch.Tensor],
    optimizer: dict[str, dict[str, torch.Tensor]],
) -> bytes:
    """The member's checkpoint `state`, exactly as its solo run would encode it, after putting
    the stack's weights and optimizer state for it into its own torch objects."""
    with torch.no_grad():
        for name, p in run.network.named_parameters():
            p.copy_(weights[name])
            if optimizer[name]:
                run.optimizer.state[p] = optimizer[name]
            else:
                run.optimizer.state.pop(p, None)
    rule = run.spec.early_stopping
    state = TrainingState(
        epoch=run.epoch,
        optimizer=run.optimizer.state_dict(),
        schedule=None if run.schedule is None else run.schedule.state_dict(),
        rng={"cpu": run.rng, "shuffle": run.shuffle.get_state()},
        best=run.best,
        standardization=run.data.standardization,
        patience=run.patience if rule is not None else None,
    )
    return encode_state(state)
