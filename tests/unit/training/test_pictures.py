"""Training on pictures: built-in image data, scaling and normalisation, seeded augmentation,
and resuming bit-identically with it on."""

import json
import re
from typing import Any

import pytest
import torch

from service.errors import InvalidSpec, TrainingFailed
from service.specs import Augment, DigitsData, ShapesData
from service.training import holdout, randomness
from service.training.checkpoints import decode_state, read_metadata
from service.training.datasets import make_dataset
from service.training.pictures import Pictures, augment, pixel_statistics

from .runs import normalised, run

TINY_CNN = {
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Dropout", "p": 0.2},
        {"type": "Linear", "out_features": 3},
    ]
}


def shapes_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "dataset": {"kind": "shapes", "samples": 60, "size": 12, "noise": 0.1},
        "model": TINY_CNN,
        "optimizer": {"name": "adam", "lr": 0.01},
        "epochs": 5,
        "batch_size": 16,
        "seed": 4,
        "validation_fraction": 0.25,
        "normalize": "per_channel",
        "augment": {"random_crop_padding": 2, "horizontal_flip": True},
    }
    spec.update(overrides)
    return spec


def test_digits_are_the_1797_uci_pictures_of_8x8() -> None:
    pictures, digits = make_dataset(DigitsData(kind="digits"))
    assert (pictures.shape, pictures.dtype) == ((1797, 1, 8, 8), torch.uint8)
    assert digits.bincount().tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # The file's first sample is a 0: its pixel counts 0..16 are stretched to 0..255.
    assert digits[0].item() == 0
    assert pictures[0, 0, 0].tolist() == [0, 0, 80, 207, 143, 16, 0, 0]


def test_shapes_are_drawn_from_their_seed() -> None:
    spec = ShapesData(kind="shapes", samples=30, size=16, noise=0.2, seed=5)
    pictures, labels = make_dataset(spec)
    again, same_labels = make_dataset(spec)
    other, _ = make_dataset(spec.model_copy(update={"seed": 6}))

    assert (pictures.shape, pictures.dtype) == ((30, 1, 16, 16), torch.uint8)
    assert torch.equal(pictures, again)
    assert torch.equal(labels, same_labels)
    assert not torch.equal(pictures, other)
    assert set(labels.tolist()) == {0, 1, 2}


def test_per_channel_statistics_and_plain_scaling() -> None:
    pictures = torch.tensor([[[[0, 255]], [[10, 30]]]], dtype=torch.uint8).repeat(3, 1, 1, 1)
    plain = pixel_statistics(pictures, per_channel=False)
    assert torch.equal(plain.inputs(pictures.float()), pictures.float() / 255)

    normal = pixel_statistics(pictures, per_channel=True)
    assert normal.x_mean.flatten().tolist() == [127.5, 20.0]
    assert normal.x_std.flatten().tolist() == [127.5, 10.0]
    assert normal.inputs(pictures.float())[0].flatten().tolist() == [-1.0, 1.0, -1.0, 1.0]


def test_augmentation_crops_from_padding_and_flips_as_drawn() -> None:
    pictures = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).view(2, 3, 4, 5)
    spec = Augment(random_crop_padding=1, horizontal_flip=True)

    augmented = augment(pictures, spec=spec, generator=torch.Generator().manual_seed(0))

    draws = torch.Generator().manual_seed(0)
    offsets = torch.randint(0, 3, (2, 2), generator=draws)
    flips = torch.rand(2, generator=draws) < 0.5
    padded = torch.nn.functional.pad(pictures, (1, 1, 1, 1))
    for index in range(2):
        top, left = offsets[index].tolist()
        expected = padded[index, :, top : top + 4, left : left + 5]
        if flips[index]:
            expected = expected.flip(2)
        assert torch.equal(augmented[index], expected)
    repeat = augment(pictures, spec=spec, generator=torch.Generator().manual_seed(0))
    assert torch.equal(augmented, repeat)


def test_evaluation_batches_are_never_augmented() -> None:
    pictures = torch.randint(0, 256, (8, 1, 6, 6), dtype=torch.uint8)
    prepared = Pictures(
        scaling=pixel_statistics(pictures, per_channel=False),
        augmentation=Augment(random_crop_padding=3, horizontal_flip=True),
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.equal(prepared.evaluation(pictures), pictures.float() / 255)
    assert not torch.equal(prepared.training(pictures), pictures.float() / 255)


def test_the_checkpoint_stores_the_training_splits_per_channel_statistics() -> None:
    spec = normalised(shapes_spec(epochs=1))
    _, hooks = run(spec)
    stored = decode_state(hooks.checkpoints[-1].state).standardization
    assert stored is not None
    assert stored.x_mean.shape == (1, 1, 1)
    # The 45 training pictures of the 60 (a quarter held out): their pixels' mean and std.
    assert spec.seed is not None
    drawn = ShapesData(kind="shapes", samples=60, size=12, noise=0.1, seed=spec.seed)
    pictures, labels = make_dataset(drawn)
    (train, _), held_out = holdout.split(
        inputs=pictures,
        targets=labels,
        fraction=0.25,
        generator=randomness.generator(spec.seed, stream="validation"),
    )
    assert held_out is not None
    assert len(train) == 45
    values = train.double()
    torch.testing.assert_close(stored.x_mean.flatten(), values.mean().float().view(1))
    torch.testing.assert_close(stored.x_std.flatten(), values.std(correction=0).float().view(1))
    assert stored.y_mean is None
    described = json.loads(read_metadata(hooks.checkpoints[-1].state)["pictures"])
    assert described["normalize"] == "per_channel"
    assert described["channel_mean"] == pytest.approx([values.mean().item() / 255], rel=1e-6)
    assert described["channel_std"] == pytest.approx(
        [values.std(correction=0).item() / 255], rel=1e-6
    )


def test_augmented_training_is_reproducible_and_differs_from_unaugmented() -> None:
    spec = normalised(shapes_spec())
    _, first = run(spec)
    _, second = run(spec)
    _, plain = run(normalised(shapes_spec(augment=None)))
    assert first.losses == second.losses
    assert first.checkpoints[-1].weights == second.checkpoints[-1].weights
    assert first.losses != plain.losses


def test_resuming_with_augmentation_is_bit_identical() -> None:
    spec = normalised(shapes_spec(epochs=6, checkpoint_every=4))
    _, uninterrupted = run(spec)
    _, first_half = run(spec, stop_after=3)
    _, second_half = run(spec, resume=first_half.resume_point())

    assert [m.epoch for m in second_half.epochs] == [4, 5, 6]
    assert first_half.losses + second_half.losses == uninterrupted.losses
    assert [m.val_loss for m in first_half.epochs + second_half.epochs] == [
        m.val_loss for m in uninterrupted.epochs
    ]
    assert second_half.checkpoints[-1].weights == uninterrupted.checkpoints[-1].weights


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"dataset": {"kind": "spiral", "points_per_class": 10}, "model": None},
            "normalize applies to pictures (digits, shapes, or an upload of pictures)",
        ),
        ({"normalize": None, "standardize": True}, "set normalize 'per_channel' instead"),
    ],
)
def test_picture_options_need_pictures(overrides: dict[str, Any], message: str) -> None:
    spec = shapes_spec(**overrides)
    if spec["model"] is None:
        spec["model"] = {"layers": [{"type": "Linear", "out_features": 3}]}
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        normalised(spec)


def test_bf16_on_the_cpu_fails_saying_what_to_use() -> None:
    with pytest.raises(TrainingFailed, match="use precision 'fp32'"):
        run(normalised(shapes_spec(precision="bf16")))
