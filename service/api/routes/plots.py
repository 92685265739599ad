"""PNG plots: a job's curves, decision regions, fitted curve and data; a dataset's points."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import Response

from service.api.deps import Caller, PlotterDep
from service.api.errors import responses
from service.inference.lookup import parse_ref
from service.plots.plotter import JobPlot, Plot
from service.schemas import CHECKPOINT_REF_PATTERN
from service.specs import DatasetSpec

router = APIRouter(tags=["plots"])

PNG = "image/png"
JOB_PLOTS = """The job's plots, by name:

- `curves`: loss and accuracy, training and validation, by epoch; 409 before its first epoch.
- `decision_boundary`: the tutorials' plot_model, the class the network predicts over the plane
  with the job's points on it, from a checkpoint in eval mode: for a classification job on
  2 input features (409 otherwise, or before its first checkpoint).
- `fit`: the job's points and the network's curve through them, from a checkpoint: for a
  regression on 1 input feature with 1 output (409 otherwise).
- `data`: the tutorials' plot_data for the job's own samples, as its worker drew them: 1 or 2
  input features (409 otherwise).
- `samples`: a classifier on pictures: its first 36 pictures with their labels, and, once it
  has a checkpoint, the network's predictions, wrong ones in red (409 for other jobs).
- `confusion`: a classifier's confusion matrix (true classes down, predicted across, class
  names as labels), from a checkpoint, on the job's validation split, or on its training data
  when it has none (the title says which); 409 for a regression or before its first checkpoint."""


def png_responses(description: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        **responses(*statuses),
        200: {
            "content": {PNG: {"schema": {"type": "string", "format": "binary"}}},
            "description": f"{description} X-Plot-Cache says whether it was drawn (miss) or "
            "served from the cache (hit).",
            "headers": {"X-Plot-Cache": {"schema": {"type": "string", "enum": ["hit", "miss"]}}},
        },
    }


def png(plot: Plot) -> Response:
    return Response(
        plot.png,
        media_type=PNG,
        headers={"X-Plot-Cache": "hit" if plot.cached else "miss", "Cache-Control": "no-cache"},
    )


@router.get(
    "/v1/jobs/{job_id}/plots/{name}.png",
    response_class=Response,
    responses=png_responses("The plot, drawn for the job.", 404, 409),
    description=JOB_PLOTS,
)
async def job_plot(
    job_id: str,
    name: Annotated[
        JobPlot,
        Path(description="Which plot: curves, decision_boundary, fit, data, samples, confusion"),
    ],
    caller: Caller,
    plotter: PlotterDep,
    checkpoint: Annotated[
        str | None,
        Query(
            # Documented, and checked by parse_ref, whose 422 says what a ref can be.
            json_schema_extra={"pattern": CHECKPOINT_REF_PATTERN},
            description="decision_boundary, fit, samples and confusion: best, final, latest or "
            "an epoch; default best, else latest",
        ),
    ] = None,
) -> Response:
    # curves and data are drawn from the job's epochs and samples: a checkpoint is ignored.
    ref = parse_ref(checkpoint) if checkpoint is not None and name.from_checkpoint else None
    return png(await plotter.job_plot(name, job_id=job_id, owner_id=caller.id, ref=ref))


@router.get(
    "/v1/sweeps/{sweep_id}/plots/curves.png",
    response_class=Response,
    responses=png_responses("The sweep's curves.", 404, 409),
)
async def sweep_curves(sweep_id: str, caller: Caller, plotter: PlotterDep) -> Response:
    """Every trial's curve of the sweep's metric, by epoch, overlaid; each labelled by the
    params that differ between the trials (a trial that did not succeed is dotted and says how
    it ended). 409 before any trial has an epoch."""
    return png(await plotter.sweep_plot(sweep_id=sweep_id, owner_id=caller.id))


@router.get(
    "/v1/datasets/{dataset_id}/plot.png",
    response_class=Response,
    responses=png_responses("The uploaded dataset's samples.", 404, 409),
)
async def uploaded_dataset(dataset_id: str, caller: Caller, plotter: PlotterDep) -> Response:
    """Points coloured by class (or value) for 2 features, y against x for 1 (409 otherwise)."""
    return png(await plotter.dataset_plot(dataset_id=dataset_id, owner_id=caller.id))


@router.post(
    "/v1/datasets/plot.png",
    response_class=Response,
    responses=png_responses("The dataset the spec describes.", 404, 409, 422),
)
async def dataset_spec(
    dataset: Annotated[DatasetSpec, Body(description="A job spec's `dataset`.")],
    caller: Caller,
    plotter: PlotterDep,
) -> Response:
    """Draw a dataset spec before training on it: generated (without a seed of its own it is
    drawn with seed 0), inline, or an uploaded dataset's id."""
    return png(await plotter.spec_plot(dataset=dataset, owner_id=caller.id))
