"""Ingest tasks: extract a source's window into landing, normalise landed batches into silver.

Each function takes plain arguments (a source id, a window, keys) and returns a small dict,
so an Airflow task is one call. Nothing here imports Airflow.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from urllib.parse import urlparse

from etl import failpoints, landing
from etl.extract.frames import Frame
from etl.sources import Source, load_sources
from etl.storage import Store, lake
from etl.timeutil import parse_iso, utc

log = logging.getLogger(__name__)

LOOKBACK = timedelta(hours=1)   # pull sources re-read the previous hour to catch late readings
MAX_CATCH_UP = timedelta(days=7)


def window(params: dict | None, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """The run's window: the params' override if given, else Airflow's data interval."""
    params = params or {}
    if params.get("window_start") or params.get("window_end"):
        if not (params.get("window_start") and params.get("window_end")):
            raise ValueError("give both window_start and window_end, or neither")
        start, end = parse_iso(params["window_start"]), parse_iso(params["window_end"])
    if start is None or end is None:
        raise ValueError("no data interval: trigger with window_start/window_end or on a schedule")
    if not start < end:
        raise ValueError(f"empty window {start} .. {end}")
    return utc(start), utc(end)


def _registry() -> Any:
    from etl.registry.load import load_registry

    return load_registry()


def _refs(source: Source) -> list[str]:
    import pyarrow.compute as pc

    reg = _registry()
    return reg.filter(pc.equal(reg["source"], source.id))["external_id"].to_pylist()


def _host_port(endpoint: str) -> tuple[str, int]:
    u = urlparse(endpoint)
    return u.hostname or "127.0.0.1", u.port or 1883


# ---- one fetcher per gateway kind ---------------------------------------------------------
def _fetch_airkorea(source: Source, start: datetime, end: datetime, store: Store) -> tuple[list[Frame], dict | None]:
    from etl.extract import airkorea

    o = source.options
    frames = airkorea.fetch(source.endpoint, source.secret(), _refs(source), data_term=o.get("data_term", "DAILY"),
                            return_type=o.get("return_type", "json"), num_of_rows=int(o.get("num_of_rows", 100)))
    return frames, None


def _fetch_http_cursor(source: Source, start: datetime, end: datetime, store: Store) -> tuple[list[Frame], dict | None]:
    from etl.extract import http_cursor

    cursor = landing.load_cursor(store, source.id)
    since = start - LOOKBACK
    if cursor.get("until"):  # catch up after failed runs, within limits
        since = max(min(since, parse_iso(cursor["until"])), start - MAX_CATCH_UP)
    o = source.options
    frames = http_cursor.fetch(source.endpoint, o["path"], source.secret(), since, end, limit=int(o.get("limit", 500)))
    until = max(end, parse_iso(cursor["until"])) if cursor.get("until") else end
    return frames, {"until": until.isoformat()}


def _fetch_lorawan(source: Source, start: datetime, end: datetime, store: Store) -> tuple[list[Frame], dict | None]:
    if source.options.get("transport") == "mqtt":
        raise AssertionError("MQTT transport is drained in extract()")
    import json

    from etl.extract.http import get

    cursor = landing.load_cursor(store, source.id)
    after = start - LOOKBACK
    if cursor.get("after"):
        after = max(min(after, parse_iso(cursor["after"])), start - MAX_CATCH_UP)
    frames: list[Frame] = []
    last = after
    while True:
        params = {"after": last.isoformat().replace("+00:00", "Z"), "before": end.isoformat().replace("+00:00", "Z"),
                  "limit": 1000, "order": "received_at"}
        resp = get(source.endpoint, params, headers={"Authorization": f"Bearer {source.secret()}"})
        lines = [ln for ln in resp.content.splitlines() if ln.strip()]
        if not lines:
            break
        frames.append(Frame(body=resp.content, meta={"after": params["after"], "before": params["before"],
                                                     "page": len(frames)}, seq=len(frames)))
        try:
            newest = max(parse_iso(json.loads(ln)["result"]["received_at"]) for ln in lines)
        except (ValueError, KeyError, TypeError):
            break  # a page we cannot read further: land what we have; normalisation quarantines it
        if newest <= last or len(lines) < 1000:
            last = max(last, newest)
            break
        last = newest
    prev = parse_iso(cursor["after"]) if cursor.get("after") else last
    return frames, {"after": max(last, prev).isoformat()}


def _fetch_csv_drop(source: Source, start: datetime, end: datetime, store: Store) -> tuple[list[Frame], dict | None]:
    from etl.extract import csv_drop

    cursor = landing.load_cursor(store, source.id)
    seen = set(cursor.get("seen", []))
    names = csv_drop.list_new(source.endpoint, seen)
    frames = csv_drop.fetch(source.endpoint, names)
    return frames, {"seen": sorted(seen | set(names))}


FETCHERS = {"airkorea": _fetch_airkorea, "http_cursor": _fetch_http_cursor, "lorawan": _fetch_lorawan,
            "csv_drop": _fetch_csv_drop}


def extract(source_id: str, start: datetime, end: datetime, store: Store | None = None) -> dict[str, Any]:
    """Fetch a source's window and land it. Returns the landed batch's envelope key (or None)."""
    store = store or lake()
    source = load_sources()[source_id]
    start, end = utc(start), utc(end)
    received_at = datetime.now(timezone.utc)
    if source.kind == "mqtt" or (source.kind == "lorawan" and source.options.get("transport") == "mqtt"):
        return _extract_mqtt(source, start, end, store, received_at)
    frames, cursor = FETCHERS[source.kind](source, start, end, store)
    result = _land(store, source, start, end, frames, received_at)
    if cursor is not None:
        landing.save_cursor(store, source.id, cursor)  # after landing: a crash re-fetches, never skips
        failpoints.hit("after_cursor")
    return result


def _extract_mqtt(source: Source, start: datetime, end: datetime, store: Store, received_at: datetime) -> dict[str, Any]:
    from etl.extract import mqtt

    host, port = _host_port(source.endpoint)
    o = source.options
    session = mqtt.drain(host, port, o["topic"], o["client_id"], idle_s=float(o.get("idle_s", 1.5)))
    try:
        result = _land(store, source, start, end, session.frames, received_at)
    except BaseException:
        session.close()  # un-acked: the broker redelivers them to the next run
        raise
    session.ack_and_close()
    failpoints.hit("after_ack")
    return result


def _land(store: Store, source: Source, start: datetime, end: datetime, frames: list[Frame],
          received_at: datetime) -> dict[str, Any]:
    if not frames:
        log.info("%s: nothing received for %s..%s", source.id, start, end)
        return {"source": source.id, "batch_id": None, "envelope": None, "frames": 0, "landed": False}
    env, wrote = landing.land(store, source.id, source.kind, start, end, frames, received_at)
    failpoints.hit("after_landing")
    log.info("%s: %s batch %s (%d frames, %d bytes)", source.id, "landed" if wrote else "already had",
             env.batch_id, env.frames, env.bytes)
    return {"source": source.id, "batch_id": env.batch_id, "envelope": env.key[: -len(".jsonl")] + ".envelope.json",
            "frames": env.frames, "landed": wrote}


def normalize(source_id: str, envelope_key: str | None, store: Store | None = None) -> dict[str, Any]:
    """Normalise one landed batch into silver (idempotent). Returns its reconciliation."""
    from etl import normalize as norm

    if envelope_key is None:
        return {"source": source_id, "batch_id": None, "received": 0, "accepted": 0, "quarantined": 0,
                "duplicates": 0, "dates": [], "domains": list(load_sources()[source_id].domains), "written": False}
    store = store or lake()
    source = load_sources()[source_id]
    env = landing.read_envelope(store, envelope_key)
    with source_lock(store, source_id):
        return norm.normalize(store, source, env, _registry()).as_dict()


@contextmanager
def source_lock(store: Store, source_id: str) -> Iterator[None]:
    """One batch of a source normalised at a time on this machine, whoever runs it.

    Batches of one source overlap (the look-back hour, a drop folder listed by two runs), and
    a batch drops the readings silver already holds before it commits: two at once would both
    keep the shared readings. Airflow runs one ``normalize`` per ingest DAG at a time; this
    also covers runs it does not schedule (two ``citylake run-dag`` of different dates, a
    backfill beside the scheduler). The kernel drops the lock when its holder dies, kill -9
    included. Several machines sharing one lake still rely on Airflow's limit alone.
    """
    import fcntl
    import hashlib
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.gettempdir()) / "citylake-locks"
    folder.mkdir(exist_ok=True)
    name = hashlib.sha256(f"{store.root}\n{source_id}".encode()).hexdigest()[:32]
    with open(folder / f"normalize-{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pending_batches(source_id: str, day: str | None = None, store: Store | None = None) -> list[str]:
    """Envelopes landed but not yet in the batch ledger (to finish after a crash)."""
    from etl import tables
    from etl.storage import BATCHES

    store = store or lake()
    keys = landing.list_envelopes(store, source_id, day)
    dt = tables.open_table(store, BATCHES)
    if dt is None:
        return keys
    return [k for k in keys if dt.transaction_version(landing.batch_id_of(k)) is None]


def normalize_all(source_id: str, envelope_key: str | None, day_hint: datetime | None = None,
                  store: Store | None = None) -> dict[str, Any]:
    """Normalise this run's batch plus any batch an interrupted run left behind; sum the counts."""
    from etl.timeutil import kst_date

    store = store or lake()
    keys = [envelope_key] if envelope_key else []
    if day_hint is not None:
        d = kst_date(utc(day_hint))
        for day in (d - timedelta(days=1), d):
            keys += [k for k in pending_batches(source_id, day.isoformat(), store) if k not in keys]
    results = []
    for k in keys:
        failpoints.hit("before_batch")
        results.append(normalize(source_id, k, store))
    total: dict[str, Any] = {"source": source_id, "batches": [r["batch_id"] for r in results if r["batch_id"]],
                             "results": [r for r in results if r["batch_id"]],
                             "domains": sorted({d for r in results for d in r["domains"]} or load_sources()[source_id].domains),
                             "dates": sorted({d for r in results for d in r["dates"]})}
    for k in ("received", "accepted", "quarantined", "duplicates", "flagged"):
        total[k] = sum(r.get(k) or 0 for r in results)
    total["warnings"] = [w for r in results for w in r.get("warnings") or []]
    return total


def run_report_key(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    from etl.storage import RUNS

    return f"{RUNS}/dag_id={quote(dag_id, safe='')}/{quote(run_id, safe='')}.json"


def record_run(dag_id: str, run_id: str, summary: dict[str, Any], store: Store | None = None) -> str:
    """Keep what a DAG run's normalisation did (read by the Airflow plugin's Quality report)."""
    import json

    from quality.check import validation_key
    from quality.docs import page_key

    store = store or lake()
    batches = []
    for r in summary.get("results", []):
        day = r["window_date"]
        batches.append({**r, "validation": validation_key(r["source"], day, r["batch_id"]),
                        "docs": page_key(r["source"], day, r["batch_id"])})
    report = {"dag_id": dag_id, "run_id": run_id, "source": summary["source"],
              "recorded_at": datetime.now(timezone.utc).isoformat(), "batches": batches,
              "totals": {k: summary.get(k, 0) for k in ("received", "accepted", "flagged", "quarantined", "duplicates")},
              "dates": summary.get("dates", []), "warnings": summary.get("warnings", [])}
    key = run_report_key(dag_id, run_id)
    store.put(key, json.dumps(report, ensure_ascii=False, default=str).encode(), "application/json")
    return key


def asset_extra(summary: dict[str, Any], domain: str) -> dict[str, Any]:
    """What a silver asset event tells its consumers: which dates changed, and the counts."""
    return {"domain": domain, "dates": summary["dates"], "source": summary["source"], "batches": summary["batches"],
            "received": summary["received"], "accepted": summary["accepted"], "flagged": summary.get("flagged", 0),
            "quarantined": summary["quarantined"], "duplicates": summary["duplicates"],
            "quality_warnings": len(summary.get("warnings", []))}
