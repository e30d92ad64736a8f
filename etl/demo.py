"""The end-to-end demo: simulate a day of the city, run every ingest DAG, show what landed.

Runs on embedded defaults: a file:// lake under ``var/``, the simulated gateways on
127.0.0.1, a local SQLite Airflow database, and the DAGs in ``dags/`` run with ``dag.test()``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from etl.airflow_local import REPO

log = logging.getLogger(__name__)

DEFAULT_DAY = date(2026, 11, 24)


def _prepare_env(var: Path, fleet: str) -> None:
    os.environ.setdefault("CITYLAKE_LAKE_URI", f"file://{var / 'lake'}")
    os.environ.setdefault("CITYLAKE_PUBLIC_URI", f"file://{var / 'public'}")
    os.environ.setdefault("CITYLAKE_CSV_DROP_DIR", str(var / "drops" / "water"))
    os.environ["CITYLAKE_FLEET"] = fleet
    from etl.simulate.gateways import dev_environment

    os.environ.update(dev_environment())


def _broker() -> Any:
    """Mosquitto if one listens where settings say; otherwise an embedded broker."""
    from etl.settings import get_settings
    from etl.simulate.broker import EmbeddedBroker, reachable

    s = get_settings()
    if reachable(s.mqtt_host, s.mqtt_port):
        return None
    broker = EmbeddedBroker().start()
    os.environ["CITYLAKE_MQTT_PORT"] = str(broker.port)
    os.environ["CITYLAKE_MQTT_PROTOCOL"] = "3.1.1"
    _clear_caches()
    return broker


def _clear_caches() -> None:
    from etl.settings import get_settings
    from etl.sources import load_sources

    get_settings.cache_clear()
    load_sources.cache_clear()


def run(day: date = DEFAULT_DAY, fleet: str = "small", faults: str = "demo", fresh: bool = True) -> dict[str, Any]:
    var = REPO / "var"
    if fresh and var.exists():
        shutil.rmtree(var)
    _prepare_env(var, fleet)
    from etl import airflow_local

    airflow_local.configure(var / "airflow")
    _clear_caches()
    from etl.extract import mqtt
    from etl.registry.load import devices
    from etl.settings import get_settings
    from etl.simulate.clock import SimClock
    from etl.simulate.faults import FaultPlan
    from etl.simulate.gateways import Gateways
    from etl.sources import load_sources
    from etl.timeutil import kst_day_bounds

    start, end = kst_day_bounds(day)
    broker = _broker()
    settings = get_settings()
    sources = load_sources()
    plan = FaultPlan.demo() if faults == "demo" else FaultPlan.none()
    fleet_devices = [dataclasses.asdict(d) for d in devices(fleet)]
    t0 = time.monotonic()
    results: dict[str, Any] = {}
    with Gateways(fleet_devices, SimClock.frozen(end + timedelta(hours=2)), settings, plan) as gw:
        for s in sources.values():  # the durable subscriptions exist before devices publish
            if "topic" in s.options:
                if fresh:
                    mqtt.reset_session(settings.mqtt_host, settings.mqtt_port, s.options["client_id"])
                mqtt.ensure_session(settings.mqtt_host, settings.mqtt_port, s.options["topic"], s.options["client_id"])
        # amqtt keeps nothing for an absent session, so with the embedded broker the devices
        # publish while the extractor is connected; Mosquitto queues for the durable session.
        pushed = gw.push(start, end, mqtt=broker is None)
        traffic = gw.mqtt_traffic(start, end) if broker is not None else {}
        where = f"embedded amqtt broker :{broker.port}" if broker else f"Mosquitto {settings.mqtt_host}:{settings.mqtt_port}"
        print(f"simulated {day} (KST) for the {fleet} fleet via {where}: {pushed}")
        airflow_local.migrate()
        dags = airflow_local.load_dags()
        conf = {"window_start": start.isoformat(), "window_end": end.isoformat()}
        for sid, src in sources.items():
            if sid in traffic:
                broker.publish_when_subscribed(src.options["client_id"], traffic[sid])
            dr = airflow_local.run(dags[f"ingest_{sid}"], start, conf)
            results[sid] = airflow_local.task_result(dr, "normalize")
        # dag.test() does not trigger asset-scheduled DAGs: run the quality tables for the dates touched
        dates = sorted({d for r in results.values() for d in r["dates"]})
        airflow_local.run(dags["quality_tables"], end, {"dates": dates})
        airflow_local.run(dags["aggregate_gold"], end, {"dates": dates})
        airflow_local.run(dags["publish_open_data"], end, {})
    if broker is not None:
        broker.stop()
    elapsed = time.monotonic() - t0
    report(results, settings, elapsed, day)
    return results


def _report_gold(store: Any, day: date) -> None:
    from etl import duck, tables
    from etl.aggregate.runner import MODELS

    print("\ngold tables (rows):  " + ", ".join(
        f"{m.name} {tables.read(store, m.table, columns=['date']).num_rows}" for m in MODELS
        if tables.open_table(store, m.table) is not None))
    con = duck.analyst_session(store)
    try:
        rows = con.execute("""
            SELECT district_en, string_agg(coalesce(cai_grade_ko, '-'), ' ' ORDER BY hour) AS grades
            FROM air_quality_district_hourly WHERE date = ? GROUP BY ALL ORDER BY 1""", [day.isoformat()]).fetchall()
    finally:
        con.close()
    print(f"CAI grade (통합대기환경지수) per district per hour of {day} (KST 0-23; '-': no index, a pollutant "
          "missing):")
    for district, grades in rows:
        print(f"  {district:<14}{grades}")


def _report_release(settings: Any) -> None:
    from etl.storage import public
    from publish.validate import validate_package
    from publish.release import live

    store = public(settings)
    current = live(store)
    if current is None:
        print("\nno open-data release was made")
        return
    root = settings.public_uri.removeprefix("file://")
    valid = sum(1 for e in current["datasets"].values()
                if validate_package(f"{root}/{e['path']}datapackage.json")["valid"])
    files = sum(len(e["files"]) for e in current["datasets"].values())
    gate = current["privacy_gate"]
    print(f"\nopen-data release {current['release']} (as of {current['as_of']}): {len(current['datasets'])} datasets, "
          f"{files} bulk files; privacy gate passed over {gate['files_scanned']} files; "
          f"frictionless: {valid}/{len(current['datasets'])} datapackages valid")
    from etl.settings import get_settings
    from publish.catalog import load_catalogue

    catalogue = load_catalogue()
    for ds_id, e in current["datasets"].items():
        months = sorted({f["period"] for f in e["files"] if f["period"]})
        ds = catalogue.datasets[ds_id]
        note = (f"  (embargo: a day's rows are public {get_settings().gold_daycare_delay_days} days later)"
                if ds.embargo_until and not ds.embargo_columns else "")
        print(f"  {ds_id:<30}{e['rows']:>7} rows  {', '.join(months) or 'one file'}{note}")
    entry = current["datasets"]["air-quality-district-daily"]
    path = next(f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] is None)
    import duckdb

    rows = duckdb.sql(f"SELECT date, district_en, cai_max, status, revision FROM read_parquet('{root}/{path}') "
                      "ORDER BY date, district_en").fetchall()
    print(f"DuckDB over the published Parquet ({path}):")
    for day, district, cai, status, revision in rows:
        print(f"  {day}  {district:<14}CAI max {cai if cai is not None else '-':>4}  {status} r{revision}")
    print(f"public:  {root}/latest.json → releases/{current['release']}/manifest.json; "
          f"catalog.jsonld, changes.json, feeds/alerts.ko.atom")
    pages = sum(1 for _ in Path(root, "portal").rglob("*.html")) if Path(root, "portal").is_dir() else 0
    print(f"portal:  {root}/portal/index.html ({pages} pages, Korean and English); "
          "`.venv/bin/citylake serve` → http://127.0.0.1:8800/ (portal, API, /docs)")


def report(results: dict[str, Any], settings: Any, elapsed: float, day: date = DEFAULT_DAY) -> None:
    from etl import tables
    from etl.storage import QUALITY_DAILY, QUARANTINE, lake

    print(f"\n{'source':<20}{'received':>10}{'accepted':>10}{'flagged':>9}{'quarant.':>10}{'dupes':>8}  reconciles")
    for sid, r in results.items():
        ok = r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"]
        print(f"{sid:<20}{r['received']:>10}{r['accepted']:>10}{r.get('flagged', 0):>9}{r['quarantined']:>10}"
              f"{r['duplicates']:>8}  {'yes' if ok else 'NO'}")
    store = lake(settings)
    daily = tables.read(store, QUALITY_DAILY).group_by("domain").aggregate(
        [(c, "sum") for c in ("received", "accepted", "flagged", "quarantined", "duplicates")]).sort_by("domain")
    print("\nper domain (quality_daily):")
    print(f"  {'domain':<16}{'received':>10}{'accepted':>10}{'flagged':>9}{'quarant.':>10}{'dupes':>8}")
    for row in daily.to_pylist():
        print(f"  {row['domain']:<16}" + "".join(f"{row[c + '_sum']:>{w}}" for c, w in
              (("received", 10), ("accepted", 10), ("flagged", 9), ("quarantined", 10), ("duplicates", 8))))
    reasons = tables.read(store, QUARANTINE, columns=["reason"]).group_by("reason").aggregate([("reason", "count")])
    print("  quarantine reasons: " + ", ".join(f"{r['reason']} {r['reason_count']}" for r in reasons.to_pylist()))
    _report_gold(store, day)
    _report_release(settings)
    docs = settings.lake_uri.removeprefix("file://") + "/quality/docs/index.html"
    print(f"\nData Docs: {docs}")
    print(f"lake:    {settings.lake_uri}  (landing/, silver/, quarantine/, batches/, quality/ Delta tables)")
    print(f"airflow: {os.environ['AIRFLOW_HOME']} (SQLite)   took {elapsed:.0f}s")
    print("query it:  .venv/bin/citylake query \"select domain, metric, count(*) from silver group by all order by all\"")
