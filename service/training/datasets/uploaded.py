"""A dataset stored with POST /v1/datasets: its tensors come from the database, not from here.

Its shapes come from the dataset's row at submission; plan writes them into the job's
normalised spec, so a planned job knows them after the row is gone.
"""

from service.errors import Conflict
from service.specs import UploadedData
from service.training.datasets.kind import DatasetKind, Tensors
from service.training.shapes import DataShape


def shape(data: UploadedData) -> DataShape:
    """The shapes the spec recorded at submission."""
    if data.shape is None:
        raise Conflict(
            f"the spec does not record the shapes of the uploaded dataset {data.id!r}; "
            "submit the job again so that it does"
        )
    return data.shape


def generate(data: UploadedData) -> Tensors:
    raise ValueError(f"dataset {data.id!r} is an upload; pass its stored tensors as uploaded")


KIND = DatasetKind(spec=UploadedData, shape=shape, generate=generate, task_from_targets=True)
