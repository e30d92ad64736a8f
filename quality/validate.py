"""Run the GX suites on a batch's candidate readings and split the batch by the results.

``validate_readings`` profiles each domain's rows (quality.profile: distinct value, device
and time profiles, full rows only for the series checks), runs that domain's suite through an
ephemeral GX context and maps each expectation's unexpected profiles back to the readings as a
quarantine reason or a quality flag.
``validate_batch`` runs the batch-level suite on one summary row. Both return the GX result
as JSON for the lake and a compact list of :class:`Check` rows for the ``quality_checks`` table.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality import gx_speed
from quality.suites import Limits

log = logging.getLogger(__name__)


class QualityError(RuntimeError):
    """A batch-level check at error severity failed: the batch stays out of silver."""


@dataclass(frozen=True)
class Check:
    """One expectation's outcome on one batch and domain."""

    suite: str
    expectation: str       # GX expectation type
    target: str            # column(s) and, for per-metric checks, the metric
    level: str             # schema | row | batch
    action: str            # quarantine | flag | fail | warn
    code: str | None       # reason or flag code
    evaluated: int
    failed: int
    success: bool
    observed: str | None = None   # batch level: the observed value

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RowOutcome:
    """Per candidate row: the first quarantine reason (or None) and the flags (';'-joined or None)."""

    reason: np.ndarray
    flags: np.ndarray
    checks: list[Check] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)   # GX results as JSON, one per domain
    failures: list[str] = field(default_factory=list)   # fail-level problems, readable

    @property
    def flagged(self) -> int:
        return int(np.count_nonzero((self.reason == None) & (self.flags != None)))  # noqa: E711


def limits_from_settings() -> Limits:
    from etl.settings import get_settings

    s = get_settings()
    return Limits(min_completeness=s.quality_min_completeness, incomplete_share_warn=s.quality_incomplete_share_warn,
                  max_lag_s=s.quality_max_lag_s, max_duplicate_rate=s.quality_max_duplicate_rate,
                  max_quarantine_rate=s.quality_max_quarantine_rate, future_tolerance_s=s.quality_future_tolerance_s)


# ---- GX plumbing ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _batch_definition() -> Any:
    """An ephemeral context with one pandas dataframe asset (built once per process)."""
    import great_expectations as gx

    import quality.expectations  # noqa: F401 - registers the custom expectations

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    gx_speed.install()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars in task logs
    source = context.data_sources.add_pandas("citylake")
    asset = source.add_dataframe_asset("batch")
    return asset.add_batch_definition_whole_dataframe("whole")


def get_batch(df: Any) -> Any:
    """A GX batch of ``df`` (both passes of :func:`validate_in_two_passes` share one)."""
    return _batch_definition().get_batch(batch_parameters={"dataframe": df})


def run_suite(suite: Any, batch: Any, result_format: str = "COMPLETE") -> Any:
    """Validate ``batch`` (from :func:`get_batch`) with ``suite``; with COMPLETE, unexpected
    rows come back as index lists."""
    try:
        return batch.validate(suite, result_format={"result_format": result_format, "partial_unexpected_count": 5})
    finally:
        gx_speed.end_of_run()


def validate_in_two_passes(suite: Any, df: Any) -> tuple[list[Any], dict]:
    """Every expectation's result, and the whole result as JSON.

    GX's per-run cost grows with what the result format asks for: a BOOLEAN_ONLY pass over the
    whole suite costs half a COMPLETE one. Only the expectations that failed run again with
    COMPLETE, for their counts and unexpected rows; usually none or a few do.
    """
    from great_expectations import ExpectationSuite

    batch = get_batch(df)
    first = run_suite(suite, batch, "BOOLEAN_ONLY")
    order = lambda r: (r.expectation_config.meta or {}).get("order")  # noqa: E731
    failing = {order(r) for r in first.results if not r.success}
    doc = first.to_json_dict()
    if not failing:
        return list(first.results), doc
    again = ExpectationSuite(name=suite.name, expectations=[
        e.copy() for e in suite.expectations if (e.meta or {}).get("order") in failing])
    detail = run_suite(again, batch, "COMPLETE")
    by_order = {order(r): r for r in detail.results}
    detail_json = {order(r): j for r, j in zip(detail.results, detail.to_json_dict()["results"])}
    merged = [by_order.get(order(r), r) for r in first.results]
    doc["results"] = [detail_json.get(order(r), j) for r, j in zip(first.results, doc["results"])]
    return merged, doc


def _target(cfg: dict) -> str:
    kw = cfg["kwargs"]
    return kw.get("column") or ",".join(kw.get("column_list") or [c for c in (kw.get("column_A"), kw.get("column_B")) if c]) \
        or ("table" if "column_set" in kw else "")


def _compact(result_json: dict) -> dict:
    """The GX result without full index/value lists (they can be millions long)."""
    for r in result_json.get("results", []):
        res = r.get("result") or {}
        for k in ("unexpected_index_list", "unexpected_list", "unexpected_index_query", "partial_unexpected_index_list"):
            res.pop(k, None)
    return result_json


# ---- row level -------------------------------------------------------------------------------
def validate_readings(candidates: pa.Table, src_flag: pa.Array | pa.ChunkedArray, registry: pa.Table,
                      received_at: datetime, limits: Limits | None = None,
                      context: pa.Table | None = None) -> RowOutcome:
    """Run each domain's suite over its rows of ``candidates`` (silver-shaped rows), profiled
    (quality.profile); ``context`` (quality.context) carries each series' history in silver."""
    from quality.profile import profile
    from quality.suites import readings_suite

    limits = limits or limits_from_settings()
    n = candidates.num_rows
    out = RowOutcome(reason=np.full(n, None, object), flags=np.full(n, None, object))
    if n == 0:
        return out
    domains = candidates["domain"]
    for domain in sorted(pc.unique(domains).to_pylist()):
        at = np.flatnonzero(pc.equal(domains, domain).to_numpy(zero_copy_only=False))
        take = pa.array(at)
        prof = profile(candidates.take(take), pc.take(src_flag, take), registry, received_at,
                       limits.future_tolerance_s, context)
        suite = readings_suite(domain)
        results, doc = validate_in_two_passes(suite, prof.frame)
        _apply(results, suite.name, at, prof, out)
        out.results.append(_compact(doc))
    return out


def _apply(results: list[Any], suite_name: str, at: np.ndarray, prof: Any, out: RowOutcome) -> None:
    """Map each expectation's unexpected profiles back to readings: reasons/flags, checks, failures.
    Counts in the checks are readings (GX's own counts, in its results, are profiles)."""
    ordered = sorted(results, key=lambda r: (r.expectation_config.meta or {}).get("order", 1 << 30))
    for r in ordered:
        cfg = r.expectation_config.to_json_dict()
        meta = cfg.get("meta") or {}
        action, res, part = meta.get("action", "fail"), r.result or {}, meta.get("part")
        table_level = not part      # the column set and type: the frame as a whole
        if r.exception_info and r.exception_info.get("raised_exception"):
            msg = r.exception_info.get("exception_message")
            out.failures.append(f"{suite_name}: {cfg['type']} on {_target(cfg)} could not run: {msg}")
            action = "fail"
        code = meta.get("reason") or meta.get("flag")
        if part == "keys":          # one row: the counts of readings with a null or shared key
            evaluated, rows = len(at), np.zeros(0, np.int64)
            failed = 0 if r.success else prof.keys[cfg["kwargs"]["column"]]
        elif table_level:
            evaluated, rows, failed = 1, np.zeros(0, np.int64), 0 if r.success else 1
        else:
            evaluated = prof.covered[part]
            rows = prof.readings(part, res.get("unexpected_index_list") or []) if not r.success \
                else np.zeros(0, np.int64)
            failed = len(rows) if len(rows) or r.success else int(res.get("unexpected_count") or 1)
        out.checks.append(Check(suite_name, cfg["type"], _target(cfg), meta.get("level", "row"), action, code,
                                evaluated, failed, bool(r.success)))
        if r.success:
            continue
        rows = at[rows]
        if action == "quarantine":
            fresh = rows[out.reason[rows] == None]  # noqa: E711 - the first reason wins
            out.reason[fresh] = code
        elif action == "flag":
            cur = out.flags[rows]
            out.flags[rows] = [code if c is None else (c if code in c.split(";") else f"{c};{code}") for c in cur]
        elif action == "fail":
            out.failures.append(f"{suite_name}: {cfg['type']} on {_target(cfg)} failed "
                                f"({failed} of {evaluated} rows; e.g. {res.get('partial_unexpected_list')})")


# ---- batch level -----------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    checks: list[Check]
    result: dict
    errors: list[str]     # fail-level problems: the batch must not be committed
    warnings: list[str]


def completeness(good: pa.Table, registry: pa.Table, source_id: str, start: datetime, end: datetime,
                 limits: Limits) -> tuple[int, float | None]:
    """(device-hours expected, share of them below ``min_completeness``) for the window's whole
    hours, over every device of the source installed by then that reports on an interval."""
    from etl.timeutil import KST

    reg = registry.filter(pc.and_(pc.equal(registry["source"], source_id), pc.greater(registry["interval_s"], 0)))
    first = start.replace(minute=0, second=0, microsecond=0)
    hours = int((end - first).total_seconds() // 3600)
    if reg.num_rows == 0 or hours <= 0:
        return 0, None
    hour0 = int(first.timestamp()) // 3600
    ids = reg["device_id"].combine_chunks()
    interval = reg["interval_s"].to_numpy(zero_copy_only=False).astype(float)
    installed = np.array([datetime(d.year, d.month, d.day, tzinfo=KST).timestamp() // 3600 for d in
                          reg["install_date"].to_pylist()], np.int64)
    seen = np.zeros((len(ids), hours), np.int64)
    if good.num_rows:
        dev = pc.fill_null(pc.index_in(good["device_id"], value_set=ids), -1).to_numpy().astype(np.int64)
        sec = pc.cast(good["ts"], pa.int64()).to_numpy() // 1_000_000
        h = sec // 3600 - hour0
        ok = (dev >= 0) & (h >= 0) & (h < hours)
        # distinct report times per device-hour (a report carries several metrics)
        cell = dev[ok] * hours + h[ok]
        keys = np.unique(cell * 3600 + sec[ok] % 3600)
        np.add.at(seen.reshape(-1), keys // 3600, 1)
    expected = 3600.0 / interval
    active = installed[:, None] <= hour0 + np.arange(hours)[None, :]
    incomplete = (seen < limits.min_completeness * expected[:, None]) & active
    total = int(active.sum())
    return total, (float(incomplete.sum()) / total if total else None)


MIN_ROWS_FOR_RATES = 20   # rates of tiny batches say nothing


def validate_batch(counts: dict[str, int], lag_s: float | None, device_hours: int, incomplete_share: float | None,
                   limits: Limits | None = None) -> BatchOutcome:
    """Run the batch suite over one summary row."""
    import pandas as pd

    from quality.suites import batch_suite

    limits = limits or limits_from_settings()
    received = counts["received"]
    big = received >= MIN_ROWS_FOR_RATES
    row = {
        "received": received, "minus_received": -received, "accepted": counts["accepted"],
        "quarantined": counts["quarantined"], "duplicates": counts["duplicates"],
        "duplicate_rate": counts["duplicates_in_batch"] / received if big else None,
        "quarantine_rate": counts["quarantined"] / received if big else None,
        "lag_s": lag_s, "device_hours": device_hours, "incomplete_share": incomplete_share,
    }
    df = pd.DataFrame([row]).astype({k: "float64" for k in ("duplicate_rate", "quarantine_rate", "lag_s",
                                                            "incomplete_share")})
    suite = batch_suite(limits)
    result = run_suite(suite, get_batch(df), "BOOLEAN_ONLY")   # one row: the observed values are in ``row``
    checks, errors, warnings = [], [], []
    for r in result.results:
        cfg = r.expectation_config.to_json_dict()
        meta = cfg.get("meta") or {}
        target = _target(cfg)
        observed = row.get(cfg["kwargs"].get("column", ""), None)
        checks.append(Check(suite.name, cfg["type"], target, "batch", meta.get("action", "fail"), None, 1,
                            0 if r.success else 1, bool(r.success), None if observed is None else f"{observed:g}"))
        if not r.success:
            kw = {k: v for k, v in cfg["kwargs"].items() if k in ("max_value", "min_value", "sum_total")}
            msg = f"{target} = {observed if observed is not None else row} violates {kw}"
            (errors if meta.get("action") == "fail" else warnings).append(msg)
    return BatchOutcome(checks, _compact(result.to_json_dict()), errors, warnings)
