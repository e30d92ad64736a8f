"""Expectation suites as code: one row-level suite per domain, one batch-level suite.

Every expectation carries ``meta`` saying what a failure does:

- ``action: quarantine`` (row level): failing rows leave the batch for ``quarantine/`` with
  ``meta.reason`` (a code of :data:`quality.reasons.REASONS`);
- ``action: flag`` (row level): failing rows stay, with ``meta.flag`` in ``quality_flag``;
- ``action: fail`` (batch level or schema): the batch stays out of silver and the task fails;
- ``action: warn`` (batch level): recorded, the batch proceeds.

Severity follows the action (GX ``critical`` for quarantine/fail, ``warning`` for flag/warn).
The thresholds come from :mod:`quality.metrics` and the settings (``quality_*``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import great_expectations.expectations as gxe
from great_expectations import ExpectationSuite
from great_expectations.expectations.row_conditions import Column

from quality import expectations as cx
from quality import profile
from quality.metrics import METRICS
from quality.reasons import check, check_flag

# The frame the row-level suites validate: quality.profile (distinct profiles in parts).
FRAME_COLUMNS = profile.FRAME_COLUMNS
# Source flags that mean "valid" (anything else is quarantined as source_flagged).
OK_FLAGS = ("0", "00", "ok", "OK", "normal", "valid", "정상")


@dataclass(frozen=True)
class Limits:
    """Batch-level thresholds (settings ``quality_*``)."""

    min_completeness: float = 0.5       # a device-hour below this share of expected readings is incomplete
    incomplete_share_warn: float = 0.2  # warn when more device-hours than this are incomplete
    max_lag_s: float = 3 * 3600         # warn when the newest reading is this far behind the window end
    max_duplicate_rate: float = 0.2     # warn above this share of duplicates
    max_quarantine_rate: float = 0.5    # fail above this share quarantined (a gateway is sending garbage)
    future_tolerance_s: float = 300     # readings up to this far after receipt are clock skew, not future


def _meta(action: str, reason: str | None = None, flag: str | None = None, level: str = "row",
          part: str | None = None) -> dict:
    meta: dict = {"action": action, "level": level}
    if part:
        meta["part"] = part
    if reason:
        meta["reason"] = check(reason)
    if flag:
        meta["flag"] = check_flag(flag)
    return meta


def _sev(action: str) -> str:
    return "critical" if action in ("quarantine", "fail") else "warning"


def _add(suite: list, expectation: gxe.Expectation, action: str, **meta: str) -> None:
    # "order": GX returns results grouped by column, not in suite order; a row's first reason
    # is the first failing expectation in the order written here (quality.validate._apply)
    expectation.meta = {**_meta(action, **meta), "order": len(suite)}
    expectation.severity = _sev(action)
    suite.append(expectation)


def _part(name: str) -> dict:
    return {"row_condition": Column("part") == name}


@lru_cache(maxsize=None)
def readings_suite(domain: str) -> ExpectationSuite:
    """Schema, row-level and sensor-fault expectations for one domain's readings (built once).

    Each row-level expectation judges one part of the profiled frame (quality.profile) and
    names it in ``meta.part``: its failures are mapped back to the readings of that part. The
    parts' columns are disjoint, so a check that skips missing values sees only its part; the
    two not-null checks select theirs with a row condition.
    """
    metrics = [m for m in METRICS if m.domain == domain]
    if not metrics:
        raise ValueError(f"unknown domain {domain!r}")
    suite: list[gxe.Expectation] = []
    # schema: the columns, their types, non-null keys, one reading per key
    _add(suite, gxe.ExpectTableColumnsToMatchSet(column_set=list(FRAME_COLUMNS), exact_match=True), "fail",
         level="schema")
    _add(suite, gxe.ExpectColumnValuesToBeOfType(column="value", type_="float64"), "fail", level="schema")
    for col in ("null_keys", "duplicate_keys"):
        _add(suite, gxe.ExpectColumnValuesToBeBetween(column=col, max_value=0), "fail", level="schema", part="keys")
    # row level
    _add(suite, gxe.ExpectColumnValuesToNotBeNull(column="value", **_part("value")), "quarantine",
         reason="source_missing", part="value")
    _add(suite, gxe.ExpectColumnValuesToBeInSet(column="metric", value_set=[m.metric for m in metrics]),
         "quarantine", reason="unknown_metric", part="value")
    _add(suite, gxe.ExpectColumnValuesToNotBeNull(column="install_ts", **_part("device")), "quarantine",
         reason="unknown_device", part="device")
    _add(suite, gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="latest_ts", column_B="ts", or_equal=True,
                                                             ignore_row_if="either_value_is_missing"),
         "quarantine", reason="future_timestamp", part="time")
    _add(suite, gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="ts_day", column_B="install_ts", or_equal=True,
                                                             ignore_row_if="either_value_is_missing"),
         "quarantine", reason="before_install", part="install")
    _add(suite, cx.ExpectCoordinatesInGoyang(column_list=["lat", "lon"], ignore_row_if="all_values_are_missing"),
         "quarantine",
         reason="outside_goyang", part="device")
    _add(suite, gxe.ExpectColumnValuesToBeInSet(column="src_flag", value_set=list(OK_FLAGS)),
         "quarantine", reason="source_flagged", part="value")
    sets = {m.metric: list(m.values) for m in metrics if m.values is not None}
    if sets:
        _add(suite, cx.ExpectMetricValuesToBeInSet(column_list=["metric", "value"], value_sets=sets,
                                                   ignore_row_if="all_values_are_missing"),
             "quarantine", reason="bad_category", part="value")
    physical = {m.metric: list(m.physical) for m in metrics if m.values is None}
    if physical:
        _add(suite, cx.ExpectMetricValuesToBeBetween(column_list=["metric", "value"], ranges=physical,
                                                     ignore_row_if="all_values_are_missing"),
             "quarantine", reason="out_of_physical_range", part="value")
    plausible = {m.metric: list(m.plausible) for m in metrics if m.values is None and m.plausible != m.physical}
    if plausible:
        _add(suite, cx.ExpectMetricValuesToBeBetween(column_list=["metric", "value"], ranges=plausible,
                                                     ignore_row_if="all_values_are_missing"), "flag", flag="implausible", part="value")
    # sensor faults (whole series)
    stuck = {m.metric: m.stuck_run for m in metrics if m.stuck_run}
    if stuck:
        _add(suite, cx.ExpectReadingsToNotBeStuck(column_list=list(cx.READING_COLUMNS), min_runs=stuck,
                                                  ignore_row_if="all_values_are_missing"), "flag", flag="stuck", part="series")
    steps = {m.metric: float(m.max_step) for m in metrics if m.max_step is not None}
    if steps:
        _add(suite, cx.ExpectReadingsToNotSpike(column_list=list(cx.READING_COLUMNS), max_steps=steps,
                                                ignore_row_if="all_values_are_missing"), "flag", flag="spike", part="series")
    if {"pm10", "pm25"} <= {m.metric for m in metrics}:
        _add(suite, cx.ExpectPm25ToNotExceedPm10(column_list=list(cx.READING_COLUMNS), ratio=1.0, margin=5.0,
                                                 ignore_row_if="all_values_are_missing"), "flag", flag="pm25_above_pm10", part="series")
    return ExpectationSuite(name=f"citylake.{domain}", expectations=suite)


# The one-row frame the batch suite validates (built by quality.validate.batch_frame).
BATCH_COLUMNS = ("received", "accepted", "quarantined", "duplicates", "duplicate_rate", "quarantine_rate",
                 "lag_s", "device_hours", "incomplete_share")


def batch_suite(limits: Limits) -> ExpectationSuite:
    """Batch-level checks: completeness, freshness, duplicate and quarantine rates, reconciliation."""
    suite: list[gxe.Expectation] = []
    _add(suite, gxe.ExpectMulticolumnSumToEqual(column_list=["accepted", "quarantined", "duplicates", "minus_received"],
                                                sum_total=0), "fail", level="batch")
    _add(suite, gxe.ExpectColumnValuesToBeBetween(column="quarantine_rate", max_value=limits.max_quarantine_rate),
         "fail", level="batch")
    _add(suite, gxe.ExpectColumnValuesToBeBetween(column="duplicate_rate", max_value=limits.max_duplicate_rate),
         "warn", level="batch")
    _add(suite, gxe.ExpectColumnValuesToBeBetween(column="lag_s", max_value=limits.max_lag_s), "warn", level="batch")
    _add(suite, gxe.ExpectColumnValuesToBeBetween(column="incomplete_share", max_value=limits.incomplete_share_warn),
         "warn", level="batch")
    return ExpectationSuite(name="citylake.batch", expectations=suite)
