"""Same-shaped networks as one stack: each parameter becomes one tensor [members, ...] and each
layer one batched operator over activations shaped [members, batch, ...] (HFTA's horizontal
fusion: a Linear is one `baddbmm` (linear.py), a Conv2d one grouped convolution).

Only layers whose batched form computes what each member's own layer would are accepted (see
FUSABLE); a network with any other layer trains solo.
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional

from service.specs import LossName
from service.training.fused.linear import THIN_FEATURES, stacked_linear, thin_linear
from service.training.networks import Pow

# Layers applied elementwise: the member's own module runs on the whole stack unchanged.
ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.Hardshrink,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.SiLU,
    nn.Identity,
    Pow,
)
# Layers that act on each sample alone and hold no parameters: members fold into the batch.
PER_SAMPLE = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
# Dropout's masks cannot follow each member's own random stream, and BatchNorm's running
# statistics are buffers updated in place: networks with either train solo.
FUSABLE_TYPES = frozenset(
    {"Linear", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten"}
    | {"Unflatten", "LayerNorm", "PReLU", "Pow", "ReLU", "LeakyReLU", "ELU", "GELU", "Hardshrink"}
    | {"Sigmoid", "Tanh", "Softplus", "SiLU", "Identity"}
)


def _shifted(dim: int) -> int:
    """A per-sample dimension's index once the member dimension leads (negative ones stay)."""
    return dim + 1 if dim >= 0 else dim


def _per_member(weight: Tensor, *, like: Tensor, channel_dim: int) -> Tensor:
    """weight [members, C] viewed to broadcast over activations [members, batch, ...] along
    `channel_dim` of the activations (a single value per member broadcasts everywhere)."""
    shape = [1] * like.dim()
    shape[0] = weight.shape[0]
    if weight.shape[1] > 1:
        shape[channel_dim] = weight.shape[1]
    return weight.view(shape)


class StackedLayers:
    """The forward pass of one layer list over stacked parameters [members, ...] passed in.

    `thin`: write thin Linears as multiply-adds (see THIN_FEATURES), for a compiled step; run
    eagerly that form is slower than the matrix product.
    """

    def __init__(self, layers: Sequence[nn.Module], *, thin: bool = False) -> None:
        self.layers = list(layers)
        self.thin = thin

    def __call__(self, parameters: dict[str, Tensor], x: Tensor) -> Tensor:
        for index, layer in enumerate(self.layers):
            x = self._layer(index, layer, x, parameters)
        return x

    def _layer(self, index: int, layer: nn.Module, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        if isinstance(layer, nn.Linear):
            return self._linear(x, weight=p[f"{index}.weight"], bias=p.get(f"{index}.bias"))
        if isinstance(layer, ELEMENTWISE):
            return layer(x)
        if isinstance(layer, nn.PReLU):
            weight = _per_member(p[f"{index}.weight"], like=x, channel_dim=2)
            return torch.where(x > 0, x, weight * x)
        if isinstance(layer, nn.Flatten):
            return x.flatten(_shifted(layer.start_dim), _shifted(layer.end_dim))
        if isinstance(layer, nn.Unflatten):
            return x.unflatten(_shifted(int(layer.dim)), layer.unflattened_size)
        if isinstance(layer, PER_SAMPLE):
            return layer(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        if isinstance(layer, nn.Conv1d | nn.Conv2d):
            return _convolution(layer, x, weight=p[f"{index}.weight"], bias=p.get(f"{index}.bias"))
        if isinstance(layer, nn.LayerNorm):
            return _layer_norm(
                layer, x, weight=p.get(f"{index}.weight"), bias=p.get(f"{index}.bias")
            )
        raise TypeError(f"{type(layer).__name__} does not fuse")

    def _linear(self, x: Tensor, *, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self.thin and min(weight.shape[1:]) <= THIN_FEATURES:
            return thin_linear(x, weight=weight, bias=bias)
        return stacked_linear(x, weight=weight, bias=bias)


class StackedNetwork:
    """`members` networks of one layer list as one stack.

    `parameters` maps each of the networks' parameter names (state_dict keys) to a leaf tensor
    [members, *shape], in the networks' own order.
    """

    def __init__(self, networks: Sequence[nn.Sequential]) -> None:
        self.layers = StackedLayers(list(networks[0]))
        self.parameters: dict[str, Tensor] = {}
        for name, _ in networks[0].named_parameters():
            stacked = torch.stack([network.get_parameter(name).detach() for network in networks])
            self.parameters[name] = stacked.requires_grad_()

    @property
    def members(self) -> int:
        return next(iter(self.parameters.values())).shape[0]

    def keep(self, indices: Tensor) -> None:
        """Keep only the members at `indices` (repacking the stack when some leave)."""
        for name, tensor in self.parameters.items():
            self.parameters[name] = tensor.detach().index_select(0, indices).requires_grad_()

    def member_weights(self, member: int) -> dict[str, Tensor]:
        """One member's state_dict, as its solo network would have it."""
        return {name: t.detach()[member] for name, t in self.parameters.items()}

    def __call__(self, x: Tensor) -> Tensor:
        return self.layers(self.parameters, x)


def _convolution(
    layer: nn.Conv1d | nn.Conv2d, x: Tensor, *, weight: Tensor, bias: Tensor | None
) -> Tensor:
    """Members' channels side by side, one grouped convolution: [B, M*C, ...]."""
    members = x.shape[0]
    convolve: Callable[..., Tensor] = (
        functional.conv2d if isinstance(layer, nn.Conv2d) else functional.conv1d
    )
    side_by_side = x.transpose(0, 1).flatten(1, 2)
    out = convolve(
        side_by_side,
        weight.flatten(0, 1),
        None if bias is None else bias.flatten(),
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups * members,
    )
    return out.unflatten(1, (members, -1)).transpose(0, 1)


def _layer_norm(
    layer: nn.LayerNorm, x: Tensor, *, weight: Tensor | None, bias: Tensor | None
) -> Tensor:
    shape = tuple(layer.normalized_shape)
    out = functional.layer_norm(x, shape, eps=layer.eps)
    broadcast = (x.shape[0],) + (1,) * (x.dim() - 1 - len(shape)) + shape
    if weight is not None:
        out = out * weight.view(broadcast)
    if bias is not None:
        out = out + bias.view(broadcast)
    return out


def member_losses(output: Tensor, target: Tensor, *, loss: LossName) -> Tensor:
    """Each member's loss [members] over its batch, reduced as the solo loss function is."""
    if loss == "cross_entropy":
        each = functional.cross_entropy(
            output.flatten(0, 1), target.flatten(0, 1), reduction="none"
        )
        return each.view(output.shape[0], -1).mean(1)
    if loss == "half_sum_squared":
        return 0.5 * ((output - target) ** 2).flatten(1).sum(1)
    elementwise: dict[str, Callable[..., Tensor]] = {
        "bce_with_logits": functional.binary_cross_entropy_with_logits,
        "mse": functional.mse_loss,
        "l1": functional.l1_loss,
        "huber": functional.huber_loss,
    }
    return elementwise[loss](output, target, reduction="none").flatten(1).mean(1)


def member_correct(output: Tensor, target: Tensor, *, loss: LossName) -> Tensor:
    """Each member's correct predictions [members] (see losses.count_correct)."""
    if loss == "bce_with_logits":
        return ((output > 0) == (target > 0.5)).flatten(1).sum(1)
    return (output.argmax(dim=-1) == target).flatten(1).sum(1)


# (parameters, inputs, targets) -> (each member's loss [members], correct [members] or None)
Measure = Callable[[dict[str, Tensor], Tensor, Tensor], tuple[Tensor, Tensor | None]]


def measure(layers: StackedLayers, *, loss: LossName, classification: bool) -> Measure:
    """The step's forward pass and per-member losses, as plain torch calls."""

    def run(parameters: dict[str, Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        output = layers(parameters, x)
        losses = member_losses(output, y, loss=loss)
        correct = member_correct(output.detach(), y, loss=loss) if classification else None
        return losses, correct

    return run
