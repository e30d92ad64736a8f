"""What silver already holds just before a batch's readings, for the stuck and spike checks.

A batch is an hour; a frozen sensor is only evident over a longer run, and a reading at the
start of a batch has its previous neighbour in the batch before. For every (device, metric)
series of the batch with a stuck or spike rule, this finds in silver the last value before
the series' first new reading (``prev_value``) and how many readings in a row had that value
(``prev_run``), looking back ``stuck_run`` reporting intervals (at most a day).
"""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.storage import Store
from quality.metrics import METRICS

CONTEXT = pa.schema([("device_id", pa.string()), ("metric", pa.string()), ("prev_value", pa.float64()),
                     ("prev_run", pa.int64())])
_NEEDS = {(m.domain, m.metric): m.stuck_run or 1 for m in METRICS if m.stuck_run or m.max_step is not None}

_SQL = """
WITH firsts AS (SELECT device_id, metric, min(ts) AS first_ts FROM fresh GROUP BY ALL),
c AS (SELECT x.device_id, x.metric, x.ts, x.value FROM ctx x JOIN firsts f USING (device_id, metric)
      WHERE x.ts < f.first_ts),
l AS (SELECT device_id, metric, arg_max(value, ts) AS prev_value FROM c GROUP BY ALL),
d AS (SELECT c.device_id, c.metric, max(c.ts) FILTER (WHERE c.value <> l.prev_value) AS changed
      FROM c JOIN l USING (device_id, metric) GROUP BY ALL)
SELECT l.device_id, l.metric, l.prev_value,
       count(*) FILTER (WHERE d.changed IS NULL OR c.ts > d.changed) AS prev_run
FROM c JOIN l USING (device_id, metric) JOIN d USING (device_id, metric)
GROUP BY ALL
"""


def lookback(rows: pa.Table, registry: pa.Table) -> timedelta:
    """``stuck_run`` reporting intervals of the slowest device in the batch, 1 h to 24 h."""
    pairs = rows.group_by(["domain", "metric"]).aggregate([]).to_pylist()
    longest = max([_NEEDS.get((p["domain"], p["metric"]), 0) for p in pairs] + [1])
    reg = registry.filter(pc.is_in(registry["device_id"], value_set=pc.unique(rows["device_id"])))
    interval = max(pc.max(reg["interval_s"]).as_py() or 3600, 1) if reg.num_rows else 3600
    return timedelta(seconds=min(max(longest * interval, 3600), 86400))


def series_context(store: Store, fresh: pa.Table, registry: pa.Table, exclude_batch: str | None) -> pa.Table:
    """(device_id, metric, prev_value, prev_run) for the batch's series that have history."""
    from etl import duck, tables
    from etl.timeutil import kst_date

    if fresh.num_rows == 0:
        return CONTEXT.empty_table()
    rows = fresh.filter(_needs_mask(fresh)).select(["device_id", "metric", "ts", "domain"])
    if rows.num_rows == 0:
        return CONTEXT.empty_table()
    lo, hi = (v.as_py() for v in pc.min_max(rows["ts"]).values())
    start = lo - lookback(rows, registry)
    first_day, last_day = kst_date(start), kst_date(hi)
    days = {(first_day + timedelta(days=i)).isoformat() for i in range((last_day - first_day).days + 1)}
    first, last = (v.as_py() for v in pc.min_max(rows["device_id"]).values())
    ctx = tables.silver_slice(store, {(dom, d) for dom in pc.unique(rows["domain"]).to_pylist() for d in days},
                              start, hi, ["device_id", "metric", "ts", "value"], (first, last), exclude_batch)
    if ctx.num_rows == 0:
        return CONTEXT.empty_table()
    con = duck.process_cursor()
    try:
        con.register("fresh", rows)
        con.register("ctx", ctx)
        return con.execute(_SQL).to_arrow_table().cast(CONTEXT)
    finally:
        con.close()


def _needs_mask(fresh: pa.Table) -> pa.Array:
    pairs = pa.array([f"{d}/{m}" for d, m in _NEEDS])
    key = pc.binary_join_element_wise(fresh["domain"], fresh["metric"], "/")
    return pc.is_in(key, value_set=pairs)


def attach(fresh: pa.Table, context: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """``prev_value`` (NaN where none) and ``prev_run`` (0) for every row of ``fresh``."""
    n = fresh.num_rows
    prev_value, prev_run = np.full(n, np.nan), np.zeros(n, np.int64)
    if n == 0 or context.num_rows == 0:
        return prev_value, prev_run
    left = fresh.select(["device_id", "metric"]).append_column("_row", pa.array(np.arange(n)))
    joined = left.join(context, ["device_id", "metric"], join_type="inner")
    at = joined["_row"].to_numpy()
    prev_value[at] = joined["prev_value"].to_numpy(zero_copy_only=False)
    prev_run[at] = joined["prev_run"].to_numpy(zero_copy_only=False)
    return prev_value, prev_run
