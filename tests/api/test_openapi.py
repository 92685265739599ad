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
