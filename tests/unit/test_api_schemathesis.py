"""Property-based tests of the API from its own OpenAPI document (schemathesis): whatever
parameters a client sends, the API answers without a server error."""
from __future__ import annotations

from datetime import date
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.lakes import released_lake


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from publish.api.app import create_app

    with released_lake(tmp_path_factory, "schemathesis-lake", date(2026, 11, 29)) as (_, store):
        yield schemathesis.openapi.from_asgi("/openapi.json", create_app(store))


def test_no_input_makes_a_server_error(api_schema: Any) -> None:
    """Every operation, 40 generated requests each (schemathesis' pytest plugin does not run
    under pytest 9, so the operations' Hypothesis strategies are driven here)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/datasets", "/v1/datasets/{dataset_id}/rows", "/v1/latest"}
    statuses: list[int] = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            statuses.append(case.call_and_validate(checks=[not_a_server_error]).status_code)

        check()
    assert len(statuses) >= 10 * len(operations) and max(statuses) < 500
    assert {200, 400} <= set(statuses) or {200, 404} <= set(statuses)
