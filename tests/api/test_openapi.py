"""The OpenAPI document lists every status each route can return, with the error envelope."""

import httpx
import pytest

from tests.factories import tiny_spec

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}


def test_every_v1_route_documents_401_413_and_its_own_statuses(server: str) -> None:
    document = httpx.get(f"{server}/openapi.json").json()
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }

    for (method, path), operation in operations.items():
        if path.startswith("/v1/"):
            for status in ("401", "413", "503"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == ERROR_SCHEMA, f"{method} {path} {status}"
            # Every /v1 route checks its key against the database.
            retry_after = operation["responses"]["503"]["headers"]["Retry-After"]
            assert retry_after["schema"] == {"type": "integer"}, f"{method} {path}"

    assert set(operations["POST", "/v1/jobs"]["responses"]) == {
        *("202", "401", "413", "422", "429", "503", "507")
    }
    assert set(operations["POST", "/v1/datasets"]["responses"]) == {
        *("201", "401", "413", "422", "503", "507")
    }
    assert set(operations["GET", "/v1/jobs/{job_id}"]["responses"]) == {
        *("200", "401", "404", "413", "422", "503")
    }
    assert set(operations["POST", "/v1/jobs/{job_id}/cancel"]["responses"]) >= {"200", "404", "409"}
    assert (
        "text/csv" in operations["GET", "/v1/jobs/{job_id}/metrics"]["responses"]["200"]["content"]
    )
    assert set(operations["GET", "/readyz"]["responses"]) == {"200", "503"}


def test_the_job_plots_are_one_route_whose_names_are_listed(server: str) -> None:
    document = httpx.get(f"{server}/openapi.json").json()
    plots = [path for path in document["paths"] if path.startswith("/v1/jobs/{job_id}/plots/")]
    operation = document["paths"]["/v1/jobs/{job_id}/plots/{name}.png"]["get"]
    name = next(p for p in operation["parameters"] if p["name"] == "name")
    reference = name["schema"]["$ref"].rsplit("/", 1)[1]

    assert plots == ["/v1/jobs/{job_id}/plots/{name}.png"]
    assert document["components"]["schemas"][reference]["enum"] == [
        "curves",
        "decision_boundary",
        "fit",
        "data",
        "samples",
        "confusion",
    ]
    assert set(operation["responses"]) == {"200", "401", "404", "409", "413", "422", "503"}
    assert "image/png" in operation["responses"]["200"]["content"]


def test_predicts_query_parameters_are_its_json_fields_but_inputs(server: str) -> None:
    document = httpx.get(f"{server}/openapi.json").json()
    operation = document["paths"]["/v1/jobs/{job_id}/predict"]["post"]
    query = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]

    assert list(body["properties"]) == ["inputs", "checkpoint", "top_k"]
    assert query == {
        "checkpoint": {
            "anyOf": [
                {"enum": ["best", "final", "latest"], "type": "string"},
                {"maximum": 1_000_000, "minimum": 1, "type": "integer"},
            ]
        },
        "top_k": {"minimum": 1, "type": "integer"},
    }


# What `schemathesis run` with every phase and check found (tests/api/test_fuzz.py), pinned.


def test_a_csv_with_a_bare_cr_inside_a_field_is_422_not_500(client: httpx.Client) -> None:
    response = client.post(
        "/v1/datasets", files={"file": ("cr.csv", b"a,target\n1\r2,0\n", "text/csv")}
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": "InvalidUpload",
        "detail": "line 2 of the CSV has 1 cells but the header has 2",
    }


def test_a_405_allows_every_method_of_the_path_it_names(client: httpx.Client) -> None:
    # /v1/jobs is two routes; Starlette named only the first one's method.
    response = client.put("/v1/jobs")
    assert (response.status_code, response.headers["allow"]) == (405, "GET, POST")
    assert response.json()["error"] == "MethodNotAllowed"
    # The literal path, not GET /v1/datasets/{dataset_id} with the id "plot.png".
    response = client.options("/v1/datasets/plot.png")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


def test_the_document_states_what_a_checkpoint_ref_and_a_last_event_id_are(
    server: str,
) -> None:
    document = httpx.get(f"{server}/openapi.json").json()
    ref = document["paths"]["/v1/jobs/{job_id}/checkpoints/{ref}"]["get"]["parameters"][1]
    assert ref["schema"]["pattern"] == "^(best|final|latest|[1-9][0-9]{0,6})$"
    events = document["paths"]["/v1/jobs/{job_id}/events"]["get"]["parameters"]
    header = next(parameter for parameter in events if parameter["in"] == "header")
    assert header["schema"] == {
        "type": "string",
        "pattern": "^(0|[1-9][0-9]{0,6})$",
        "title": "Last-Event-Id",
    }


REF_HELP = "is not a checkpoint; use best, final, latest or an epoch number"


@pytest.mark.parametrize(
    ("path", "headers", "detail"),
    [
        ("/checkpoints/0", {}, f"checkpoint '0' {REF_HELP}"),
        ("/checkpoints/01", {}, f"checkpoint '01' {REF_HELP}"),
        # Longer than any epoch: it overflowed SQLite's integer column into a 500.
        ("/checkpoints/99999999", {}, f"checkpoint '99999999' {REF_HELP}"),
        ("/plots/fit.png?checkpoint=0000", {}, f"checkpoint '0000' {REF_HELP}"),
        ("/events", {"Last-Event-ID": "null"}, "header.last-event-id: String should match"),
        ("/events?since=100000000000000000000000", {}, "query.since: Input should be less"),
    ],
)
def test_what_the_document_forbids_is_422_in_the_envelope(
    client: httpx.Client, path: str, headers: dict[str, str], detail: str
) -> None:
    job_id = client.post("/v1/jobs", json=tiny_spec()).json()["id"]
    response = client.get(f"/v1/jobs/{job_id}{path}", headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        (
            {"dataset": {"kind": "inline", "inputs": [[0.0]], "targets": [0, 1]}},
            "inputs has 1 samples but targets has 2; give one target per input",
        ),
        ({"epochs": True}, "epochs: expected a number, not true"),
        ({"dataset": {"kind": "quadratic", "seed": 10**30}}, "dataset.quadratic.seed: Input"),
        (
            {"model": {"layers": [{"type": "Pow", "exponent": 1e300}, {"type": "Linear"}]}},
            "model.layers.0.Pow.exponent: Input should be less than or equal to 100",
        ),
    ],
)
def test_specs_the_document_forbids_are_422_not_500(
    client: httpx.Client, overrides: dict[str, object], detail: str
) -> None:
    response = client.post("/v1/jobs", json=tiny_spec(**overrides))
    assert response.status_code == 422
    assert detail in response.json()["detail"]
