import re
from typing import Any

import pydantic
import pytest
import torch

from service.errors import Conflict, InvalidSpec
from service.specs import JobSpec
from service.training.datasets import describe_dataset
from service.training.plan import DataShape, job_shape, plan
from tests.factories import small_spec


def job(**overrides: Any) -> JobSpec:
    return JobSpec.model_validate(small_spec(**overrides))


def planned(spec: JobSpec) -> JobSpec:
    return plan(spec, data=describe_dataset(spec.dataset)).spec


def layers(*specs: dict[str, Any]) -> dict[str, Any]:
    return {"layers": list(specs)}


def test_plan_writes_out_every_default_and_inferred_size() -> None:
    spec = job(
        seed=None,
        validation_fraction=0.25,
        schedule={"kind": "cosine"},
        model=layers(
            {"type": "Linear", "out_features": 8},
            {"type": "LayerNorm"},
            {"type": "BatchNorm1d"},
            {"type": "Linear", "out_features": 4},
        ),
    )
    result = plan(spec, data=describe_dataset(spec.dataset))
    normalised = result.spec
    assert normalised.task == "classification"
    assert normalised.loss == "cross_entropy"
    assert normalised.best_metric == "val_loss"
    assert normalised.checkpoint_every is None  # the default: paced, so the run decides
    assert normalised.seed is not None
    assert normalised.schedule is not None
    assert normalised.schedule.model_dump() == {"kind": "cosine", "t_max": 6, "eta_min": 0.0}
    sizes = [
        layer.model_dump(include={"in_features", "normalized_shape", "num_features"})
        for layer in normalised.model.layers
    ]
    assert sizes == [
        {"in_features": 12},
        {"normalized_shape": [8]},
        {"num_features": 8},
        {"in_features": 8},
    ]
    # Linear(12, 8) + LayerNorm(8) + BatchNorm1d(8) + Linear(8, 4)
    assert result.parameters == (12 * 8 + 8) + 16 + 16 + (8 * 4 + 4)


def test_plan_is_idempotent() -> None:
    once = planned(job(seed=None, schedule={"kind": "cosine"}))
    assert planned(once) == once
    assert plan(once, data=describe_dataset(once.dataset)).parameters > 0


@pytest.mark.parametrize(
    ("overrides", "metric"),
    [
        ({}, "loss"),
        ({"validation_fraction": 0.25}, "val_loss"),
        ({"best_metric": "accuracy"}, "accuracy"),
        (
            {
                "early_stopping": {"metric": "val_accuracy", "patience": 4},
                "validation_fraction": 0.25,
            },
            "val_accuracy",
        ),
    ],
    ids=["loss", "val_loss", "best_metric", "given"],
)
def test_early_stopping_watches_the_best_metric_unless_told(
    overrides: dict[str, Any], metric: str
) -> None:
    spec = job(**{"early_stopping": {"patience": 4}, **overrides})
    normalised = planned(spec)
    assert normalised.early_stopping is not None
    assert normalised.early_stopping.model_dump() == {
        "metric": metric,
        "patience": 4,
        "min_delta": 0.0,
        "start_epoch": 1,
    }
    assert planned(normalised) == normalised


def test_a_spec_without_early_stopping_trains_every_epoch() -> None:
    assert planned(job()).early_stopping is None


UPLOAD = DataShape(
    samples=10, input_shape=(1, 4, 4), task="classification", num_classes=3, target_shape=()
)


def test_an_uploads_shapes_are_recorded_so_the_job_needs_no_dataset_row() -> None:
    spec = job(
        dataset={"kind": "uploaded", "id": "d1"},
        model=layers({"type": "Flatten"}, {"type": "Linear", "out_features": 1}),
        task="regression",
    )
    with pytest.raises(Conflict, match="does not record the shapes of the uploaded dataset 'd1'"):
        describe_dataset(spec.dataset)

    normalised = plan(spec, data=UPLOAD).spec

    assert normalised.model_dump(mode="json")["dataset"]["shape"] == {
        "samples": 10,
        "input_shape": [1, 4, 4],
        "task": "classification",
        "num_classes": 3,
        "target_shape": [],
        "class_names": None,
        "images": False,
    }
    assert describe_dataset(normalised.dataset) == UPLOAD
    # As the job reads them: its class labels are regression values.
    assert job_shape(normalised) == DataShape(
        samples=10, input_shape=(1, 4, 4), task="regression", num_classes=None, target_shape=(1,)
    )
    assert planned(normalised) == normalised


def test_an_upload_shape_the_client_wrote_must_match_the_upload() -> None:
    wrong = {"samples": 10, "input_shape": [16], "task": "classification", "num_classes": 3}
    spec = job(dataset={"kind": "uploaded", "id": "d1", "shape": {**wrong, "target_shape": []}})
    with pytest.raises(InvalidSpec, match=r"leave dataset\.shape out, the service writes it"):
        plan(spec, data=UPLOAD)


def test_regression_defaults() -> None:
    spec = job(
        dataset={"kind": "quadratic"},
        model=layers({"type": "Pow", "exponent": 2}, {"type": "Linear", "out_features": 1}),
        epochs=800,
    )
    normalised = planned(spec)
    assert (normalised.task, normalised.loss, normalised.best_metric) == (
        "regression",
        "mse",
        "loss",
    )
    assert normalised.checkpoint_every is None


def test_convolutions_take_their_channels_from_the_data() -> None:
    data = DataShape(
        samples=10, input_shape=(1, 28, 28), task="classification", num_classes=10, target_shape=()
    )
    spec = job(
        dataset={"kind": "uploaded", "id": "d1"},
        model=layers(
            {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "BatchNorm2d"},
            {"type": "ReLU"},
            {"type": "MaxPool2d", "kernel_size": 2},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 10},
        ),
    )
    result = plan(spec, data=data)
    conv, norm, linear = (
        result.spec.model.layers[0],
        result.spec.model.layers[1],
        result.spec.model.layers[5],
    )
    assert conv.model_dump()["in_channels"] == 1
    assert norm.model_dump()["num_features"] == 4
    assert linear.model_dump()["in_features"] == 4 * 14 * 14


def test_a_mismatched_linear_names_the_layer_its_type_and_the_shapes() -> None:
    spec = job(
        model=layers(
            {"type": "Linear", "out_features": 50},
            {"type": "ReLU"},
            {"type": "Linear", "in_features": 100, "out_features": 4},
        )
    )
    message = (
        "layer 2 (Linear): expects inputs with last dimension 100 (in_features), got shape [N, 50]"
    )
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        planned(spec)


def test_a_convolution_on_flat_inputs_says_what_shape_it_expects() -> None:
    spec = job(model=layers({"type": "Conv2d", "out_channels": 4, "kernel_size": 3}))
    with pytest.raises(
        InvalidSpec, match=re.escape("layer 0 (Conv2d): expects inputs of shape [N, C, H, W]")
    ):
        planned(spec)


def test_a_layer_torch_refuses_is_reported_with_its_input_shape() -> None:
    # A 3x3 pooling window on a 2x2 image.
    data = DataShape(
        samples=4, input_shape=(1, 2, 2), task="classification", num_classes=2, target_shape=()
    )
    spec = job(
        dataset={"kind": "uploaded", "id": "d"},
        model=layers({"type": "MaxPool2d", "kernel_size": 3}),
    )
    with pytest.raises(
        InvalidSpec,
        match=re.escape("layer 0 (MaxPool2d): cannot take inputs of shape [N, 1, 2, 2]"),
    ):
        plan(spec, data=data)


def test_a_layer_that_mixes_samples_is_refused() -> None:
    spec = job(
        model=layers({"type": "Flatten", "start_dim": 0}, {"type": "Linear", "out_features": 4})
    )
    with pytest.raises(
        InvalidSpec,
        match=re.escape("layer 0 (Flatten): turns inputs of shape [N, 12] into shape [24]"),
    ):
        planned(spec)


def test_an_unknown_layer_type_is_a_validation_error_listing_the_allowed_types() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        job(model=layers({"type": "Eval", "code": "print(1)"}))
    message = str(caught.value)
    assert "'Linear'" in message
    assert "'Conv2d'" in message
    assert "'Pow'" in message


def test_an_output_size_that_does_not_match_the_classes_says_what_to_change() -> None:
    spec = job(
        model=layers(
            {"type": "Linear", "out_features": 16},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 5},
            {"type": "ReLU"},
        )
    )
    message = (
        "the network's output has shape [N, 5] but the dataset has 4 classes; "
        "set out_features of layer 2 (Linear) to 4"
    )
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        planned(spec)


def test_regression_output_must_match_the_targets() -> None:
    spec = job(dataset={"kind": "quadratic"}, model=layers({"type": "Linear", "out_features": 3}))
    with pytest.raises(
        InvalidSpec,
        match=re.escape(
            "output has shape [N, 3] but the dataset has targets of shape [N, 1]; "
            "set out_features of layer 0 (Linear) to 1"
        ),
    ):
        planned(spec)


def test_bce_with_logits_needs_two_classes_and_one_output() -> None:
    two_classes = {"kind": "sum_bins", "samples": 50, "features": 4, "edges": [0]}
    one_output = layers({"type": "Linear", "out_features": 1})
    assert (
        planned(job(dataset=two_classes, model=one_output, loss="bce_with_logits")).loss
        == "bce_with_logits"
    )
    with pytest.raises(InvalidSpec, match="bce_with_logits needs exactly 2 classes"):
        planned(job(model=one_output, loss="bce_with_logits"))
    with pytest.raises(InvalidSpec, match=re.escape("set out_features of layer 0 (Linear) to 1")):
        planned(
            job(
                dataset=two_classes,
                model=layers({"type": "Linear", "out_features": 2}),
                loss="bce_with_logits",
            )
        )


def test_a_loss_that_does_not_fit_the_inferred_task_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="loss 'mse' does not fit a classification dataset"):
        planned(job(loss="mse"))


def test_class_labels_can_be_read_as_regression_values() -> None:
    spec = job(task="regression", model=layers({"type": "Linear", "out_features": 1}))
    assert planned(spec).loss == "mse"


def test_classification_needs_class_labels() -> None:
    spec = job(
        dataset={"kind": "quadratic"},
        task="classification",
        model=layers({"type": "Linear", "out_features": 2}),
    )
    with pytest.raises(InvalidSpec, match="needs class labels"):
        planned(spec)


def test_a_validation_split_or_batch_that_leaves_no_samples_is_refused() -> None:
    message = "validation_fraction 0.001 of 120 samples leaves 0 for validation"
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        planned(job(validation_fraction=0.001))
    with pytest.raises(InvalidSpec, match="drops all 120 training samples"):
        planned(job(batch_size=500, drop_last=True))


def test_batchnorm_with_a_one_sample_batch_is_refused() -> None:
    # 120 samples at batch 17: the last batch holds one sample.
    spec = job(
        batch_size=17,
        model=layers(
            {"type": "Linear", "out_features": 8},
            {"type": "BatchNorm1d"},
            {"type": "Linear", "out_features": 4},
        ),
    )
    with pytest.raises(
        InvalidSpec, match=re.escape("layer 1 (BatchNorm1d) needs batches of 2 or more samples")
    ):
        planned(spec)
    assert planned(job(**{**spec.model_dump(), "drop_last": True})).drop_last


def test_a_network_without_parameters_is_refused() -> None:
    spec = job(
        dataset={"kind": "inline", "inputs": [[0, 1], [1, 0]], "targets": [0, 1]},
        model=layers({"type": "ReLU"}),
    )
    with pytest.raises(InvalidSpec, match="the network has no parameters to train"):
        planned(spec)


def test_describe_dataset_reads_the_spec_without_generating_data() -> None:
    assert describe_dataset(
        job(dataset={"kind": "spiral", "classes": 4, "points_per_class": 10}).dataset
    ) == DataShape(
        samples=40, input_shape=(2,), task="classification", num_classes=4, target_shape=()
    )
    assert describe_dataset(job(dataset={"kind": "sum_bins"}).dataset) == DataShape(
        samples=1000, input_shape=(784,), task="classification", num_classes=10, target_shape=()
    )
    assert describe_dataset(job(dataset={"kind": "quadratic", "samples": 7}).dataset) == DataShape(
        samples=7, input_shape=(1,), task="regression", num_classes=None, target_shape=(1,)
    )
    inline = {"kind": "inline", "inputs": [[[1, 2]], [[3, 4]]], "targets": [[1.5, 2], [0, 1]]}
    assert describe_dataset(job(dataset=inline).dataset) == DataShape(
        samples=2, input_shape=(1, 2), task="regression", num_classes=None, target_shape=(2,)
    )
    stored = DataShape(
        samples=3, input_shape=(5,), task="classification", num_classes=2, target_shape=()
    )
    assert (
        describe_dataset(job(dataset={"kind": "uploaded", "id": "x"}).dataset, uploaded=stored)
        == stored
    )


def test_a_50_million_parameter_spec_plans_on_the_meta_device() -> None:
    spec = job(
        dataset={"kind": "sum_bins", "samples": 100, "features": 5000, "edges": [-2, 0, 2]},
        model=layers(
            {"type": "Linear", "out_features": 5000},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 5000},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 4},
        ),
    )
    rng_before = torch.get_rng_state()
    result = plan(spec, data=describe_dataset(spec.dataset))
    assert result.parameters == (5000 * 5000 + 5000) * 2 + 5000 * 4 + 4
    assert result.parameters > 50_000_000
    # Planning draws nothing from the global stream: a job's seeded draws are untouched.
    assert torch.equal(rng_before, torch.get_rng_state())
