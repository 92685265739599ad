"""The picture examples reach their stated accuracy through the service, and predict labels."""

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.specs import DigitsData
from service.training.datasets import make_dataset
from tests.api.test_examples import train_example


@pytest.mark.slow
# What they must reach; on this CPU they reach 0.9833 and 0.9925 (README, Images).
@pytest.mark.parametrize(("name", "accuracy"), [("digits-lenet", 0.97), ("shapes-vgg", 0.95)])
def test_picture_examples_reach_their_validation_accuracy(
    client: httpx.Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    backend: str,
    name: str,
    accuracy: float,
) -> None:
    if backend != "sqlite":
        pytest.skip("trained once, on SQLite: the numbers do not depend on the database")
    job = train_example(client, sessions, settings, name)

    assert job["latest"]["val_accuracy"] >= accuracy
    if name == "digits-lenet":
        pictures, digits = make_dataset(DigitsData(kind="digits"))
        answer = client.post(
            f"/v1/jobs/{job['id']}/predict", json={"inputs": pictures[:5].tolist()}
        ).json()
        assert answer["labels"] == [str(p) for p in answer["predictions"]]
        assert answer["predictions"] == digits[:5].tolist()
