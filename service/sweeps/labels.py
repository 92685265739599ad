"""Trials named by what sets them apart: the params whose values differ between a sweep's trials,
in short. Plain data in, text out: the client uses it too."""

import json
from collections.abc import Sequence
from typing import Any


def short_labels(params: Sequence[dict[str, Any]]) -> list[str]:
    """Each trial's label: the params whose values differ between the trials, by the last part
    of their path (more of it where two would read the same), each value in short: an object
    by its name or type, a list by its items', a number as %g. Where two different values read
    the same in short, that param's values are written whole."""
    keys = [
        key
        for key in dict.fromkeys(key for one in params for key in one)
        if len({_whole(one.get(key)) for one in params}) > 1
    ]
    names = _short_names(keys)
    texts: dict[str, dict[str, str]] = {}
    for key in keys:
        values = {_whole(one.get(key)): one.get(key) for one in params}
        shorts = {whole: _short(value) for whole, value in values.items()}
        whole_needed = len(set(shorts.values())) < len(shorts)
        texts[key] = {whole: whole if whole_needed else short for whole, short in shorts.items()}
    return [
        ", ".join(f"{names[key]}={texts[key][_whole(one.get(key))]}" for key in keys)
        or f"trial {index}"
        for index, one in enumerate(params)
    ]


def _short_names(keys: list[str]) -> dict[str, str]:
    """The shortest tail of each dotted path that no other key shares."""
    names: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for size in range(1, len(parts) + 1):
            tail = ".".join(parts[-size:])
            if not any(other != key and f".{other}".endswith(f".{tail}") for other in keys):
                break
        names[key] = tail
    return names


def _whole(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        for field in ("name", "type", "kind"):
            if isinstance(value.get(field), str):
                return str(value[field])
        return _whole(value)
    if isinstance(value, list):
        return "-".join(_short(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
