"""Decoding predict bodies: JSON and .npy into float32, and the checks against the network."""

import numpy as np
import pytest

from service.errors import InvalidInput, UnsupportedMediaType
from service.inference.decoding import check_finite, check_inputs, decode
from tests.predictions import npy


def json_body(body: bytes, *, checkpoint: str | None = None, top_k: str | None = None):  # type: ignore[no-untyped-def]
    return decode(body, content_type="application/json", checkpoint=checkpoint, top_k=top_k)


def test_json_becomes_float32_in_the_shape_sent() -> None:
    request = json_body(b'{"inputs": [[1, 2.5], [3, -4e-3]], "checkpoint": 7, "top_k": 2}')

    assert request.inputs.dtype == np.float32
    np.testing.assert_array_equal(request.inputs, np.array([[1, 2.5], [3, -4e-3]], np.float32))
    assert (request.checkpoint, request.top_k) == (7, 2)


def test_the_body_wins_over_the_query_and_the_query_fills_in() -> None:
    named = json_body(b'{"inputs": [[1]], "checkpoint": "final"}', checkpoint="3", top_k="2")
    bare = json_body(b'{"inputs": [[1]]}', checkpoint="3", top_k="2")

    assert (named.checkpoint, named.top_k) == ("final", 2)
    assert (bare.checkpoint, bare.top_k) == (3, 2)


def test_content_type_parameters_and_json_suffixes_are_accepted() -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        request = decode(
            b'{"inputs": [[1]]}', content_type=content_type, checkpoint=None, top_k=None
        )
        assert request.inputs.shape == (1, 1)


@pytest.mark.parametrize("content_type", [None, "text/plain", "image/gif"])
def test_other_content_types_are_unsupported(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match="application/x-npy"):
        decode(b"{}", content_type=content_type, checkpoint=None, top_k=None)


def test_npy_keeps_its_dtype_until_checked_then_becomes_float32() -> None:
    array = np.arange(6, dtype=np.int16).reshape(3, 2)
    request = decode(npy(array), content_type="application/x-npy", checkpoint="best", top_k=None)

    checked = check_inputs(request.inputs, input_shape=(2,), max_rows=10)

    assert request.checkpoint == "best"
    assert checked.dtype == np.float32
    np.testing.assert_array_equal(checked, array.astype(np.float32))


def test_npy_with_pickled_objects_is_never_unpickled() -> None:
    body = npy(np.array([[object()]], dtype=object))
    with pytest.raises(InvalidInput, match=r"not a readable \.npy array"):
        decode(body, content_type="application/x-npy", checkpoint=None, top_k=None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"inputs": [["1.5", 2]]}', r"row 0 is not a number or a list of numbers"),
        (b'{"inputs": [[1, 2], [false, 2]]}', r"row 1 is not a number"),
        (b'{"inputs": [[1e-05, true]]}', r"row 0 is not a number"),
        (b'{"inputs":\n [[2.5E+3, null]], "checkpoint": "latest"}', r"row 0 is not a number"),
        (b'{"inputs": [[-1, 2], [3, false]], "top_k": 1}', r"row 1 is not a number"),
        (b'{"inputs": [[1, 2], [{}, 2]]}', r"row 1 is not a number"),
        (b'{"inputs": [[1, 2], [[1], 2]]}', r"row 1 is not a number"),
        (b'{"inputs": [[1, 2], [1, 2, 3]]}', r"row 1 has shape \[3\] but row 0 has shape \[2\]"),
        (b'{"inputs": [[1, 2]], "checkpoint": 0}', r"checkpoint 0 is not a checkpoint"),
        (b'{"inputs": [[1, 2]], "checkpoint": true}', r"checkpoint True is not a checkpoint"),
        (b'{"inputs": [[1, 2]], "top_k": "2"}', r"top_k must be a whole number"),
        (b'{"inputs": {"a": 1}}', r"inputs must be a list of samples"),
        (b'"inputs"', r"the body must be a JSON object"),
        (b"", r"the body is not valid JSON"),
    ],
)
def test_bad_json_bodies_say_what_was_wrong(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        json_body(body)


def test_a_checkpoint_named_by_a_string_still_gets_its_values_checked() -> None:
    # Quotes from the checkpoint's name must not hide a string among the inputs.
    with pytest.raises(InvalidInput, match="row 0 is not a number"):
        json_body(b'{"inputs": [["x", 1]], "checkpoint": "best"}')
    request = json_body(b'{"inputs": [[0.5, 1]], "checkpoint": "best"}')
    assert request.checkpoint == "best"


@pytest.mark.parametrize("name", ["final", "latest"])
def test_a_checkpoint_name_that_looks_like_a_literal_is_still_read(name: str) -> None:
    """Their 'l' sends the body through the exact check, which finds only numbers."""
    request = json_body(f'{{"checkpoint": "{name}", "inputs": [[0.5, -1e3]]}}'.encode())
    assert request.checkpoint == name
    np.testing.assert_array_equal(request.inputs, np.array([[0.5, -1000.0]], dtype=np.float32))


def test_one_feature_networks_take_a_flat_list() -> None:
    checked = check_inputs(np.array([1.0, 2.0, 3.0]), input_shape=(1,), max_rows=10)
    assert checked.shape == (3, 1)


def test_shape_rows_and_finiteness_are_checked_against_the_network() -> None:
    with pytest.raises(InvalidInput, match=r"each input must have shape \[1, 2, 2\], got \[4\]"):
        check_inputs(np.zeros((3, 4)), input_shape=(1, 2, 2), max_rows=10)
    with pytest.raises(InvalidInput, match=r"11 rows in one request; the limit is 10"):
        check_inputs(np.zeros((11, 2)), input_shape=(2,), max_rows=10)
    with pytest.raises(InvalidInput, match=r"row 2 holds -inf at index \[1\]"):
        check_finite(
            check_inputs(np.array([[0, 0], [0, 0], [0, -np.inf]]), input_shape=(2,), max_rows=10)
        )
    # Beyond float32's range: inf once converted to float32.
    with pytest.raises(InvalidInput, match=r"row 0 holds inf at index \[0\]"):
        check_finite(check_inputs(np.array([[1e300, 0]]), input_shape=(2,), max_rows=10))
    with pytest.raises(InvalidInput, match=r"row 1 holds nan at index \[0, 1\]"):
        check_finite(np.array([[[0, 0]], [[0, np.nan]]], dtype=np.float32))
    check_finite(np.array([[3.4e38, -1e-45]], dtype=np.float32))
