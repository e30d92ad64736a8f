"""Benchmark: gold rebuilds (every SQL model of every domain) next to the floor.

    .venv/bin/python bench/bench_ingest.py --fleet goyang --workdir /tmp/day     # first: a day of silver
    .venv/bin/python bench/bench_gold.py --workdir /tmp/day                        # the day + a late batch
    .venv/bin/python bench/bench_gold.py --workdir /tmp/day --days 30              # a 30-day month too

1. **day**: ``etl.aggregate.runner.rebuild(domain, [day])`` for every domain and then the
   district summary, over the silver that ``bench_ingest.py --workdir W`` left in ``W/lake``
   (Delta writes of the gold tables included).
2. **late batch**: one hour of late readings for the day before is appended to silver (a copy
   of the day's 10:00 KST hour of every domain, shifted back a day); the dates it touches and
   their followers (``runner.with_followers``) are rebuilt, as the aggregate DAG would.
3. **month** (``--days N``): the day's silver is copied to the N-1 days before it (timestamps
   shifted by whole days) in a separate lake ``W/month``, then every (domain, date) is rebuilt,
   one date at a time as the DAG's mapped tasks do.

The floor is DuckDB doing the basic work of the same rebuild directly: one query per (domain,
date) over the same silver partitions, hourly mean/min/max/count per device and metric,
materialised as Arrow (no registry, completeness, indices, events or Delta writes).
ratio = floor seconds / ours seconds. Results: ``<results>/gold_<fleet>.json``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import results_file  # noqa: E402  (bench/, on the path above)

FLOOR_SQL = """
SELECT device_id, metric, date_trunc('hour', ts) AS hour, avg(value) AS mean, min(value) AS lo, max(value) AS hi,
       count(*) AS n
FROM delta_scan('{uri}') WHERE domain = $domain AND date = $date GROUP BY ALL
"""


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="bench_ingest's --workdir (its lake has the day's silver)")
    p.add_argument("--fleet", default="goyang")
    p.add_argument("--day", default="2026-11-24", help="the KST day bench_ingest simulated")
    p.add_argument("--days", type=int, default=0, help="also a month: this many days ending with --day")
    p.add_argument("--results", default=str(HERE / "results"))
    return p.parse_args()


def _env(lake: Path, fleet: str) -> None:
    os.environ["CITYLAKE_LAKE_URI"] = f"file://{lake}"
    os.environ["CITYLAKE_FLEET"] = fleet
    from tests.conftest import clear_caches

    clear_caches()


def _domains() -> list[str]:
    from etl.aggregate.runner import MODELS

    return sorted({m.domain for m in MODELS} - {"summary"})


def _silver_rows(store: Any, domain: str, dates: list[str]) -> int:
    from etl import tables
    from etl.storage import SILVER

    import pyarrow as pa

    files = pa.table(tables.open_table(store, SILVER).get_add_actions(flatten=True)).to_pylist()
    return sum(f["num_records"] for f in files if f["partition.domain"] == domain and f["partition.date"] in dates)


def ours(dates: list[str], per_date: bool = False) -> dict[str, Any]:
    """Rebuild every domain (then the summary) for ``dates``; seconds per domain."""
    from etl.aggregate.runner import rebuild, with_followers
    from etl.storage import lake

    out: dict[str, Any] = {}
    for domain in _domains() + ["summary"]:
        todo = dates if domain == "summary" else with_followers(domain, dates)
        t0 = time.perf_counter()
        rows = 0
        for batch in ([[d] for d in todo] if per_date else [todo]):
            rows += sum(rebuild(domain, batch)["tables"].values())
        out[domain] = {"seconds": time.perf_counter() - t0, "dates": todo, "gold_rows": rows,
                       "silver_rows": 0 if domain == "summary" else _silver_rows(lake(), domain, todo)}
    return out


def floor(dates: list[str] | dict[str, list[str]]) -> dict[str, Any]:
    """The floor query per (domain, date): ``dates`` for every domain, or per domain."""
    from etl import duck
    from etl.storage import SILVER, lake

    con = duck.connect(lake())
    sql = FLOOR_SQL.format(uri=lake().table_uri(SILVER))
    out = {}
    try:
        for domain in _domains():
            t0 = time.perf_counter()
            rows = 0
            for d in dates.get(domain, []) if isinstance(dates, dict) else dates:
                rows += con.execute(sql, {"domain": domain, "date": d}).to_arrow_table().num_rows
            out[domain] = {"seconds": time.perf_counter() - t0, "hourly_rows": rows}
    finally:
        con.close()
    return out


def late_batch(day: str) -> tuple[list[str], int]:
    """Append one hour of every domain's readings, shifted to the day before (a late batch)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import write_deltalake

    from etl import tables
    from etl.storage import SILVER, lake

    store = lake()
    prev = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    parts = []
    for domain in _domains():
        rows = tables.silver_slice(store, {(domain, day)}, *_hour(day, 10), list(tables.SILVER_SCHEMA.names), None, None)
        parts.append(rows)
    late = pa.concat_tables(parts)
    late = late.set_column(late.schema.get_field_index("ts"), "ts",
                           pc.subtract(late["ts"], pa.scalar(timedelta(days=1))))
    late = late.set_column(late.schema.get_field_index("date"), "date", pa.array([prev] * late.num_rows))
    late = late.set_column(late.schema.get_field_index("batch_id"), "batch_id", pa.array(["late"] * late.num_rows))
    write_deltalake(store.table_uri(SILVER), late.cast(tables.SILVER_SCHEMA), mode="append",
                    partition_by=tables.PARTITIONS[SILVER], storage_options=store.delta_options())
    return [prev], late.num_rows


def _hour(day: str, hour: int) -> tuple[Any, Any]:
    from datetime import datetime

    from etl.timeutil import KST

    d = date.fromisoformat(day)
    start = datetime(d.year, d.month, d.day, hour, tzinfo=KST)
    return start, start + timedelta(hours=1) - timedelta(microseconds=1)


def make_month(src: Path, dst: Path, day: str, days: int) -> list[str]:
    """Copy the day's silver to the ``days`` - 1 days before it in a new lake at ``dst``."""
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake

    from etl import tables

    if dst.exists():
        shutil.rmtree(dst)
    base = DeltaTable(str(src / "silver"))
    last = date.fromisoformat(day)
    dates = [(last - timedelta(days=i)).isoformat() for i in reversed(range(days))]
    for domain in _domains():
        rows = base.to_pyarrow_dataset(file_pruning_predicate=[("domain", "=", domain), ("date", "=", day)]).to_table()
        for d in dates:
            shift = (last - date.fromisoformat(d)).days
            t = rows.set_column(rows.schema.get_field_index("ts"), "ts",
                                pc.subtract(rows["ts"], pa.scalar(timedelta(days=shift))))
            t = t.set_column(t.schema.get_field_index("date"), "date", pa.array([d] * t.num_rows))
            write_deltalake(str(dst / "silver"), t.cast(tables.SILVER_SCHEMA), mode="append",
                            partition_by=["domain", "date"])
    return dates


def _table(title: str, o: dict[str, Any], f: dict[str, Any]) -> list[str]:
    lines = [title, f"{'domain':<16}{'silver rows':>14}{'gold rows':>11}{'ours s':>9}{'floor s':>9}{'ratio':>7}"]
    tot_o = tot_f = 0.0
    for domain, r in o.items():
        fl = f.get(domain, {}).get("seconds")
        tot_o += r["seconds"]
        tot_f += fl or 0.0
        fs = "" if fl is None else f"{fl:.1f}"
        ratio = "" if fl is None else f"{fl / r['seconds']:.2f}"
        lines.append(f"{domain:<16}{r['silver_rows']:>14,}{r['gold_rows']:>11,}{r['seconds']:>9.1f}{fs:>9}{ratio:>7}")
    lines.append(f"{'all':<16}{sum(r['silver_rows'] for r in o.values()):>14,}"
                 f"{sum(r['gold_rows'] for r in o.values()):>11,}{tot_o:>9.1f}{tot_f:>9.1f}{tot_f / tot_o:>7.2f}")
    return lines


def main() -> int:
    a = _args()
    work = Path(a.workdir)
    result: dict[str, Any] = {"params": vars(a), "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    _env(work / "lake", a.fleet)
    o, f = ours([a.day]), floor([a.day])
    result["day"] = {"ours": o, "floor": f}
    lines = _table(f"one day ({a.day}), {a.fleet} fleet", o, f)
    dates, n = late_batch(a.day)
    o = ours(dates)
    f = floor({domain: r["dates"] for domain, r in o.items()})
    result["late"] = {"late_rows": n, "ours": o, "floor": f}
    lines += ["", f"late batch: {n:,} readings for {dates[0]} (rebuilds it and the day after where lookback)"]
    lines += _table("incremental rebuild", o, f)
    if a.days:
        month = make_month(work / "lake", work / "month", a.day, a.days)
        _env(work / "month", a.fleet)
        o, f = ours(month, per_date=True), floor(month)
        result["month"] = {"dates": [month[0], month[-1]], "ours": o, "floor": f}
        lines += ["", f"{a.days} days ({month[0]} .. {month[-1]}), one date at a time"]
        lines += _table("month", o, f)
    print("\n".join(lines))
    results_file.save(a.results, f"gold_{a.fleet}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
