"""/v1/datasets: upload a CSV, NPZ or ZIP of pictures once, train on it by id; delete it."""

from typing import Annotated

from fastapi import APIRouter, Form, Response, UploadFile

from service import datasets, storage
from service.api.deps import Caller, ReadSession, SettingsDep, WriteSession
from service.api.errors import responses
from service.api.views import dataset_out
from service.image_uploads import ImageOptions
from service.schemas import DatasetOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

ImageSize = Annotated[
    int | None,
    Form(ge=1, le=1024, description="Pictures only: resize every picture to this square side."),
]
Channels = Annotated[
    int | None,
    Form(description="Pictures only: 1 (grey) or 3 (RGB); default: 1 if every picture is grey."),
]


@router.post("", status_code=201, response_model=DatasetOut, responses=responses(413, 422, 507))
def upload_dataset(
    file: UploadFile,
    caller: Caller,
    session: WriteSession,
    settings: SettingsDep,
    image_size: ImageSize = None,
    channels: Channels = None,
) -> DatasetOut:
    """Multipart field `file`: a CSV with a header row and a `target` column; an NPZ with arrays
    `x` (samples first), `y` and optionally `class_names`, where a uint8 `x` of shape
    [N, H, W], [N, H, W, C] or [N, C, H, W] holds pictures; or a ZIP of class folders of PNG or
    JPEG pictures (cat/0001.png, dog/0002.jpg), classes sorted by folder name."""
    dataset = datasets.store_upload(
        session,
        owner_id=caller.id,
        filename=file.filename or "upload",
        file=file.file,
        options=ImageOptions(size=image_size, channels=channels),
        max_bytes=settings.max_dataset_bytes,
        limit_bytes=settings.max_storage_bytes_per_key,
    )
    return dataset_out(dataset)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=responses(404))
def get_dataset(dataset_id: str, caller: Caller, session: ReadSession) -> DatasetOut:
    return dataset_out(datasets.get(session, dataset_id=dataset_id, owner_id=caller.id))


@router.delete("/{dataset_id}", status_code=204, responses=responses(404, 409, 507))
def delete_dataset(dataset_id: str, caller: Caller, session: WriteSession) -> Response:
    """Delete the dataset and give its bytes back; 409 naming the queued or running jobs that
    still need it. Jobs already trained on it keep predicting."""
    storage.delete_dataset(session, dataset_id=dataset_id, owner_id=caller.id)
    return Response(status_code=204)
