import pytest
import torch

from service.errors import ServiceError
from service.training.devices import pick_device


def test_cpu_and_auto() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_what_to_set() -> None:
    with pytest.raises(
        ServiceError, match="SERVICE_DEVICE is 'cuda' but torch sees no CUDA device"
    ):
        pick_device("cuda")
