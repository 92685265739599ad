"""/v1/datasets: upload a CSV or NPZ once, train on it by id."""

from fastapi import APIRouter, UploadFile

from service import datasets
from service.api.deps import Caller, ReadSession, WriteSession
from service.api.errors import responses
from service.api.views import dataset_out
from service.schemas import DatasetOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=201, response_model=DatasetOut, responses=responses(422, 507))
def upload_dataset(file: UploadFile, caller: Caller, session: WriteSession) -> DatasetOut:
    """Multipart field `file`: a CSV with a header row and a `target` column, or an NPZ with
    arrays `x` (samples first) and `y`."""
    content = file.file.read()
    dataset = datasets.store_upload(
        session, owner_id=caller.id, filename=file.filename or "upload", content=content
    )
    return dataset_out(dataset)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=responses(404))
def get_dataset(dataset_id: str, caller: Caller, session: ReadSession) -> DatasetOut:
    return dataset_out(datasets.get(session, dataset_id=dataset_id, owner_id=caller.id))
