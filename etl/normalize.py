"""Landed batch → canonical readings in silver, rejects in quarantine, counts in `batches`.

Per batch: decode with the source's adapter, join the device registry, convert units,
check the physical range, drop duplicates (inside the batch and against silver), then commit
silver, quarantine and the batch record, each exactly once (etl.tables.append_once).
``received = accepted + quarantined + duplicates`` is checked before anything is written.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from etl import failpoints, tables, units
from etl.extract.frames import DECODED, REJECTS, Frame, decode_frames
from etl.landing import Envelope, read_data
from etl.sources import Source
from etl.storage import BATCHES, QUARANTINE, SILVER, Store
from etl.timeutil import kst_date_strings
from quality.metrics import METRICS

log = logging.getLogger(__name__)


class ReconciliationError(RuntimeError):
    """received != accepted + quarantined + duplicates: something was lost; nothing is written."""


@dataclass(frozen=True)
class Result:
    batch_id: str
    source: str
    received: int
    accepted: int
    quarantined: int
    duplicates: int
    dates: tuple[str, ...]
    domains: tuple[str, ...]
    written: bool

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def decode(source: Source, frames: list[Frame], registry: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Run the source's adapter. Adapters never raise on bad input: they return rejects."""
    opts = source.options
    if source.kind == "airkorea":
        from etl.extract import airkorea
        return airkorea.decode(frames)
    if source.kind == "http_cursor":
        from etl.extract import http_cursor
        from etl.settings import get_settings
        return http_cursor.decode(frames, opts["decoder"], get_settings().pseudonym_key())
    if source.kind == "csv_drop":
        from etl.extract import csv_drop
        return csv_drop.decode(frames, opts["profile"])
    if source.kind == "lorawan":
        from etl.extract import lorawan
        devices = _lorawan_devices(registry, source.id)
        return lorawan.decode(frames, devices)
    if source.kind == "mqtt":
        from etl.extract import mqtt
        return mqtt.decode(frames, opts["decoder"])
    raise ValueError(f"no decoder for kind {source.kind!r}")


def _lorawan_devices(registry: pa.Table, source_id: str) -> dict[str, dict]:
    rows = registry.filter(pc.equal(registry["source"], source_id)).select(["external_id", "codec", "capacity"]).to_pylist()
    return {r["external_id"].upper(): {"codec": r["codec"], "bin_depth_mm": r["capacity"]} for r in rows}


# ---- the vectorised middle: registry join, units, ranges, duplicates -------------------------
def _metrics_table() -> pa.Table:
    return pa.table({
        "domain": [m.domain for m in METRICS], "metric": [m.metric for m in METRICS], "canon_unit": [m.unit for m in METRICS],
        "phys_lo": [float(m.physical[0]) for m in METRICS], "phys_hi": [float(m.physical[1]) for m in METRICS],
    })


def _unit_table(decoded: pa.Table) -> pa.Table:
    """(unit as sent, canonical unit) -> factor, offset for the units this batch uses."""
    sent = [u for u in pc.unique(decoded["unit"]).to_pylist() if u is not None]
    targets = sorted({m.unit for m in METRICS})
    rows: dict[str, list] = {"unit": [], "canon_unit": [], "factor": [], "offset": []}
    for u in sent:
        for t in targets:
            try:
                f, o = units.conversion(u, t)
            except KeyError:
                continue
            rows["unit"].append(u), rows["canon_unit"].append(t), rows["factor"].append(f), rows["offset"].append(o)
    return pa.table(rows, schema=pa.schema([("unit", pa.string()), ("canon_unit", pa.string()),
                                             ("factor", pa.float64()), ("offset", pa.float64())]))


_CLASSIFY = """
WITH d AS (SELECT row_number() OVER () AS rid, * FROM decoded),
j AS (
  SELECT d.*, r.device_id, r.domain, m.canon_unit, m.phys_lo, m.phys_hi, u.factor, u."offset" AS off
  FROM d
  LEFT JOIN reg r ON r.external_id = d.ref
  LEFT JOIN metrics m ON m.domain = r.domain AND m.metric = d.metric
  LEFT JOIN units u ON u.unit = d.unit AND u.canon_unit = m.canon_unit
),
c AS (
  SELECT *, value * factor + off AS cvalue,
    CASE
      WHEN ts IS NULL THEN 'bad_timestamp'
      WHEN device_id IS NULL THEN 'unknown_device'
      WHEN canon_unit IS NULL THEN 'unknown_metric'
      WHEN value IS NULL THEN 'source_missing'
      WHEN factor IS NULL THEN 'unknown_unit'
      WHEN isnan(value) OR value * factor + off < phys_lo OR value * factor + off > phys_hi THEN 'out_of_physical_range'
    END AS reason
  FROM j
)
SELECT *, CASE WHEN reason IS NULL THEN
  row_number() OVER (PARTITION BY reason IS NULL, device_id, metric, ts, subject ORDER BY rid) END AS dup_rank
FROM c
"""


def classify(decoded: pa.Table, registry: pa.Table, source_id: str) -> pa.Table:
    """Every decoded row with its device, canonical value and reason (null = good)."""
    import duckdb

    reg = registry.filter(pc.equal(registry["source"], source_id)).select(["external_id", "device_id", "domain"])
    con = duckdb.connect(config={"threads": 2})
    try:
        con.register("decoded", decoded)
        con.register("reg", reg)
        con.register("metrics", _metrics_table())
        con.register("units", _unit_table(decoded))
        return con.sql(_CLASSIFY).to_arrow_table()
    finally:
        con.close()


def _reject_rows(rejects: pa.Table, env: Envelope) -> pa.Table:
    n = rejects.num_rows
    received = pa.array([env.received] * n, tables.TS)
    date = pc.if_else(pc.is_null(rejects["ts"]), kst_date_strings(received), kst_date_strings(rejects["ts"]))
    return pa.table({
        "source": pa.array([env.source] * n, pa.string()), "batch_id": pa.array([env.batch_id] * n, pa.string()),
        "frame": rejects["frame"], "reason": rejects["reason"], "detail": rejects["detail"], "ref": rejects["ref"],
        "device_id": pa.nulls(n, pa.string()), "domain": pa.nulls(n, pa.string()), "metric": rejects["metric"],
        "ts": rejects["ts"], "value": pa.nulls(n, pa.float64()), "unit": pa.nulls(n, pa.string()),
        "raw": rejects["raw"], "received_at": received, "date": date,
    }, schema=tables.QUARANTINE_SCHEMA)


def _classified_rejects(bad: pa.Table, env: Envelope) -> pa.Table:
    n = bad.num_rows
    received = pa.array([env.received] * n, tables.TS)
    detail = pc.binary_join_element_wise(
        "value ", pc.cast(bad["value"], pa.string()), " ", pc.fill_null(bad["unit"], ""),
        " (source flag: ", pc.fill_null(bad["src_flag"], "none"), ")", "",
    )
    return pa.table({
        "source": pa.array([env.source] * n, pa.string()), "batch_id": pa.array([env.batch_id] * n, pa.string()),
        "frame": bad["frame"], "reason": bad["reason"], "detail": detail, "ref": bad["ref"],
        "device_id": bad["device_id"], "domain": bad["domain"], "metric": bad["metric"], "ts": bad["ts"],
        "value": bad["value"], "unit": bad["unit"], "raw": pa.nulls(n, pa.string()), "received_at": received,
        "date": pc.if_else(pc.is_null(bad["ts"]), kst_date_strings(received), kst_date_strings(bad["ts"])),
    }, schema=tables.QUARANTINE_SCHEMA)


def _silver_rows(good: pa.Table, env: Envelope) -> pa.Table:
    n = good.num_rows
    return pa.table({
        "device_id": good["device_id"], "domain": good["domain"], "metric": good["metric"], "ts": good["ts"],
        "value": good["cvalue"], "unit": good["canon_unit"], "quality_flag": pa.nulls(n, pa.string()),
        "source": pa.array([env.source] * n, pa.string()), "batch_id": pa.array([env.batch_id] * n, pa.string()),
        "received_at": pa.array([env.received] * n, tables.TS), "subject": good["subject"],
        "date": kst_date_strings(good["ts"]),
    }, schema=tables.SILVER_SCHEMA)


def _partitions(silver: pa.Table) -> set[tuple[str, str]]:
    return {(r["domain"], r["date"]) for r in silver.group_by(["domain", "date"]).aggregate([]).to_pylist()}


def _drop_existing(store: Store, silver: pa.Table) -> tuple[pa.Table, int]:
    """Remove readings already in silver (late re-deliveries, overlapping windows).

    Returns the fresh rows and, counted separately, how many rows silver already held, so
    the reconciliation compares two independent numbers rather than a difference.
    """
    if silver.num_rows == 0:
        return silver, 0
    pairs = _partitions(silver)
    lo, hi = pc.min_max(silver["ts"]).values()
    keys = tables.existing_keys(store, pairs, lo.as_py(), hi.as_py())
    if keys.num_rows == 0:
        return silver, 0
    import duckdb

    on = ("s.device_id = k.device_id AND s.metric = k.metric AND s.ts = k.ts "
          "AND s.subject IS NOT DISTINCT FROM k.subject")
    con = duckdb.connect(config={"threads": 2})
    try:
        con.register("s", silver)
        con.register("k", keys)
        held = con.sql(f"SELECT count(*) FROM s SEMI JOIN k ON {on}").fetchone()[0]
        fresh = con.sql(f"SELECT s.* FROM s ANTI JOIN k ON {on}").to_arrow_table().cast(tables.SILVER_SCHEMA)
        return fresh, int(held)
    finally:
        con.close()


def normalize(store: Store, source: Source, env: Envelope, registry: pa.Table) -> Result:
    """Normalise one landed batch into silver; idempotent (a committed batch is skipped)."""
    if tables.committed(store, BATCHES, env.batch_id):
        return _result_from_ledger(store, env)
    frames = decode_frames(read_data(store, env))
    decoded, rejects = decode(source, frames, registry)
    decoded, rejects = decoded.cast(DECODED), rejects.cast(REJECTS)
    classified = classify(decoded, registry, source.id)
    has_reason = pc.is_valid(classified["reason"])
    good = classified.filter(pc.and_(pc.invert(has_reason), pc.equal(classified["dup_rank"], 1)))
    dups_in_batch = pc.sum(pc.greater(classified["dup_rank"], 1).cast(pa.int64())).as_py() or 0
    bad = classified.filter(has_reason)
    silver = _silver_rows(good.sort_by([("device_id", "ascending"), ("ts", "ascending")]), env)
    # Another batch (an overlapping window, a redelivery) may already hold these readings.
    if tables.committed(store, SILVER, env.batch_id):  # resumed after a crash mid-commit
        fresh = tables.batch_rows(store, env.batch_id, _partitions(silver))
        dups_in_lake = silver.num_rows - fresh.num_rows
    else:
        fresh, dups_in_lake = _drop_existing(store, silver)
    quarantine = pa.concat_tables([_reject_rows(rejects, env), _classified_rejects(bad, env)])

    received = decoded.num_rows + rejects.num_rows
    accepted, quarantined, duplicates = fresh.num_rows, quarantine.num_rows, dups_in_batch + dups_in_lake
    if received != accepted + quarantined + duplicates:
        raise ReconciliationError(
            f"batch {env.batch_id}: received {received} != accepted {accepted} + quarantined {quarantined} "
            f"+ duplicates {duplicates}; nothing written"
        )
    dates = sorted(set(pc.unique(fresh["date"]).to_pylist()))
    domains = sorted(set(pc.unique(fresh["domain"]).to_pylist()) | set(source.domains))
    meta = {"citylake.source": source.id}
    tables.append_once(store, SILVER, fresh, env.batch_id, meta)
    failpoints.hit("after_silver_commit")
    tables.append_once(store, QUARANTINE, quarantine, env.batch_id, meta)
    failpoints.hit("after_quarantine_commit")
    now = datetime.now(timezone.utc)
    record = pa.table({
        "batch_id": [env.batch_id], "source": [source.id],
        "window_start": [datetime.fromisoformat(env.window_start)], "window_end": [datetime.fromisoformat(env.window_end)],
        "received_at": [env.received], "normalized_at": [now], "frames": [len(frames)], "received": [received],
        "accepted": [accepted], "quarantined": [quarantined], "duplicates": [duplicates],
        "duplicates_in_batch": [dups_in_batch], "duplicates_in_lake": [dups_in_lake],
        "domains": [domains], "dates": [dates], "month": [env.window_start[:7]],
    }, schema=tables.BATCHES_SCHEMA)
    tables.append_once(store, BATCHES, record, env.batch_id, meta)
    log.info("batch %s: received %d = accepted %d + quarantined %d + duplicates %d", env.batch_id,
             received, accepted, quarantined, duplicates)
    return Result(env.batch_id, source.id, received, accepted, quarantined, duplicates, tuple(dates), tuple(domains), True)


def _result_from_ledger(store: Store, env: Envelope) -> Result:
    rec = tables.read(store, BATCHES, [("month", "=", env.window_start[:7])])
    row = rec.filter(pc.equal(rec["batch_id"], env.batch_id)).to_pylist()[0]
    return Result(env.batch_id, row["source"], row["received"], row["accepted"], row["quarantined"], row["duplicates"],
                  tuple(row["dates"]), tuple(row["domains"]), False)
