"""Property-based tests of the API from its own OpenAPI document (schemathesis): whatever
parameters a client sends, the API answers without a server error, with a status, media type,
body and headers that its document promises (:mod:`publish.api.schemas`)."""
from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from tests.lakes import released_lake

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES = 30           # generated requests per operation
STATIONS = ["행신동", "백마로(마두역)", "aq-ref-0001"]
METRICS = ["pm10", "pm25", "o3", "cai"]
STA = ["Things", "Datastreams", "Observations", "Sensors", "ObservedProperties", "Locations",
       "Things('aq-ref-0001')", "Datastreams('aq-ref-0001:pm25')/Observations", "Things('aq-ref-0001')/name/$value"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from publish.api.app import create_app
    from publish.api.live import LiveRelease

    with released_lake(tmp_path_factory, "schemathesis-lake", date(2026, 11, 29)) as (_, store):
        manifest = LiveRelease(store).current().manifest
        app = create_app(store, rate_limits={"anonymous": 1_000_000})
        yield {"schema": schemathesis.openapi.from_asgi("/openapi.json", app), "manifest": manifest, "store": store}


def _scenarios(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Parameter values the fixture release knows, so that generated requests reach its data
    and not only 404s for random ids; the other parameters are still generated."""
    ids = sorted(manifest["datasets"])
    files = [f["path"] for e in manifest["datasets"].values() for f in e["files"]
             if f["period"] is None or f["format"] == "csv"]
    return [*({"dataset_id": d} for d in ids), *({"dataset": d} for d in ids),
            *({"dataset": "air-quality-station-hourly", "metric": m} for m in METRICS),
            *({"path": p} for p in ["latest.json", *files[:12]]), *({"id": d} for d in ids),
            *({"resource_id": d} for d in ids), *({"stationName": s, "serviceKey": "k"} for s in STATIONS),
            *({"resource": r} for r in STA)]


# One request per operation that must answer 200, checked like the generated ones.
KNOWN_GOOD: dict[str, dict[str, Any]] = {
    "GET /v1/datasets": {},
    "GET /v1/latest": {},
    "GET /v1/datasets/{dataset_id}": {"path_parameters": {"dataset_id": "air-quality-station-hourly"}},
    "GET /v1/datasets/{dataset_id}/rows": {"path_parameters": {"dataset_id": "air-quality-station-hourly"},
                                           "query": {"limit": 5}},
    "GET /v1/series": {"query": {"dataset": "air-quality-station-hourly", "metric": "pm25"}},
    "GET /files/{path}": {"path_parameters": {"path": "latest.json"}},
}


def _strategy(operation: Any, scenarios: list[dict[str, str]]) -> st.SearchStrategy[Any]:
    """Generated cases, positive and negative, and positive ones with known values filled in."""
    path = {p.name for p in operation.path_parameters}
    query = {p.name for p in operation.query}
    fitting = [s for s in scenarios if s.keys() <= path | query]
    known = [operation.as_strategy(path_parameters={k: v for k, v in s.items() if k in path} or None,
                                   query={k: v for k, v in s.items() if k in query} or None) for s in fitting]
    if operation.method.upper() == "POST":
        known += [operation.as_strategy(body={"id": d}) for d in ("air-quality-station-hourly", "nope")]
        known += [operation.as_strategy(body={"resource_id": "air-quality-station-hourly", "limit": 3,
                                              "filters": {"device_id": ["aq-ref-0001"]}})]
    return st.one_of(operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE), *known)


def test_every_answer_conforms_to_the_openapi_document(api: dict[str, Any]) -> None:
    """Every operation, EXAMPLES generated requests each, checked for a 5xx and for the status,
    Content-Type, body and headers its document gives (schemathesis' pytest plugin does not run
    under pytest 9, so the operations' Hypothesis strategies are driven here)."""
    operations = [result.ok() for result in api["schema"].get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/datasets", "/v1/datasets/{dataset_id}/rows", "/v1/latest",
                                             "/files/{path}", "/api/3/action/{name}"}
    scenarios = _scenarios(api["manifest"])
    statuses: dict[str, Counter[int]] = {}
    for operation in operations:
        seen = statuses.setdefault(operation.label, Counter())

        @given(case=_strategy(operation, scenarios))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            seen[case.call_and_validate(checks=CHECKS).status_code] += 1

        check()
        if operation.label in KNOWN_GOOD:     # generated cases may all miss a 200: one sure positive case
            status = operation.Case(**KNOWN_GOOD[operation.label]).call_and_validate(checks=CHECKS).status_code
            assert status == 200, f"{operation.label} {KNOWN_GOOD[operation.label]}: {status}"
            seen[status] += 1
    everything = sum(statuses.values(), Counter())
    assert everything.total() >= 10 * len(operations) and max(everything) < 500
    reached = {label for label, counts in statuses.items() if counts[200]}
    assert reached >= {f"GET {p}" for p in ("/v1/datasets", "/v1/datasets/{dataset_id}", "/v1/series",
                                            "/v1/datasets/{dataset_id}/rows", "/v1/latest", "/files/{path}")}
    assert {400, 404, 304} <= set(everything)


def _answers(schema: Any, checks: list[Any], examples: int = 3) -> Counter[int]:
    """The statuses of a few generated requests to every operation, each checked with ``checks``."""
    statuses: Counter[int] = Counter()
    for operation in (result.ok() for result in schema.get_all_operations()):
        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            statuses[case.call_and_validate(checks=checks).status_code] += 1

        check()
    return statuses


def test_before_the_first_release_the_answers_are_documented_too(api: dict[str, Any], tmp_path: Path) -> None:
    """No latest.json yet: 503 wherever the release is read (CKAN's in its envelope), as documented."""
    from etl.storage import Store
    from publish.api.app import create_app

    app = create_app(Store(f"file://{tmp_path}", api["store"].settings), rate_limits={"anonymous": 1_000_000})
    conformance = [c for c in CHECKS if c is not not_a_server_error]
    statuses = _answers(schemathesis.openapi.from_asgi("/openapi.json", app), conformance)
    assert 503 in statuses


def test_a_429_is_documented_with_its_headers(api: dict[str, Any]) -> None:
    """The rate limit answers every operation; its 429 carries Retry-After and the X-RateLimit-* headers."""
    from publish.api.app import create_app

    # one request in a window that never ends: the one that reads the document
    app = create_app(api["store"], rate_limits={"anonymous": 1, "clock": lambda: 0.0})
    assert set(_answers(schemathesis.openapi.from_asgi("/openapi.json", app), CHECKS)) == {429}
