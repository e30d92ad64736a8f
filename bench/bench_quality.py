"""Benchmark: row-level validation (the GX suites) over a day's batch stream, next to the floor.

    .venv/bin/python bench/bench_ingest.py --fleet goyang --workdir /tmp/day   # first: the lake
    .venv/bin/python bench/bench_quality.py --fleet goyang --workdir /tmp/day
    .venv/bin/python bench/bench_quality.py --fleet small --workdir /tmp/qb-small --limit-batches 16

The lake is the one ``bench/bench_ingest.py --workdir W`` leaves in ``W/lake``. If
``W/lake/silver`` is missing, bench_ingest is run first (landing + ours, no floor; its report
goes to ``W/ingest-results/``, so ``bench/results/ingest_<fleet>.json`` is left alone).

1. The batch stream is rebuilt from the ``batches`` ledger, in the order ingest ran it: each
   batch's silver rows (partition-pruned by the ledger's domains and dates, filtered on
   batch_id), with ``src_flag`` (null) and ``frame`` added to match
   ``etl.normalize.CANDIDATE_SCHEMA``. Reading silver is not timed.
2. ``ours``: ``quality.validate.validate_readings`` on each batch (registry of ``--fleet``,
   received_at from the ledger): rows, seconds, rows/s per source and overall, per-batch
   median and max, peak RSS.
3. ``floor``: the same row checks as one hand-written DuckDB query per batch over the same
   Arrow table (registry and metric table registered once), materialising per-row reason and
   flags as Arrow. Coordinates are checked against Goyang's bounding box, not its polygons.
4. The two must agree on the count of each failure kind over the day (and row by row); the
   table gives ratio = ours rows/s / floor rows/s, and validation seconds / ingest seconds.
   Everything goes to ``<results>/quality_<fleet>.json``.

Each measured phase runs in its own process (as in bench_ingest), so its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import bench_ingest  # noqa: E402 - after the path set-up (same environment helpers)

REASON_ORDER = ("source_missing", "unknown_metric", "unknown_device", "future_timestamp", "before_install",
                "outside_goyang", "source_flagged", "bad_category", "out_of_physical_range")
FLAG_ORDER = ("implausible", "stuck", "spike", "pm25_above_pm10")
SCHEMA_KINDS = ("null_key", "duplicate_key")
KINDS = REASON_ORDER + FLAG_ORDER + SCHEMA_KINDS
WARMUP_ROWS = 64
# quality.suites.OK_FLAGS (repeated so that the floor's process does not import GX; _in_step checks it)
OK_FLAGS = ("0", "00", "ok", "OK", "normal", "valid", "정상")


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="bench_ingest's --workdir (its lake is validated again)")
    p.add_argument("--fleet", default="goyang", help="small | goyang | a registry CSV (as for bench_ingest)")
    p.add_argument("--day", default=bench_ingest.DEFAULT_DAY, help="KST day (only used to build a missing lake)")
    p.add_argument("--results", default=str(HERE / "results"), help="directory for the JSON results")
    p.add_argument("--limit-batches", type=int, help="only the first N batches in window order (quick runs)")
    p.add_argument("--with-quarantined", action="store_true",
                   help="add back the rows the suites quarantined at ingest (silver alone has none to find)")
    p.add_argument("--floor-threads", type=int, default=2, help="DuckDB threads of the floor (bench/floor.py: 2)")
    p.add_argument("--skip", choices=("ours", "floor"), action="append", default=[])
    p.add_argument("--phase", choices=("ours", "floor"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---- the batch stream ---------------------------------------------------------------------
def ledger(store: Any, limit: int | None) -> list[dict[str, Any]]:
    """The batches ledger in the order ingest normalised them (window start, then run order)."""
    from etl import tables
    from etl.storage import BATCHES

    rows = tables.read(store, BATCHES, columns=["batch_id", "source", "window_start", "received_at",
                                                "normalized_at", "accepted", "domains", "dates"]).to_pylist()
    rows.sort(key=lambda r: (r["window_start"], r["normalized_at"]))
    return rows[:limit] if limit else rows


def candidates(store: Any, rec: dict[str, Any], with_quarantined: bool = False) -> Any:
    """A batch's silver rows shaped as normalize's candidates (src_flag and frame: null); with
    ``with_quarantined``, plus the rows the quality suites quarantined at ingest (their
    src_flag recovered from the quarantine detail; their subject is not kept: null)."""
    import pyarrow as pa

    from etl import tables

    silver = tables.batch_rows(store, rec["batch_id"], [(d, day) for d in rec["domains"] for day in rec["dates"]])
    n = silver.num_rows
    table = silver.append_column("src_flag", pa.nulls(n, pa.string())) \
        .append_column("frame", pa.nulls(n, pa.int32())).cast(candidate_schema())
    if not with_quarantined:
        return table
    rejected = suite_rejects(store, rec)
    if rejected.num_rows == 0:
        return table
    return pa.concat_tables([table, rejected]).sort_by([("device_id", "ascending"), ("ts", "ascending"),
                                                        ("metric", "ascending")])


SUITE_REASONS = ("future_timestamp", "before_install", "outside_goyang", "source_flagged", "bad_category",
                 "out_of_physical_range")   # the quarantine reasons only the quality suites give


def suite_rejects(store: Any, rec: dict[str, Any]) -> Any:
    """The batch's rows that the quality suites quarantined, as candidate rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from etl import tables
    from etl.storage import QUARANTINE

    dt = tables.open_table(store, QUARANTINE)
    if dt is None:
        return candidate_schema().empty_table()
    dataset = dt.to_pyarrow_dataset(file_pruning_predicate=[("date", "in", list(rec["dates"]))])
    q = dataset.to_table(
        filter=(ds.field("batch_id") == rec["batch_id"]) & ds.field("reason").isin(list(SUITE_REASONS)))
    n = q.num_rows
    flag = pc.extract_regex(q["detail"].combine_chunks(), r"\(source flag: (?P<flag>.*)\)$").field("flag")
    flag = pc.if_else(pc.equal(flag, "none"), pa.nulls(n, pa.string()), flag)
    cols = {"quality_flag": pa.nulls(n, pa.string()), "subject": pa.nulls(n, pa.string()), "src_flag": flag}
    schema = candidate_schema()
    return pa.table({f.name: cols[f.name] if f.name in cols else q[f.name] for f in schema}, schema=schema)


def candidate_schema() -> Any:
    """etl.normalize.CANDIDATE_SCHEMA (built here: importing etl.normalize imports GX; _in_step checks it)."""
    import pyarrow as pa

    from etl import tables

    return pa.schema([*tables.SILVER_SCHEMA, pa.field("src_flag", pa.string()), pa.field("frame", pa.int32())])


def stream(store: Any, limit: int | None, with_quarantined: bool = False) -> Iterator[tuple[dict[str, Any], Any]]:
    for rec in ledger(store, limit):
        yield rec, candidates(store, rec, with_quarantined)


# ---- the floor: one DuckDB query per batch ------------------------------------------------
FLOOR_SQL = """
WITH b AS (  -- each candidate row with its device (registry) and its metric's rules
    SELECT c.pos, c.device_id, c.domain, c.metric, c.ts, c.value, c.subject, c.src_flag,
           r.install_ts, r.lat, r.lon, m.metric AS known_metric, m.allowed, m.phys_lo, m.phys_hi,
           m.plaus_lo, m.plaus_hi, m.max_step, m.stuck_run
    FROM c LEFT JOIN reg r ON r.device_id = c.device_id
           LEFT JOIN met m ON m.domain = c.domain AND m.metric = c.metric
),
s1 AS (  -- the series (device, metric) of metrics with a stuck or spike rule, in time order
    SELECT pos, device_id, metric, ts, value, max_step, stuck_run,
           lag(value) OVER w AS prev_v, lead(value) OVER w AS next_v, row_number() OVER w AS rn
    FROM b WHERE max_step IS NOT NULL OR stuck_run IS NOT NULL
    WINDOW w AS (PARTITION BY device_id, metric ORDER BY ts)
),
s2 AS (  -- run of equal consecutive values: from its first row to its last
    SELECT pos, value, max_step, stuck_run, prev_v, next_v,
           min(CASE WHEN NOT coalesce(value = next_v, false) THEN rn END)
               OVER (w ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
           - max(CASE WHEN NOT coalesce(value = prev_v, false) THEN rn END)
               OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) + 1 AS run_len
    FROM s1 WINDOW w AS (PARTITION BY device_id, metric ORDER BY rn)
),
faults AS (
    SELECT pos,
           coalesce(run_len >= stuck_run, false) AS stuck,
           coalesce((value - prev_v > max_step AND value - next_v > max_step)
                    OR (value - prev_v < -max_step AND value - next_v < -max_step), false) AS spike
    FROM s2
),
pm AS (  -- PM2.5 above ratio x PM10 + margin at the same device and time
    SELECT DISTINCT a.pos
    FROM b a JOIN b p ON p.device_id = a.device_id AND p.ts = a.ts AND p.domain = 'air_quality' AND p.metric = 'pm10'
    WHERE a.domain = 'air_quality' AND a.metric = 'pm25' AND a.value > p.value * $pm_ratio + $pm_margin
),
dup AS (  -- keys (device, metric, ts, subject) held by more than one row
    SELECT device_id, metric, ts, subject FROM b GROUP BY ALL HAVING count(*) > 1
)
SELECT b.pos,
       -- the first failing check in the suite's order (quality.suites; quality.validate._apply
       -- applies GX's results in that order)
       CASE WHEN b.value IS NULL THEN 'source_missing'
            WHEN b.metric IS NOT NULL AND b.known_metric IS NULL THEN 'unknown_metric'
            WHEN b.install_ts IS NULL THEN 'unknown_device'
            WHEN b.ts > $latest THEN 'future_timestamp'
            WHEN b.ts < b.install_ts THEN 'before_install'
            WHEN NOT coalesce(b.lat BETWEEN $lat_min AND $lat_max AND b.lon BETWEEN $lon_min AND $lon_max, false)
                THEN 'outside_goyang'
            WHEN b.src_flag IS NOT NULL AND NOT list_contains($ok_flags, b.src_flag) THEN 'source_flagged'
            WHEN b.allowed IS NOT NULL AND NOT coalesce(list_contains(b.allowed, b.value), false) THEN 'bad_category'
            WHEN b.value < b.phys_lo OR b.value > b.phys_hi THEN 'out_of_physical_range'
       END AS reason,
       nullif(concat_ws(';', CASE WHEN b.value < b.plaus_lo OR b.value > b.plaus_hi THEN 'implausible' END,
                             CASE WHEN f.stuck THEN 'stuck' END, CASE WHEN f.spike THEN 'spike' END,
                             CASE WHEN pm.pos IS NOT NULL THEN 'pm25_above_pm10' END), '') AS flags,
       CASE WHEN b.device_id IS NULL OR b.metric IS NULL OR b.ts IS NULL THEN 'null_key'
            WHEN d.device_id IS NOT NULL THEN 'duplicate_key' END AS schema_problem
FROM b LEFT JOIN faults f ON f.pos = b.pos
       LEFT JOIN pm ON pm.pos = b.pos
       LEFT JOIN dup d ON d.device_id = b.device_id AND d.metric = b.metric AND d.ts = b.ts
                      AND d.subject IS NOT DISTINCT FROM b.subject
"""


def metric_rules() -> Any:
    """quality.metrics as a table, with the rules exactly as quality.suites applies them."""
    import pyarrow as pa

    from quality.metrics import METRICS

    rows = []
    for m in METRICS:
        ranged = m.values is None  # categorical metrics: only the set check
        rows.append({"domain": m.domain, "metric": m.metric,
                     "allowed": None if ranged else [float(v) for v in m.values],
                     "phys_lo": float(m.physical[0]) if ranged else None,
                     "phys_hi": float(m.physical[1]) if ranged else None,
                     "plaus_lo": float(m.plausible[0]) if ranged and m.plausible != m.physical else None,
                     "plaus_hi": float(m.plausible[1]) if ranged and m.plausible != m.physical else None,
                     "max_step": None if m.max_step is None else float(m.max_step),
                     "stuck_run": m.stuck_run or None})
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("domain", pa.string()), ("metric", pa.string()), ("allowed", pa.list_(pa.float64())),
        ("phys_lo", pa.float64()), ("phys_hi", pa.float64()), ("plaus_lo", pa.float64()), ("plaus_hi", pa.float64()),
        ("max_step", pa.float64()), ("stuck_run", pa.int64())]))


def registry_rules(registry: Any) -> Any:
    """device_id, install_ts (KST midnight of the install date, as UTC), lat, lon."""
    import pyarrow as pa
    import pyarrow.compute as pc

    days = pc.cast(registry["install_date"], pa.int32()).cast(pa.int64())
    install = pc.cast(pc.subtract(pc.multiply(days, 86_400_000_000), 9 * 3600 * 1_000_000), pa.timestamp("us", tz="UTC"))
    return pa.table({"device_id": registry["device_id"], "install_ts": install,
                     "lat": registry["lat"], "lon": registry["lon"]})


class FloorQuery:
    """One in-memory DuckDB connection for the whole run; one query per batch."""

    def __init__(self, registry: Any, future_tolerance_s: float, threads: int):
        import duckdb

        from etl.registry.geo import GOYANG_BBOX

        self.con = duckdb.connect(config={"threads": threads})
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.register("reg", registry_rules(registry))
        self.con.register("met", metric_rules())
        lon_min, lat_min, lon_max, lat_max = GOYANG_BBOX
        self.params = {"lat_min": lat_min, "lat_max": lat_max, "lon_min": lon_min, "lon_max": lon_max,
                       "ok_flags": list(OK_FLAGS), "pm_ratio": 1.0, "pm_margin": 5.0}  # as in quality.suites
        self.tolerance = timedelta(seconds=future_tolerance_s)

    def run(self, table: Any, received_at: datetime) -> Any:
        """Per-row (pos, reason, flags, schema_problem) of ``table``, as Arrow."""
        import numpy as np
        import pyarrow as pa

        c = table.append_column("pos", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        self.con.register("c", c)
        try:
            return self.con.execute(FLOOR_SQL, {**self.params, "latest": received_at + self.tolerance}) \
                .to_arrow_table()
        finally:
            self.con.unregister("c")


# ---- self-check: every failure kind on a synthetic batch ----------------------------------
def synthetic_batch(registry: Any) -> tuple[Any, Any, datetime]:
    """(candidates, registry, received_at): a few devices of every domain with each failure
    kind injected, and a registry where one device sits inside Goyang's bounding box but
    outside its polygons (the floor's simplification) and one has lat/lon swapped."""
    import random
    from datetime import timezone

    import pyarrow as pa
    import pyarrow.compute as pc

    from quality.metrics import DOMAINS, METRICS

    rng = random.Random(7)
    N = 60  # readings per device and metric
    received = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
    reg = registry.to_pylist()
    by_domain = {d: [r for r in reg if r["domain"] == d][:2] for d in DOMAINS}
    moved = {by_domain[DOMAINS[1]][-1]["device_id"]: (37.74, 126.70),         # bbox yes, polygon no
             by_domain[DOMAINS[4]][-1]["device_id"]: None}                     # lat/lon swapped
    for r in reg:
        if r["device_id"] in moved:
            r["lat"], r["lon"] = moved[r["device_id"]] or (r["lon"], r["lat"])
    rows: list[dict[str, Any]] = []

    def add(dev: dict, m: Any, ts: datetime, value: float | None, **kw: Any) -> None:
        rows.append({"device_id": dev["device_id"], "domain": m.domain, "metric": kw.get("metric", m.metric), "ts": ts,
                     "value": value, "unit": m.unit, "subject": kw.get("subject"), "src_flag": kw.get("src_flag")})

    for domain, devs in by_domain.items():
        for k, dev in enumerate(devs):
            install = datetime(dev["install_date"].year, dev["install_date"].month, dev["install_date"].day,
                               tzinfo=timezone.utc) - timedelta(hours=9)
            for m in (m for m in METRICS if m.domain == domain):
                lo, hi = m.plausible if m.values is None else (0, 1)
                step = m.max_step if m.max_step is not None else (hi - lo) / 10 or 1
                mid = (lo + hi) / 2
                vals: list[float | None] = [mid + rng.uniform(-0.3, 0.3) * min(step, (hi - lo) / 10 or 1)
                                            for _ in range(N)]
                if m.values is not None:
                    vals = [float(rng.choice(m.values)) for _ in range(N)]
                    vals[45] = 0.5                                             # bad_category
                if m.stuck_run:
                    vals[1:1 + m.stuck_run] = [vals[1]] * m.stuck_run          # stuck
                    vals[21:21 + m.stuck_run - 1] = [vals[21]] * (m.stuck_run - 1)   # one short: not stuck
                if m.values is None:
                    vals[41] = mid + 2.5 * step                                # spike (up)
                    vals[44] = mid - 2.5 * step                                # spike (down)
                    vals[47] = vals[46] + 2 * step                             # a level change, not a spike
                    vals[48] = vals[47] + rng.uniform(-0.1, 0.1) * step
                    if m.plausible != m.physical:
                        vals[50] = (m.plausible[1] + m.physical[1]) / 2        # implausible
                    vals[52] = m.physical[1] + 1                               # out_of_physical_range
                    vals[53] = m.physical[0] - 1
                vals[54] = None                                                # source_missing
                if m.metric == "pm25":
                    pm10 = [r for r in rows if r["device_id"] == dev["device_id"] and r["metric"] == "pm10"]
                    vals[38] = pm10[38]["value"] + 10                          # pm25_above_pm10
                    vals[39] = pm10[39]["value"] + 4                           # within the margin
                for i, v in enumerate(vals):
                    ts = received - timedelta(hours=6) + timedelta(minutes=5 * i)
                    if i == 57:
                        ts = received + timedelta(seconds=400)                 # future_timestamp
                    if i == 58:
                        ts = install - timedelta(days=1)                       # before_install
                    subject = f"p_{domain}_{k}_{i}" if domain == "daycare_safety" else None
                    add(dev, m, ts, v, subject=subject, src_flag={55: "X", 56: "ok", 52: "X"}.get(i))
                if k == 0:
                    t = received - timedelta(hours=7, minutes=len(rows))
                    add(dev, m, t, mid, metric="no_such_metric")                                  # unknown_metric
                    add({"device_id": f"zz-unknown-{domain}"}, m, t, mid)                         # unknown_device
        if domain in ("weather", "streetlights"):
            rows.append(dict(rows[-20]))                                       # duplicate_key (an exact copy)
    n = len(rows)
    table = pa.Table.from_pylist(rows).cast(pa.schema([
        ("device_id", pa.string()), ("domain", pa.string()), ("metric", pa.string()), ("ts", pa.timestamp("us", "UTC")),
        ("value", pa.float64()), ("unit", pa.string()), ("subject", pa.string()), ("src_flag", pa.string())]))
    const = {"quality_flag": pa.nulls(n, pa.string()), "source": pa.repeat("synthetic", n),
             "batch_id": pa.repeat("synthetic", n), "received_at": pa.repeat(pa.scalar(received, pa.timestamp("us", "UTC")), n),
             "date": pa.repeat("2026-11-24", n), "frame": pa.nulls(n, pa.int32())}
    schema = candidate_schema()
    table = pa.table({f.name: const[f.name] if f.name in const else table[f.name] for f in schema}, schema=schema)
    order = pc.sort_indices(table, [("device_id", "ascending"), ("ts", "ascending"), ("metric", "ascending")])
    return table.take(order), pa.Table.from_pylist(reg, schema=registry.schema), received


def self_check(fleet: str) -> dict[str, Any]:
    """ours and the floor on the synthetic batch: counts per kind and the rows that differ."""
    import numpy as np

    from etl.registry.load import load_registry
    from etl.settings import get_settings
    from quality.validate import limits_from_settings, validate_readings

    table, registry, received = synthetic_batch(load_registry(fleet))
    out = validate_readings(table, table["src_flag"], registry, received, limits_from_settings())
    got = FloorQuery(registry, get_settings().quality_future_tolerance_s, 1).run(table, received).sort_by("pos")
    f_reason, f_flags, f_schema = (got[k].to_numpy(zero_copy_only=False) for k in ("reason", "flags", "schema_problem"))
    oc = _count(out.reason, out.flags, _ours_schema_problems(out, table.num_rows))
    fc = _count(f_reason, f_flags, f_schema)
    bad = np.flatnonzero((out.reason != f_reason) | (out.flags != f_flags))
    rows = [{"device_id": table["device_id"][int(i)].as_py(), "metric": table["metric"][int(i)].as_py(),
             "ours": (out.reason[i], out.flags[i]), "floor": (f_reason[i], f_flags[i])} for i in bad]
    other = [r for r in rows if not _bbox_only(r["ours"][0], r["floor"][0], r["ours"][1], r["floor"][1])]
    return {"rows": table.num_rows, "ours": dict(oc), "floor": dict(fc), "rows_differing": len(rows),
            "rows_differing_not_bbox": len(other), "examples": (other or rows)[:10]}


def _bbox_only(ours_reason: str | None, floor_reason: str | None, ours_flags: str | None,
               floor_flags: str | None) -> bool:
    """A difference the floor's bounding box explains: ours finds the device outside Goyang's
    polygons, the floor (inside the box) goes on to the next check."""
    return ours_reason == "outside_goyang" and floor_reason != "outside_goyang" and ours_flags == floor_flags


def print_counts(title: str, oc: dict[str, int], fc: dict[str, int]) -> list[str]:
    kinds = list(KINDS) + sorted((set(oc) | set(fc)) - set(KINDS))
    print(f"\n{title}")
    print(f"{'kind':<24}{'ours':>10}{'floor':>10}{'diff':>8}")
    for k in kinds:
        print(f"{k:<24}{oc.get(k, 0):>10,d}{fc.get(k, 0):>10,d}{fc.get(k, 0) - oc.get(k, 0):>+8,d}")
    return [k for k in kinds if oc.get(k, 0) != fc.get(k, 0)]


# ---- the phases ---------------------------------------------------------------------------
def _outcome_rows(batch_id: str, pos: Any, reason: Any, flags: Any, schema: Any) -> dict[str, list]:
    """The rows with a reason, flag or schema problem (for the row-by-row comparison)."""
    import numpy as np

    keep = np.flatnonzero((reason != None) | (flags != None) | (schema != None))  # noqa: E711 - elementwise
    return {"batch_id": [batch_id] * len(keep), "pos": pos[keep].tolist(), "reason": reason[keep].tolist(),
            "flags": flags[keep].tolist(), "schema_problem": schema[keep].tolist()}


def _count(reason: Any, flags: Any, schema: Any) -> Counter:
    out: Counter = Counter()
    out.update(r for r in reason if r is not None)
    out.update(f for fs in flags if fs is not None for f in fs.split(";"))
    out.update(s for s in schema if s is not None)
    return out


def _ours_schema_problems(outcome: Any, n: int) -> Any:
    """ours' fail-level key checks have no per-row output: their counts go on the first rows."""
    import numpy as np

    schema = np.full(n, None, object)
    null_keys = sum(c.failed for c in outcome.checks if c.target == "null_keys")
    dups = sum(c.failed for c in outcome.checks if c.target == "duplicate_keys")
    schema[:min(n, null_keys)] = "null_key"
    schema[null_keys:min(n, null_keys + dups)] = "duplicate_key"
    return schema


def _in_step() -> None:
    """The copies kept here so that the floor's process needs no GX match the pipeline's."""
    from etl.normalize import CANDIDATE_SCHEMA
    from quality.suites import OK_FLAGS as suite_flags

    if tuple(suite_flags) != OK_FLAGS or not candidate_schema().equals(CANDIDATE_SCHEMA):
        raise SystemExit("bench_quality is out of step with quality.suites.OK_FLAGS or etl.normalize.CANDIDATE_SCHEMA")


def _rows_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("batch_id", pa.string()), ("pos", pa.int64()), ("reason", pa.string()), ("flags", pa.string()),
                      ("schema_problem", pa.string())])


def phase(which: str, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl.registry.load import load_registry
    from etl.settings import get_settings
    from etl.storage import lake

    store, registry = lake(), load_registry(a.fleet)
    rows_schema = _rows_schema()
    if which == "ours":
        from quality.metrics import DOMAINS
        from quality.suites import readings_suite
        from quality.validate import _batch_definition, limits_from_settings, validate_readings

        _in_step()
        limits = limits_from_settings()

        _batch_definition()              # the GX context, once per process (as in ingest)
        for d in DOMAINS:
            readings_suite(d)

        def check(table: Any, received: datetime) -> tuple[Any, Any, Any]:
            out = validate_readings(table, table["src_flag"], registry, received, limits)
            return out.reason, out.flags, out
    else:
        # (no GX import here: the tolerance straight from the settings, as limits_from_settings reads it)
        floor = FloorQuery(registry, get_settings().quality_future_tolerance_s, a.floor_threads)

        def check(table: Any, received: datetime) -> tuple[Any, Any, Any]:
            return floor.run(table, received), None, None

    per: dict[str, dict[str, Any]] = {}
    batches: list[dict[str, Any]] = []
    counts: dict[str, Counter] = {}
    found = pq.ParquetWriter(workdir / f"quality-{which}-rows.parquet", rows_schema)  # rows to compare, batch by batch
    differs_from_silver = 0
    warmed = False
    rss_before = None
    t_read = 0.0
    t_read0 = time.perf_counter()
    for rec, table in stream(store, a.limit_batches, a.with_quarantined):
        t_read += time.perf_counter() - t_read0
        n = table.num_rows
        if not warmed and n:  # first call's lazy set-up, on a few rows, untimed
            check(table.slice(0, WARMUP_ROWS), rec["received_at"])
            warmed, rss_before = True, bench_ingest._rss_mb()
        t0 = time.perf_counter()
        reason, flags, extra = check(table, rec["received_at"])
        dt = time.perf_counter() - t0
        # ---- untimed: per-row outcome as numpy, counts, rows to compare
        if which == "ours":
            schema = _ours_schema_problems(extra, n)
            pos = np.arange(n)
            stored = table["quality_flag"].to_numpy(zero_copy_only=False)
            differs_from_silver += int(np.count_nonzero(flags != stored))
        else:
            got = reason.sort_by("pos")
            pos = got["pos"].to_numpy()
            if len(pos) != n:
                raise SystemExit(f"floor returned {len(pos)} rows for {n} in batch {rec['batch_id']}")
            reason, flags, schema = (got[k].to_numpy(zero_copy_only=False) for k in ("reason", "flags",
                                                                                      "schema_problem"))
        counts.setdefault(rec["source"], Counter()).update(_count(reason, flags, schema))
        found.write_table(pa.table(_outcome_rows(rec["batch_id"], pos, reason, flags, schema), schema=rows_schema))
        s = per.setdefault(rec["source"], {"batches": 0, "rows": 0, "seconds": 0.0})
        s["batches"] += 1
        s["rows"] += n
        s["seconds"] += dt
        batches.append({"batch_id": rec["batch_id"], "source": rec["source"], "rows": n, "seconds": dt})
        t_read0 = time.perf_counter()
    found.close()
    return {"sources": per, "batches": batches, "counts": {k: dict(v) for k, v in counts.items()},
            "peak_rss_mb": bench_ingest._rss_mb(), "rss_before_mb": rss_before, "silver_read_s": t_read,
            "flags_differ_from_silver": differs_from_silver if which == "ours" else None,
            "floor_threads": a.floor_threads if which == "floor" else None}


def _run_phase(which: str, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A phase in a fresh interpreter, so peak RSS is the phase's own."""
    out = workdir / f"quality-{which}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--phase", which, "--workdir", str(workdir), "--fleet", a.fleet,
           "--floor-threads", str(a.floor_threads)]
    if a.limit_batches:
        cmd += ["--limit-batches", str(a.limit_batches)]
    if a.with_quarantined:
        cmd.append("--with-quarantined")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"{which}: {time.perf_counter() - t0:.1f} s (with reading silver)")
    return json.loads(out.read_text())


def ensure_lake(a: argparse.Namespace, workdir: Path) -> None:
    """Run bench_ingest (landing + ours) when the workdir has no silver yet."""
    if (workdir / "lake" / "silver").exists():
        return
    cmd = [sys.executable, str(HERE / "bench_ingest.py"), "--fleet", a.fleet, "--day", a.day, "--workdir",
           str(workdir), "--reuse", "--skip", "floor", "--results", str(workdir / "ingest-results")]
    print(f"no silver in {workdir / 'lake'}: running {' '.join(cmd[1:])}")
    subprocess.run(cmd, check=True)


# ---- report -------------------------------------------------------------------------------
def _ingest_seconds(a: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """Ingest (normalize) seconds of the same day: the saved results, and the run that built this lake."""
    found = []
    stem = Path(a.fleet).stem
    saved = Path(a.results) / f"ingest_{stem}.json"
    if saved.exists():
        r = json.loads(saved.read_text())
        found.append({"from": str(saved), "day": r["params"]["day"], "seconds": r["total"]["ours_s"],
                      "sources": {p["source"]: p["ours_s"] for p in r["per_source"]}})
    lake_run = workdir / "ours.json"
    if lake_run.exists():
        r = json.loads(lake_run.read_text())
        found.append({"from": str(lake_run), "day": None, "seconds": r["seconds"],
                      "sources": {k: v["seconds"] for k, v in r["sources"].items()}})
    return found


def _diff_rows(workdir: Path) -> dict[str, Any]:
    """Row-by-row: rows whose reason or flags differ between ours and the floor."""
    import duckdb

    con = duckdb.connect()
    o, f = (str(workdir / f"quality-{w}-rows.parquet") for w in ("ours", "floor"))
    rows = con.execute(f"""
        SELECT coalesce(o.batch_id, f.batch_id) AS batch_id, coalesce(o.pos, f.pos) AS pos,
               o.reason AS ours_reason, f.reason AS floor_reason, o.flags AS ours_flags, f.flags AS floor_flags
        FROM read_parquet('{o}') o FULL JOIN read_parquet('{f}') f ON o.batch_id = f.batch_id AND o.pos = f.pos
        WHERE o.reason IS DISTINCT FROM f.reason OR o.flags IS DISTINCT FROM f.flags
        ORDER BY ALL""").fetchall()
    cols = ("batch_id", "pos", "ours_reason", "floor_reason", "ours_flags", "floor_flags")
    rows = [dict(zip(cols, r)) for r in rows]
    other = [r for r in rows if not _bbox_only(r["ours_reason"], r["floor_reason"], r["ours_flags"], r["floor_flags"])]
    return {"rows_differing": len(rows), "rows_differing_not_bbox": len(other), "examples": (other or rows)[:20]}


def report(a: argparse.Namespace, ours: dict[str, Any] | None, flo: dict[str, Any] | None,
           workdir: Path, check: dict[str, Any] | None = None) -> dict[str, Any]:
    from etl.sources import load_sources

    def stats(batches: list[dict[str, Any]], source: str | None) -> dict[str, float | None]:
        secs = [b["seconds"] for b in batches if source is None or b["source"] == source]
        return {"median_batch_s": statistics.median(secs) if secs else None, "max_batch_s": max(secs, default=None)}

    present, known = (ours or flo or {}).get("sources", {}), list(load_sources())
    rows = []
    for sid in [s for s in known if s in present] + [s for s in present if s not in known]:
        o, f = (ours or {}).get("sources", {}).get(sid), (flo or {}).get("sources", {}).get(sid)
        row = {"source": sid, "batches": (o or f)["batches"], "rows": (o or f)["rows"],
               "ours_s": o and o["seconds"], "floor_s": f and f["seconds"]}
        for k, ph in (("ours", ours), ("floor", flo)):
            st = stats(ph["batches"], sid) if ph else {}
            row[f"{k}_median_batch_s"], row[f"{k}_max_batch_s"] = st.get("median_batch_s"), st.get("max_batch_s")
        rows.append(row)
    total = {"source": "total", "batches": sum(r["batches"] for r in rows), "rows": sum(r["rows"] for r in rows),
             "ours_s": ours and sum(r["ours_s"] for r in rows), "floor_s": flo and sum(r["floor_s"] for r in rows)}
    for k, ph in (("ours", ours), ("floor", flo)):
        st = stats(ph["batches"], None) if ph else {}
        total[f"{k}_median_batch_s"], total[f"{k}_max_batch_s"] = st.get("median_batch_s"), st.get("max_batch_s")
    for r in rows + [total]:
        r["ours_rps"] = r["rows"] / r["ours_s"] if r["rows"] and r["ours_s"] else None
        r["floor_rps"] = r["rows"] / r["floor_s"] if r["rows"] and r["floor_s"] else None
        r["ratio"] = r["ours_rps"] / r["floor_rps"] if r["ours_rps"] and r["floor_rps"] else None

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    print(f"\n{a.fleet} fleet, lake {workdir / 'lake'}, {total['batches']} batches"
          f"{f' (first {a.limit_batches})' if a.limit_batches else ''}, {os.cpu_count()} cores, "
          f"floor on {a.floor_threads} DuckDB threads")
    head = (f"{'source':<20}{'batches':>8}{'rows':>12}{'ours s':>9}{'ours r/s':>12}{'med/max batch s':>17}"
            f"{'floor s':>9}{'floor r/s':>12}{'med/max batch s':>17}{'ratio':>7}")
    print(head + "\n" + "-" * len(head))
    for r in rows + [total]:
        print(f"{r['source']:<20}{r['batches']:>8}{r['rows']:>12,d}{num(r['ours_s'], '.2f'):>9}"
              f"{num(r['ours_rps'], ',.0f'):>12}"
              f"{num(r['ours_median_batch_s'], '.3f') + '/' + num(r['ours_max_batch_s'], '.3f'):>17}"
              f"{num(r['floor_s'], '.2f'):>9}{num(r['floor_rps'], ',.0f'):>12}"
              f"{num(r['floor_median_batch_s'], '.3f') + '/' + num(r['floor_max_batch_s'], '.3f'):>17}"
              f"{num(r['ratio'], '.3f'):>7}")
    for name, ph in (("ours", ours), ("floor", flo)):
        if ph:
            print(f"{name:<5}: peak RSS {ph['peak_rss_mb']:,.0f} MB (after imports, registry and warm-up: "
                  f"{num(ph['rss_before_mb'], ',.0f')} MB); reading silver (untimed) {ph['silver_read_s']:.1f} s")

    # ---- agreement
    agreement = None
    if ours and flo:
        def day(ph: dict[str, Any]) -> Counter:
            c: Counter = Counter()
            for v in ph["counts"].values():
                c.update(v)
            return c

        oc, fc = day(ours), day(flo)
        mismatched = print_counts("failure kinds over the batches (reasons: the first one per row; flags: every "
                                  "flag set)", oc, fc)
        diff = _diff_rows(workdir)
        print(f"rows whose reason or flags differ: {diff['rows_differing']:,}, of which not explained by the "
              f"bounding box: {diff['rows_differing_not_bbox']:,}")
        for e in diff["examples"]:
            print(f"  {e['batch_id']} row {e['pos']}: ours {e['ours_reason']}/{e['ours_flags']}, "
                  f"floor {e['floor_reason']}/{e['floor_flags']}")
        if ours.get("flags_differ_from_silver") is not None:
            print(f"ours' flags differ from silver's quality_flag (set at ingest) on "
                  f"{ours['flags_differ_from_silver']:,} rows")
        agreement = {"ours": dict(oc), "floor": dict(fc), "mismatched_kinds": mismatched, **diff,
                     "by_source": {"ours": ours["counts"], "floor": flo["counts"]}}

    # ---- share of ingest time
    shares = []
    if ours:
        for ing in _ingest_seconds(a, workdir):
            share = {"ingest_from": ing["from"], "ingest_day": ing["day"], "ingest_s": ing["seconds"],
                     "validation_s": total["ours_s"], "share": total["ours_s"] / ing["seconds"] if ing["seconds"] else None,
                     "per_source": {r["source"]: (r["ours_s"] / ing["sources"][r["source"]]
                                                  if ing["sources"].get(r["source"]) else None) for r in rows}}
            shares.append(share)
            note = "" if not a.limit_batches else f" (only {total['batches']} batches validated: not comparable)"
            print(f"\nvalidation {total['ours_s']:.1f} s / ingest {ing['seconds']:.1f} s = "
                  f"{num(share['share'], '.1%')} of ingest time{note}; ingest from {ing['from']}"
                  + (f" (day {ing['day']})" if ing["day"] else " (the run that built this lake)"))
            print("  per source: " + ", ".join(f"{k} {num(v, '.0%')}" for k, v in share["per_source"].items()))
    return {"params": {"fleet": a.fleet, "workdir": str(workdir), "limit_batches": a.limit_batches,
                       "floor_threads": a.floor_threads},
            "machine": bench_ingest._machine(), "per_source": rows, "total": total,
            "ours": ours and {k: v for k, v in ours.items() if k not in ("sources", "counts")},
            "floor": flo and {k: v for k, v in flo.items() if k not in ("sources", "counts")},
            "agreement": agreement, "self_check": check, "ingest_share": shares}


def main(argv: list[str] | None = None) -> None:
    a = _args(argv)
    workdir = Path(a.workdir).resolve()
    if a.phase:
        bench_ingest._environment(workdir, a.fleet)
        result = phase(a.phase, a, workdir)
        (workdir / f"quality-{a.phase}.json").write_text(json.dumps(result, default=str))
        return
    workdir.mkdir(parents=True, exist_ok=True)
    ensure_lake(a, workdir)
    bench_ingest._environment(workdir, a.fleet)
    # (the phases first: a child's peak RSS starts from this process's RSS when it forks)
    ours = None if "ours" in a.skip else _run_phase("ours", a, workdir)
    flo = None if "floor" in a.skip else _run_phase("floor", a, workdir)
    check = self_check(a.fleet)
    print_counts(f"self-check: ours and the floor on a synthetic batch of {check['rows']:,} rows with every "
                 "failure kind", check["ours"], check["floor"])
    print(f"rows whose reason or flags differ: {check['rows_differing']:,}, of which not explained by the "
          f"bounding box: {check['rows_differing_not_bbox']:,}")
    if check["rows_differing_not_bbox"]:
        for e in check["examples"]:
            print(f"  {e}")
    result = report(a, ours, flo, workdir, check)
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"quality_{Path(a.fleet).stem}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
