"""Airflow plugin: a "Quality report" tab on every DAG run and the lake's Data Docs, behind Airflow's login.

The api-server mounts :data:`app` at ``/citylake``. Airflow does not authenticate a plugin's
sub-app by itself, so the app depends on ``requires_authenticated()`` (an internal Airflow API:
Airflow is pinned and ``tests/unit/test_airflow_plugin.py`` keeps a test on it); the run report
also checks that the user may read the DAG's runs. Report reading and rendering are imported lazily
so the module loads fast wherever Airflow loads plugins.
"""
from __future__ import annotations

import html
import json
import mimetypes
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag, requires_authenticated
from airflow.plugins_manager import AirflowPlugin

from etl.storage import DOCS, Store, lake

URL_PREFIX = "/citylake"
DOCS_CSP = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox"
TOTALS = ("received", "accepted", "flagged", "quarantined", "duplicates")

# docs_url etc. are off: "/docs" is ours, and Swagger would be served without login.
app = FastAPI(title="citylake", docs_url=None, redoc_url=None, openapi_url=None,
              dependencies=[Depends(requires_authenticated())])
can_read_runs = Depends(requires_access_dag("GET", DagAccessEntity.RUN))


# ---- lake access ----------------------------------------------------------------------------
def _read(store: Store, key: str) -> bytes | None:
    """The object at ``key``, or None if there is none (file:// or s3://)."""
    try:
        return store.get(key)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except Exception as exc:  # botocore ClientError; keep botocore out of the import
        if getattr(exc, "response", {}).get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _report(store: Store, dag_id: str, run_id: str) -> bytes | None:
    from etl.ingest import run_report_key

    return _read(store, run_report_key(dag_id, run_id))


def docs_key(path: str) -> str:
    """Lake key of a Data Docs file; HTTP 400 for anything that could leave ``quality/docs/``."""
    if path == "" or path.endswith("/"):
        path += "index.html"
    parts = path.split("/")
    if "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise HTTPException(400, "invalid docs path")
    return f"{DOCS}/{path}"


# ---- rendering --------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _items(values: list[Any], cls: str) -> str:
    return f"<ul>{''.join(f'<li class={cls!r}>{_e(v)}</li>' for v in values)}</ul>" if values else ""


def _docs_href(key: str | None, up: str) -> str | None:
    """Relative link from a page ``up`` levels below ``/citylake`` to a Data Docs key."""
    if not key or not key.startswith(DOCS + "/"):
        return None
    return up + "docs/" + quote(key[len(DOCS) + 1:], safe="/=")


def _failed_checks(store: Store, key: str | None) -> str:
    """Errors and failed checks of one batch's validation result, as HTML."""
    raw = _read(store, key) if key else None
    if raw is None:
        return '<span class="warn">validation result not found</span>'
    result = json.loads(raw)
    failed = [c for c in result.get("checks", []) if not c.get("success")]
    lines = [f"{c.get('action', '?').upper()} {c.get('suite')} {c.get('expectation')} on {c.get('target')}: "
             f"{c.get('failed')} of {c.get('evaluated')}" + (f" → {c['code']}" if c.get("code") else "")
             + (f" (observed {c['observed']})" if c.get("observed") else "") for c in failed]
    out = _items(result.get("errors") or [], "fail") + _items(lines, "fail" if result.get("errors") else "warn")
    return out or '<span class="ok">all checks passed</span>'


def _totals(t: dict[str, Any]) -> str:
    n = {k: int(t.get(k) or 0) for k in TOTALS}
    ok = n["received"] == n["accepted"] + n["quarantined"] + n["duplicates"]
    return (f'<p class="totals">Received <b>{n["received"]}</b> = accepted <b>{n["accepted"]}</b> '
            f'+ quarantined <b>{n["quarantined"]}</b> + duplicates <b>{n["duplicates"]}</b>; '
            f'flagged <b>{n["flagged"]}</b> (accepted with quality flags). '
            + ('<span class="ok">Counts reconcile.</span>' if ok else '<span class="fail">Counts do not reconcile.</span>')
            + "</p>")


def _batch_row(store: Store, b: dict[str, Any]) -> str:
    href = _docs_href(b.get("docs"), "../../")
    name = f'<a href="{_e(href)}">{_e(b.get("batch_id"))}</a>' if href else _e(b.get("batch_id"))
    counts = "".join(f"<td>{_e(b.get(k) or 0)}</td>" for k in TOTALS)
    return (f"<tr><td>{name}</td><td>{_e(b.get('window_date'))}</td>{counts}"
            f"<td>{_items(b.get('warnings') or [], 'warn')}</td><td>{_failed_checks(store, b.get('validation'))}</td></tr>")


def render_report(report: dict[str, Any], store: Store) -> str:
    """The Quality report page of one DAG run (links are relative to ``/citylake/quality/<dag>/<run>``)."""
    from quality.docs import _page

    rows = "".join(_batch_row(store, b) for b in report.get("batches", []))
    head = "".join(f"<th>{h}</th>" for h in ("batch", "date", *TOTALS, "warnings", "failed checks"))
    body = (f"<h1>Quality report — {_e(report.get('dag_id'))}</h1>"
            f"<p>Run <code>{_e(report.get('run_id'))}</code>, source <b>{_e(report.get('source'))}</b>, "
            f"recorded {_e(report.get('recorded_at'))}; dates {_e(', '.join(report.get('dates') or []) or '—')}.</p>"
            + _totals(report.get("totals") or {})
            + (f"<h2>Warnings</h2>{_items(report['warnings'], 'warn')}" if report.get("warnings") else "")
            + f"<h2>Batches</h2><table><tr>{head}</tr>{rows}</table>"
            + ("" if rows else "<p>This run processed no batch.</p>")
            + '<p><a href="../../docs/index.html">All validated batches (Data Docs)</a> · '
              '<a href="?format=json">report as JSON</a></p>')
    return _page(f"Quality — {report.get('dag_id')} {report.get('run_id')}", body)


def _no_report(dag_id: str, run_id: str) -> str:
    from quality.docs import _page

    return _page("No quality report", (
        f"<h1>No quality report</h1><p>There is no quality report for run <code>{_e(run_id)}</code> of "
        f"<b>{_e(dag_id)}</b>. Reports are written by the <code>normalize</code> task of the ingest DAGs: "
        "this DAG is not an ingest DAG, or the run has not reached (or failed before) that task.</p>"
        '<p><a href="../../docs/index.html">All validated batches (Data Docs)</a></p>'))


# ---- routes -------------------------------------------------------------------------------------
def _json_report(dag_id: str, run_id: str) -> Response:
    raw = _report(lake(), dag_id, run_id)
    if raw is None:
        raise HTTPException(404, f"no quality report for run {run_id!r} of {dag_id!r}")
    return Response(raw, media_type="application/json")


@app.get("/quality/{dag_id}/{run_id}.json", dependencies=[can_read_runs])
def quality_json(dag_id: str, run_id: str) -> Response:
    return _json_report(dag_id, run_id)


@app.get("/quality/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[can_read_runs])
def quality_page(dag_id: str, run_id: str, fmt: str = Query("html", alias="format")) -> Response:
    if fmt == "json":
        return _json_report(dag_id, run_id)
    store = lake()
    raw = _report(store, dag_id, run_id)
    if raw is None:
        return HTMLResponse(_no_report(dag_id, run_id), status_code=404)
    return HTMLResponse(render_report(json.loads(raw), store))


@app.get("/docs", include_in_schema=False)
def docs_root() -> RedirectResponse:
    return RedirectResponse("docs/")  # relative, so it works under any [api] base_url


@app.get("/docs/{path:path}")
def docs(path: str) -> Response:
    key = docs_key(path)
    data = _read(lake(), key)
    if data is None:
        raise HTTPException(404, "no such Data Docs page")
    media = mimetypes.guess_type(key)[0] or "application/octet-stream"
    if media.startswith("text/") or media in ("application/javascript", "application/json"):
        media += "; charset=utf-8"
    # Data Docs are rendered from gateway data: sandboxed (an opaque origin without Airflow's
    # cookies or API), so nothing in a page can act as the logged-in user.
    return Response(data, headers={"Content-Type": media, "X-Content-Type-Options": "nosniff",
                                   "Content-Security-Policy": DOCS_CSP})


class CitylakePlugin(AirflowPlugin):
    """Registered through the ``airflow.plugins`` entry point of the citylake distribution."""

    name = "citylake"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "citylake"}]
    external_views = [
        {"name": "Quality report", "href": URL_PREFIX + "/quality/{DAG_ID}/{RUN_ID}",
         "destination": "dag_run", "url_route": "quality-report"},
        {"name": "Data quality", "href": URL_PREFIX + "/docs/index.html",
         "destination": "nav", "category": "browse", "url_route": "data-quality"},
    ]
