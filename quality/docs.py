"""Data Docs: GX's own validation pages per batch, a summary page per batch, and an index.

Everything lands under ``quality/docs/`` in the lake as static HTML (relative links only),
so the folder can be opened from disk, served by the Airflow plugin, or shipped by the
publishing side as it is.
"""
from __future__ import annotations

import html
import json
import logging
from typing import Any

from etl.storage import DOCS, Store

log = logging.getLogger(__name__)


def page_key(source: str, date: str, batch_id: str, suite: str | None = None) -> str:
    name = batch_id if suite is None else f"{batch_id}.{suite}"
    return f"{DOCS}/validations/source={source}/date={date}/{name}.html"


def gx_page(result: dict[str, Any]) -> str:
    """GX's Data Docs page for one suite result (the renderer ``build_data_docs`` uses)."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    import quality.expectations  # noqa: F401 - registers the custom expectations the results name
    obj = ExpectationSuiteValidationResultSchema().load(result)
    return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(obj))


_STYLE = """<style>body{font-family:system-ui,'Noto Sans KR',sans-serif;margin:2rem;max-width:72rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
.fail{color:#b00020}.warn{color:#8a5a00}.ok{color:#1b5e20}</style>"""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"{_STYLE}</head><body>{body}</body></html>")


def write_batch(store: Store, doc: dict[str, Any], source: str, date: str, gx_pages: bool = False) -> str:
    """Write the batch's summary page (and, with ``gx_pages``, GX's page per suite, which
    costs ~0.2 s a page: ingest leaves them to the quality_tables DAG, :func:`render_pending`)."""
    batch_id = doc["batch_id"]
    links = []
    for result in doc.get("gx_results", []):
        suite = (result.get("suite_name") or "suite")
        links.append(f'<li><a href="{html.escape(batch_id)}.{html.escape(suite)}.html">{html.escape(suite)}</a>'
                     f' — {"passed" if result.get("success") else "failed"}</li>')
        if not gx_pages:
            continue
        try:
            store.put(page_key(source, date, batch_id, suite), gx_page(result).encode(), "text/html; charset=utf-8")
        except Exception as exc:  # noqa: BLE001 - a page that cannot render must not stop the others
            log.warning("could not render Data Docs for %s %s: %s", batch_id, suite, exc)
            links[-1] = f"<li>{html.escape(suite)} (page could not be rendered: {html.escape(str(exc))})</li>"
    key = page_key(source, date, batch_id)
    store.put(key, render_batch(doc, links).encode(), "text/html; charset=utf-8")
    return key


def render_pending(store: Store, dates: list[str]) -> int:
    """Render GX's Data Docs pages for the batches of ``dates`` that have none yet (idempotent)."""
    from etl.storage import VALIDATIONS

    done = 0
    keys = [k for k in store.list(f"{VALIDATIONS}/") if k.endswith(".json")]
    for day in dates:
        for key in (k for k in keys if f"/date={day}/" in k):
            source = key.split("/source=", 1)[1].split("/", 1)[0]
            doc = json.loads(store.get(key))
            suites = [r.get("suite_name") for r in doc.get("gx_results", [])]
            if all(store.exists(page_key(source, day, doc["batch_id"], s)) for s in suites):
                continue
            write_batch(store, doc, source, day, gx_pages=True)
            done += 1
    return done


def render_batch(doc: dict[str, Any], links: list[str] | None = None) -> str:
    """The batch summary: counts, errors and warnings, every check, links to GX's pages."""
    counts = doc.get("counts") or {}
    rows = "".join(
        f'<tr class="{"ok" if c["success"] else ("fail" if c["action"] in ("fail", "quarantine") else "warn")}">'
        f"<td>{html.escape(c['suite'])}</td><td>{html.escape(c['expectation'])}</td><td>{html.escape(c['target'])}</td>"
        f"<td>{c['action']}</td><td>{html.escape(c['code'] or '')}</td><td>{c['evaluated']}</td><td>{c['failed']}</td>"
        f"<td>{'pass' if c['success'] else 'FAIL'}</td><td>{html.escape(c.get('observed') or '')}</td></tr>"
        for c in doc.get("checks", []))
    status = "failed" if doc.get("errors") else ("passed with warnings" if doc.get("warnings") else "passed")
    items = lambda xs, cls: "".join(f'<li class="{cls}">{html.escape(x)}</li>' for x in xs)  # noqa: E731
    body = (f"<h1>Batch {html.escape(doc['batch_id'])}</h1>"
            f"<p>Source <b>{html.escape(doc['source'])}</b>, window {doc['window_start']} – {doc['window_end']}, "
            f"received {doc['received_at']}. Validation <b>{status}</b>.</p>"
            f"<p>Received {counts.get('received', '?')} = accepted {counts.get('accepted', '?')} "
            f"(of which flagged {counts.get('flagged', '?')}) + quarantined {counts.get('quarantined', '?')} "
            f"+ duplicates {counts.get('duplicates', '?')}.</p>"
            + (f"<h2>Errors</h2><ul>{items(doc['errors'], 'fail')}</ul>" if doc.get("errors") else "")
            + (f"<h2>Warnings</h2><ul>{items(doc['warnings'], 'warn')}</ul>" if doc.get("warnings") else "")
            + f"<h2>Great Expectations pages</h2><ul>{''.join(links or [])}</ul>"
            + "<h2>Checks</h2><table><tr><th>suite</th><th>expectation</th><th>target</th><th>on failure</th>"
              "<th>code</th><th>evaluated</th><th>failed</th><th>result</th><th>observed</th></tr>"
            + rows + '</table><p><a href="../../../index.html">All batches</a></p>')
    return _page(f"Quality — {doc['batch_id']}", body)


def build_index(store: Store, limit: int = 2000) -> str:
    """``quality/docs/index.html``: the latest batches with their status, newest first."""
    from etl import tables
    from etl.storage import BATCHES

    rec = tables.read(store, BATCHES, columns=["batch_id", "source", "window_start", "received", "accepted",
                                               "flagged", "quarantined", "duplicates", "quality"])
    rows = sorted(rec.to_pylist(), key=lambda r: (r["window_start"], r["source"]), reverse=True)[:limit]
    from etl.timeutil import kst_date

    body = "".join(
        f"<tr><td>{r['window_start']:%Y-%m-%d %H:%M}</td><td>{html.escape(r['source'])}</td>"
        f'<td><a href="validations/source={r["source"]}/date={kst_date(r["window_start"]).isoformat()}/'
        f'{r["batch_id"]}.html">{html.escape(r["batch_id"])}</a></td><td>{r["received"]}</td><td>{r["accepted"]}</td>'
        f"<td>{r['flagged'] or 0}</td><td>{r['quarantined']}</td><td>{r['duplicates']}</td>"
        f"<td>{r['quality'] or ''}</td></tr>" for r in rows)
    page = _page("citylake — data quality", "<h1>citylake data quality — validated batches</h1>"
                 "<p>Every ingested batch is validated by the Great Expectations suites in <code>quality/suites.py</code>."
                 " Failed batches are not listed here (they never reach silver); their results are under "
                 "<code>quality/validations/</code>.</p><table><tr><th>window (UTC)</th><th>source</th><th>batch</th>"
                 "<th>received</th><th>accepted</th><th>flagged</th><th>quarantined</th><th>duplicates</th>"
                 f"<th>quality</th></tr>{body}</table>")
    key = f"{DOCS}/index.html"
    store.put(key, page.encode(), "text/html; charset=utf-8")
    return key

