"""Layer specs -> torch modules, through an allow-list: a spec names a class, never code."""

from collections.abc import Callable, Sequence

import torch
from torch import nn

from service import layers, specs


class Pow(nn.Module):
    """x ** exponent, elementwise (seed 004's w * x**2 + b is Pow(2) then Linear(1, 1))."""

    def __init__(self, exponent: float) -> None:
        super().__init__()
        # An integral exponent stays an int so x**2 is torch's exact integer power (x * x),
        # the same arithmetic as the tutorial's x.pow(2).
        self.exponent: float | int = int(exponent) if float(exponent).is_integer() else exponent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x**self.exponent

    def extra_repr(self) -> str:
        return f"exponent={self.exponent}"


# Each spec class maps to the torch class built from its fields; nothing else can be built.
LAYER_CLASSES: dict[type[specs.Strict], Callable[..., nn.Module]] = {
    layers.Linear: nn.Linear,
    layers.Conv1d: nn.Conv1d,
    layers.Conv2d: nn.Conv2d,
    layers.MaxPool2d: nn.MaxPool2d,
    layers.AvgPool2d: nn.AvgPool2d,
    layers.AdaptiveAvgPool2d: nn.AdaptiveAvgPool2d,
    layers.Flatten: nn.Flatten,
    layers.Unflatten: nn.Unflatten,
    layers.Dropout: nn.Dropout,
    layers.BatchNorm1d: nn.BatchNorm1d,
    layers.BatchNorm2d: nn.BatchNorm2d,
    layers.LayerNorm: nn.LayerNorm,
    layers.ReLU: nn.ReLU,
    layers.LeakyReLU: nn.LeakyReLU,
    layers.ELU: nn.ELU,
    layers.GELU: nn.GELU,
    layers.PReLU: nn.PReLU,
    layers.Hardshrink: nn.Hardshrink,
    layers.Sigmoid: nn.Sigmoid,
    layers.Tanh: nn.Tanh,
    layers.Softplus: nn.Softplus,
    layers.SiLU: nn.SiLU,
    layers.Identity: nn.Identity,
    layers.Pow: Pow,
}

# Fields the data decides; build_layer needs them written out (plan() does that).
INFERRED_FIELDS = ("in_features", "in_channels", "num_features", "normalized_shape")


def layer_kwargs(layer: layers.LayerSpec) -> dict[str, object]:
    """The torch constructor's keyword arguments: the spec's fields minus `type`."""
    kwargs = layer.model_dump(exclude={"type"})
    for name, value in kwargs.items():
        if isinstance(value, list):
            kwargs[name] = tuple(value)
    return kwargs


def build_layer(layer: layers.LayerSpec) -> nn.Module:
    """One module, on the current default device (see build_network)."""
    missing = [name for name in INFERRED_FIELDS if getattr(layer, name, 0) is None]
    if missing:
        raise ValueError(f"{layer.type} needs {', '.join(missing)}; normalise the spec with plan()")
    return LAYER_CLASSES[type(layer)](**layer_kwargs(layer))


def build_network(layers: Sequence[layers.LayerSpec], *, device: torch.device) -> nn.Sequential:
    """The network a normalised layer list describes, on `device`.

    Parameters are initialised on the CPU and then moved, so a seeded job starts from the same
    weights on every device, as the tutorials' `model.to(device)` does. On the meta device
    nothing is initialised or allocated.
    """
    build_on = torch.device("meta") if device.type == "meta" else torch.device("cpu")
    with build_on:
        network = nn.Sequential(*(build_layer(layer) for layer in layers))
    return network if build_on == device else network.to(device)
