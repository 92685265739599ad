"""Which device a worker trains on: the SERVICE_DEVICE setting, resolved."""

from typing import Literal

import torch

from service.errors import ServiceError


def pick_device(setting: Literal["auto", "cpu", "cuda"]) -> torch.device:
    """auto: the first CUDA device when there is one, else the CPU."""
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise ServiceError(
            "SERVICE_DEVICE is 'cuda' but torch sees no CUDA device (this torch build is "
            f"{torch.__version__}); set SERVICE_DEVICE to 'auto' or 'cpu', or install a CUDA build"
        )
    return torch.device("cuda", 0) if setting == "cuda" else torch.device("cpu")
