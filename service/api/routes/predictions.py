"""/v1/jobs/{id}/predict and /v1/jobs/{id}/evaluate: a trained job's network in eval mode."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from service.api.deps import Caller, ReadSession, SettingsDep
from service.api.errors import responses
from service.inference.evaluation import evaluate_job
from service.inference.predictor import Predictor
from service.inference.requests import JSON, NPY
from service.schemas import EvaluateIn, EvaluateOut, PredictIn, PredictOut

router = APIRouter(prefix="/v1/jobs", tags=["predictions"])


async def _predictor(request: Request) -> Predictor:
    # async: a plain function dependency would cost a thread hand-off on every request.
    predictor: Predictor = request.app.state.predictor
    return predictor


PredictorDep = Annotated[Predictor, Depends(_predictor)]

# The route reads its body (orjson straight into NumPy), query and Content-Type itself, so they
# are described here: FastAPI's per-parameter validation would cost more than the rest of a
# one-row prediction.
PREDICT_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "checkpoint",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "default": "best, else latest"},
            "description": "best, final, latest or an epoch number; a JSON body's field wins.",
        },
        {
            "name": "top_k",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1},
            "description": "Classification: each sample's k likeliest classes; a JSON body's "
            "field wins.",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": PredictIn.model_json_schema()},
            NPY: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "A .npy array (np.save) of shape [n, *input_shape]; "
                    "pass checkpoint and top_k as query parameters.",
                }
            },
        },
    },
}


@router.post(
    "/{job_id}/predict",
    response_model=PredictOut,
    responses=responses(404, 409, 415, 422),
    openapi_extra=PREDICT_OPENAPI,
)
async def predict(job_id: str, request: Request, caller: Caller) -> Response:
    """Predictions for a batch of samples, from a checkpoint in eval mode (default: best, else
    latest). Works while the job runs. JSON (`{"inputs": [...]}`) or a `.npy` array."""
    predictor: Predictor = request.app.state.predictor
    answer = await predictor.predict(
        job_id=job_id,
        owner_id=caller.id,
        body=await request.body(),
        content_type=request.headers.get("content-type"),
        checkpoint=request.query_params.get("checkpoint"),
        top_k=request.query_params.get("top_k"),
    )
    return Response(answer, media_type=JSON)


@router.post("/{job_id}/evaluate", response_model=EvaluateOut, responses=responses(404, 409, 422))
def evaluate(
    job_id: str,
    body: EvaluateIn,
    caller: Caller,
    session: ReadSession,
    settings: SettingsDep,
    predictor: PredictorDep,
) -> EvaluateOut:
    """Loss and task metrics of a checkpoint on a labelled dataset: accuracy, per-class accuracy
    and the confusion matrix for classification; mse, mae and r2 for regression."""
    return evaluate_job(
        session,
        predictor=predictor,
        job_id=job_id,
        owner_id=caller.id,
        dataset=body.dataset,
        ref=body.checkpoint,
        max_samples=settings.max_evaluate_samples,
    )
