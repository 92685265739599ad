"""Every example spec under examples/ is a valid JobSpec that plans without error."""

from pathlib import Path

import pytest

from service.specs import JobSpec
from service.training.datasets import describe_dataset
from service.training.plan import plan

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.json"))


def test_there_is_an_example_per_experiment() -> None:
    names = {path.stem for path in EXAMPLES}
    assert {
        "spiral-linear-sgd",
        "spiral-relu-adam",
        "sum-bins-simplenn",
        "quadratic-regression",
    } <= names
    assert len(names) == 18


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_validates_and_plans(path: Path) -> None:
    spec = JobSpec.model_validate_json(path.read_text())
    assert spec.name == path.stem
    result = plan(spec, data=describe_dataset(spec.dataset))
    assert result.parameters > 0
    assert result.spec.seed == spec.seed
