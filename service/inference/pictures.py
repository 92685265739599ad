"""Predict from pictures: an image/png or image/jpeg body (one picture), or multipart/form-data
(several, in order; text fields `checkpoint` and `top_k` beside them).

Each picture is decoded, converted to the network's channels and resized to its height and width
by `service.pixels`, exactly as an upload's pictures were, then goes the way of a .npy of uint8
pixels: to float32, then the job's scaling and normalisation in LoadedNetwork.forward.
"""

from dataclasses import dataclass

import numpy as np
from python_multipart.multipart import MultipartParser, parse_options_header

from service import pixels
from service.errors import InvalidInput

IMAGE_TYPES = ("image/png", "image/jpeg")
MULTIPART = "multipart/form-data"
# Form fields that are not pictures: what the query string may also say.
TEXT_FIELDS = ("checkpoint", "top_k")


@dataclass(frozen=True)
class Pictures:
    """The encoded pictures of a request, not yet decoded: the network decides their size."""

    images: tuple[tuple[str, bytes], ...]  # (name for messages, bytes)
    fields: dict[str, str]  # checkpoint and top_k, when the form gives them


def _parts(body: bytes, *, boundary: bytes) -> list[tuple[dict[bytes, bytes], bytes]]:
    """(Content-Disposition parameters, data) of each part of a multipart body."""
    parts: list[tuple[dict[bytes, bytes], bytes]] = []
    field, value = bytearray(), bytearray()
    disposition: dict[bytes, bytes] = {}
    data = bytearray()

    def header_end() -> None:
        nonlocal disposition
        if bytes(field).lower() == b"content-disposition":
            disposition = parse_options_header(bytes(value))[1]
        field.clear()
        value.clear()

    def part_end() -> None:
        nonlocal disposition
        parts.append((disposition, bytes(data)))
        disposition = {}
        data.clear()

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_header_field": lambda d, s, e: field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: value.extend(d[s:e]),
            "on_header_end": header_end,
            "on_part_data": lambda d, s, e: data.extend(d[s:e]),
            "on_part_end": part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises its own errors and ValueError
        raise InvalidInput(f"the multipart body cannot be read ({exc})") from exc
    return parts


def read(body: bytes, *, media_type: str, content_type: str) -> Pictures:
    """The pictures of an image or multipart body; InvalidInput when it holds none."""
    if media_type in IMAGE_TYPES:
        return Pictures(images=(("the body", body),), fields={})
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise InvalidInput("the multipart/form-data body names no boundary in its Content-Type")
    images: list[tuple[str, bytes]] = []
    fields: dict[str, str] = {}
    for index, (disposition, data) in enumerate(_parts(body, boundary=boundary)):
        name = disposition.get(b"name", b"").decode(errors="replace")
        if name in TEXT_FIELDS and b"filename" not in disposition:
            fields[name] = data.decode(errors="replace")
            continue
        filename = disposition.get(b"filename", b"").decode(errors="replace")
        images.append((f"part {index} ({filename or name or 'unnamed'})", data))
    if not images:
        raise InvalidInput("the multipart body holds no pictures; send one part per picture")
    return Pictures(images=tuple(images), fields=fields)


def to_inputs(
    pictures: Pictures, *, input_shape: tuple[int, ...], images: bool, max_rows: int
) -> np.ndarray:
    """float32 (n, channels, height, width) pixel values for a network that takes pictures."""
    if not images or len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise InvalidInput(
            f"this job's network takes samples of shape {list(input_shape)}, not pictures; "
            "send JSON or .npy inputs"
        )
    if len(pictures.images) > max_rows:
        raise InvalidInput(
            f"{len(pictures.images)} pictures in one request; the limit is {max_rows} "
            "(SERVICE_MAX_PREDICT_ROWS): split them over several requests"
        )
    channels, height, width = input_shape
    decoded = []
    for name, data in pictures.images:
        try:
            decoded.append(pixels.decode(data, channels=channels, size=(height, width)))
        except pixels.NotAnImage as exc:
            raise InvalidInput(
                f"{name} cannot be read: {exc}; send PNG or JPEG pictures (image/png, "
                "image/jpeg, or one multipart/form-data part each)"
            ) from exc
    return np.stack(decoded).astype(np.float32)
