"""The layers a spec may name: an allow-list of torch.nn layers with torch's own keyword names.

Sizes the data decides (`in_features`, `in_channels`, `num_features`, `normalized_shape`) may be
left out; `service.training.plan` writes them in. Nothing here is ever executed as code.
"""

from typing import Annotated, Literal

from pydantic import Field

from service.spec_types import IntOrPair, PositiveInt, Strict


class Linear(Strict):
    type: Literal["Linear"]
    in_features: PositiveInt | None = None
    out_features: PositiveInt
    bias: bool = True


class _Conv(Strict):
    in_channels: PositiveInt | None = None
    out_channels: PositiveInt
    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: IntOrPair | Literal["same", "valid"] = 0
    dilation: IntOrPair = 1
    groups: PositiveInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"


class Conv1d(_Conv):
    type: Literal["Conv1d"]


class Conv2d(_Conv):
    type: Literal["Conv2d"]


class MaxPool2d(Strict):
    type: Literal["MaxPool2d"]
    kernel_size: IntOrPair
    stride: IntOrPair | None = None
    padding: IntOrPair = 0
    dilation: IntOrPair = 1
    ceil_mode: bool = False


class AvgPool2d(Strict):
    type: Literal["AvgPool2d"]
    kernel_size: IntOrPair
    stride: IntOrPair | None = None
    padding: IntOrPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True


class AdaptiveAvgPool2d(Strict):
    type: Literal["AdaptiveAvgPool2d"]
    output_size: IntOrPair


class Flatten(Strict):
    type: Literal["Flatten"]
    start_dim: int = 1
    end_dim: int = -1


class Unflatten(Strict):
    type: Literal["Unflatten"]
    dim: int
    unflattened_size: list[PositiveInt] = Field(min_length=1)


class Dropout(Strict):
    type: Literal["Dropout"]
    p: float = Field(default=0.5, ge=0, le=1)


class _BatchNorm(Strict):
    num_features: PositiveInt | None = None
    eps: float = Field(default=1e-5, gt=0)
    momentum: float | None = Field(default=0.1, ge=0, le=1)
    affine: bool = True
    track_running_stats: bool = True


class BatchNorm1d(_BatchNorm):
    type: Literal["BatchNorm1d"]


class BatchNorm2d(_BatchNorm):
    type: Literal["BatchNorm2d"]


class LayerNorm(Strict):
    type: Literal["LayerNorm"]
    # None: the size of the last dimension of this layer's input.
    normalized_shape: list[PositiveInt] | None = None
    eps: float = Field(default=1e-5, gt=0)
    elementwise_affine: bool = True
    bias: bool = True


class ReLU(Strict):
    type: Literal["ReLU"]


class LeakyReLU(Strict):
    type: Literal["LeakyReLU"]
    negative_slope: float = 0.01


class ELU(Strict):
    type: Literal["ELU"]
    alpha: float = 1.0


class GELU(Strict):
    type: Literal["GELU"]
    approximate: Literal["none", "tanh"] = "none"


class PReLU(Strict):
    type: Literal["PReLU"]
    num_parameters: PositiveInt = 1
    init: float = 0.25


class Hardshrink(Strict):
    type: Literal["Hardshrink"]
    lambd: float = Field(default=0.5, ge=0)


class Sigmoid(Strict):
    type: Literal["Sigmoid"]


class Tanh(Strict):
    type: Literal["Tanh"]


class Softplus(Strict):
    type: Literal["Softplus"]
    beta: float = Field(default=1.0, gt=0)
    threshold: float = 20.0


class SiLU(Strict):
    type: Literal["SiLU"]


class Identity(Strict):
    type: Literal["Identity"]


class Pow(Strict):
    """x ** exponent, elementwise: seed 004's w*x**2 + b is [Pow(2), Linear(1, 1)]."""

    type: Literal["Pow"]
    # Bounded so an integral exponent fits torch's int64 power; x**100 already overflows
    # float32 for |x| > 2.4.
    exponent: float = Field(ge=-100, le=100)


LayerSpec = Annotated[
    Linear
    | Conv1d
    | Conv2d
    | MaxPool2d
    | AvgPool2d
    | AdaptiveAvgPool2d
    | Flatten
    | Unflatten
    | Dropout
    | BatchNorm1d
    | BatchNorm2d
    | LayerNorm
    | ReLU
    | LeakyReLU
    | ELU
    | GELU
    | PReLU
    | Hardshrink
    | Sigmoid
    | Tanh
    | Softplus
    | SiLU
    | Identity
    | Pow,
    Field(discriminator="type"),
]


class NetworkSpec(Strict):
    layers: list[LayerSpec] = Field(min_length=1, max_length=256)
