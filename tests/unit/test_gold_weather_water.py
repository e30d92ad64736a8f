"""Weather and water-quality gold models on tiny hand-made silver: hand-computed values,
wind direction, heat index, completeness, exceedance events and rebuild semantics."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from math import atan, sqrt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.unit.test_gold import _gold, _silver, _write

KST = timezone(timedelta(hours=9))


def _series(device: str, domain: str, metric: str, start: datetime, values: list[float | None],
            step_min: int) -> list[dict[str, Any]]:
    """Readings every ``step_min`` minutes from ``start`` (KST); None leaves a reading out."""
    from quality.metrics import canonical_units

    unit = canonical_units()[metric]
    return [{"device_id": device, "domain": domain, "metric": metric, "value": v, "unit": unit,
             "ts": (start + timedelta(minutes=i * step_min)).astimezone(timezone.utc)}
            for i, v in enumerate(values) if v is not None]


def _quarantine(device: str, domain: str, metric: str, ts: datetime, reason: str) -> dict[str, Any]:
    from etl.timeutil import kst_date

    return {"source": "test", "batch_id": "b1", "frame": 0, "reason": reason, "detail": "", "ref": device,
            "device_id": device, "domain": domain, "metric": metric, "ts": ts.astimezone(timezone.utc),
            "value": None, "unit": "", "raw": None, "received_at": ts, "date": kst_date(ts).isoformat()}


def _write_quarantine(rows: list[dict[str, Any]]) -> None:
    from etl import tables

    _write(pa.Table.from_pylist(rows, schema=tables.QUARANTINE_SCHEMA), "quarantine")


def _stull_wet_bulb(ta: float, rh: float) -> float:
    return (ta * atan(0.151977 * sqrt(rh + 8.313659)) + atan(ta + rh) - atan(rh - 1.67633)
            + 0.00391838 * rh ** 1.5 * atan(0.023101 * rh) - 4.686035)


def _kma_summer_apparent(ta: float, rh: float) -> float:
    tw = _stull_wet_bulb(ta, rh)
    return -0.2442 + 0.55399 * tw + 0.45535 * ta - 0.0022 * tw * tw + 0.00278 * tw * ta + 3.0


def test_heat_index_oracle() -> None:
    """The test's own formula against Stull's published example, then pinned on the case used below."""
    assert _stull_wet_bulb(20.0, 50.0) == pytest.approx(13.7, abs=0.05)     # Stull (2011): 20 °C, 50 % -> 13.7 °C
    assert _kma_summer_apparent(32.5, 60.0) == pytest.approx(32.948, abs=1e-3)


WX = "wx-0001"      # small fleet: installed 2022-06-07, 600 s, six metrics -> 36 readings an hour


def test_weather_hourly_values_wind_rain_heat_index_and_completeness(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild

    ten = datetime(2026, 7, 15, 10, tzinfo=KST)
    rows = [
        *_series(WX, "weather", "temperature", ten, [30, 31, 32, 33, 34, 35], 10),
        *_series(WX, "weather", "humidity", ten, [60] * 6, 10),
        *_series(WX, "weather", "pressure", ten, [1000, 1001, 1002, 1003, 1004, 1005], 10),
        *_series(WX, "weather", "wind_speed", ten, [2, 4, 0, 3, 1, 6], 10),
        *_series(WX, "weather", "wind_dir", ten, [350, 10, 90, 350, 10, 0], 10),   # 90° is a calm's: left out
        *_series(WX, "weather", "rain", ten, [0, 0.5, 1.0, 0, 0.5, 0], 10),
    ]
    eleven = ten + timedelta(hours=1)
    rows += [
        *_series(WX, "weather", "temperature", eleven, [25, 25, None, 25, 25, 25], 10),   # 11:20 quarantined
        *_series(WX, "weather", "humidity", eleven, [70, 70, 70, None, 70, 70], 10),      # 11:30 never came
        *_series(WX, "weather", "pressure", eleven, [1000, 1000, 1000, 1000, None, 1000], 10),  # 11:40 sentinel
        *_series(WX, "weather", "wind_speed", eleven, [1] * 6, 10),
        *_series(WX, "weather", "wind_dir", eleven, [90, 270] * 3, 10),                   # they cancel out
        *_series(WX, "weather", "rain", eleven, [0] * 6, 10),
    ]
    rows[0]["quality_flag"] = "implausible"
    _write(_silver(rows))
    _write_quarantine([_quarantine(WX, "weather", "temperature", eleven + timedelta(minutes=20),
                                   "out_of_physical_range"),
                       _quarantine(WX, "weather", "pressure", eleven + timedelta(minutes=40), "sentinel")])

    rebuild("weather", ["2026-07-15"])
    hourly = _gold("weather_station_hourly", device_id=WX)
    assert [r["hour"] for r in hourly] == list(range(24)) and {r["date"] for r in hourly} == {"2026-07-15"}
    h = hourly[10]
    assert h["period_start"] == ten and h["period_end"] == eleven
    assert (h["temperature"], h["temperature_min"], h["temperature_max"]) == (32.5, 30, 35)
    assert (h["humidity"], h["pressure"], h["wind_speed_max"]) == (60, 1002.5, 6)
    assert h["wind_speed"] == pytest.approx(16 / 6)
    assert h["wind_dir"] == 0.0                                            # 350°, 10°, 350°, 10°, 0° -> north
    assert h["wind_dir_constancy"] == pytest.approx(0.98785, abs=1e-5)     # (4 cos 10° + 1) / 5
    assert h["rain"] == pytest.approx(2.0)
    assert h["heat_index"] == pytest.approx(_kma_summer_apparent(32.5, 60.0))
    assert (h["expected"], h["observed"], h["flagged"], h["missing_offline"]) == (36, 36, 1, 0)

    h = hourly[11]
    assert h["wind_dir"] is None and h["wind_dir_constancy"] == pytest.approx(0, abs=1e-9)
    assert h["rain"] == 0 and h["temperature"] == 25
    assert (h["observed"], h["missing_source"], h["missing_quarantined"], h["missing_offline"]) == (33, 1, 1, 1)

    empty = hourly[12]
    assert (empty["observed"], empty["missing_offline"]) == (0, 36)
    assert empty["temperature"] is None and empty["heat_index"] is None


def test_weather_daily_needs_18_hours_and_heat_index_only_in_summer(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild

    full, short = "wx-0001", "wx-0003"             # wx-0003 was installed on 2025-12-28
    rows = []
    for day in (datetime(2026, 9, 30, tzinfo=KST), datetime(2026, 10, 1, tzinfo=KST)):
        for device, hours in ((full, 18), (short, 17)):
            starts = [day + timedelta(hours=h) for h in range(hours)]
            for i, start in enumerate(starts):
                rows += _series(device, "weather", "temperature", start, [20.0 + i], 60)
                rows += _series(device, "weather", "humidity", start, [50.0], 60)
                rows += _series(device, "weather", "rain", start, [1.5 if i in (3, 4) else 0.0], 60)
                rows += _series(device, "weather", "wind_speed", start, [float(i % 5)], 60)
    _write(_silver(rows))

    rebuild("weather", ["2026-09-30", "2026-10-01"])
    sept = {r["device_id"]: r for r in _gold("weather_station_daily", date="2026-09-30")}
    d = sept[full]
    assert d["period_start"] == datetime(2026, 9, 30, tzinfo=KST)
    assert d["period_end"] == datetime(2026, 10, 1, tzinfo=KST)
    assert d["temperature"] == pytest.approx(sum(20.0 + i for i in range(18)) / 18)   # 28.5
    assert (d["temperature_min"], d["temperature_max"], d["temperature_hours"]) == (20, 37, 18)
    assert d["humidity"] == 50 and d["wind_speed_max"] == 4
    assert (d["rain"], d["rain_hours"]) == (3.0, 2)
    assert d["heat_index_max"] == pytest.approx(_kma_summer_apparent(37.0, 50.0))     # the warmest hour's
    assert (d["expected"], d["observed"]) == (24 * 36, 18 * 4)
    assert d["completeness"] == pytest.approx(72 / 864)
    assert d["missing_offline"] == 864 - 72

    s = sept[short]
    assert s["temperature"] is None and s["humidity"] is None and s["temperature_hours"] == 17  # 17 < 18
    assert (s["temperature_min"], s["temperature_max"]) == (20, 36)

    october = {r["device_id"]: r for r in _gold("weather_station_daily", date="2026-10-01")}
    assert october[full]["temperature"] == pytest.approx(28.5)
    assert october[full]["heat_index_max"] is None                     # KMA's summer index: May-September
    assert set(october) == {"wx-0001", "wx-0002", "wx-0003"}            # every installed station has a row
    assert october["wx-0002"]["observed"] == 0 and october["wx-0002"]["completeness"] == 0


WQ = "wq-0001"      # small fleet: installed 2019-01-08, 900 s, five metrics -> 20 readings an hour


def test_water_hourly_means_exceeding_readings_and_completeness(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild

    nine = datetime(2026, 8, 10, 9, tzinfo=KST)
    ten = nine + timedelta(hours=1)
    rows = [
        *_series(WQ, "water_quality", "ph", nine, [7.0, 7.2, 8.6, 8.5], 15),           # 8.5 is on the bound
        *_series(WQ, "water_quality", "dissolved_oxygen", nine, [6.0, 4.9, 5.0, 6.0], 15),
        *_series(WQ, "water_quality", "turbidity", nine, [10.0] * 4, 15),
        *_series(WQ, "water_quality", "conductivity", nine, [500.0] * 4, 15),
        *_series(WQ, "water_quality", "water_temp", nine, [25.0] * 4, 15),
        *_series(WQ, "water_quality", "ph", ten, [7.0] * 4, 15),
    ]
    _write(_silver(rows))
    _write_quarantine([_quarantine(WQ, "water_quality", "turbidity", ten, "sentinel"),
                       _quarantine(WQ, "water_quality", "conductivity", ten, "out_of_physical_range")])

    rebuild("water_quality", ["2026-08-10"])
    hourly = _gold("water_quality_hourly", device_id=WQ)
    assert len(hourly) == 24
    h = hourly[9]
    assert h["ph"] == pytest.approx(7.825) and h["dissolved_oxygen"] == pytest.approx(5.475)
    assert (h["turbidity"], h["conductivity"], h["water_temp"]) == (10, 500, 25)
    assert (h["exceeding_readings"], h["exceeding_metrics"]) == (2, "dissolved_oxygen;ph")
    assert (h["expected"], h["observed"], h["missing_offline"]) == (20, 20, 0)
    h = hourly[10]
    assert (h["exceeding_readings"], h["exceeding_metrics"], h["turbidity"]) == (0, None, None)
    assert (h["observed"], h["missing_source"], h["missing_quarantined"], h["missing_offline"]) == (4, 1, 1, 14)


def _at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 8, day, hour, minute, tzinfo=KST)


def test_water_exceedance_events_clipped_to_the_day_and_rebuilt_per_date(lake_env: Path) -> None:
    from etl import tables
    from etl.aggregate.runner import MODELS, rebuild
    from etl.storage import lake

    rows = [
        *_series(WQ, "water_quality", "turbidity", _at(10, 10, 0), [50, 120, 180, 150, 90, 80], 15),
        *_series(WQ, "water_quality", "dissolved_oxygen", _at(10, 23, 15), [6.0, 4.5, 4.0], 15),
        *_series(WQ, "water_quality", "dissolved_oxygen", _at(11, 0, 0), [3.8, 4.2, 5.5], 15),
        *_series(WQ, "water_quality", "ph", _at(11, 6, 0), [6.0, 9.0, 7.0], 15),
    ]
    _write(_silver(rows))
    rebuild("water_quality", ["2026-08-10", "2026-08-11"])
    events = _gold("water_quality_exceedances", device_id=WQ)
    assert len(events) == 5

    turbidity = _gold("water_quality_exceedances", metric="turbidity")[0]       # within one day
    assert (turbidity["bound"], turbidity["limit_value"], turbidity["unit"]) == ("max", 100, "NTU")
    assert (turbidity["start_ts"], turbidity["end_ts"]) == (_at(10, 10, 15), _at(10, 11, 0))
    assert (turbidity["peak_value"], turbidity["peak_ts"], turbidity["readings"]) == (180, _at(10, 10, 30), 3)
    assert (turbidity["open_at_start"], turbidity["open_at_end"]) == (False, False)
    assert (turbidity["period_start"], turbidity["period_end"]) == (_at(10, 10, 15), _at(10, 11, 0))
    assert turbidity["date"] == "2026-08-10" and turbidity["duration_min"] == 45
    assert turbidity["limit_name_ko"] == "탁도 100 NTU 초과" and turbidity["district_code"] == "31103"

    before, after = _gold("water_quality_exceedances", metric="dissolved_oxygen")   # across midnight
    assert (before["date"], before["bound"], before["limit_value"]) == ("2026-08-10", "min", 5.0)
    assert (before["open_at_start"], before["open_at_end"]) == (False, True)
    assert (before["start_ts"], before["end_ts"]) == (_at(10, 23, 30), _at(10, 23, 45))  # the last exceeding
    assert (before["period_start"], before["period_end"]) == (_at(10, 23, 30), _at(11, 0, 0))
    assert (before["peak_value"], before["peak_ts"], before["readings"]) == (4.0, _at(10, 23, 45), 2)
    assert after["date"] == "2026-08-11"
    assert (after["open_at_start"], after["open_at_end"]) == (True, False)
    assert (after["start_ts"], after["end_ts"]) == (_at(11, 0, 0), _at(11, 0, 30))
    assert (after["period_start"], after["period_end"]) == (_at(11, 0, 0), _at(11, 0, 30))
    assert (after["peak_value"], after["peak_ts"], after["readings"]) == (3.8, _at(11, 0, 0), 2)

    low, high = _gold("water_quality_exceedances", metric="ph")      # below, then straight above: two events
    assert (low["bound"], low["start_ts"], low["end_ts"], low["readings"]) == ("min", _at(11, 6, 0), _at(11, 6, 15), 1)
    assert (high["bound"], high["limit_value"], high["end_ts"]) == ("max", 8.5, _at(11, 6, 30))

    # A late reading closes the evening event before midnight: only 2026-08-10 is rebuilt, and the
    # next day's row, which depends on that day's readings alone, is left as it was.
    table = next(m.table for m in MODELS if m.name == "water_quality_exceedances")
    files_11 = {a for a in tables.open_table(lake(), table).file_uris() if "date=2026-08-11" in a}
    _write(_silver(_series(WQ, "water_quality", "dissolved_oxygen", _at(10, 23, 50), [5.2], 15)))
    rebuild("water_quality", ["2026-08-10"])
    dt = tables.open_table(lake(), table)
    assert {a for a in dt.file_uris() if "date=2026-08-11" in a} == files_11
    assert "2026-08-11" not in dt.history(1)[0]["operationParameters"]["predicate"]
    before, after = _gold("water_quality_exceedances", metric="dissolved_oxygen")
    assert (before["open_at_end"], before["end_ts"], before["period_end"]) == (False, _at(10, 23, 50), _at(10, 23, 50))
    assert after["open_at_start"] is True and after["start_ts"] == _at(11, 0, 0)
