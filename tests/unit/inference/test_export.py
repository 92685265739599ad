"""service/inference/export.py without the api: which layer a failed export names."""

import pytest
import torch
from torch import nn

from service.errors import Conflict
from service.inference.export import to_onnx
from service.inference.loading import LoadedNetwork


class DataDependent(nn.Module):
    """Control flow on a tensor's value: torch.export cannot trace it into one graph."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


def loaded(network: nn.Sequential) -> LoadedNetwork:
    return LoadedNetwork(
        key=("job", 1, "sha"),
        network=network.eval(),
        device=torch.device("cpu"),
        input_shape=(3,),
        task="classification",
        loss="cross_entropy",
        standardization=None,
    )


def test_a_layer_the_exporter_cannot_take_is_a_conflict_naming_it() -> None:
    network = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), DataDependent(), nn.Linear(4, 2))

    with pytest.raises(
        Conflict, match=r"^layer 2 \(DataDependent\) cannot be exported to ONNX: .*data-dependent"
    ):
        to_onnx(loaded(network))


def test_an_exportable_network_gives_onnx_bytes() -> None:
    onnx = to_onnx(loaded(nn.Sequential(nn.Linear(3, 2))))

    assert onnx[:2] == b"\x08\x0a"  # ir_version, the first field of an ONNX ModelProto
