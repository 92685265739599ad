"""schemathesis against the service's own OpenAPI document, with a fixed example budget:
no 5xx, no undocumented status, responses match their schemas, and the key is enforced."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
EXAMPLES_PER_OPERATION = 30


@pytest.fixture
def api_schema(server: str, backend: str) -> schemathesis.BaseSchema:
    if backend != "sqlite":
        pytest.skip("fuzzed once, on SQLite: the routes are the same on PostgreSQL")
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_holds_its_contract_under_generated_requests(
    case: schemathesis.Case, api_key: str
) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)


def test_the_document_declares_bearer_auth_on_every_v1_route(server: str) -> None:
    document = httpx.get(f"{server}/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            expected = [{"HTTPBearer": []}] if path.startswith("/v1/") else None
            assert operation.get("security") == expected, f"{method} {path}"
