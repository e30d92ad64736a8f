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
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl import failpoints, tables, units
from etl.extract.frames import DECODED, REJECTS, Frame, decode_frames
from etl.landing import Envelope, read_data
from etl.sources import Source
from etl.storage import BATCHES, QUARANTINE, SILVER, Store
from etl.timeutil import kst_date, kst_date_strings
from etl import duck
from quality import check as quality
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
    flagged: int = 0
    warnings: tuple[str, ...] = ()
    window_date: str = ""   # KST date of the window start (where its quality results are filed)

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


def _decode_landed(store: Store, source: Source, env: Envelope, registry: pa.Table) -> tuple[pa.Table, pa.Table, int]:
    """(decoded, rejects, frame count) of a landed batch. MQTT batches (nine in ten readings)
    are read as a table and decoded vectorised; the others frame by frame."""
    data = read_data(store, env)
    table = _frame_table(store, env, data, meta=source.kind != "mqtt")
    if source.kind == "mqtt":
        from etl.extract import mqtt

        if table is None:
            table = mqtt.frame_table(decode_frames(data))
        return (*mqtt.decode_table(table, source.options["decoder"], encoded=True), table.num_rows)
    frames = decode_frames(data) if table is None else _frame_list(table)
    return (*decode(source, frames, registry), len(frames))


_FRAME_COLUMNS = {"seq": "INTEGER", "meta": "VARCHAR", "body": "VARCHAR", "body_b64": "VARCHAR"}


def _frame_table(store: Store, env: Envelope, data: bytes, meta: bool = True) -> pa.Table | None:
    """The landed frames as a table (seq, meta as JSON text, body, body_b64), or None where
    the frames are left to :func:`decode_frames` (remote stores; escaped NULs, which DuckDB
    strings do not keep). ``data`` was checked against the envelope's checksum; DuckDB
    re-reads the same immutable object from local disk, many times faster than Python."""
    if store.is_s3 or b"\\u0000" in data:
        return None
    if not data:
        return pa.table({k: pa.array([], pa.int32() if k == "seq" else pa.string()) for k in _FRAME_COLUMNS})
    con = duck.process_cursor()
    try:
        return con.execute(
            f"SELECT seq, {'meta::VARCHAR' if meta else 'NULL::VARCHAR'} AS meta, body, body_b64 FROM "
            "read_json($path, format = 'newline_delimited', columns = $columns, maximum_object_size = $size)",
            {"path": store.table_uri(env.key), "columns": {**_FRAME_COLUMNS, "meta": "JSON"}, "size": len(data) + 1},
        ).to_arrow_table()
    finally:
        con.close()




def _frame_list(table: pa.Table) -> list[Frame]:
    import base64
    import json

    return [Frame(body=body.encode("utf-8") if body is not None else base64.b64decode(b64),
                  meta=json.loads(meta) if meta else {}, seq=seq)
            for seq, meta, body, b64 in zip(*(table[c].to_pylist() for c in ("seq", "meta", "body", "body_b64")))]


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table.cast(schema)``, except that dictionary-encoded strings stay encoded."""
    return pa.table([table[f.name] if table.schema.field(f.name).type == pa.dictionary(pa.int32(), f.type)
                     else table[f.name].cast(f.type) for f in schema], schema=pa.schema(
        [table.schema.field(f.name) if table.schema.field(f.name).type == pa.dictionary(pa.int32(), f.type) else f
         for f in schema]))


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns decoded to their values."""
    return table.cast(pa.schema([pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
                                 for f in table.schema]))


def _lorawan_devices(registry: pa.Table, source_id: str) -> dict[str, dict]:
    key = (id(registry), source_id)
    hit = _LORAWAN_DEVICES.get(key)
    if hit is None or hit[0] is not registry:
        reg = registry.filter(pc.equal(registry["source"], source_id))
        rows = reg.select(["external_id", "codec", "capacity"]).to_pylist()
        hit = (registry, {r["external_id"].upper(): {"codec": r["codec"], "bin_depth_mm": r["capacity"]} for r in rows})
        if len(_LORAWAN_DEVICES) > 32:
            _LORAWAN_DEVICES.clear()
        _LORAWAN_DEVICES[key] = hit
    return {k: dict(v) for k, v in hit[1].items()}  # a copy: the adapter may keep what it is given


_LORAWAN_DEVICES: dict[tuple[int, str], tuple[pa.Table, dict[str, dict]]] = {}


# Silver rows plus what validation and quarantine need (src_flag, frame), before the commit.
CANDIDATE_SCHEMA = pa.schema([*tables.SILVER_SCHEMA, pa.field("src_flag", pa.string()), pa.field("frame", pa.int32())])


def _plain_column(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


# ---- the vectorised middle: registry join, units, ranges, duplicates -------------------------
# Reasons in the order they are checked; index 0 is a good reading.
# (Ranges, categories, time and location checks are the quality suites' job: quality/suites.py.)
REASONS = (None, "bad_timestamp", "unknown_device", "unknown_metric", "source_missing", "unknown_unit",
           "bad_value")
_METRIC_INDEX = {(m.domain, m.metric): i for i, m in enumerate(METRICS)}
_DOMAINS = sorted({m.domain for m in METRICS})


@dataclass(frozen=True)
class _Devices:
    """A source's devices as lookup arrays: external id -> device id, its sort rank, its domain."""

    external_ids: pa.Array
    device_ids: pa.Array
    rank: np.ndarray     # position of the device id in byte order (sorting by rank sorts by device_id)
    domain: np.ndarray   # index into _DOMAINS, -1 for a domain without metrics

    @classmethod
    def of(cls, registry: pa.Table, source_id: str) -> "_Devices":
        key = (id(registry), source_id)
        hit = _DEVICES.get(key)
        if hit is not None and hit[0] is registry:
            return hit[1]
        reg = registry.filter(pc.equal(registry["source"], source_id))
        ids = reg["device_id"].combine_chunks()
        rank = np.empty(len(ids), np.int64)
        rank[pc.sort_indices(ids).to_numpy()] = np.arange(len(ids))
        domain = np.array([_DOMAINS.index(d) if d in _DOMAINS else -1 for d in reg["domain"].to_pylist()], np.int64)
        devices = cls(reg["external_id"].combine_chunks(), ids, rank, domain)
        if len(_DEVICES) > 32:
            _DEVICES.clear()
        _DEVICES[key] = (registry, devices)
        return devices


_DEVICES: dict[tuple[int, str], tuple[pa.Table, _Devices]] = {}


@dataclass
class Classified:
    """Every decoded row with its device, metric, canonical value and reason (0 = good)."""

    decoded: pa.Table
    devices: _Devices
    device: np.ndarray   # index into devices, -1 when unknown
    metric: np.ndarray   # index into METRICS, -1 when not a metric of the device's domain
    cvalue: np.ndarray   # value in the canonical unit
    reason: np.ndarray   # index into REASONS

    def bad(self) -> pa.Table:
        """The rejected rows, as sent, with the device where known and the reason."""
        at = np.flatnonzero(self.reason)
        dev = self.device[at]
        known = pa.array(dev >= 0)
        d = _plain(self.decoded.take(pa.array(at)))
        if len(self.devices.device_ids) == 0:  # a source with no registered device at all
            device_id, domain = pa.nulls(len(at), pa.string()), pa.nulls(len(at), pa.string())
        else:
            dom = self.devices.domain[np.maximum(dev, 0)]
            device_id = pc.if_else(known, self.devices.device_ids.take(pa.array(np.maximum(dev, 0))), None)
            domain = pc.if_else(pc.and_(known, pa.array(dom >= 0)),
                                pa.array(_DOMAINS).take(pa.array(np.maximum(dom, 0))), None)
        return d.append_column("device_id", device_id).append_column("domain", domain) \
            .append_column("reason", pa.array([REASONS[r] for r in self.reason[at]], pa.string()))

    def silver(self, env: Envelope) -> tuple[pa.Table, int]:
        """Good readings, each (device, metric, ts, subject) once (the first sent wins), sorted by
        device and time, as silver rows; and how many duplicates were dropped."""
        good = np.flatnonzero(self.reason == 0)
        if len(good) == 0:
            return CANDIDATE_SCHEMA.empty_table(), 0
        subject = self.decoded["subject"]
        subj = np.zeros(len(good), np.int64)
        if subject.null_count < len(subject):
            codes = pc.dictionary_encode(subject.take(pa.array(good))).combine_chunks()
            subj = pc.fill_null(codes.indices, -1).to_numpy().astype(np.int64) + 1
        ts = _micros(self.decoded["ts"])[good]
        order, dup = _sort_unique(self.devices.rank[self.device[good]], ts, self.metric[good], subj)
        keep = good[order[~dup]]
        return self._rows(keep, env), int(dup.sum())

    def table(self) -> pa.Table:
        """The decoded rows with device_id, domain, canonical unit and value, reason, dup_rank."""
        n = self.decoded.num_rows
        known, has_metric = self.device >= 0, self.metric >= 0
        dom = np.where(known, np.append(self.devices.domain, -1)[np.where(known, self.device, -1)], -1)
        rank = np.zeros(n, np.int64)
        good = np.flatnonzero(self.reason == 0)
        if len(good):
            subj = pc.fill_null(pc.dictionary_encode(self.decoded["subject"].take(pa.array(good))).combine_chunks()
                                .indices, -1).to_numpy().astype(np.int64) + 1
            order, dup = _sort_unique(self.devices.rank[self.device[good]], _micros(self.decoded["ts"])[good],
                                      self.metric[good], subj)
            starts = np.maximum.accumulate(np.where(~dup, np.arange(len(dup)), 0))
            rank[good[order]] = np.arange(len(dup)) - starts + 1

        def names(values: pa.Array, idx: np.ndarray, ok: np.ndarray) -> pa.Array:
            if not ok.any():
                return pa.nulls(n, pa.string())
            return pc.if_else(pa.array(ok), values.take(pa.array(np.maximum(idx, 0))), None)

        return _plain(self.decoded).append_column("device_id", names(self.devices.device_ids, self.device, known)) \
            .append_column("domain", names(pa.array(_DOMAINS), dom, dom >= 0)) \
            .append_column("canon_unit", names(pa.array([m.unit for m in METRICS]), self.metric, has_metric)) \
            .append_column("cvalue", pa.array(self.cvalue, pa.float64())) \
            .append_column("reason", pa.array([REASONS[r] for r in self.reason], pa.string())) \
            .append_column("dup_rank", pc.if_else(pa.array(self.reason == 0), pa.array(rank, pa.int64()), None))

    def _rows(self, at: np.ndarray, env: Envelope) -> pa.Table:
        n, take = len(at), pa.array(at)
        metric = self.metric[at]
        dev = self.device[at]
        ts = self.decoded["ts"].take(take)
        return pa.table({
            "device_id": self.devices.device_ids.take(pa.array(dev)),
            "domain": pa.array(_DOMAINS).take(pa.array(self.devices.domain[dev])),
            "metric": pa.array([m.metric for m in METRICS]).take(pa.array(metric)),
            "ts": ts, "value": pa.array(self.cvalue[at], pa.float64()),
            "unit": pa.array([m.unit for m in METRICS]).take(pa.array(metric)),
            "quality_flag": pa.nulls(n, pa.string()), "source": _repeat(env.source, n),
            "batch_id": _repeat(env.batch_id, n), "received_at": _repeat(env.received, n, tables.TS),
            "subject": self.decoded["subject"].take(take), "date": _kst_dates(ts),
            # for validation and quarantine only, dropped before the silver commit:
            "src_flag": _plain_column(self.decoded["src_flag"]).take(take), "frame": self.decoded["frame"].take(take),
        }, schema=CANDIDATE_SCHEMA)


def classify(decoded: pa.Table, registry: pa.Table, source_id: str) -> pa.Table:
    """Every decoded row with its device, canonical value and reason (null = good), and, for
    good rows, ``dup_rank``: 1 for the first of each (device, metric, ts, subject)."""
    return _classify(decoded, registry, source_id).table()


def _classify(decoded: pa.Table, registry: pa.Table, source_id: str) -> Classified:
    """Join the registry, look up metric and unit, check ranges: a reason for every row."""
    n = decoded.num_rows
    devices = _Devices.of(registry, source_id)
    ref, refs = _codes(decoded["ref"])
    known = pc.fill_null(pc.index_in(refs, value_set=devices.external_ids), -1).to_numpy().astype(np.int64)
    device = np.append(known, -1)[ref]
    domain = np.append(devices.domain, -1)[device]
    name, names = _codes(decoded["metric"])
    lookup = np.array([[_METRIC_INDEX.get((d, m), -1) for m in names.to_pylist()] + [-1] for d in _DOMAINS]
                      + [[-1] * (len(names) + 1)], np.int64)
    metric = lookup[domain, name]
    unit, units_sent = _codes(decoded["unit"])
    factor, offset = _conversions(units_sent.to_pylist())
    f, o = factor[unit, metric], offset[unit, metric]
    value = decoded["value"].to_numpy(zero_copy_only=False).astype(np.float64) if n else np.zeros(0)
    with np.errstate(invalid="ignore"):
        cvalue = value * f + o
    not_a_number = ~np.isfinite(value)
    reason = np.select(
        [~_valid(decoded["ts"]), device < 0, metric < 0, ~_valid(decoded["value"]), np.isnan(f), not_a_number],
        np.arange(1, len(REASONS)), 0).astype(np.int8) if n else np.zeros(0, np.int8)
    return Classified(decoded, devices, device, metric, cvalue, reason)


def _conversions(sent: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """factor[u, m], offset[u, m] turning unit ``sent[u]`` into metric m's unit; NaN where
    impossible (also for the extra last row and column: no unit, no metric)."""
    factor = np.full((len(sent) + 1, len(METRICS) + 1), np.nan)
    offset = np.full_like(factor, np.nan)
    for i, u in enumerate(sent):
        for j, m in enumerate(METRICS):
            try:
                factor[i, j], offset[i, j] = units.conversion(u, m.unit) if u is not None else (np.nan, np.nan)
            except KeyError:
                continue
    return factor, offset


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(position of each row's value in a dictionary, -1 for null; the dictionary). Columns
    that come dictionary-encoded are used as they are (their dictionary may repeat values)."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    return pc.fill_null(col.indices, -1).to_numpy().astype(np.int64), col.dictionary


def _valid(column: pa.ChunkedArray) -> np.ndarray:
    return pc.is_valid(column).to_numpy(zero_copy_only=False)


def _micros(ts: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(ts.cast(pa.int64()), 0).to_numpy()


def _sort_unique(rank: np.ndarray, ts: np.ndarray, metric: np.ndarray,
                 subject: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable order by (device, ts, metric, subject) and, in that order, which rows repeat the
    previous key. One int64 key when the fields fit in 63 bits (the usual case), else lexsort."""
    ts0 = int(ts.min())
    widths = [int(rank.max()).bit_length(), int(ts.max() - ts0).bit_length(), int(metric.max()).bit_length(),
              int(subject.max()).bit_length()]
    if sum(widths) <= 63:
        key = rank
        for part, width in zip((ts - ts0, metric, subject), widths[1:]):
            key = (key << width) | part
        order = np.argsort(key, kind="stable")
        k = key[order]
        dup = np.concatenate([[False], k[1:] == k[:-1]])
        return order, dup
    order = np.lexsort((subject, metric, ts, rank))  # stable, like argsort(kind="stable")
    cols = [c[order] for c in (rank, ts, metric, subject)]
    dup = np.concatenate([[False], np.logical_and.reduce([c[1:] == c[:-1] for c in cols])])
    return order, dup


def _repeat(value: object, n: int, type_: pa.DataType = pa.string()) -> pa.Array:
    """A constant column (pa.repeat copies long strings one by one: 0.2 s for a million)."""
    if type_ == pa.string() and isinstance(value, str) and n * len(value.encode()) < 2**31:
        raw = value.encode()
        offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(raw))
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))
    return pa.repeat(pa.scalar(value, type_), n)


def _kst_dates(ts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``kst_date_strings``, computed once per hour present (KST is a whole-hour offset)."""
    if len(ts) == 0:
        return pa.array([], pa.string())
    hours = _micros(ts) // 3_600_000_000
    first, last = int(hours.min()), int(hours.max())
    ends = kst_date_strings(pa.array([first * 3_600_000_000, last * 3_600_000_000], pa.int64()).cast(tables.TS))
    if ends[0] == ends[1]:
        return _repeat(ends[0].as_py(), len(ts))
    uniq, inverse = np.unique(hours, return_inverse=True)
    return kst_date_strings(pa.array(uniq * 3_600_000_000, pa.int64()).cast(tables.TS)).take(pa.array(inverse))


def _reject_rows(rejects: pa.Table, env: Envelope, devices: "_Devices | None" = None) -> pa.Table:
    """Decoder rejects as quarantine rows (with the device where the reference is known)."""
    n = rejects.num_rows
    device_id, domain = pa.nulls(n, pa.string()), pa.nulls(n, pa.string())
    if devices is not None and n and rejects["ref"].null_count < n:
        at = pc.index_in(rejects["ref"], value_set=devices.external_ids)
        device_id = pc.take(devices.device_ids, at)
        dom = pc.take(pa.array(devices.domain), at).to_numpy(zero_copy_only=False)
        domain = pa.array([_DOMAINS[int(d)] if d == d and d >= 0 else None for d in dom], pa.string())
    received = _repeat(env.received, n, tables.TS)
    date = pc.if_else(pc.is_null(rejects["ts"]), kst_date_strings(received), kst_date_strings(rejects["ts"]))
    return pa.table({
        "source": _repeat(env.source, n), "batch_id": _repeat(env.batch_id, n),
        "frame": rejects["frame"], "reason": rejects["reason"], "detail": rejects["detail"], "ref": rejects["ref"],
        "device_id": device_id, "domain": domain, "metric": rejects["metric"],
        "ts": rejects["ts"], "value": pa.nulls(n, pa.float64()), "unit": pa.nulls(n, pa.string()),
        "raw": rejects["raw"], "received_at": received, "date": date,
    }, schema=tables.QUARANTINE_SCHEMA)


def _classified_rejects(bad: pa.Table, env: Envelope) -> pa.Table:
    n = bad.num_rows
    received = _repeat(env.received, n, tables.TS)
    detail = pc.binary_join_element_wise(
        "value ", pc.cast(bad["value"], pa.string()), " ", pc.fill_null(bad["unit"], ""),
        " (source flag: ", pc.fill_null(bad["src_flag"], "none"), ")", "",
    )
    return pa.table({
        "source": _repeat(env.source, n), "batch_id": _repeat(env.batch_id, n),
        "frame": bad["frame"], "reason": bad["reason"], "detail": detail, "ref": bad["ref"],
        "device_id": bad["device_id"], "domain": bad["domain"], "metric": bad["metric"], "ts": bad["ts"],
        "value": bad["value"], "unit": bad["unit"], "raw": pa.nulls(n, pa.string()), "received_at": received,
        "date": pc.if_else(pc.is_null(bad["ts"]), kst_date_strings(received), kst_date_strings(bad["ts"])),
    }, schema=tables.QUARANTINE_SCHEMA)


def _partitions(silver: pa.Table) -> set[tuple[str, str]]:
    """The (domain, date) partitions the rows may touch (every domain with every date: a batch
    has one or two of each, and a superset only widens a read)."""
    domains, dates = pc.unique(silver["domain"]).to_pylist(), pc.unique(silver["date"]).to_pylist()
    return {(d, day) for d in domains for day in dates}


def _drop_existing(store: Store, silver: pa.Table, resuming: str | None = None) -> tuple[pa.Table, int]:
    """Remove readings already in silver (late re-deliveries, overlapping windows).

    Returns the fresh rows and, counted separately, how many rows silver already held, so
    the reconciliation compares two independent numbers rather than a difference. A batch
    resuming after a crash (``resuming`` = its id) does not count its own committed rows.
    """
    if silver.num_rows == 0:
        return silver, 0
    lo, hi = pc.min_max(silver["ts"]).values()
    first, last = pc.min_max(silver["device_id"]).values()
    keys = tables.existing_keys(store, _partitions(silver), lo.as_py(), hi.as_py(),
                                devices=(first.as_py(), last.as_py()), exclude_batch=resuming)
    if keys.num_rows == 0:
        return silver, 0
    held = _held(silver, keys)
    count = int(held.sum())
    return (silver.filter(pa.array(~held)) if count else silver), count


KEY = ("device_id", "metric", "ts", "subject")


def _held(silver: pa.Table, keys: pa.Table) -> np.ndarray:
    """Which rows of ``silver`` have their (device_id, metric, ts, subject) in ``keys``
    (nulls in subject match nulls)."""
    held = np.zeros(silver.num_rows, bool)
    ts, key_ts = _micros(silver["ts"]), _micros(keys["ts"])
    near = np.flatnonzero((ts >= key_ts.min()) & (ts <= key_ts.max()))
    if len(near) == 0:
        return held
    rows = silver.select(list(KEY)).take(pa.array(near))
    mine, theirs = [ts[near] - key_ts.min()], [key_ts - key_ts.min()]
    for name in ("device_id", "metric", "subject"):
        values = pc.unique(keys[name])
        mine.append(pc.fill_null(pc.index_in(rows[name], value_set=values), -1).to_numpy().astype(np.int64))
        theirs.append(pc.fill_null(pc.index_in(keys[name], value_set=values), -1).to_numpy().astype(np.int64))
    possible = np.logical_and.reduce([m >= 0 for m in mine[1:]])
    widths = [int(max(t.max(), 0)).bit_length() for t in theirs]
    if sum(widths) <= 63:
        pack = lambda cols: np.bitwise_or.reduce(  # noqa: E731
            [c << sum(widths[i + 1:]) for i, c in enumerate(cols)])
        found = np.isin(pack([m.clip(0) for m in mine]), pack(theirs))
    else:
        have = set(zip(*(t.tolist() for t in theirs)))
        found = np.array([k in have for k in zip(*(m.tolist() for m in mine))], bool)
    held[near] = found & possible
    return held


def normalize(store: Store, source: Source, env: Envelope, registry: pa.Table) -> Result:
    """Normalise one landed batch into silver; idempotent (a committed batch is skipped).

    Deterministic from the landed bytes, the registry and the quality settings, so a run that
    resumes after a crash recomputes exactly what the interrupted run began to write.
    """
    if tables.committed(store, BATCHES, env.batch_id):
        return _result_from_ledger(store, env)
    decoded, rejects, n_frames = _decode_landed(store, source, env, registry)
    decoded, rejects = _conform(decoded, DECODED), rejects.cast(REJECTS)
    classified = _classify(decoded, registry, source.id)
    good, dups_in_batch = classified.silver(env)
    bad = classified.bad()
    # Another batch (an overlapping window, a redelivery) may already hold these readings.
    resuming = env.batch_id if tables.committed(store, SILVER, env.batch_id) else None
    fresh, dups_in_lake = _drop_existing(store, good, resuming)
    checked = quality.check(store, source, env, fresh, good, registry,
                            counts={"received": decoded.num_rows + rejects.num_rows, "decode_rejects":
                                    rejects.num_rows + bad.num_rows, "duplicates_in_batch": dups_in_batch,
                                    "duplicates_in_lake": dups_in_lake})
    accepted_rows = checked.accepted.select(tables.SILVER_SCHEMA.names)
    quarantine = pa.concat_tables([_reject_rows(rejects, env, classified.devices), _classified_rejects(bad, env),
                                   _validation_rejects(checked.rejected, checked.reasons, env)])

    received = decoded.num_rows + rejects.num_rows
    accepted, quarantined, duplicates = accepted_rows.num_rows, quarantine.num_rows, dups_in_batch + dups_in_lake
    if received != accepted + quarantined + duplicates:
        raise ReconciliationError(
            f"batch {env.batch_id}: received {received} != accepted {accepted} + quarantined {quarantined} "
            f"+ duplicates {duplicates}; nothing written"
        )
    checked.raise_for_errors(store)  # a batch-level error: nothing of the batch reaches silver
    # the dates this batch touched (silver or quarantine): the partitions downstream rebuilds
    dates = sorted(set(pc.unique(accepted_rows["date"]).to_pylist()) | set(pc.unique(quarantine["date"]).to_pylist()))
    domains = sorted(set(pc.unique(accepted_rows["domain"]).to_pylist()) | set(source.domains))
    meta = {"citylake.source": source.id}
    if accepted_rows.num_rows:  # (an empty commit would only cost time: a re-run finds nothing to add either)
        tables.append_once(store, SILVER, accepted_rows, env.batch_id, meta)
    failpoints.hit("after_silver_commit")
    if quarantine.num_rows:
        tables.append_once(store, QUARANTINE, quarantine, env.batch_id, meta)
    failpoints.hit("after_quarantine_commit")
    checked.commit(store, env.batch_id, meta)
    failpoints.hit("after_checks_commit")
    now = datetime.now(timezone.utc)
    record = pa.table({
        "batch_id": [env.batch_id], "source": [source.id],
        "window_start": [datetime.fromisoformat(env.window_start)], "window_end": [datetime.fromisoformat(env.window_end)],
        "received_at": [env.received], "normalized_at": [now], "frames": [n_frames], "received": [received],
        "accepted": [accepted], "quarantined": [quarantined], "duplicates": [duplicates],
        "flagged": [checked.flagged], "quality": ["warn" if checked.warnings else "ok"], "replays": [0],
        "duplicates_in_batch": [dups_in_batch], "duplicates_in_lake": [dups_in_lake],
        "domains": [domains], "dates": [dates], "month": [env.window_start[:7]],
    }, schema=tables.BATCHES_SCHEMA)
    tables.append_once(store, BATCHES, record, env.batch_id, meta)
    log.info("batch %s: received %d = accepted %d (flagged %d) + quarantined %d + duplicates %d", env.batch_id,
             received, accepted, checked.flagged, quarantined, duplicates)
    for line in checked.summary_lines():
        log.info("%s", line)
    return Result(env.batch_id, source.id, received, accepted, quarantined, duplicates, tuple(dates), tuple(domains),
                  True, checked.flagged, tuple(checked.warnings), checked.window_date)


def _validation_rejects(rows: pa.Table, reasons: pa.Array, env: Envelope) -> pa.Table:
    """Candidate readings the quality suites quarantined, with the expectation's reason."""
    n = rows.num_rows
    detail = pc.binary_join_element_wise(
        "value ", pc.cast(rows["value"], pa.string()), " ", pc.fill_null(rows["unit"], ""),
        " failed ", reasons, " (source flag: ", pc.fill_null(rows["src_flag"], "none"), ")", "",
    )
    return pa.table({
        "source": _repeat(env.source, n), "batch_id": _repeat(env.batch_id, n), "frame": rows["frame"],
        "reason": reasons, "detail": detail, "ref": pa.nulls(n, pa.string()), "device_id": rows["device_id"],
        "domain": rows["domain"], "metric": rows["metric"], "ts": rows["ts"], "value": rows["value"],
        "unit": rows["unit"], "raw": pa.nulls(n, pa.string()), "received_at": rows["received_at"],
        "date": rows["date"],
    }, schema=tables.QUARANTINE_SCHEMA)


def _result_from_ledger(store: Store, env: Envelope) -> Result:
    rec = tables.read(store, BATCHES, [("month", "=", env.window_start[:7])])
    row = rec.filter(pc.equal(rec["batch_id"], env.batch_id)).to_pylist()[0]
    return Result(env.batch_id, row["source"], row["received"], row["accepted"], row["quarantined"], row["duplicates"],
                  tuple(row["dates"]), tuple(row["domains"]), False, row.get("flagged") or 0, (),
                  kst_date(row["window_start"]).isoformat())
