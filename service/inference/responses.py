"""Outputs -> the predict response body, encoded once by orjson (NumPy arrays included)."""

from typing import Any

import numpy as np
import orjson

from service.errors import InvalidInput
from service.inference.loading import Outputs
from service.inference.lookup import Target

OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def checkpoint_out(target: Target) -> dict[str, Any]:
    return {"epoch": target.epoch, "kind": target.kind}


def top_k_out(probabilities: np.ndarray, *, k: int) -> list[list[dict[str, Any]]]:
    """Per row, the k most probable classes, most probable first (ties: lower class first)."""
    classes = probabilities.shape[1]
    if k > classes:
        raise InvalidInput(f"top_k is {k} but the network chooses among {classes} classes")
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [{"class": int(c), "probability": row[c]} for c in best]
        for row, best in zip(probabilities, order, strict=True)
    ]


def encode(
    outputs: Outputs,
    *,
    target: Target,
    top_k: int | None,
    class_names: tuple[str, ...] | None = None,
) -> bytes:
    """The response body; `class_names` adds `labels`, each prediction's class name."""
    predictions = outputs.predictions
    if outputs.probabilities is None:
        if top_k is not None:
            raise InvalidInput("top_k applies to classification; this job is a regression")
        if predictions.shape[1:] == (1,):
            # One output: a number per sample, not a list of one.
            predictions = predictions.reshape(-1)
    body: dict[str, Any] = {"predictions": np.ascontiguousarray(predictions)}
    if class_names is not None:
        body["labels"] = [class_names[index] for index in predictions.tolist()]
    if outputs.probabilities is not None:
        body["probabilities"] = np.ascontiguousarray(outputs.probabilities)
        if top_k is not None:
            body["top_k"] = top_k_out(outputs.probabilities, k=top_k)
    body["checkpoint"] = checkpoint_out(target)
    return orjson.dumps(body, option=OPTIONS)
