"""`service show`: a job's state, its configuration (the normalised spec, summarised) and its
times, as aligned lines."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from service.client.numbers import significant
from service.client.progress import duration


def describe_job(job: dict[str, Any]) -> str:
    lines = [
        ("job", job["id"]),
        ("name", job["name"] or "-"),
        ("status", job["status"] + (" (cancel requested)" if job["cancel_requested"] else "")),
        ("progress", f"epoch {job['epoch']}/{job['epochs']}, attempt {job['attempt']}"),
        ("network", f"{job['parameters']:,} parameters on {job['device'] or '-'}"),
    ]
    for name in ("latest", "best"):
        if job[name]:
            lines.append((name, metric_line(job[name])))
    if stop_reason(job):
        lines.append(("stopped", job["stop_reason"]))
    if job["error"]:
        lines.append(("error", job["error"]))
    lines += [("", ""), *_configuration(job["spec"]), ("", ""), *_times(job)]
    return "".join(f"{name:<10} {value}".rstrip() + "\n" for name, value in lines)


def metric_line(metric: dict[str, Any]) -> str:
    parts = [f"epoch {metric['epoch']}: loss {significant(metric['loss'])}"]
    for name in ("accuracy", "val_loss", "val_accuracy"):
        if metric.get(name) is not None:
            parts.append(f"{name} {significant(metric[name])}")
    return ", ".join(parts)


def stop_reason(job: dict[str, Any]) -> str | None:
    """Why the job stopped early, unless its error already says it (a failed job's stop reason
    is its error)."""
    reason = job.get("stop_reason")
    return reason if reason and reason != job["error"] else None


def elapsed(start: str, end: str) -> str:
    return duration((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())


def _configuration(spec: dict[str, Any]) -> list[tuple[str, str]]:
    data = spec["dataset"]
    if data["kind"] == "inline":
        dataset = f"inline, {len(data['inputs'])} samples"
    elif data["kind"] == "uploaded":
        dataset = f"uploaded {data['id']}"
    else:
        dataset = f"{data['kind']} ({_fields(data, 'kind')})"
    optimizer = spec["optimizer"]
    schedule = spec.get("schedule")
    early = spec.get("early_stopping")
    return [
        ("task", f"{spec['task']}, loss {spec['loss']}"),
        ("dataset", dataset),
        ("validation", _value(spec["validation_fraction"] or "none")),
        ("layers", " -> ".join(_layer(layer) for layer in spec["model"]["layers"])),
        ("optimizer", f"{optimizer['name']} ({_fields(optimizer, 'name')})"),
        ("schedule", _fields(schedule) if schedule else "constant learning rate"),
        ("batch size", _value(spec["batch_size"] or "the whole training split")),
        ("seed", _value(spec["seed"])),
        ("checkpoint", f"{_checkpoints(spec)}, best by {spec['best_metric']}"),
        ("early stop", _fields(early) if early else "off"),
    ]


def _times(job: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("queued", job["created_at"]),
        ("started", job["started_at"] or "-"),
        ("finished", job["finished_at"] or "-"),
    ]
    if job["started_at"]:
        rows.insert(2, ("waited", elapsed(job["created_at"], job["started_at"])))
    if job["started_at"] and job["finished_at"]:
        rows.append(("duration", elapsed(job["started_at"], job["finished_at"])))
    return rows


def _layer(layer: dict[str, Any]) -> str:
    rest = _fields(layer, "type")
    return f"{layer['type']}({rest})" if rest else layer["type"]


def _fields(values: dict[str, Any], *skip: str) -> str:
    return ", ".join(f"{key}={_value(value)}" for key, value in values.items() if key not in skip)


def _checkpoints(spec: dict[str, Any]) -> str:
    """A spec's checkpoint cadence: its own, or the default's (a tenth of the run, paced)."""
    if spec.get("checkpoint_every") is not None:
        return f"every {spec['checkpoint_every']} epochs"
    return f"every {max(1, spec['epochs'] // 10)} epochs, seconds apart (default)"


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "-"
    if isinstance(value, int | float):
        return significant(value)
    if isinstance(value, list):
        return "(" + ", ".join(_value(item) for item in value) + ")"
    if isinstance(value, dict):
        return "{" + _fields(value) + "}"
    return str(value)


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )
