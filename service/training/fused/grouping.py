"""Which normalised specs train together: those whose fusion keys are equal.

A key is the spec with what each member may hold on its own taken out: its name, seed, epochs,
early stopping, schedule, checkpoint interval, and the numbers of its optimizer (the optimizer's
name and its boolean choices stay: they change the arithmetic, not just its constants). What is
left fixes the data's sizes, the network, the batches and the loss, which the stack shares.
"""

import json

from service.specs import JobSpec
from service.training.fused.stack import FUSABLE_TYPES
from service.training.plan import job_shape

# The optimizer fields that decide which arithmetic runs; every other one is a number per member.
OPTIMIZER_CHOICES = ("name", "nesterov", "amsgrad", "centered")
MEMBER_FIELDS = {"name", "seed", "epochs", "early_stopping", "schedule", "checkpoint_every"}


def why_solo(spec: JobSpec) -> str | None:
    """Why the spec cannot train fused (a layer the stack has no batched form of, or pictures,
    whose uint8 batches, augmentation and autocast only the solo loop makes), or None."""
    if job_shape(spec).images:
        return "pictures train solo"
    if spec.precision != "fp32":
        return f"precision {spec.precision} trains solo"
    for index, layer in enumerate(spec.model.layers):
        if layer.type not in FUSABLE_TYPES:
            return f"layer {index} ({layer.type}) does not fuse"
        padding = getattr(layer, "padding_mode", "zeros")
        if padding != "zeros":
            return f"layer {index} ({layer.type}) pads with {padding}, not zeros"
    return None


def fusion_key(spec: JobSpec) -> str | None:
    """A string equal for specs that may train in one stack; None if the spec trains solo."""
    if why_solo(spec) is not None:
        return None
    shared = spec.model_dump(mode="json", exclude=MEMBER_FIELDS)
    optimizer = shared.pop("optimizer")
    shared["optimizer"] = {k: v for k, v in optimizer.items() if k in OPTIMIZER_CHOICES}
    # A generated dataset's own seed changes its samples, not their sizes: each member draws
    # its own.
    shared["dataset"].pop("seed", None)
    return json.dumps(shared, sort_keys=True)
