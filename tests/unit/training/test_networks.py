import typing

import pytest
import torch
from torch import nn

from service.layers import LayerSpec, NetworkSpec
from service.training.networks import LAYER_CLASSES, Pow, build_network


def test_every_allowed_layer_type_maps_to_a_torch_module() -> None:
    union = typing.get_args(LayerSpec)[0]
    assert set(typing.get_args(union)) == set(LAYER_CLASSES)


def test_build_network_uses_the_spec_fields_as_torch_keywords() -> None:
    network = NetworkSpec.model_validate(
        {
            "layers": [
                {"type": "Unflatten", "dim": 1, "unflattened_size": [1, 4, 4]},
                {
                    "type": "Conv2d",
                    "in_channels": 1,
                    "out_channels": 2,
                    "kernel_size": [3, 3],
                    "padding": "same",
                },
                {"type": "Flatten"},
                {"type": "Dropout", "p": 0.25},
                {"type": "Linear", "in_features": 32, "out_features": 3, "bias": False},
                {"type": "Hardshrink", "lambd": 0.1},
            ]
        }
    )
    built = build_network(network.layers, device=torch.device("cpu"))
    assert isinstance(built[1], nn.Conv2d)
    assert built[1].kernel_size == (3, 3)
    assert built[1].padding == "same"
    assert built[3].p == 0.25
    assert built[4].bias is None
    assert built[5].lambd == 0.1
    assert built(torch.randn(2, 16)).shape == (2, 3)


def test_a_layer_without_its_inferred_size_asks_for_plan() -> None:
    network = NetworkSpec.model_validate({"layers": [{"type": "Linear", "out_features": 3}]})
    with pytest.raises(ValueError, match="needs in_features; normalise the spec with plan"):
        build_network(network.layers, device=torch.device("cpu"))


def test_pow_is_exact_for_integer_exponents() -> None:
    x = torch.randn(100)
    assert torch.equal(Pow(2.0)(x), x.pow(2))
    assert Pow(2.0).exponent == 2
    assert isinstance(Pow(2.0).exponent, int)
    torch.testing.assert_close(Pow(0.5)(x.abs()), x.abs().sqrt())


def test_the_meta_device_allocates_nothing() -> None:
    network = NetworkSpec.model_validate(
        {"layers": [{"type": "Linear", "in_features": 10_000, "out_features": 10_000}]}
    )
    built = build_network(network.layers, device=torch.device("meta"))
    assert built[0].weight.is_meta
