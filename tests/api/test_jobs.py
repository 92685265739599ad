"""/v1/jobs over real HTTP against a migrated database."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.settings import Settings
from tests.factories import tiny_spec


def submit(client: httpx.Client, **overrides: object) -> dict:
    response = client.post("/v1/jobs", json=tiny_spec(**overrides))
    assert response.status_code == 202, response.text
    return response.json()


def test_submit_queues_the_normalised_spec(client: httpx.Client) -> None:
    job = submit(client)

    assert job["status"] == "queued"
    assert job["epoch"] == 0
    assert job["epochs"] == 3
    assert job["attempt"] == 1
    # Linear(2, 4) + Linear(4, 2): 2*4 + 4 + 4*2 + 2.
    assert job["parameters"] == 22
    assert job["spec"]["model"]["layers"][0]["in_features"] == 2
    assert job["spec"]["model"]["layers"][2]["in_features"] == 4
    assert job["spec"]["task"] == "classification"
    assert job["spec"]["loss"] == "cross_entropy"
    assert job["latest"] is None
    assert client.get(f"/v1/jobs/{job['id']}").json()["spec"] == job["spec"]


def test_list_is_newest_first_with_cursor_paging_and_status_filter(client: httpx.Client) -> None:
    ids = [submit(client, name=f"job-{i}")["id"] for i in range(5)]
    client.post(f"/v1/jobs/{ids[1]}/cancel")

    first = client.get("/v1/jobs", params={"limit": 2}).json()
    second = client.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get("/v1/jobs", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    listed = [job["id"] for page in (first, second, third) for job in page["jobs"]]

    assert listed == ids[::-1]
    assert third["next_cursor"] is None
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert [job["id"] for job in cancelled] == [ids[1]]


def test_the_name_filter_matches_a_substring_ignoring_case_with_like_wildcards_literal(
    client: httpx.Client,
) -> None:
    ids = {
        name: submit(client, name=name)["id"] for name in ("Adam-lr", "sgd-LR", "50%_off", "500")
    }

    def named(text: str) -> list[str]:
        return [job["id"] for job in client.get("/v1/jobs", params={"name": text}).json()["jobs"]]

    assert named("lr") == [ids["sgd-LR"], ids["Adam-lr"]]
    assert named("ADAM") == [ids["Adam-lr"]]
    assert named("50%") == [ids["50%_off"]]
    assert named("_") == [ids["50%_off"]]
    assert named("nothing") == []
    for field in ("name", "cursor"):
        refused = client.get("/v1/jobs", params={field: "a\x00b"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith(f"query.{field}: String should match pattern")


def test_cancel_of_a_queued_job_is_immediate_and_final(client: httpx.Client) -> None:
    job = submit(client)

    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    again = client.post(f"/v1/jobs/{job['id']}/cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert cancelled.json()["stop_reason"] == "cancelled before it started"
    assert again.status_code == 409
    assert again.json() == {
        "error": "Conflict",
        "detail": f"job {job['id']} already cancelled; "
        "only queued or running jobs can be cancelled",
    }


def test_unknown_job_is_404(client: httpx.Client) -> None:
    response = client.get("/v1/jobs/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "detail": "job 'nope' does not exist"}


def test_unknown_layer_is_422_listing_the_allowed_layers(client: httpx.Client) -> None:
    spec = tiny_spec(model={"layers": [{"type": "Transformer", "d_model": 4}]})
    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidRequest"
    assert "Transformer" in body["detail"]
    assert "'Linear'" in body["detail"]
    assert "'Conv2d'" in body["detail"]


def test_shape_mismatch_is_422_naming_the_layer(client: httpx.Client) -> None:
    layers = [
        {"type": "Linear", "in_features": 3, "out_features": 4},
        {"type": "Linear", "out_features": 2},
    ]
    response = client.post("/v1/jobs", json=tiny_spec(model={"layers": layers}))

    assert response.status_code == 422
    assert response.json()["error"] == "InvalidSpec"
    assert "layer 0 (Linear)" in response.json()["detail"]


def test_malformed_json_is_422_not_500(client: httpx.Client) -> None:
    response = client.post(
        "/v1/jobs", content=b'{"epochs": 3,', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidRequest"


def test_missing_fields_are_named(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json={"epochs": 3})
    detail = response.json()["detail"]
    assert response.status_code == 422
    assert "dataset: Field required" in detail
    assert "model: Field required" in detail


def test_metrics_of_a_queued_job_are_empty(client: httpx.Client) -> None:
    job = submit(client)
    response = client.get(f"/v1/jobs/{job['id']}/metrics")
    assert response.json() == {"job_id": job["id"], "epochs": []}


def test_body_over_the_limit_is_413_before_parsing(
    client: httpx.Client, settings: Settings
) -> None:
    body = b"x" * (settings.max_body_bytes + 1)
    response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"


def test_idempotency_key_returns_the_same_job(client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = client.post("/v1/jobs", json=tiny_spec(), headers=headers)
    second = client.post("/v1/jobs", json=tiny_spec(), headers=headers)
    other = client.post("/v1/jobs", json=tiny_spec(epochs=4), headers=headers)

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert len(client.get("/v1/jobs").json()["jobs"]) == 1
    assert other.status_code == 422
    assert "Idempotency-Key was already used" in other.json()["detail"]


@pytest.mark.parametrize("settings_overrides", [{"max_active_jobs_per_key": 2}])
def test_too_many_active_jobs_is_429_with_retry_after(client: httpx.Client) -> None:
    submit(client)
    submit(client)
    response = client.post("/v1/jobs", json=tiny_spec())

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "TooManyJobs"


@pytest.mark.parametrize("settings_overrides", [{"max_parameters": 10}])
def test_too_many_parameters_is_422_naming_the_setting(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json=tiny_spec())
    assert response.status_code == 422
    assert "22 parameters" in response.json()["detail"]
    assert "SERVICE_MAX_PARAMETERS" in response.json()["detail"]


def test_twenty_parallel_identical_submissions_make_one_job(client: httpx.Client) -> None:
    def post(_: int) -> httpx.Response:
        return client.post("/v1/jobs", json=tiny_spec(), headers={"Idempotency-Key": "parallel"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))

    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(client.get("/v1/jobs").json()["jobs"]) == 1


def test_a_body_that_is_not_utf8_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/v1/jobs", content=b"\xff]\xfe", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidRequest"
    assert response.json()["detail"].endswith("send UTF-8 JSON")


def test_a_body_streamed_without_content_length_is_cut_off_at_the_limit(
    client: httpx.Client, settings: Settings
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    response = client.post(
        "/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"


def test_a_two_billion_parameter_network_is_refused_without_being_built(
    client: httpx.Client,
) -> None:
    # 8 GB of float32 if it were allocated; planned on the meta device it costs nothing.
    layers = [
        {"type": "Linear", "out_features": 100_000},
        {"type": "Linear", "out_features": 20_000},
    ]
    spec = tiny_spec(model={"layers": [*layers, {"type": "Linear", "out_features": 2}]})
    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422
    # (2*100000 + 100000) + (100000*20000 + 20000) + (20000*2 + 2)
    assert "2,000,360,002 parameters" in response.json()["detail"]


@pytest.mark.parametrize("settings_overrides", [{"max_sample_epochs": 1000}])
def test_too_many_samples_times_epochs_is_422(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json=tiny_spec(epochs=200))
    assert response.status_code == 422
    assert "8 samples x 200 epochs = 1,600" in response.json()["detail"]
    assert "SERVICE_MAX_SAMPLE_EPOCHS" in response.json()["detail"]


def test_a_nul_character_anywhere_is_a_422_or_a_404_never_a_500(client: httpx.Client) -> None:
    # PostgreSQL refuses text holding NUL; SQLite stores it. Neither answers 500.
    for path in ("/v1/jobs/a%00b", "/v1/jobs/a%00b/metrics"):
        answer = client.get(path)
        assert answer.status_code in (404, 422), answer.text
    named = client.post("/v1/jobs", json=tiny_spec(name="a\x00b"))
    assert named.status_code in (202, 422), named.text
    if named.status_code == 422:
        assert "NUL character" in named.json()["detail"]
