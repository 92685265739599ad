"""Predict request bodies -> a float32 array, parsed once, never element by element.

JSON bodies are parsed by orjson and handed to NumPy in one call; `.npy` bodies are read with
`allow_pickle=False`. Shapes and the row limit are checked against the network once it is known
(`check_inputs`), finiteness with its forward pass (`check_finite`), with messages that say what
was expected and what came.
"""

import io
from dataclasses import dataclass

import numpy as np
import orjson

from service.errors import InvalidInput, UnsupportedMediaType
from service.inference import pictures
from service.inference.lookup import CheckpointRef, parse_ref
from service.inference.pictures import Pictures
from service.schemas import PredictIn

JSON = "application/json"
NPY = "application/x-npy"
# The fields PredictIn documents; all but `inputs` can come from the query string as well.
JSON_FIELDS = tuple(PredictIn.model_fields)
QUERY_FIELDS = tuple(name for name in JSON_FIELDS if name != "inputs")
NUMERIC_KINDS = "iuf"  # NumPy dtype kinds of numbers: signed, unsigned, floating


@dataclass(frozen=True)
class PredictRequest:
    inputs: np.ndarray | None  # as sent: not yet checked against the network's input shape
    checkpoint: CheckpointRef | None
    top_k: int | None
    # Pictures instead of inputs: decoded once the network says what size they must be.
    pictures: Pictures | None = None


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _whole(value: str | None) -> object:
    return int(value) if value is not None and value.isdigit() else value


def decode(
    body: bytes, *, content_type: str | None, checkpoint: str | None, top_k: str | None
) -> PredictRequest:
    """A JSON, .npy, picture or multipart body; `checkpoint` and `top_k` come from the query
    string, or for JSON and multipart from the body, which wins when it names them."""
    top_k_query = _whole(top_k)
    kind = media_type(content_type)
    if kind in pictures.IMAGE_TYPES or kind == pictures.MULTIPART:
        sent = pictures.read(body, media_type=kind, content_type=content_type or "")
        return PredictRequest(
            inputs=None,
            pictures=sent,
            checkpoint=parse_ref(sent.fields.get("checkpoint", checkpoint)),
            top_k=_top_k(_whole(sent.fields["top_k"]) if "top_k" in sent.fields else top_k_query),
        )
    if kind == NPY:
        return PredictRequest(
            inputs=_read_npy(body), checkpoint=parse_ref(checkpoint), top_k=_top_k(top_k_query)
        )
    if kind == JSON or kind.endswith("+json"):
        return _read_json(body, checkpoint=checkpoint, top_k=top_k_query)
    raise UnsupportedMediaType(
        f"Content-Type {content_type or '(none)'} is not readable here; send {JSON} "
        f'({{"inputs": [...]}}), {NPY} (a .npy array of shape [n, *input_shape]), or for a '
        "network trained on pictures image/png, image/jpeg or multipart/form-data"
    )


def _read_json(body: bytes, *, checkpoint: str | None, top_k: object) -> PredictRequest:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidInput('the body must be a JSON object: {"inputs": [[...], ...]}')
    unknown = sorted(set(document).difference(JSON_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(unknown)}; a predict body has {', '.join(JSON_FIELDS)}"
        )
    if "inputs" not in document:
        raise InvalidInput('inputs is missing: send {"inputs": [[...], ...]}, one entry per sample')
    inputs = document["inputs"]
    if not isinstance(inputs, list):
        raise InvalidInput("inputs must be a list of samples, e.g. [[0.1, -0.3], [0.5, 0.2]]")
    if not inputs:
        raise InvalidInput("inputs is empty; send at least one sample")
    # NumPy would read "1.5" as 1.5 and true as 1: check every entry, but only for a body that
    # holds a string, true, false or null at all, so the common all-numbers body skips it.
    if _may_hold_non_numbers(body, document) and _shape_of(inputs) is None:
        raise InvalidInput(_describe_bad_rows(inputs))
    return PredictRequest(
        inputs=_to_array(inputs),
        checkpoint=parse_ref(document.get("checkpoint", checkpoint)),
        top_k=_top_k(document.get("top_k", top_k)),
    )


def _may_hold_non_numbers(body: bytes, document: dict[str, object]) -> bool:
    """False only if the body's inputs are numbers alone; True may be a false alarm.

    Only single-byte searches, which run at memchr's speed (a pass that copied the body, or a
    search for a word, cost 10-30x as much on an 8 KB body): a string needs quotes beyond the
    field names' own, and true, false and null each hold an 'r' or an 'l', which no number and
    no field name does. A checkpoint named "final" or "latest" is a false alarm.
    """
    # Each field name has two quotes, and a checkpoint given by name two more.
    quotes = 2 * len(document) + (2 if isinstance(document.get("checkpoint"), str) else 0)
    position = -1
    for _ in range(quotes + 1):
        position = body.find(b'"', position + 1)
        if position < 0:
            break
    else:
        return True  # more quotes than the field names and the checkpoint's name have
    return b"r" in body or b"l" in body


def _to_array(inputs: list[object]) -> np.ndarray:
    """float32 in one NumPy call; beyond float32's range becomes inf, refused by check_inputs."""
    try:
        with np.errstate(over="ignore"):
            return np.array(inputs, dtype=np.float32)
    except (ValueError, TypeError, OverflowError) as exc:
        # Rare and slow: find the first sample that is not numbers, or not shaped like the first.
        raise InvalidInput(_describe_bad_rows(inputs)) from exc


def _shape_of(value: object) -> tuple[int, ...] | None:
    """A nested list's shape, or None if it holds anything but numbers or is ragged."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return ()
    if not isinstance(value, list) or not value:
        return None
    shapes = {_shape_of(item) for item in value}
    if len(shapes) != 1 or None in shapes:
        return None
    return (len(value), *next(iter(shapes)))  # type: ignore[misc]


def _describe_bad_rows(inputs: list[object]) -> str:
    first = _shape_of(inputs[0])
    for index, row in enumerate(inputs):
        shape = _shape_of(row)
        if shape is None:
            return (
                f"row {index} is not a number or a list of numbers, all of one shape: "
                f"{str(row)[:80]}"
            )
        if shape != first:
            return (
                f"row {index} has shape {list(shape)} but row 0 has shape {list(first or ())}; "
                "every sample must have the same shape"
            )
    return (
        "inputs must be numbers of float32's range: a list of samples, each a number or nested "
        "lists of numbers"
    )


def _read_npy(body: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError) as exc:
        raise InvalidInput(
            f"the body is not a readable .npy array (np.save, no pickled objects): {exc}"
        ) from exc
    if not isinstance(array, np.ndarray):
        raise InvalidInput("the body is an .npz archive; send one .npy array")
    if array.dtype.kind not in NUMERIC_KINDS:
        raise InvalidInput(f"the .npy array has dtype {array.dtype}; send numbers, e.g. float32")
    if array.ndim == 0 or len(array) == 0:
        raise InvalidInput("the .npy array holds no samples; send shape [n, *input_shape], n >= 1")
    return array


def _top_k(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"top_k must be a whole number of classes, 1 or more; got {value!r}")
    return value


def check_inputs(inputs: np.ndarray, *, input_shape: tuple[int, ...], max_rows: int) -> np.ndarray:
    """Float32 inputs of shape (n, *input_shape), at most `max_rows` rows. Whether they are
    finite is checked with the forward pass (LoadedNetwork.predict, check_finite), off the
    event loop."""
    if inputs.ndim == 1 and input_shape == (1,):
        # A flat list of numbers for a one-feature network: one number per sample.
        inputs = inputs.reshape(-1, 1)
    rows = len(inputs) if inputs.ndim else 0
    if rows > max_rows:
        raise InvalidInput(
            f"{rows} rows in one request; the limit is {max_rows} (SERVICE_MAX_PREDICT_ROWS): "
            "split them over several requests"
        )
    if inputs.shape[1:] != input_shape:
        expected = list(input_shape)
        raise InvalidInput(
            f"each input must have shape {expected}, got {list(inputs.shape[1:])} at row 0; "
            f"send a list of samples, each of shape {expected}"
        )
    array = inputs
    if array.dtype != np.float32 or not array.flags.c_contiguous:
        with np.errstate(over="ignore"):
            # A number beyond float32's range becomes inf here, and is refused just below.
            array = np.ascontiguousarray(inputs, dtype=np.float32)
    return array


def check_finite(inputs: np.ndarray) -> None:
    """InvalidInput naming the first number that is not finite (NaN, or beyond float32)."""
    finite = np.isfinite(inputs)
    if not finite.all():
        row, *index = (int(i) for i in np.argwhere(~finite)[0])
        raise InvalidInput(
            f"row {row} holds {inputs[(row, *index)]} at index {index}; inputs must be finite "
            "float32 numbers (|x| < 3.4e38)"
        )
