"""/v1/jobs/{id}/predict and /v1/jobs/{id}/evaluate: a trained job's network in eval mode."""

import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from service.api.deps import Caller, PredictorDep, SettingsDep, caller_of
from service.api.errors import responses
from service.api.telemetry import Telemetry
from service.inference.decoding import JSON, NPY, QUERY_FIELDS
from service.inference.evaluation import evaluate_job
from service.inference.pictures import IMAGE_TYPES, MULTIPART
from service.inference.predictor import Predictor
from service.schemas import (
    EvaluateIn,
    EvaluateOut,
    PredictIn,
    PredictOut,
)

router = APIRouter(prefix="/v1/jobs", tags=["predictions"])


def _query_parameter(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A PredictIn field as a query parameter: absent rather than null when not given."""
    description = f"{schema['description']} A JSON body's field wins."
    choices = [choice for choice in schema["anyOf"] if choice != {"type": "null"}]
    value_schema = choices[0] if len(choices) == 1 else {"anyOf": choices}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": value_schema,
        "description": description,
    }


# The route reads its body (orjson straight into NumPy), query and Content-Type itself, so they
# are described here, from PredictIn: FastAPI's per-parameter validation would cost more than
# the rest of a one-row prediction (see api/deps.py).
_PREDICT_IN = PredictIn.model_json_schema()
PREDICT_OPENAPI: dict[str, Any] = {
    "parameters": [
        _query_parameter(name, _PREDICT_IN["properties"][name]) for name in QUERY_FIELDS
    ],
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": _PREDICT_IN},
            NPY: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "A .npy array (np.save) of shape [n, *input_shape]; "
                    "pass checkpoint and top_k as query parameters.",
                }
            },
            **{
                picture: {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": "One picture, for a network trained on pictures; "
                        "resized and converted as the training pictures were.",
                    }
                }
                for picture in IMAGE_TYPES
            },
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One part per picture, in order (any field name).",
                        },
                        "checkpoint": {"type": "string"},
                        "top_k": {"type": "integer", "minimum": 1},
                    },
                }
            },
        },
    },
}


async def predict(job_id: str, request: Request, caller: Caller) -> Response:
    """Predictions for a batch of samples, from a checkpoint in eval mode (default: best, else
    latest). Works while the job runs. JSON (`{"inputs": [...]}`) or a `.npy` array."""
    predictor: Predictor = request.app.state.predictor
    query = request.query_params if request.scope["query_string"] else {}
    answer = await predictor.predict(
        job_id=job_id,
        owner_id=caller.id,
        body=await request.body(),
        content_type=request.headers.get("content-type"),
        checkpoint=query.get("checkpoint"),
        top_k=query.get("top_k"),
    )
    return Response(answer, media_type=JSON)


class PredictRoute(APIRoute):
    """The predict route: declared, and so documented, like any other, but served without
    FastAPI's per-request machinery (solving dependencies, validating parameters, its exit
    stacks and exception wrappers), which cost more than a one-row prediction itself: the
    endpoint reads its body, query and headers on its own, and the one thing it needs
    beforehand, the caller's key, is resolved here as the `Caller` dependency resolves it.
    Errors still reach the app's handlers, and every call is timed for /metrics. Measured
    against the same endpoint as an ordinary route in bench/predict_http.py (api/deps.py has
    the numbers)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)  # 405, as from any route
            return
        started = time.perf_counter()
        request = Request(scope, receive)
        try:
            authorization = request.headers.get("authorization")
            caller = await caller_of(request.app, authorization=authorization)
            response = await predict(scope["path_params"]["job_id"], request, caller)
            await response(scope, receive, send)
        finally:
            telemetry: Telemetry = request.app.state.telemetry
            telemetry.prediction_seconds.observe(time.perf_counter() - started)


def add_predict_route(app: FastAPI) -> None:
    """Registers predict on the app itself, ahead of every router: FastAPI matches the routes
    of an included router with about a hundred more Python calls per request than its own."""
    app.router.add_api_route(
        f"{router.prefix}/{{job_id}}/predict",
        predict,
        methods=["POST"],
        tags=["predictions"],
        response_model=PredictOut,
        responses=responses(404, 409, 415, 422),
        openapi_extra=PREDICT_OPENAPI,
        route_class_override=PredictRoute,
    )


@router.post("/{job_id}/evaluate", response_model=EvaluateOut, responses=responses(404, 409, 422))
async def evaluate(
    job_id: str, body: EvaluateIn, caller: Caller, settings: SettingsDep, predictor: PredictorDep
) -> EvaluateOut:
    """Loss and task metrics of a checkpoint on a labelled dataset: accuracy, per-class accuracy
    and the confusion matrix for classification; mse, mae and r2 for regression."""
    return await evaluate_job(
        predictor=predictor,
        job_id=job_id,
        owner_id=caller.id,
        dataset=body.dataset,
        ref=body.checkpoint,
        max_samples=settings.max_evaluate_samples,
    )
