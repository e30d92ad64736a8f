"""The citylake Airflow plugin through Airflow's own api-server app, in process, logged in the
way the UI and API clients are (SimpleAuthManager, ``POST /auth/token``). STYLE.md rule 10."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urljoin

import pytest

from tests.conftest import REPO

DAG_ID = "ingest_airkorea"
RUN_ID = "manual__2026-11-25T10:00:00+00:00"  # ':' and '+' as real run ids have
SOURCE = "airkorea"
DAY = "2026-11-25"
BATCH = "airkorea-20261125T0900-20261125T1000-0123456789ab"
PAGE = f"/citylake/quality/{DAG_ID}/{quote(RUN_ID, safe='')}"  # what the UI puts in the tab's iframe
XSS = "<script>alert(1)</script>"


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(airflow_db: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    """Airflow's api-server app and a bearer header for an admin who logged in with a password."""
    from fastapi.testclient import TestClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                  "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", os.urandom(32).hex())
        from airflow.api_fastapi.app import create_app, purge_cached_app
        from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

        with TestClient(create_app()) as client:
            password = SimpleAuthManager.get_passwords()["admin"]
            r = client.post("/auth/token", json={"username": "admin", "password": password})
            assert r.status_code == 201, r.text
            yield client, {"Authorization": f"Bearer {r.json()['access_token']}"}
        purge_cached_app()


@pytest.fixture
def lake(lake_env: Path) -> Any:
    """A file:// lake holding one ingest run's report, its validation result and Data Docs."""
    from etl.ingest import record_run
    from etl.storage import DOCS, lake
    from quality import docs
    from quality.check import validation_key

    store = lake()
    checks = [
        {"suite": "air_rows", "expectation": "expect_column_values_to_be_between", "target": "value pm10",
         "level": "row", "action": "quarantine", "code": "out_of_range", "evaluated": 10, "failed": 2,
         "success": False, "observed": None},
        {"suite": "air_batch", "expectation": "expect_completeness", "target": "stations", "level": "batch",
         "action": "warn", "code": None, "evaluated": 40, "failed": 12, "success": False, "observed": "70% " + XSS},
        {"suite": "air_rows", "expectation": "expect_column_values_to_not_be_null", "target": "station_id",
         "level": "row", "action": "quarantine", "code": "no_station", "evaluated": 10, "failed": 0,
         "success": True, "observed": None},
    ]
    result = {"batch_id": BATCH, "source": SOURCE, "received_at": "2026-11-25T10:01:00+00:00",
              "window_start": "2026-11-25T09:00:00+00:00", "window_end": "2026-11-25T10:00:00+00:00",
              "errors": [], "warnings": ["completeness 70% below 80%"], "checks": checks, "gx_results": [],
              "counts": {"received": 10, "accepted": 7, "flagged": 3, "quarantined": 2, "duplicates": 1}}
    store.put(validation_key(SOURCE, DAY, BATCH), json.dumps(result).encode(), "application/json")
    docs.write_batch(store, result, SOURCE, DAY)
    store.put(f"{DOCS}/index.html", b"<!doctype html><h1>citylake data quality index</h1>", "text/html")
    store.put("state/secret.json", b'{"SECRET": 1}', "application/json")
    batch = {"batch_id": BATCH, "source": SOURCE, "received": 10, "accepted": 7, "flagged": 3, "quarantined": 2,
             "duplicates": 1, "dates": [DAY], "domains": ["air"], "warnings": ["completeness 70% below 80% " + XSS],
             "window_date": DAY}
    summary = {"source": SOURCE, "results": [batch], "received": 10, "accepted": 7, "flagged": 3,
               "quarantined": 2, "duplicates": 1, "dates": [DAY], "warnings": batch["warnings"]}
    record_run(DAG_ID, RUN_ID, summary, store)
    return store


# ---- authentication ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [PAGE, PAGE + ".json", PAGE + "?format=json", "/citylake/quality/x/y",
                                  "/citylake/docs", "/citylake/docs/", "/citylake/docs/index.html",
                                  "/citylake/docs/%2E%2E/state/secret.json", "/citylake/openapi.json"])
def test_every_route_requires_login(api: Any, lake: Any, path: str) -> None:
    client, _ = api
    r = client.get(path, follow_redirects=False)
    assert r.status_code in (401, 404) if path.endswith("openapi.json") else r.status_code == 401
    assert "SECRET" not in r.text and "citylake data quality index" not in r.text


def test_forged_token_is_refused(api: Any, lake: Any) -> None:
    client, _ = api
    for path in (PAGE, "/citylake/docs/index.html"):
        assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)


def test_the_ui_session_cookie_is_enough(api: Any, lake: Any) -> None:
    """The tab is an iframe: the browser sends Airflow's ``_token`` cookie, not a header."""
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    client, auth = api
    token = auth["Authorization"].removeprefix("Bearer ")
    with TestClient(client.app, cookies={COOKIE_NAME_JWT_TOKEN: token}) as browser:
        assert browser.get(PAGE).status_code == 200
        assert browser.get("/citylake/docs/index.html").status_code == 200


def test_the_report_needs_read_access_to_the_dags_runs(api: Any, lake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.api_fastapi.app import get_auth_manager

    client, auth = api
    monkeypatch.setattr(get_auth_manager(), "is_authorized_dag", lambda **_: False)
    assert client.get(PAGE, headers=auth).status_code == 403
    assert client.get(PAGE + ".json", headers=auth).status_code == 403
    assert client.get("/citylake/docs/index.html", headers=auth).status_code == 200


# ---- the Quality report ------------------------------------------------------------------------------
def test_report_page_shows_counts_warnings_and_failed_checks(api: Any, lake: Any) -> None:
    client, auth = api
    r = client.get(PAGE, headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert ("Received <b>10</b> = accepted <b>7</b> + quarantined <b>2</b> + duplicates <b>1</b>; "
            "flagged <b>3</b>") in page
    assert "Counts reconcile" in page
    assert f"<td>{BATCH}</td>" not in page and f">{BATCH}</a>" in page
    assert "<td>10</td><td>7</td><td>3</td><td>2</td><td>1</td>" in page
    assert "QUARANTINE air_rows expect_column_values_to_be_between on value pm10: 2 of 10 → out_of_range" in page
    assert "WARN air_batch expect_completeness on stations: 12 of 40" in page
    assert "expect_column_values_to_not_be_null" not in page  # passed checks are not listed
    assert XSS not in page and html_escaped(XSS) in page
    assert html_escaped(RUN_ID) in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_report_links_lead_to_the_batch_data_docs(api: Any, lake: Any) -> None:
    import re

    client, auth = api
    page = client.get(PAGE, headers=auth).text
    hrefs = re.findall(r'href="([^"]+)"', page)
    batch_href = next(h for h in hrefs if BATCH in h)
    assert batch_href == f"../../docs/validations/source={SOURCE}/date={DAY}/{BATCH}.html"
    batch_url = urljoin("http://testserver" + PAGE, batch_href)
    r = client.get(batch_url, headers=auth)
    assert r.status_code == 200 and f"Batch {BATCH}" in r.text
    index = urljoin(batch_url, "../../../index.html")  # the batch page's own link to the index
    assert client.get(index, headers=auth).text.endswith("citylake data quality index</h1>")
    assert client.get(urljoin("http://testserver" + PAGE, "../../docs/index.html"), headers=auth).status_code == 200


def test_report_as_json(api: Any, lake: Any) -> None:
    client, auth = api
    for path in (PAGE + ".json", PAGE + "?format=json"):
        r = client.get(path, headers=auth)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        report = r.json()
        assert report["run_id"] == RUN_ID and report["totals"]["received"] == 10
        assert report["batches"][0]["docs"].endswith(f"{BATCH}.html")


def test_run_without_report_gets_a_friendly_404(api: Any, lake: Any) -> None:
    client, auth = api
    r = client.get("/citylake/quality/citylake_maintenance/scheduled__2026-11-25T00:00:00+00:00", headers=auth)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "No quality report" in r.text and "citylake_maintenance" in r.text
    assert client.get("/citylake/quality/citylake_maintenance/x.json", headers=auth).status_code == 404


def test_an_empty_lake_answers_404_not_500(api: Any, lake_env: Path) -> None:
    client, auth = api
    assert client.get(PAGE, headers=auth).status_code == 404
    assert client.get("/citylake/docs/", headers=auth).status_code == 404


# ---- Data Docs ----------------------------------------------------------------------------------------
def test_docs_serve_the_index_and_batch_pages(api: Any, lake: Any) -> None:
    client, auth = api
    for path in ("/citylake/docs/", "/citylake/docs/index.html", "/citylake/docs"):
        r = client.get(path, headers=auth)
        assert r.status_code == 200 and "citylake data quality index" in r.text
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        # pages rendered from gateway data run sandboxed: no Airflow cookies or API from them
        assert r.headers["content-security-policy"].startswith("sandbox")
        assert "allow-same-origin" not in r.headers["content-security-policy"]
    r = client.get(f"/citylake/docs/validations/source={SOURCE}/date={DAY}/{BATCH}.html", headers=auth)
    assert r.status_code == 200 and "completeness 70% below 80%" in r.text
    assert client.get("/citylake/docs/validations/nope.html", headers=auth).status_code == 404


@pytest.mark.parametrize("path", [
    "%2E%2E/%2E%2E/state/secret.json", "..%2F..%2Fstate%2Fsecret.json", "validations/%2E%2E/%2E%2E/%2E%2E/state/secret.json",
    "%2Fetc%2Fpasswd", "..%5C..%5Cstate%5Csecret.json", "validations//index.html", "%2E/index.html", "index.html%00.txt",
])
def test_docs_refuse_paths_that_leave_the_docs_prefix(api: Any, lake: Any, path: str) -> None:
    client, auth = api
    r = client.get("/citylake/docs/" + path, headers=auth)
    assert r.status_code in (400, 404), r.status_code
    assert "SECRET" not in r.text and "root:" not in r.text


def test_docs_key_rules() -> None:
    from fastapi import HTTPException

    from quality.airflow_plugin import docs_key

    assert docs_key("") == "quality/docs/index.html"
    assert docs_key("validations/source=a/date=b/c.html") == "quality/docs/validations/source=a/date=b/c.html"
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\\b", "a//b", "./a", "a/.", "a\x00"):
        with pytest.raises(HTTPException):
            docs_key(bad)


# ---- registration ---------------------------------------------------------------------------------------
def test_plugin_is_registered_with_its_views(api: Any) -> None:
    from airflow import plugins_manager

    info = next(p for p in plugins_manager.get_plugin_info() if p["name"] == "citylake")
    assert "quality.airflow_plugin:CitylakePlugin" in str(info["source"])  # the entry point, not a plugins folder
    assert info["fastapi_apps"] == [{"app": "fastapi.applications.FastAPI", "url_prefix": "/citylake", "name": "citylake"}]
    client, auth = api
    plugins = client.get("/api/v2/plugins", headers=auth).json()["plugins"]  # what the UI reads
    views = {v["name"]: v for p in plugins if p["name"] == "citylake" for v in p["external_views"]}
    assert views["Quality report"] == {"name": "Quality report", "href": "/citylake/quality/{DAG_ID}/{RUN_ID}",
                                       "destination": "dag_run", "url_route": "quality-report", "icon": None,
                                       "icon_dark_mode": None, "category": None, "nav_top_level": False}
    assert views["Data quality"]["destination"] == "nav" and views["Data quality"]["category"] == "browse"
    assert views["Data quality"]["href"] == "/citylake/docs/index.html"


def test_plugin_module_imports_light_and_without_a_lake() -> None:
    """Airflow may load plugins where DAGs are parsed: no lake access, no heavy libraries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITYLAKE_", "AWS_"))}
    env["CITYLAKE_LAKE_URI"] = "file:///nonexistent/lake"
    code = ("import sys, quality.airflow_plugin as p; assert p.CitylakePlugin.name == 'citylake';"
            "print('heavy=' + ','.join(m for m in ('great_expectations','duckdb','deltalake','pandas','pyarrow','boto3')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "heavy=\n" in out.stdout, out.stdout
