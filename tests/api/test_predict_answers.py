"""What predict answers for each kind of network, checked against the offline eval-mode
forward pass of the same checkpoint: classes and probabilities, top_k, a single logit, eval mode,
regression in the targets' units."""

import httpx
import numpy as np
import torch
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.factories import tiny_spec
from tests.predictions import (
    POINTS,
    offline_outputs,
    predict,
    train,
    train_eval_mode_job,
    train_standardised_regression,
)


def test_classification_answers_classes_and_softmax_of_the_offline_eval_forward(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings)

    answer = predict(client, job, inputs=POINTS)

    expected = torch.softmax(offline_outputs(sessions, job, POINTS), dim=1)
    torch.testing.assert_close(torch.tensor(answer["probabilities"]), expected)
    assert answer["predictions"] == expected.argmax(dim=1).tolist()
    # The tiny job's loss falls every epoch, so its best checkpoint is its last.
    assert answer["checkpoint"] == {"epoch": 3, "kind": "best"}
    assert set(answer) == {"predictions", "probabilities", "checkpoint"}


def test_top_k_lists_each_rows_likeliest_classes_first(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    spec = tiny_spec()
    layers = [{"type": "Linear", "out_features": 4}, {"type": "Linear", "out_features": 3}]
    job = train(
        client,
        sessions,
        settings,
        model={"layers": layers},
        dataset={**spec["dataset"], "targets": [0, 1, 2, 1, 0, 2, 0, 1]},
    )

    answer = predict(client, job, inputs=POINTS, top_k=2)

    assert len(answer["top_k"]) == len(POINTS)
    for row, probabilities in zip(answer["top_k"], answer["probabilities"], strict=True):
        order = np.argsort(probabilities)[::-1][:2]
        assert [entry["class"] for entry in row] == order.tolist()
        assert [entry["probability"] for entry in row] == [probabilities[c] for c in order]


def test_bce_with_logits_answers_one_minus_p_and_p(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    layers = [{"type": "Linear", "out_features": 4}, {"type": "Linear", "out_features": 1}]
    job = train(client, sessions, settings, model={"layers": layers}, loss="bce_with_logits")

    answer = predict(client, job, inputs=POINTS, top_k=1)

    p = torch.sigmoid(offline_outputs(sessions, job, POINTS)[:, 0])
    torch.testing.assert_close(torch.tensor(answer["probabilities"]), torch.stack((1 - p, p), 1))
    assert answer["predictions"] == (p >= 0.5).long().tolist()
    assert [row[0]["class"] for row in answer["top_k"]] == answer["predictions"]


def test_dropout_and_batch_norm_behave_as_in_eval_mode(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train_eval_mode_job(client, sessions, settings)
    one_point = [POINTS[2]]

    first = predict(client, job, inputs=POINTS)
    second = predict(client, job, inputs=POINTS)
    alone = predict(client, job, inputs=one_point)

    assert first == second
    expected = torch.softmax(offline_outputs(sessions, job, POINTS), dim=1)
    torch.testing.assert_close(torch.tensor(first["probabilities"]), expected)
    # Running statistics, not the batch's: a row alone gets what it got among others.
    torch.testing.assert_close(
        torch.tensor(alone["probabilities"][0]), torch.tensor(first["probabilities"][2])
    )


def test_regression_undoes_standardisation(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train_standardised_regression(client, sessions, settings)
    inputs = [[-1.0], [0.0], [0.5]]

    answer = predict(client, job, inputs=inputs)
    flat = predict(client, job, inputs=[-1.0, 0.0, 0.5])

    expected = offline_outputs(sessions, job, inputs)[:, 0]
    torch.testing.assert_close(torch.tensor(answer["predictions"]), expected)
    assert flat["predictions"] == answer["predictions"]
    # In the targets' units (3 x^2 + 2 lies in [2, 5]), not standardised ones around 0.
    assert all(1.0 < value < 6.0 for value in answer["predictions"])
    assert set(answer) == {"predictions", "checkpoint"}


def test_regression_with_several_outputs_answers_a_list_per_sample(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    spec = tiny_spec()
    targets = [[x + y, x - y] for x, y in spec["dataset"]["inputs"]]
    job = train(
        client,
        sessions,
        settings,
        dataset={**spec["dataset"], "targets": targets},
        model={"layers": [{"type": "Linear", "out_features": 2}]},
    )

    answer = predict(client, job, inputs=POINTS)

    expected = offline_outputs(sessions, job, POINTS)
    torch.testing.assert_close(torch.tensor(answer["predictions"]), expected)
    assert [len(row) for row in answer["predictions"]] == [2, 2, 2, 2]
