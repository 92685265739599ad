"""The api's plots: gather the data, draw it off the event loop, keep the PNG.

One Plotter per api process. A plot drawn from a checkpoint is cached under the checkpoint's
(job, epoch, sha256), so the same checkpoint gives the same bytes without drawing again and a
newer checkpoint gives a new picture; curves are cached under the job's (attempt, last epoch),
datasets under their content. Data is read in a short transaction of its own; drawing happens
after it, one figure at a time (matplotlib is not thread-safe).
"""

import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import StrEnum

import anyio.to_thread
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from service import datasets, jobs, repository, specs
from service.db import transaction
from service.errors import Conflict, InvalidSpec
from service.inference.cache import LRU
from service.inference.loading import LoadedNetwork
from service.inference.lookup import CheckpointRef
from service.inference.predictor import Predictor
from service.plots import figures, sweep_curves
from service.plots.data import (
    check_drawable,
    confusion,
    held_out,
    job_samples,
    job_tensors,
    plottable_inputs,
    spec_samples,
    thin,
)
from service.settings import Settings
from service.specs import JobSpec
from service.sweeps import control
from service.tables import Job
from service.training.datasets import describe_dataset, seeded
from service.training.hooks import EpochResult
from service.training.plan import job_shape


class JobPlot(StrEnum):
    """A job's plots, each served as /v1/jobs/{id}/plots/<name>.png."""

    CURVES = "curves"
    DECISION_BOUNDARY = "decision_boundary"
    FIT = "fit"
    DATA = "data"
    SAMPLES = "samples"
    CONFUSION = "confusion"

    @property
    def from_checkpoint(self) -> bool:
        """Drawn by a checkpoint's network, so a request may name which one."""
        return self in (JobPlot.DECISION_BOUNDARY, JobPlot.FIT, JobPlot.SAMPLES, JobPlot.CONFUSION)


# Points per side of the grid a decision boundary is evaluated on (the tutorials use 220).
GRID_STEPS = 220
# Points on a fitted curve.
CURVE_STEPS = 200
# Rows per forward pass over the grid.
CHUNK_ROWS = 8192
# Epochs drawn on a curve at most; longer runs are thinned evenly.
CURVE_EPOCHS = 5000
# Pictures on samples.png: the job's first ones, in its dataset's order.
SAMPLE_PICTURES = 36


@dataclass(frozen=True)
class Plot:
    png: bytes
    cached: bool


Draw = Callable[[], bytes]


class Plotter:
    def __init__(
        self, *, settings: Settings, sessions: sessionmaker[Session], predictor: Predictor
    ) -> None:
        self.sessions = sessions
        self.predictor = predictor
        self.max_samples = settings.max_plot_samples
        self.max_evaluate_samples = settings.max_evaluate_samples
        self.cache: LRU[Hashable, bytes] = LRU(capacity=settings.plot_cache_size)
        self.renders = 0
        self.hits = 0
        self._drawing = threading.Lock()
        self._counting = threading.Lock()

    # --- the request path: each runs its blocking work in a worker thread ---

    async def job_plot(
        self, kind: JobPlot, *, job_id: str, owner_id: str, ref: CheckpointRef | None
    ) -> Plot:
        return await anyio.to_thread.run_sync(
            lambda: self._plot(lambda session: self._job(session, kind, job_id, owner_id, ref))
        )

    async def sweep_plot(self, *, sweep_id: str, owner_id: str) -> Plot:
        return await anyio.to_thread.run_sync(
            lambda: self._plot(lambda session: self._sweep(session, sweep_id, owner_id))
        )

    async def dataset_plot(self, *, dataset_id: str, owner_id: str) -> Plot:
        return await anyio.to_thread.run_sync(
            lambda: self._plot(lambda session: self._uploaded(session, dataset_id, owner_id))
        )

    async def spec_plot(self, *, dataset: specs.DatasetSpec, owner_id: str) -> Plot:
        return await anyio.to_thread.run_sync(
            lambda: self._plot(lambda session: self._spec(session, dataset, owner_id))
        )

    def _plot(self, prepare: Callable[[Session], tuple[Hashable, Draw | None]]) -> Plot:
        """`prepare` names the plot's cache key and, unless the key is cached, reads what it
        needs and returns how to draw it."""
        with transaction(self.sessions) as session:
            key, draw = prepare(session)
        if draw is None:
            cached = self.cache.get(key)
            assert cached is not None
            with self._counting:
                self.hits += 1
            return Plot(png=cached, cached=True)
        with self._drawing:
            png = draw()
            self.renders += 1
        self.cache.put(key, png)
        return Plot(png=png, cached=False)

    def _cached(self, key: Hashable) -> bool:
        return self.cache.get(key) is not None

    # --- a job's plots ---

    def _job(
        self, session: Session, kind: JobPlot, job_id: str, owner_id: str, ref: CheckpointRef | None
    ) -> tuple[Hashable, Draw | None]:
        job = jobs.get(session, job_id=job_id, owner_id=owner_id)
        spec = jobs.stored_spec(job)
        if kind == "curves":
            return self._curves(session, job)
        if kind == "data":
            return self._data(session, job, spec)
        if kind == "samples":
            return self._samples(session, job, spec, ref)
        if kind == "confusion":
            return self._confusion(session, job, spec, ref)
        data = job_shape(spec)
        if kind == "decision_boundary":
            if spec.task != "classification" or data.input_shape != (2,):
                raise Conflict(
                    f"decision_boundary.png draws the classes a classifier gives each point of "
                    f"the plane, so it needs a classification job on 2 input features; job "
                    f"{job.id} is a {spec.task} on samples of shape {list(data.input_shape)}: "
                    + (
                        "use fit.png or curves.png"
                        if _is_fit(spec, data.input_shape)
                        else "use curves.png"
                    )
                )
        elif not _is_fit(spec, data.input_shape) or data.target_shape != (1,):
            raise Conflict(
                f"fit.png draws a regression's curve through its points, so it needs a regression "
                f"job with 1 input feature and 1 output; job {job.id} is a {spec.task} on samples "
                f"of shape {list(data.input_shape)}: use "
                + (
                    "decision_boundary.png or curves.png"
                    if data.input_shape == (2,)
                    else "curves.png"
                )
            )
        target = self.predictor.resolve(session, job_id=job.id, owner_id=owner_id, ref=ref)
        key = (kind, *target.key)
        if self._cached(key):
            return key, None
        loaded = self.predictor.load(session, target=target)
        inputs, targets = job_samples(session, spec=spec)
        check_drawable(inputs, targets, what=f"job {job.id}'s dataset")
        inputs, targets = thin(inputs, targets, most=self.max_samples)
        title = _title(job, f"epoch {target.epoch} ({target.kind})")
        if kind == "decision_boundary":
            classes = 2 if spec.loss == "bce_with_logits" else data.num_classes or 2
            return key, _decision_boundary(loaded, inputs, targets, classes=classes, title=title)
        return key, _fit(loaded, inputs, targets.reshape(len(targets), -1), title=title)

    def _curves(self, session: Session, job: Job) -> tuple[Hashable, Draw | None]:
        key = ("curves", job.id, job.attempt, job.epoch)
        if self._cached(key):
            return key, None
        rows = repository.list_metrics(session, job_id=job.id)
        if not rows:
            raise Conflict(
                f"job {job.id} has no epochs yet (it is {job.status}); curves.png is drawn "
                "once its first epoch is stored"
            )
        if len(rows) > CURVE_EPOCHS:
            rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, CURVE_EPOCHS).round()]
        points = [EpochResult.model_validate(row) for row in rows]
        title = _title(job, f"epoch {rows[-1].epoch} of {job.epochs}")
        return key, lambda: figures.curves(points, title=title)

    def _data(self, session: Session, job: Job, spec: JobSpec) -> tuple[Hashable, Draw | None]:
        data = job_shape(spec)
        plottable_inputs(data.input_shape, what=f"job {job.id}'s dataset")
        # A job's data never changes: its spec (seed included) is fixed at submission.
        key = ("data", job.id)
        if self._cached(key):
            return key, None
        inputs, targets = job_samples(session, spec=spec)
        classes = data.num_classes if data.task == "classification" else None
        title = _title(job, f"{data.samples:,} samples")
        return key, self._dataset_draw(inputs, targets, classes=classes, title=title)

    def _samples(
        self, session: Session, job: Job, spec: JobSpec, ref: CheckpointRef | None
    ) -> tuple[Hashable, Draw | None]:
        data = job_shape(spec)
        if not data.images or spec.task != "classification":
            raise Conflict(
                f"samples.png draws a classifier's pictures with their labels; job {job.id} is "
                f"a {spec.task} on samples of shape {list(data.input_shape)}: use "
                + ("data.png or curves.png" if data.input_shape in ((1,), (2,)) else "curves.png")
            )
        try:
            target = self.predictor.resolve(session, job_id=job.id, owner_id=job.owner_id, ref=ref)
        except Conflict:
            if ref is not None:
                raise
            target = None  # no checkpoint yet: the labels alone
        key = ("samples", job.id) if target is None else ("samples", *target.key)
        if self._cached(key):
            return key, None
        pictures, labels = (t[:SAMPLE_PICTURES].numpy() for t in job_tensors(session, spec=spec))
        names = data.class_names or tuple(str(c) for c in range(data.num_classes or 0))
        truth = [names[label] for label in labels.tolist()]
        predicted = None
        detail = "no checkpoint yet"
        if target is not None:
            loaded = self.predictor.load(session, target=target)
            answers = loaded.infer(pictures.astype(np.float32)).predictions.tolist()
            predicted = [names[answer] for answer in answers]
            detail = f"epoch {target.epoch} ({target.kind}), wrong in red"
        title = _title(job, detail)
        return key, lambda: figures.samples(
            pictures=pictures, labels=truth, predicted=predicted, title=title
        )

    def _confusion(
        self, session: Session, job: Job, spec: JobSpec, ref: CheckpointRef | None
    ) -> tuple[Hashable, Draw | None]:
        data = job_shape(spec)
        if spec.task != "classification":
            raise Conflict(
                f"confusion.png counts a classifier's predictions by true class; job {job.id} "
                f"is a {spec.task}: use "
                + ("fit.png or curves.png" if _is_fit(spec, data.input_shape) else "curves.png")
            )
        if data.samples > self.max_evaluate_samples:
            raise Conflict(
                f"job {job.id}'s dataset has {data.samples:,} samples; confusion.png evaluates "
                f"at most {self.max_evaluate_samples:,} (SERVICE_MAX_EVALUATE_SAMPLES)"
            )
        target = self.predictor.resolve(session, job_id=job.id, owner_id=job.owner_id, ref=ref)
        key = ("confusion", *target.key)
        if self._cached(key):
            return key, None
        loaded = self.predictor.load(session, target=target)
        (inputs, targets), validation = held_out(session, spec=spec)
        matrix = confusion(loaded=loaded, target=target, inputs=inputs, targets=targets)
        names = data.class_names or tuple(str(c) for c in range(len(matrix)))
        split = "validation split" if validation else "training data (no validation split)"
        title = _title(
            job, f"epoch {target.epoch} ({target.kind}) on its {split}, {len(targets):,} samples"
        )
        return key, lambda: figures.confusion(matrix=matrix, names=names, title=title)

    # --- a sweep's curves ---

    def _sweep(
        self, session: Session, sweep_id: str, owner_id: str
    ) -> tuple[Hashable, Draw | None]:
        sweep = control.get(session, sweep_id=sweep_id, owner_id=owner_id)
        key = sweep_curves.cache_key(session, sweep=sweep)
        if self._cached(key):
            return key, None
        curves = sweep_curves.sweep_curves(session, sweep=sweep)
        return key, lambda: figures.sweep_curves(curves)

    # --- datasets ---

    def _uploaded(
        self, session: Session, dataset_id: str, owner_id: str
    ) -> tuple[Hashable, Draw | None]:
        row = datasets.get(session, dataset_id=dataset_id, owner_id=owner_id)
        what = f"dataset {row.id}"
        plottable_inputs(tuple(row.input_shape), what=what)
        key = ("dataset", row.id, row.sha256)
        if self._cached(key):
            return key, None
        inputs, targets = datasets.load_arrays(session, dataset_id=row.id)
        title = f"{row.filename}: {row.samples:,} samples"
        return key, self._dataset_draw(
            inputs.float().numpy(), targets.numpy(), classes=row.num_classes, title=title
        )

    def _spec(
        self, session: Session, dataset: specs.DatasetSpec, owner_id: str
    ) -> tuple[Hashable, Draw | None]:
        if isinstance(dataset, specs.UploadedData):
            return self._uploaded(session, dataset.id, owner_id)
        data = describe_dataset(dataset)
        what = f"the {dataset.kind} dataset"
        plottable_inputs(data.input_shape, what=what)
        if data.samples > self.max_samples:
            raise InvalidSpec(
                f"{what} has {data.samples:,} samples; a plot draws at most "
                f"{self.max_samples:,} (SERVICE_MAX_PLOT_SAMPLES): ask for fewer"
            )
        # Drawn the same way every time, so the picture can be cached.
        dataset = seeded(dataset)
        key = ("spec", hashlib.sha256(dataset.model_dump_json().encode()).hexdigest())
        if self._cached(key):
            return key, None
        inputs, targets = spec_samples(dataset)
        classes = data.num_classes if data.task == "classification" else None
        return key, self._dataset_draw(
            inputs, targets, classes=classes, title=f"{dataset.kind}: {data.samples:,} samples"
        )

    def _dataset_draw(
        self, inputs: np.ndarray, targets: np.ndarray, *, classes: int | None, title: str
    ) -> Draw:
        inputs = inputs.reshape(len(inputs), -1)
        if classes is None:
            targets = targets.reshape(len(targets), -1)
        check_drawable(inputs, targets, what="the dataset")
        inputs, targets = thin(inputs, targets, most=self.max_samples)
        return lambda: figures.dataset(inputs=inputs, targets=targets, classes=classes, title=title)


def _is_fit(spec: JobSpec, input_shape: tuple[int, ...]) -> bool:
    return spec.task == "regression" and input_shape == (1,)


def _title(job: Job, detail: str) -> str:
    return f"{job.name or job.id}: {detail}"


def _decision_boundary(
    loaded: LoadedNetwork, inputs: np.ndarray, labels: np.ndarray, *, classes: int, title: str
) -> Draw:
    grid = figures.plane_grid(inputs, steps=GRID_STEPS)
    points = grid.points
    predicted = np.concatenate(
        [
            loaded.infer(points[start : start + CHUNK_ROWS]).predictions
            for start in range(0, len(points), CHUNK_ROWS)
        ]
    )
    return lambda: figures.decision_boundary(
        inputs=inputs, labels=labels, grid=grid, predicted=predicted, classes=classes, title=title
    )


def _fit(loaded: LoadedNetwork, inputs: np.ndarray, targets: np.ndarray, *, title: str) -> Draw:
    low, high = figures.padded_range(inputs[:, 0], margin=0.02)
    xs = np.linspace(low, high, CURVE_STEPS, dtype=np.float32)
    fitted = loaded.infer(xs.reshape(-1, 1)).predictions.reshape(len(xs), -1)[:, 0]
    return lambda: figures.fit(inputs=inputs, targets=targets, xs=xs, fitted=fitted, title=title)
