"""A CIFAR-10-sized upload (50,000 x 32 x 32 x 3 uint8, random) through a real `service api`
process: accepted with the api's memory bounded, trained for an epoch, and predicted from."""

import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.integration.test_wakeup import stop
from tests.servers import free_port, start_service, wait_until_ready

SAMPLES, SIDE = 50_000, 32
PICTURE_BYTES = SAMPLES * SIDE * SIDE * 3  # 153.6 MB


def memory(pid: int) -> dict[str, int]:
    """The process's resident set now (VmRSS) and at its peak (VmHWM), in bytes (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        name: int(re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE)[1]) * 1024  # type: ignore[index]
        for name in ("VmRSS", "VmHWM")
    }


def reset_peak(pid: int) -> None:
    # Writing 5 to clear_refs resets VmHWM to the current resident set (Linux 4.0+).
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.mark.slow
def test_a_cifar_sized_upload_is_stored_in_bounded_memory_trained_and_predicted(
    settings: Settings, sessions: sessionmaker[Session], api_key: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (SAMPLES, SIDE, SIDE, 3), dtype=np.uint8)
    upload = tmp_path / "cifar.npz"
    np.savez(upload, x=x, y=np.arange(SAMPLES) % 10)
    first = x[:1].transpose(0, 3, 1, 2).copy()
    del x

    settings = settings.model_copy(update={"port": free_port(), "api_processes": 1})
    api = start_service(settings, "api", log_path=str(tmp_path / "api.log"))
    url = f"http://127.0.0.1:{settings.port}"
    try:
        wait_until_ready(url)
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
            # Once, so the route's imports and first allocations are not counted as the upload's.
            warm = client.post("/v1/datasets", files={"file": ("w.csv", b"a,target\n1,0\n")})
            assert warm.status_code == 201
            reset_peak(api.pid)
            before = memory(api.pid)["VmRSS"]
            with upload.open("rb") as file:
                response = client.post("/v1/datasets", files={"file": ("cifar.npz", file)})
            growth = memory(api.pid)["VmHWM"] - before
            print(
                f"api peak RSS growth during a {PICTURE_BYTES / 1e6:.1f} MB upload: "
                f"{growth / 1e6:.1f} MB ({growth / PICTURE_BYTES:.2f}x)"
            )
            assert response.status_code == 201, response.text
            dataset = response.json()
            assert (dataset["samples"], dataset["input_shape"]) == (SAMPLES, [3, SIDE, SIDE])
            # The arrays once, and the stored blob once: never the body several times over.
            assert growth < 2.5 * PICTURE_BYTES

            spec = {
                "dataset": {"kind": "uploaded", "id": dataset["id"]},
                "model": {
                    "layers": [
                        {"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2},
                        {"type": "ReLU"},
                        {"type": "MaxPool2d", "kernel_size": 3},
                        {"type": "Flatten"},
                        {"type": "Linear", "out_features": 10},
                    ]
                },
                "optimizer": {"name": "adam", "lr": 0.001},
                "epochs": 1,
                "batch_size": 500,
                "seed": 0,
                "normalize": "per_channel",
            }
            job = client.post("/v1/jobs", json=spec).json()
            assert Worker(settings=settings, sessions=sessions).run_once()
            trained = client.get(f"/v1/jobs/{job['id']}").json()
            assert (trained["status"], trained["epoch"]) == ("succeeded", 1)

            buffer = io.BytesIO()
            np.save(buffer, first)
            predicted = client.post(
                f"/v1/jobs/{job['id']}/predict",
                content=buffer.getvalue(),
                headers={"Content-Type": "application/x-npy"},
            )
            assert predicted.status_code == 200, predicted.text
            assert 0 <= predicted.json()["predictions"][0] < 10
    finally:
        stop(api)
