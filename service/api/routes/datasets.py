"""/v1/datasets: upload a CSV or NPZ once, train on it by id; delete it."""

from fastapi import APIRouter, Response, UploadFile

from service import datasets, storage
from service.api.deps import Caller, ReadSession, SettingsDep, WriteSession
from service.api.errors import responses
from service.api.views import dataset_out
from service.schemas import DatasetOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=201, response_model=DatasetOut, responses=responses(413, 422, 507))
def upload_dataset(
    file: UploadFile, caller: Caller, session: WriteSession, settings: SettingsDep
) -> DatasetOut:
    """Multipart field `file`: a CSV with a header row and a `target` column, or an NPZ with
    arrays `x` (samples first) and `y`."""
    content = file.file.read()
    dataset = datasets.store_upload(
        session,
        owner_id=caller.id,
        filename=file.filename or "upload",
        content=content,
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
