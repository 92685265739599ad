"""PNG plots: a job's curves, decision regions, fitted curve and data; a dataset's points."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from service.api.deps import Caller
from service.api.errors import responses
from service.inference.lookup import parse_ref
from service.plots.plotter import JobPlot, Plot, Plotter
from service.schemas import CHECKPOINT_REF_PATTERN
from service.specs import DatasetSpec

router = APIRouter(tags=["plots"])

PNG = "image/png"
CHECKPOINT_QUERY = Query(
    # Documented, and checked by parse_ref, whose 422 says what a ref can be.
    json_schema_extra={"pattern": CHECKPOINT_REF_PATTERN},
    description="best, final, latest or an epoch; default best, else latest",
)


def _plotter(request: Request) -> Plotter:
    plotter: Plotter = request.app.state.plotter
    return plotter


PlotterDep = Annotated[Plotter, Depends(_plotter)]


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


async def _job_plot(
    plotter: Plotter, kind: JobPlot, *, job_id: str, caller_id: str, checkpoint: str | None
) -> Response:
    ref = parse_ref(checkpoint) if checkpoint is not None else None
    return png(await plotter.job_plot(kind, job_id=job_id, owner_id=caller_id, ref=ref))


@router.get(
    "/v1/jobs/{job_id}/plots/curves.png",
    response_class=Response,
    responses=png_responses("Loss and accuracy, training and validation, by epoch.", 404, 409),
)
async def curves(job_id: str, caller: Caller, plotter: PlotterDep) -> Response:
    """The job's learning curves so far; 409 before its first epoch."""
    return await _job_plot(plotter, "curves", job_id=job_id, caller_id=caller.id, checkpoint=None)


@router.get(
    "/v1/jobs/{job_id}/plots/decision_boundary.png",
    response_class=Response,
    responses=png_responses(
        "The class the network predicts over the plane, with the job's points on it.", 404, 409
    ),
)
async def decision_boundary(
    job_id: str,
    caller: Caller,
    plotter: PlotterDep,
    checkpoint: Annotated[str | None, CHECKPOINT_QUERY] = None,
) -> Response:
    """The tutorials' plot_model, from a checkpoint in eval mode: for a classification job on
    2 input features (409 otherwise, or before its first checkpoint)."""
    return await _job_plot(
        plotter, "decision_boundary", job_id=job_id, caller_id=caller.id, checkpoint=checkpoint
    )


@router.get(
    "/v1/jobs/{job_id}/plots/fit.png",
    response_class=Response,
    responses=png_responses("The job's points and the network's curve through them.", 404, 409),
)
async def fit(
    job_id: str,
    caller: Caller,
    plotter: PlotterDep,
    checkpoint: Annotated[str | None, CHECKPOINT_QUERY] = None,
) -> Response:
    """The fitted curve of a regression on 1 input feature with 1 output (409 otherwise)."""
    return await _job_plot(
        plotter, "fit", job_id=job_id, caller_id=caller.id, checkpoint=checkpoint
    )


@router.get(
    "/v1/jobs/{job_id}/plots/data.png",
    response_class=Response,
    responses=png_responses("The job's own samples, as its worker drew them.", 404, 409),
)
async def job_data(job_id: str, caller: Caller, plotter: PlotterDep) -> Response:
    """The tutorials' plot_data for the job's dataset: 1 or 2 input features (409 otherwise)."""
    return await _job_plot(plotter, "data", job_id=job_id, caller_id=caller.id, checkpoint=None)


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
