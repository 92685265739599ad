"""A dry run of a layer list on the meta device: sizes inferred, shapes checked, nothing allocated.

Each layer gets the shape the previous one produced; sizes the spec left out (in_features,
in_channels, num_features, normalized_shape) are taken from it, and a size that does not fit is
an InvalidSpec naming the layer, its type, the shape it got and what it expected.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from service import layers, specs
from service.errors import InvalidSpec
from service.training.networks import build_layer
from service.training.shapes import format_shape

# A batch of two: enough for BatchNorm in training mode, and shows which dimension is the batch.
TRACE_BATCH = 2


@dataclass(frozen=True)
class TracedNetwork:
    layers: list[layers.LayerSpec]  # with every inferred size written out
    input_shapes: list[tuple[int, ...]]  # the batch shape each layer receives
    output_shape: tuple[int, ...]  # the network's output batch shape
    parameters: int


def _fail(*, index: int, layer: layers.LayerSpec, message: str) -> InvalidSpec:
    return InvalidSpec(f"layer {index} ({layer.type}): {message}")


@dataclass(frozen=True)
class _SizeRule:
    """Where a layer's input size sits in the input's shape, and which ranks it accepts."""

    field: str
    dim: int
    where: str  # "... {}" with the size in place of {}
    ranks: tuple[int, ...] | None = None  # batch dimension included; None: any
    form: str = ""


_CHANNELS = "{} channels in dimension 1"
SIZE_RULES: dict[type[specs.Strict], _SizeRule] = {
    layers.Linear: _SizeRule("in_features", -1, "last dimension {}"),
    layers.Conv1d: _SizeRule("in_channels", 1, _CHANNELS, (3,), "[N, C, L] (C: in_channels)"),
    layers.Conv2d: _SizeRule("in_channels", 1, _CHANNELS, (4,), "[N, C, H, W] (C: in_channels)"),
    layers.BatchNorm1d: _SizeRule(
        "num_features", 1, _CHANNELS, (2, 3), "[N, C] or [N, C, L] (C: num_features)"
    ),
    layers.BatchNorm2d: _SizeRule(
        "num_features", 1, _CHANNELS, (4,), "[N, C, H, W] (C: num_features)"
    ),
}


def fill_sizes(layer: layers.LayerSpec, *, index: int, shape: tuple[int, ...]) -> layers.LayerSpec:
    """The layer with the sizes it takes from its input's shape written out.

    A size the spec gave that does not fit the shape is an InvalidSpec saying what to change.
    """
    if isinstance(layer, layers.LayerNorm):
        given = layer.normalized_shape
        if given is None:
            return layer.model_copy(update={"normalized_shape": [shape[-1]]})
        if len(given) >= len(shape) or list(shape[-len(given) :]) != given:
            raise _fail(
                index=index,
                layer=layer,
                message=f"expects inputs ending in dimensions {given} (normalized_shape), "
                f"got shape {format_shape(shape)}",
            )
        return layer
    rule = SIZE_RULES.get(type(layer))
    if rule is None:
        return layer
    if rule.ranks is not None and len(shape) not in rule.ranks:
        raise _fail(
            index=index,
            layer=layer,
            message=f"expects inputs of shape {rule.form}, got shape {format_shape(shape)}; "
            "reshape them with a Flatten or Unflatten layer before it",
        )
    given, actual = getattr(layer, rule.field), shape[rule.dim]
    if given is None:
        return layer.model_copy(update={rule.field: actual})
    if given != actual:
        raise _fail(
            index=index,
            layer=layer,
            message=f"expects inputs with {rule.where.format(given)} ({rule.field}), "
            f"got shape {format_shape(shape)}; set {rule.field} to {actual} or leave it out",
        )
    return layer


def trace_network(
    layers: Sequence[layers.LayerSpec], *, input_shape: tuple[int, ...]
) -> TracedNetwork:
    """Run a dummy batch through the layers on the meta device, one layer at a time."""
    x = torch.empty((TRACE_BATCH, *input_shape), device="meta")
    filled, input_shapes, parameters = [], [], 0
    for index, spec in enumerate(layers):
        shape = tuple(x.shape)
        layer = fill_sizes(spec, index=index, shape=shape)
        try:
            with torch.device("meta"):
                module = build_layer(layer)
            x = module(x)
        except (RuntimeError, ValueError, TypeError, IndexError, OverflowError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _fail(
                index=index,
                layer=layer,
                message=f"cannot take inputs of shape {format_shape(shape)}: {reason}",
            ) from exc
        if x.dim() == 0 or x.shape[0] != TRACE_BATCH:
            raise _fail(
                index=index,
                layer=layer,
                message=f"turns inputs of shape {format_shape(shape)} into shape {list(x.shape)}, "
                "mixing samples; keep dimension 0 as the batch (e.g. Flatten with start_dim 1)",
            )
        filled.append(layer)
        input_shapes.append(shape)
        parameters += sum(p.numel() for p in module.parameters())
    return TracedNetwork(
        layers=filled, input_shapes=input_shapes, output_shape=tuple(x.shape), parameters=parameters
    )
