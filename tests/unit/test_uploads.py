import io
import pickle
import re

import numpy as np
import pytest

from service.errors import InvalidUpload
from service.image_uploads import ImageOptions
from service.training.shapes import DataShape
from service.uploads import ParsedUpload, parse_upload, upload_shape

MAX_BYTES = 10_000_000


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def parse(
    filename: str,
    content: bytes,
    *,
    options: ImageOptions | None = None,
    max_bytes: int = MAX_BYTES,
) -> ParsedUpload:
    return parse_upload(
        filename=filename,
        file=io.BytesIO(content),
        options=options or ImageOptions(),
        max_bytes=max_bytes,
    )


def parse_pair(filename: str, content: bytes) -> tuple[np.ndarray, np.ndarray]:
    parsed = parse(filename, content)
    return parsed.x, parsed.y


def shape_of(x: np.ndarray, y: np.ndarray) -> DataShape:
    return upload_shape(ParsedUpload(x=x, y=y, format="npz"))


def test_csv_with_a_target_column_anywhere() -> None:
    content = b"a,target,b\n1,0,2.5\n-1,2,0.5\n3,1,1e-3\n"
    x, y = parse_pair("data.csv", content)
    assert x.dtype == np.float32
    assert x.tolist() == [[1.0, 2.5], [-1.0, 0.5], [3.0, np.float32(1e-3)]]
    assert y.dtype == np.int64
    assert y.tolist() == [0, 2, 1]
    assert shape_of(x, y) == DataShape(
        samples=3, input_shape=(2,), task="classification", num_classes=3, target_shape=()
    )


def test_csv_with_real_valued_targets_is_regression() -> None:
    x, y = parse_pair("data.csv", b"\xef\xbb\xbfx,target\n0.5,1.25\n1,2\n\n")
    assert y.dtype == np.float32
    assert y.tolist() == [1.25, 2.0]
    assert shape_of(x, y) == DataShape(
        samples=2, input_shape=(1,), task="regression", num_classes=None, target_shape=(1,)
    )


def test_npz_of_float_images_stays_float() -> None:
    content = npz(x=np.zeros((4, 1, 3, 3), dtype=np.float64), y=np.array([0, 1, 1, 0]))
    x, y = parse_pair("images.npz", content)
    assert x.dtype == np.float32
    assert x.shape == (4, 1, 3, 3)
    assert shape_of(x, y) == DataShape(
        samples=4, input_shape=(1, 3, 3), task="classification", num_classes=2, target_shape=()
    )


def test_npz_with_several_regression_outputs() -> None:
    x, y = parse_pair("f.npz", npz(x=np.ones(5), y=np.full((5, 2), 0.5)))
    assert x.shape == (5, 1)
    assert shape_of(x, y).target_shape == (2,)


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("data.pkl", pickle.dumps({"x": [1]}), "looks like a Python pickle, which is never loaded"),
        (
            "data.npz",
            npz(x=np.array([{"a": 1}], dtype=object), y=np.array([0])),
            "cannot be read as plain numeric arrays",
        ),
        ("data.npz", b"PK\x03\x04 broken", "is not a readable zip archive"),
        ("data.npz", b"x,target\n1,0\n", "is not a zip archive, so not an NPZ or ZIP file"),
        (
            "data.npz",
            npz(inputs=np.ones((2, 2)), y=np.array([0, 1])),
            "but no x; expected an NPZ file",
        ),
        ("data.npz", npz(x=np.ones((3, 2)), y=np.array([0, 1])), "'x' has 3 samples but 'y' has 2"),
        ("data.npz", npz(x=np.array(["a", "b"]), y=np.array([0, 1])), "array 'x' has dtype <U1"),
        ("data.npz", npz(x=np.array([1.0, np.nan]), y=np.array([0, 1])), "array 'x' holds NaN"),
        ("data.csv", b"a,b\n1,2\n", "has no 'target' column"),
        (
            "data.csv",
            b"a,target\n1,0\n2,cat\n",
            "line 3, column 'target' of the CSV holds 'cat', not a number",
        ),
        ("data.csv", b"a,target\n1,0\nnan,1\n", "line 3, column 'a' of the CSV holds 'nan'"),
        ("data.csv", b"a,target\n1,0\n2\n", "line 3 of the CSV has 1 cells but the header has 2"),
        # A bare CR inside an unquoted field ends the line there (it escaped as csv.Error).
        ("data.csv", b"a,target\n1\r2,0\n", "line 2 of the CSV has 1 cells but the header has 2"),
        (
            "data.csv",
            b"a,target\n" + b"1" * 200_000 + b",0\n",
            "line 2 of the CSV cannot be read (field larger than field limit",
        ),
        ("data.csv", b"a,target\n", "has a header but no data rows"),
        ("data.csv", b"target\n1\n", "no features"),
        ("data.csv", b"", "is empty"),
        ("data.csv", b"\xff\xfe\x00garbage", "neither UTF-8 text nor a zip archive"),
    ],
)
def test_unreadable_uploads_say_what_was_wrong(filename: str, content: bytes, message: str) -> None:
    with pytest.raises(InvalidUpload, match=re.escape(message)):
        parse(filename, content)


def test_an_npz_that_inflates_past_the_limit_is_refused_before_inflating() -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros((1000, 10)), y=np.zeros(1000, dtype=np.int64))
    assert len(buffer.getvalue()) < 2000
    with pytest.raises(InvalidUpload, match="more than the 50,000 allowed"):
        parse("bomb.npz", buffer.getvalue(), max_bytes=50_000)


def test_negative_or_fractional_targets_are_regression() -> None:
    x = np.zeros((3, 2), dtype=np.float32)
    assert shape_of(x, np.array([-1, 0, 1])).task == "regression"
    assert shape_of(x, np.array([0.5, 0.0, 1.0])).task == "regression"


def test_a_csv_with_bare_cr_line_endings_is_read() -> None:
    x, y = parse_pair("old-mac.csv", b"a,target\r1.5,0\r2.5,1\r")
    np.testing.assert_array_equal(x, np.array([[1.5], [2.5]], dtype=np.float32))
    np.testing.assert_array_equal(y, np.array([0, 1]))
