"""Uploads of pictures: ZIPs of class folders and uint8 NPZ arrays, and each refusal."""

import io
import re
import zipfile

import numpy as np
import pytest
import safetensors.numpy
from PIL import Image

from service import pixels
from service.datasets import encode_parts
from service.errors import InvalidUpload
from service.image_uploads import ImageOptions
from service.training.shapes import DataShape
from service.uploads import upload_shape
from tests.images import encode, picture, png, zip_of
from tests.unit.test_uploads import npz, parse


def test_a_zip_of_class_folders_is_sorted_by_folder_then_path() -> None:
    members = {
        "pictures/dog/b.png": png(seed=1),
        "pictures/cat/2.jpg": encode(picture(seed=2), format="JPEG"),
        "pictures/dog/a.png": png(seed=3),
        "pictures/cat/1.png": png(seed=4),
        "__MACOSX/pictures/cat/._1.png": b"resource fork",
        "pictures/.DS_Store": b"finder",
    }
    parsed = parse("pets.zip", zip_of(members))

    assert (parsed.format, parsed.class_names, parsed.x.dtype) == ("zip", ("cat", "dog"), np.uint8)
    assert parsed.x.shape == (4, 3, 6, 5)
    assert parsed.y.tolist() == [0, 0, 1, 1]
    # Sorted within a class by path: cat/1.png, cat/2.jpg, dog/a.png, dog/b.png.
    np.testing.assert_array_equal(parsed.x[0], picture(seed=4).transpose(2, 0, 1))
    np.testing.assert_array_equal(parsed.x[2], picture(seed=3).transpose(2, 0, 1))
    np.testing.assert_array_equal(parsed.x[3], picture(seed=1).transpose(2, 0, 1))
    assert upload_shape(parsed) == DataShape(
        samples=4,
        input_shape=(3, 6, 5),
        task="classification",
        num_classes=2,
        target_shape=(),
        class_names=("cat", "dog"),
        images=True,
    )


def test_grey_pictures_give_one_channel_and_grey_mixed_with_colour_three() -> None:
    grey = {"a/1.png": png(seed=1, mode="L"), "b/1.png": png(seed=2, mode="L")}
    assert parse("grey.zip", zip_of(grey)).x.shape == (2, 1, 6, 5)

    mixed = parse("mixed.zip", zip_of({**grey, "b/2.png": png(seed=3)})).x
    assert mixed.shape == (3, 3, 6, 5)
    for channel in range(3):
        np.testing.assert_array_equal(mixed[0, channel], picture(seed=1, mode="L"))


def test_image_size_and_channels_convert_as_pillow_does() -> None:
    members = {"a/1.png": png(seed=1, size=(10, 7)), "b/1.png": png(seed=2, size=(4, 4))}
    parsed = parse("sizes.zip", zip_of(members), options=ImageOptions(size=8, channels=1))

    assert parsed.x.shape == (2, 1, 8, 8)
    expected = Image.fromarray(picture(seed=1, size=(10, 7))).convert("L")
    expected = expected.resize((8, 8), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(parsed.x[0, 0], np.asarray(expected))


CAT = {"cat/1.png": png(seed=1)}


@pytest.mark.parametrize(
    ("members", "folders", "message"),
    [
        (
            {**CAT, "dog/1.png": b"\x89PNG\r\n\x1a\n broken"},
            (),
            "dog/1.png cannot be read: it is not a PNG or JPEG image",
        ),
        (
            {**CAT, "dog/1.png": png(seed=2)[:60]},
            (),
            "dog/1.png cannot be read: its pixels cannot be decoded",
        ),
        (
            {**CAT, "dog/1.png": png(seed=2, size=(7, 7))},
            (),
            "dog/1.png is 7x7 pixels but cat/1.png is 5x6; give image_size",
        ),
        ({**CAT, "dog/notes.txt": b"hello"}, (), "dog/notes.txt is not a PNG or JPEG file"),
        ({**CAT, "dog/1.png": png(seed=2)}, ("bird/",), "the class folder bird/ holds no pictures"),
        ({**CAT, "loose.png": png(seed=2)}, (), "loose.png is not inside a class folder"),
        (CAT, (), "the ZIP has one class folder (cat/); a classifier needs two or more"),
        ({}, (), "the ZIP holds no files"),
    ],
)
def test_a_bad_zip_names_the_file_at_fault(
    members: dict[str, bytes], folders: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InvalidUpload, match=re.escape(message)):
        parse("pictures.zip", zip_of(members, folders=folders))


def test_a_zip_bomb_is_refused_by_its_declared_sizes_before_inflating() -> None:
    members = {f"{c}/{i}.png": bytes(100_000) for c in ("a", "b") for i in range(3)}
    content = zip_of(members)
    assert len(content) < 5_000
    with pytest.raises(InvalidUpload, match="declare 600,000 bytes uncompressed, more than"):
        parse("bomb.zip", content, max_bytes=500_000)


def test_pictures_that_decode_past_the_limit_are_refused() -> None:
    # Small PNGs of a flat colour declare little but decode to 3 x 300 x 300 bytes each.
    flat = encode(np.zeros((300, 300, 3), dtype=np.uint8))
    members = {f"{c}/{i}.png": flat for c in ("a", "b") for i in range(2)}
    with pytest.raises(InvalidUpload, match=r"more than 600,000 bytes .* reached at b/0\.png"):
        parse("flat.zip", zip_of(members), max_bytes=600_000)


def test_a_member_larger_than_it_declares_is_refused() -> None:
    content = bytearray(zip_of({"a/1.png": png(seed=1, size=(2, 2)), "b/1.png": png(seed=2)}))
    with zipfile.ZipFile(io.BytesIO(bytes(content))) as archive:
        info = archive.getinfo("b/1.png")
    # Shrink the size b/1.png declares in the central directory (and its local header).
    declared = info.file_size.to_bytes(4, "little")
    forged = (info.file_size - 10).to_bytes(4, "little")
    content = bytearray(bytes(content).replace(declared, forged))
    with pytest.raises(InvalidUpload, match=r"b/1\.png"):
        parse("forged.zip", bytes(content))


LABELS = np.array([0, 1, 1, 0, 2])


@pytest.mark.parametrize(
    "layout", ["nchw", "nhwc", "nhw"], ids=["channels-first", "channels-last", "grey"]
)
def test_uint8_npz_pictures_in_any_layout_are_stored_channels_first(layout: str) -> None:
    rng = np.random.default_rng(0)
    channels = 1 if layout == "nhw" else 3
    stored = rng.integers(0, 256, (5, channels, 4, 6), dtype=np.uint8)
    x = {"nchw": stored, "nhwc": stored.transpose(0, 2, 3, 1), "nhw": stored[:, 0]}[layout]
    names = np.array(["circle", "square", "triangle"])
    parsed = parse("pictures.npz", npz(x=x, y=LABELS, class_names=names))

    np.testing.assert_array_equal(parsed.x, stored)
    assert parsed.class_names == ("circle", "square", "triangle")
    assert upload_shape(parsed).input_shape == (channels, 4, 6)


def test_npz_pictures_convert_channels_and_size_as_pillow_does() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 9, 3), dtype=np.uint8)
    parsed = parse("p.npz", npz(x=rgb, y=LABELS), options=ImageOptions(size=4, channels=1))

    assert parsed.x.shape == (5, 1, 4, 4)
    for index in range(5):
        expected = pixels.to_array(Image.fromarray(rgb[index]), channels=1, size=(4, 4))
        np.testing.assert_array_equal(parsed.x[index], expected)


def test_npz_pictures_resized_past_the_limit_are_refused() -> None:
    x = np.zeros((10, 4, 4), dtype=np.uint8)
    with pytest.raises(InvalidUpload, match=r"image_size 100 makes the pictures 100,000 bytes"):
        parse("p.npz", npz(x=x, y=np.arange(10)), options=ImageOptions(size=100), max_bytes=50_000)


@pytest.mark.parametrize(
    ("arrays", "options", "message"),
    [
        (
            {"x": np.zeros((5, 4, 4, 4), dtype=np.uint8), "y": LABELS},
            ImageOptions(),
            "array 'x' of shape [5, 4, 4, 4] has no axis of 1 or 3 channels",
        ),
        (
            {"x": np.zeros((5, 2), dtype=np.float32), "y": LABELS},
            ImageOptions(size=8),
            "image_size and channels apply to pictures",
        ),
        (
            {"x": np.zeros((5, 4, 4), dtype=np.uint8), "y": LABELS, "class_names": np.array(["a"])},
            ImageOptions(),
            "array 'class_names' names 1 classes but 'y' has 3 (0..2)",
        ),
    ],
)
def test_bad_npz_pictures_say_what_is_expected(
    arrays: dict[str, np.ndarray], options: ImageOptions, message: str
) -> None:
    with pytest.raises(InvalidUpload, match=re.escape(message)):
        parse("p.npz", npz(**arrays), options=options)


def test_stored_arrays_read_back_as_safetensors() -> None:
    x = np.arange(60, dtype=np.uint8).reshape(5, 1, 3, 4)
    y = np.array([0.5, 1.5, 2.5, 3.5, 4.5], dtype=np.float32)
    # What store_upload writes: the header, then each array's bytes as they are.
    loaded = safetensors.numpy.load(b"".join(encode_parts({"x": x, "y": y})))
    np.testing.assert_array_equal(loaded["x"], x)
    np.testing.assert_array_equal(loaded["y"], y)
