"""What the training code needs to know about a dataset before generating it: its shapes."""

from collections.abc import Sequence
from dataclasses import dataclass

from service.spec_types import Task


@dataclass(frozen=True)
class DataShape:
    """The shape of a dataset, known from its spec (or an upload's stored row) alone.

    `input_shape` is one sample's shape, without the batch dimension. `target_shape` is one
    sample's target: () for a class label; (k,) for k regression outputs, so a single
    regression value is (1,) and a batch of targets is (N, 1), like the network's output.
    `images`: the inputs are uint8 pictures (channels, height, width), scaled to [0, 1] when a
    batch is made; `class_names`: what each class index stands for, when the data names them.
    """

    samples: int
    input_shape: tuple[int, ...]
    task: Task
    num_classes: int | None
    target_shape: tuple[int, ...]
    class_names: tuple[str, ...] | None = None
    images: bool = False


def format_shape(shape: Sequence[int]) -> str:
    """A batch shape as users read it in messages: [N, 50] (N: any number of samples)."""
    return "[" + ", ".join(["N", *(str(size) for size in shape[1:])]) + "]"
