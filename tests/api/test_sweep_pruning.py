"""A sweep's early stopping with a real worker: trials run one after another (parallel 1), so
each reports in a known order, and the trials pruned, where and why, are what the pure rules
give for the metrics they stored."""

from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.sweeps.pruning import asha, asha_rungs, median
from service.sweeps.spec import AshaRule, MedianRule
from tests.sweeps import activation_sweep, run_trials, submit

LEARNING_RATES = [0.05, 0.0001, 0.1, 0.00001, 0.02, 0.001]


def lr_sweep(early_stopping: dict[str, Any]) -> dict[str, Any]:
    base = {**activation_sweep()["base"], "epochs": 12}
    return activation_sweep(
        base=base,
        parameters={"optimizer.lr": {"values": LEARNING_RATES}},
        parallel=1,
        early_stopping=early_stopping,
    )


def losses(client: httpx.Client, job_id: str) -> list[float]:
    epochs = client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    return [epoch["loss"] for epoch in epochs]


def run(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, spec: dict
) -> tuple[dict, list[dict]]:
    sweep = submit(client, spec)
    assert run_trials(sessions, settings) == len(LEARNING_RATES)
    body = client.get(f"/v1/sweeps/{sweep['id']}").json()
    board = client.get(f"/v1/sweeps/{sweep['id']}/trials").json()["trials"]
    return body, sorted(board, key=lambda trial: trial["trial"])


def test_asha_prunes_the_trials_the_rule_gives_for_their_reports(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    rule = AshaRule(kind="asha", min_epochs=2, reduction_factor=2)
    body, trials = run(client, sessions, settings, lr_sweep(rule.model_dump()))

    assert asha_rungs(rule, epochs=12) == [2, 4, 8]
    reported: dict[int, list[float]] = {2: [], 4: [], 8: []}
    expected: list[tuple[str, str | None]] = []
    for trial in trials:
        curve = losses(client, trial["job_id"])
        ended: tuple[str, str | None] = ("succeeded", None)
        for rung in (2, 4, 8):
            value = curve[rung - 1]
            reason = asha(
                rule, metric="loss", maximize=False, epoch=rung, value=value, earlier=reported[rung]
            )
            reported[rung].append(value)
            if reason is not None:
                ended = ("pruned", reason)
                break
        expected.append(ended)

    assert [(t["status"], t["stop_reason"]) for t in trials] == expected
    pruned = [t for t in trials if t["status"] == "pruned"]
    assert len(pruned) >= 2  # the two smallest learning rates at least
    assert body["counts"]["pruned"] == len(pruned)
    assert body["epochs_saved"] == sum(12 - t["epoch"] for t in pruned)
    assert body["status"] == "succeeded"


def test_median_prunes_the_trials_the_rule_gives_for_their_reports(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    rule = MedianRule(kind="median", min_epochs=3, min_trials=2)
    body, trials = run(client, sessions, settings, lr_sweep(rule.model_dump()))

    curves: list[list[float]] = []
    expected: list[tuple[str, int]] = []
    for trial in trials:
        curve = losses(client, trial["job_id"])
        ended = ("succeeded", 12)
        for epoch in range(1, 12):
            others = [min(c[:epoch]) for c in curves if len(c) >= epoch]
            reason = median(
                rule,
                metric="loss",
                maximize=False,
                epoch=epoch,
                best=min(curve[:epoch]),
                others=others,
            )
            if reason is not None:
                ended = ("pruned", epoch)
                break
        curves.append(curve)
        expected.append(ended)

    assert [(t["status"], t["epoch"]) for t in trials] == expected
    assert body["counts"]["pruned"] >= 2
    assert body["epochs_saved"] == sum(12 - t["epoch"] for t in trials)
