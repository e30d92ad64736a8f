"""Custom GX expectations for sensor faults: small subclasses, each with its pandas metric.

They look at readings in the long canonical form (one row per device, metric and time):

- ``expect_readings_to_not_be_stuck``: a run of identical consecutive values of one device
  and metric, at least ``min_runs[metric]`` long (a frozen sensor);
- ``expect_readings_to_not_spike``: a value that jumps more than ``max_steps[metric]`` away
  from both neighbours in the same direction (an isolated spike, not a level change);
- ``expect_pm25_to_not_exceed_pm10``: PM2.5 above ``ratio`` x PM10 + ``margin`` at the same
  device and time (PM2.5 is a fraction of PM10);
- ``expect_metric_values_to_be_between`` / ``..._in_set``: each metric against its own
  range or allowed values in one vectorised pass (instead of one filtered expectation per
  metric, which costs a pandas query each);
- ``expect_coordinates_in_goyang``: the device's coordinates inside Goyang's boundary (a
  swapped latitude/longitude lands in the sea or another continent).

Importing this module registers them with GX.
"""
from __future__ import annotations

from typing import ClassVar

import functools

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import MulticolumnMapMetricProvider
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)

# ``series_pos`` is the row's position in (device, metric, ts) order, computed once per frame
# (quality.profile, the series part) so that each fault check does not sort the batch again.
# ``prev_value``/``prev_run``: the series' last value in silver before this batch and how many
# readings in a row had it (quality.context), so runs and spikes continue across batches.
# In the validated frame these columns carry a ``series_`` prefix (quality.profile: the series
# part's columns are its own); the masks below read them by their plain names.
_PLAIN = ("device_id", "metric", "ts", "value", "series_pos", "prev_value", "prev_run")
READING_COLUMNS = ["series_device", "series_metric", "series_ts", "series_value", "series_pos", "prev_value",
                   "prev_run"]
_RENAME = dict(zip(READING_COLUMNS, _PLAIN))


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns=_RENAME) if "series_device" in df else df


def series_positions(device: np.ndarray, metric: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each row's position when sorted by (device, metric, ts) (integer codes in, stable)."""
    order = np.lexsort((ts, metric, device))
    pos = np.empty(len(order), np.int64)
    pos[order] = np.arange(len(order))
    return pos


def _series_order(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row order by (device, metric, ts) and, in that order, whether a row continues the
    previous row's series (same device and metric)."""
    dev = df["device_id"].cat.codes.to_numpy() if hasattr(df["device_id"], "cat") else pd.factorize(df["device_id"])[0]
    met = df["metric"].cat.codes.to_numpy() if hasattr(df["metric"], "cat") else pd.factorize(df["metric"])[0]
    if "series_pos" in df:
        order = np.empty(len(df), np.int64)
        order[df["series_pos"].to_numpy(dtype=np.int64)] = np.arange(len(df))
    else:
        ts = df["ts"].to_numpy(dtype="datetime64[us]").astype(np.int64)
        order = np.lexsort((ts, met, dev))
    d, m = dev[order], met[order]
    same = np.concatenate([[False], (d[1:] == d[:-1]) & (m[1:] == m[:-1])])
    return order, same


def _per_metric(df: pd.DataFrame, values: dict[str, float], order: np.ndarray) -> np.ndarray:
    """``values[metric]`` for each row in ``order``; NaN where the metric has none."""
    return df["metric"].map(values).to_numpy(dtype=float, na_value=np.nan)[order]


def stuck_mask(df: pd.DataFrame, min_runs: dict[str, int]) -> np.ndarray:
    """True for rows that are part of a run of at least ``min_runs[metric]`` equal values."""
    n = len(df)
    out = np.zeros(n, bool)
    if n == 0:
        return out
    order, same = _series_order(df)
    v = df["value"].to_numpy(dtype=float, na_value=np.nan)[order]
    cont = same & (v == np.concatenate([[np.nan], v[:-1]]))
    run = np.cumsum(~cont) - 1
    length = np.bincount(run)
    if "prev_value" in df:  # a series' first run continues the run silver ended with
        prev = df["prev_value"].to_numpy(dtype=float, na_value=np.nan)[order]
        carried = ~same & (v == prev)
        np.add.at(length, run[carried], df["prev_run"].to_numpy(dtype=np.int64)[order][carried])
    length = length[run]
    limit = _per_metric(df, {k: float(x) for k, x in min_runs.items()}, order)
    with np.errstate(invalid="ignore"):
        out[order] = length >= limit
    return out


def spike_mask(df: pd.DataFrame, max_steps: dict[str, float]) -> np.ndarray:
    """True for rows more than ``max_steps[metric]`` above (or below) both neighbours."""
    n = len(df)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    order, same = _series_order(df)
    v = df["value"].to_numpy(dtype=float, na_value=np.nan)[order]
    step = _per_metric(df, max_steps, order)
    previous = np.concatenate([[np.nan], v[:-1]])
    has_prev = same.copy()
    if "prev_value" in df:  # a series' first reading: its neighbour is silver's last value
        prev = df["prev_value"].to_numpy(dtype=float, na_value=np.nan)[order]
        edge = ~same & ~np.isnan(prev)
        previous[edge], has_prev[edge] = prev[edge], True
    up = v - previous                                                # v - previous
    down = np.concatenate([v[:-1] - v[1:], [np.nan]])               # v - next
    has_next = np.concatenate([same[1:], [False]])
    with np.errstate(invalid="ignore"):
        spike = has_prev & has_next & (np.abs(up) > step) & (np.abs(down) > step) & (np.sign(up) == np.sign(down))
    out[order] = spike
    return out


def pm_ratio_mask(df: pd.DataFrame, ratio: float, margin: float) -> np.ndarray:
    """True for PM2.5 rows above ``ratio`` x PM10 + ``margin`` of the same device and time."""
    out = np.zeros(len(df), bool)
    is25 = (df["metric"] == "pm25").to_numpy(dtype=bool, na_value=False)
    is10 = (df["metric"] == "pm10").to_numpy(dtype=bool, na_value=False)
    if not is25.any() or not is10.any():
        return out
    pm10 = df.loc[is10, ["device_id", "ts", "value"]].drop_duplicates(["device_id", "ts"])
    pm25 = df.loc[is25, ["device_id", "ts", "value"]].reset_index()
    joined = pm25.merge(pm10, on=["device_id", "ts"], how="inner", suffixes=("", "_pm10"))
    bad = joined.loc[joined["value"] > joined["value_pm10"] * ratio + margin, "index"]
    out[df.index.get_indexer(bad)] = True
    return out


def outside_goyang_mask(df: pd.DataFrame) -> np.ndarray:
    """True for rows whose (lat, lon) is not inside any of Goyang's districts (or unknown)."""
    if len(df) == 0:
        return np.zeros(0, bool)
    lat = df["lat"].to_numpy(dtype=float, na_value=np.nan)
    lon = df["lon"].to_numpy(dtype=float, na_value=np.nan)
    pairs, inverse = np.unique(np.stack([lat, lon], axis=1), axis=0, return_inverse=True) \
        if len(df) < 64 else _unique_pairs(lat, lon)
    inside = np.array([_inside(float(a), float(b)) for a, b in pairs], bool)
    return ~inside[np.asarray(inverse).reshape(-1)]


def _unique_pairs(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (lat, lon) pairs and each row's pair, via one complex key (fast on millions)."""
    keys, inverse = np.unique(lat + 1j * lon, return_inverse=True)
    return np.stack([keys.real, keys.imag], axis=1), inverse


@functools.lru_cache(maxsize=65536)
def _inside(lat: float, lon: float) -> bool:
    from etl.registry import geo

    return lat == lat and lon == lon and geo.locate(lon, lat) is not None


def range_mask(df: pd.DataFrame, ranges: dict[str, list[float]]) -> np.ndarray:
    """True for rows whose value is outside ``ranges[metric]`` (metrics without a range pass)."""
    lo = df["metric"].map({k: float(v[0]) for k, v in ranges.items()}).to_numpy(dtype=float, na_value=np.nan)
    hi = df["metric"].map({k: float(v[1]) for k, v in ranges.items()}).to_numpy(dtype=float, na_value=np.nan)
    v = df["value"].to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return (v < lo) | (v > hi)


def set_mask(df: pd.DataFrame, value_sets: dict[str, list[float]]) -> np.ndarray:
    """True for rows of a metric in ``value_sets`` whose value is not one of its values."""
    out = np.zeros(len(df), bool)
    metric = df["metric"].astype(object).to_numpy()
    v = df["value"].to_numpy(dtype=float, na_value=np.nan)
    for name, allowed in value_sets.items():
        rows = metric == name
        out[rows] = ~np.isin(v[rows], np.asarray(allowed, float))
    return out


# ---- metric providers (the pandas implementations) ------------------------------------------
def _ok(df: pd.DataFrame, bad: np.ndarray) -> pd.Series:
    return pd.Series(~bad, index=df.index)


class ReadingsNotStuck(MulticolumnMapMetricProvider):
    condition_metric_name = "citylake.readings.not_stuck"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")
    condition_value_keys = ("min_runs",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, min_runs: dict[str, int], **kwargs: object) -> pd.Series:
        return _ok(column_list, stuck_mask(_plain(column_list), min_runs))


class ReadingsNoSpike(MulticolumnMapMetricProvider):
    condition_metric_name = "citylake.readings.no_spike"
    condition_domain_keys = ReadingsNotStuck.condition_domain_keys
    condition_value_keys = ("max_steps",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, max_steps: dict[str, float], **kwargs: object) -> pd.Series:
        return _ok(column_list, spike_mask(_plain(column_list), max_steps))


class Pm25NotAbovePm10(MulticolumnMapMetricProvider):
    condition_metric_name = "citylake.readings.pm25_not_above_pm10"
    condition_domain_keys = ReadingsNotStuck.condition_domain_keys
    condition_value_keys = ("ratio", "margin")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, ratio: float, margin: float, **kwargs: object) -> pd.Series:
        return _ok(column_list, pm_ratio_mask(_plain(column_list), ratio, margin))


class MetricValuesBetween(MulticolumnMapMetricProvider):
    condition_metric_name = "citylake.readings.metric_values_between"
    condition_domain_keys = ReadingsNotStuck.condition_domain_keys
    condition_value_keys = ("ranges",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, ranges: dict[str, list[float]], **kwargs: object) -> pd.Series:
        return _ok(column_list, range_mask(column_list, ranges))


class MetricValuesInSet(MulticolumnMapMetricProvider):
    condition_metric_name = "citylake.readings.metric_values_in_set"
    condition_domain_keys = ReadingsNotStuck.condition_domain_keys
    condition_value_keys = ("value_sets",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, value_sets: dict[str, list[float]], **kwargs: object) -> pd.Series:
        return _ok(column_list, set_mask(column_list, value_sets))


class CoordinatesInGoyang(MulticolumnMapMetricProvider):
    condition_metric_name = "citylake.coordinates.in_goyang"
    condition_domain_keys = ReadingsNotStuck.condition_domain_keys
    condition_value_keys = ()

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: object) -> pd.Series:
        return _ok(column_list, outside_goyang_mask(column_list))


# ---- the expectations ----------------------------------------------------------------------
class ExpectReadingsToNotBeStuck(MulticolumnMapExpectation):
    """No device repeats exactly the same value ``min_runs[metric]`` times in a row."""

    min_runs: dict[str, int]
    ignore_row_if: str = "never"
    map_metric: ClassVar[str] = "citylake.readings.not_stuck"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "min_runs")


class ExpectReadingsToNotSpike(MulticolumnMapExpectation):
    """No value jumps more than ``max_steps[metric]`` away from both of its neighbours."""

    max_steps: dict[str, float]
    ignore_row_if: str = "never"
    map_metric: ClassVar[str] = "citylake.readings.no_spike"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "max_steps")


class ExpectPm25ToNotExceedPm10(MulticolumnMapExpectation):
    """PM2.5 is at most ``ratio`` x PM10 + ``margin`` at the same device and time."""

    ratio: float = 1.0
    margin: float = 5.0
    ignore_row_if: str = "never"
    map_metric: ClassVar[str] = "citylake.readings.pm25_not_above_pm10"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "ratio", "margin")


class ExpectMetricValuesToBeBetween(MulticolumnMapExpectation):
    """Each metric's values lie in ``ranges[metric]`` = [min, max] (one pass for all metrics)."""

    ranges: dict[str, list[float]]
    ignore_row_if: str = "never"
    map_metric: ClassVar[str] = "citylake.readings.metric_values_between"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "ranges")


class ExpectMetricValuesToBeInSet(MulticolumnMapExpectation):
    """Categorical metrics take only their allowed values (``value_sets[metric]``)."""

    value_sets: dict[str, list[float]]
    ignore_row_if: str = "never"
    map_metric: ClassVar[str] = "citylake.readings.metric_values_in_set"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "value_sets")


class ExpectCoordinatesInGoyang(MulticolumnMapExpectation):
    """The device's registered (lat, lon) lies inside Goyang's boundary."""

    ignore_row_if: str = "never"
    map_metric: ClassVar[str] = "citylake.coordinates.in_goyang"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)
