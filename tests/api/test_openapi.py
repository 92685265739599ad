"""The OpenAPI document lists every status each route can return, with the error envelope."""

import httpx

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
            for status in ("401", "413"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == ERROR_SCHEMA, f"{method} {path} {status}"

    assert set(operations["POST", "/v1/jobs"]["responses"]) == {"202", "401", "413", "422", "429"}
    assert set(operations["GET", "/v1/jobs/{job_id}"]["responses"]) == {
        "200",
        "401",
        "404",
        "413",
        "422",
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
    ]
    assert set(operation["responses"]) == {"200", "401", "404", "409", "413", "422"}
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
                {"minimum": 1, "type": "integer"},
            ]
        },
        "top_k": {"minimum": 1, "type": "integer"},
    }
