"""The frame the row-level suites validate: a batch's readings as distinct profiles.

A reading's row-level checks each read a few of its columns: the range, category and flag
checks read (metric, value, src_flag); the device checks read the device's registry row; the
future check reads ts; the install check reads the KST day of ts and the install day. An
hour of 20,000 streetlights is a million readings but 74 distinct (metric, value, src_flag)
triples, 20,000 devices, 1,440 timestamps and a few hundred (day, install day) pairs, so GX
validates those instead of the million rows, and each failure is mapped back to every
reading that has the failing profile. Only the sensor-fault checks
(stuck, spike, PM ratio) need whole series: they see full rows, of the metrics that have such
a rule. Keys are judged on the batch's counts of readings with a null or shared key (one row).

The frame stacks the parts; column ``part`` says which part a row belongs to. Each part has
its own columns (null in the other parts' rows), so an expectation that skips nulls sees only
its part; the two not-null checks select theirs with a ``row_condition`` (quality.suites).
``rows`` is how many readings a profile stands for.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality.expectations import READING_COLUMNS, series_positions
from quality.metrics import METRICS

PARTS = ("value", "device", "time", "install", "series", "keys")
# The series part's columns (named apart so that the other parts' checks skip its rows).
SERIES_COLUMNS = tuple(READING_COLUMNS)
# The frame's columns, in order (a column a part does not use is null in its rows).
FRAME_COLUMNS = ("part", "rows", "device_id", "metric", "value", "src_flag", "ts", "latest_ts", "ts_day", "install_ts",
                 "lat", "lon", *SERIES_COLUMNS, "null_keys", "duplicate_keys")
# Metrics judged as series (a stuck or spike rule, or the PM2.5/PM10 pair).
SERIES_METRICS = frozenset(m.metric for m in METRICS if m.stuck_run or m.max_step is not None) | {"pm10", "pm25"}

_US = pa.timestamp("us", tz="UTC")
_CODES = pa.dictionary(pa.int32(), pa.string())   # strings as pandas categoricals (cheap copies for GX)
_TYPES = {"part": _CODES, "rows": pa.int64(), "device_id": _CODES, "metric": _CODES, "value": pa.float64(),
          "src_flag": _CODES, "ts": _US, "latest_ts": _US, "ts_day": _US, "install_ts": _US, "lat": pa.float64(),
          "lon": pa.float64(), "series_device": _CODES, "series_metric": _CODES,
          "series_ts": _US, "series_value": pa.float64(), "series_pos": pa.int64(), "prev_value": pa.float64(),
          "prev_run": pa.int64(), "null_keys": pa.int64(), "duplicate_keys": pa.int64()}


@dataclass
class Profiled:
    """The pandas frame for GX and, per part, each reading's frame row (-1: not in the part)."""

    frame: object                   # pandas.DataFrame
    rows_of: dict[str, np.ndarray]  # part -> frame row of each reading
    covered: dict[str, int]         # part -> readings the part judges
    keys: dict[str, int]            # null_keys, duplicate_keys: readings with a null or shared key

    def readings(self, part: str, frame_rows: np.ndarray) -> np.ndarray:
        """Positions of the readings whose ``part`` profile is one of ``frame_rows``."""
        hit = np.zeros(len(self.frame) + 1, bool)       # the extra last slot stands for -1
        hit[np.asarray(frame_rows, np.int64)] = True
        return np.flatnonzero(hit[self.rows_of[part]])


def profile(candidates: pa.Table, src_flag: pa.Array | pa.ChunkedArray, registry: pa.Table, received_at: datetime,
            future_tolerance_s: float, context: pa.Table | None = None) -> Profiled:
    """Build the stacked frame for one domain's rows of a batch (silver-shaped ``candidates``)."""
    import pandas as pd

    n = candidates.num_rows
    device = _encoded(candidates["device_id"])
    metric = _encoded(candidates["metric"])
    flag = _encoded(src_flag)
    value = pc.fill_null(candidates["value"].cast(pa.float64()), np.nan).to_numpy()
    ts = pc.fill_null(pc.cast(candidates["ts"], pa.int64()), _NULL_TS).to_numpy()

    parts: list[pa.Table] = []
    rows_of: dict[str, np.ndarray] = {}
    offset = 0

    def add(name: str, table: pa.Table, inverse: np.ndarray) -> None:
        nonlocal offset
        parts.append(_complete(table, name))
        rows_of[name] = np.where(inverse >= 0, inverse + offset, -1)
        offset += table.num_rows

    # value: distinct (metric, src_flag, value)
    first, inverse, counts = _distinct(metric.codes, flag.codes, _dense(value))
    add("value", pa.table({"rows": counts, "metric": metric.take(first), "value": value[first],
                           "src_flag": flag.array.take(first).cast(pa.string())}), inverse)
    # device: distinct device, with its registry row
    first, dev_inverse, counts = _groups(device.codes + 1)
    ids = device.array.take(first).cast(pa.string())
    reg = registry.take(pc.index_in(ids, value_set=registry["device_id"].combine_chunks()))  # nulls: unknown
    install = _install_ts(reg["install_date"])
    add("device", pa.table({"rows": counts, "device_id": device.take(first), "install_ts": install,
                            "lat": reg["lat"], "lon": reg["lon"]}), dev_inverse)
    # time: distinct ts (the future check)
    ts_codes = _dense(ts)
    first, ts_inverse, counts = _groups(ts_codes)
    latest = received_at + timedelta(seconds=future_tolerance_s)
    add("time", pa.table({"rows": counts, "ts": pc.take(candidates["ts"], pa.array(first)),
                          "latest_ts": pa.repeat(pa.scalar(latest, _US), len(first))}), ts_inverse)
    # install: distinct (KST day of ts, install day); an install date is a KST day, so
    # ts >= install_ts exactly when the day ts falls on starts at or after install_ts
    day = _kst_day_start(ts[first])                     # per distinct ts
    day_codes = _dense(day)[ts_inverse]
    install_codes = _dense(pc.fill_null(pc.cast(install, pa.int64()), _NULL_TS).to_numpy())[dev_inverse]
    first, inverse, counts = _distinct(day_codes, install_codes)
    day_of = day[ts_inverse[first]]
    add("install", pa.table({"rows": counts, "ts_day": pa.array(day_of, pa.int64(), mask=day_of == _NULL_TS).cast(_US),
                             "install_ts": pc.take(install, pa.array(dev_inverse[first]))}), inverse)
    # series: full rows of the metrics with a fault rule
    in_series = np.isin(metric.array.dictionary.to_numpy(zero_copy_only=False), list(SERIES_METRICS))
    at = np.flatnonzero(np.append(in_series, False)[metric.codes]) if n else np.zeros(0, np.int64)
    inverse = np.full(n, -1, np.int64)
    inverse[at] = np.arange(len(at))
    add("series", _series(candidates, device, metric, value, ts, at, context), inverse)
    # keys: one row, how many readings share their key with another
    duplicated = _duplicate_keys(device.codes, metric.codes, _encoded(candidates["subject"]).codes, ts_codes)
    null_keys = int(np.count_nonzero((device.codes < 0) | (metric.codes < 0) | (ts == _NULL_TS)))
    add("keys", pa.table({"rows": [n], "null_keys": [null_keys], "duplicate_keys": [duplicated]}),
        np.zeros(n, np.int64))

    table = pa.concat_tables(parts).unify_dictionaries()
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("python", na_value=np.nan)}.get)
    covered = {p: int(np.count_nonzero(rows_of[p] >= 0)) for p in PARTS}
    return Profiled(frame, rows_of, covered, {"null_keys": null_keys, "duplicate_keys": duplicated})


# ---- helpers -------------------------------------------------------------------------------
_NULL_TS = np.iinfo(np.int64).min


@dataclass
class _Encoded:
    array: pa.DictionaryArray
    codes: np.ndarray            # -1 for null

    def take(self, rows: np.ndarray) -> pa.DictionaryArray:
        return self.array.take(pa.array(rows, pa.int64()))


def _encoded(col: pa.Array | pa.ChunkedArray) -> _Encoded:
    arr = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
    if arr.type.value_type != pa.string():
        arr = pc.dictionary_encode(arr.dictionary_decode().cast(pa.string()))
    return _Encoded(arr, pc.fill_null(arr.indices, -1).to_numpy().astype(np.int64))


def _distinct(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first row of each distinct combination, each row's combination, rows per combination);
    ``codes`` are dense integer codes (>= -1), e.g. dictionary indices."""
    import pandas as pd

    if len(codes[0]) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = np.zeros(len(codes[0]), np.int64)
    for c in codes:   # mixed radix (hash-factorized again if the next digit could overflow)
        radix = int(c.max()) + 2
        if int(key.max()) >= (1 << 62) // radix:
            key = pd.factorize(key)[0].astype(np.int64)
        key = key * radix + (c + 1)
    return _groups(pd.factorize(key)[0].astype(np.int64))


def _groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As _distinct, for codes that are already group numbers 0..k-1 (gaps are dropped)."""
    n = len(codes)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    counts = np.bincount(codes)
    if not counts.all():                      # renumber without the unused codes
        keep = counts > 0
        codes = (np.cumsum(keep) - 1)[codes]
        counts = counts[keep]
    first = np.empty(len(counts), np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1)   # the last write wins: each group's first row
    return first, codes, counts


def _dense(v: np.ndarray) -> np.ndarray:
    """Equal values (NaN included) get equal dense codes."""
    import pandas as pd

    return pd.factorize(v, use_na_sentinel=False)[0].astype(np.int64) if len(v) else np.zeros(0, np.int64)


def _kst_offset_us() -> int:
    """KST's offset from UTC in µs (fixed: Korea has no daylight saving time)."""
    from etl.timeutil import KST

    return int(datetime(2000, 1, 1, tzinfo=KST).utcoffset().total_seconds() * 1_000_000)


def _kst_day_start(ts_us: np.ndarray) -> np.ndarray:
    """The UTC instant (µs) at which the KST day of each ``ts`` began (nulls stay null-marked)."""
    offset, day = _kst_offset_us(), 86_400_000_000
    return np.where(ts_us == _NULL_TS, _NULL_TS, (ts_us + offset) // day * day - offset)


def _install_ts(install_date: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Install dates are KST calendar days: a device counts as installed from midnight KST."""
    days = pc.cast(install_date, pa.int32()).cast(pa.int64())
    out = pc.cast(pc.subtract(pc.multiply(days, 86_400_000_000), _kst_offset_us()), _US)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _series(candidates: pa.Table, device: _Encoded, metric: _Encoded, value: np.ndarray, ts: np.ndarray,
            at: np.ndarray, context: pa.Table | None) -> pa.Table:
    from quality.context import CONTEXT, attach

    take = pa.array(at, pa.int64())
    rows = candidates.select(["device_id", "metric"]).take(take)
    prev_value, prev_run = attach(rows, context if context is not None else CONTEXT.empty_table())
    return pa.table({"rows": np.ones(len(at), np.int64), "series_device": device.take(at),
                     "series_metric": metric.take(at), "series_value": value[at],
                     "series_ts": pc.take(candidates["ts"], take),
                     "series_pos": series_positions(device.codes[at], metric.codes[at], ts[at]),
                     "prev_value": prev_value, "prev_run": prev_run})


def _duplicate_keys(*codes: np.ndarray) -> int:
    """Readings whose key (device, metric, subject, ts codes) another reading also has."""
    counts = _distinct(*codes)[2]
    return int(counts[counts > 1].sum())


def _complete(table: pa.Table, part: str) -> pa.Table:
    """``table`` with every frame column, in order (missing ones null), typed as _TYPES."""
    n = table.num_rows
    cols = {"part": pa.array([part] * n, pa.string()).dictionary_encode().cast(_CODES)}
    for name in FRAME_COLUMNS[1:]:
        typ = _TYPES[name]
        if name in table.column_names:
            col = table[name]
            cols[name] = col if col.type == typ else col.cast(typ)
        else:
            cols[name] = pa.nulls(n, typ)
    return pa.table(cols)
