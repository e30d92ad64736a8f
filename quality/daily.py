"""The daily quality tables, rebuilt per KST date from silver, quarantine and the checks.

``quality_daily`` (per domain, source and day: received/accepted/flagged/quarantined/
duplicates, counts per flag and reason, pass rate per expectation) and ``device_health``
(per device and day: last seen, completeness, stuck/spike counts, battery, status). Each
rebuild replaces exactly the given dates in one Delta commit, so it is idempotent and a
late batch only rebuilds its own days. SQL models: quality/sql/*.sql.
"""
from __future__ import annotations

import logging
from datetime import date, timedelta
from importlib import resources
from typing import Any

import pyarrow as pa

from etl import failpoints
from etl.storage import DEVICE_HEALTH, QUALITY_DAILY, Store, lake

log = logging.getLogger(__name__)

DEGRADED_BELOW = 0.8   # completeness under which a device counts as degraded
LOW_BATTERY = 20.0     # % under which a device counts as degraded


def sql(name: str) -> str:
    return resources.files("quality.sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def _session(store: Store, dates: list[str]) -> Any:
    from etl import duck, tables
    from etl.registry.load import load_registry
    from etl.sources import load_sources

    con = duck.connect(store, threads=1)   # one thread: float sums in a fixed order, same bits on a re-run
    missing = {"silver", "quarantine", "batches", "quality_checks"} - {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    for view in missing:  # an empty lake: empty tables with the right columns
        name = next(k for k, v in duck.VIEWS.items() if v == view)
        con.register(view, tables.SCHEMAS[name].empty_table())
    reg = load_registry().select(["device_id", "domain", "kind", "source", "district_code", "district_en",
                                  "interval_s", "install_date"])
    con.register("registry", reg)
    pairs = [(s.id, d) for s in load_sources().values() for d in s.domains]
    con.register("source_domains", pa.table({"source": [p[0] for p in pairs], "domain": [p[1] for p in pairs]}))
    first = date.fromisoformat(min(dates))
    health = tables.open_table(store, DEVICE_HEALTH)
    if health is not None:
        import pyarrow.dataset as ds

        prev = health.to_pyarrow_dataset().to_table(
            columns=["device_id", "last_seen", "date"],
            filter=(ds.field("date") < first.isoformat()) & (ds.field("date") >= (first - timedelta(days=7)).isoformat()))
    else:
        prev = pa.table({"device_id": pa.array([], pa.string()), "last_seen": pa.array([], pa.timestamp("us", "UTC")),
                         "date": pa.array([], pa.string())})
    con.register("previous_health", prev)
    return con


def rebuild(dates: list[str], store: Store | None = None) -> dict[str, Any]:
    """Rebuild both tables for ``dates`` (KST, 'YYYY-MM-DD'); returns row counts."""
    from etl import tables

    store = store or lake()
    dates = sorted({date.fromisoformat(d).isoformat() for d in dates})
    if not dates:
        return {"dates": [], "quality_daily": 0, "device_health": 0}
    con = _session(store, dates)
    try:
        daily = con.execute(sql("quality_daily"), {"dates": dates}).to_arrow_table()
        health = con.execute(sql("device_health"), {"dates": dates, "degraded_below": DEGRADED_BELOW,
                                                    "low_battery": LOW_BATTERY}).to_arrow_table()
    finally:
        con.close()
    meta = {"citylake.rebuilt_dates": ",".join(dates)}
    failpoints.hit("quality.daily")
    tables.replace_partitions(store, QUALITY_DAILY, daily, "date", dates, meta)
    failpoints.hit("quality.health")
    tables.replace_partitions(store, DEVICE_HEALTH, health, "date", dates, meta)
    log.info("quality tables rebuilt for %s: quality_daily %d rows, device_health %d rows", dates,
             daily.num_rows, health.num_rows)
    return {"dates": dates, "quality_daily": daily.num_rows, "device_health": health.num_rows}
