"""Smart-bin and parking gold models on tiny hand-made silver: fill levels, collections,
overflow ranking, time-weighted occupancy, availability and rebuild semantics."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl.timeutil import KST, UTC

DAY = date(2026, 11, 24)
PREV = DAY - timedelta(days=1)


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=KST)


def _row(device: str, domain: str, metric: str, ts: datetime, value: float) -> dict[str, Any]:
    return {"device_id": device, "domain": domain, "metric": metric, "ts": ts.astimezone(UTC), "value": value}


def _write_silver(rows: list[dict[str, Any]], batch_id: str = "b1") -> None:
    from etl import tables
    from etl.storage import SILVER, lake
    from etl.timeutil import kst_date
    from quality.metrics import canonical_units

    units = canonical_units()
    full = [{"unit": units[r["metric"]], "quality_flag": None, "source": "test", "batch_id": batch_id,
             "received_at": r["ts"], "subject": None, "date": kst_date(r["ts"]).isoformat(), **r} for r in rows]
    tables.append_once(lake(), SILVER, pa.Table.from_pylist(full, schema=tables.SILVER_SCHEMA), batch_id)


def _write_quarantined(row: dict[str, Any], reason: str) -> None:
    from etl import tables
    from etl.storage import QUARANTINE, lake
    from etl.timeutil import kst_date

    full = {"source": "test", "batch_id": "q1", "frame": 0, "reason": reason, "detail": reason, "ref": None,
            "unit": None, "raw": None, "received_at": row["ts"], "date": kst_date(row["ts"]).isoformat(), **row}
    tables.append_once(lake(), QUARANTINE, pa.Table.from_pylist([full], schema=tables.QUARANTINE_SCHEMA), "q1")


def _gold(name: str, **where: Any) -> list[dict[str, Any]]:
    from etl import tables
    from etl.aggregate.runner import MODELS
    from etl.storage import lake

    table = next(m.table for m in MODELS if m.name == name)
    rows = [r for r in tables.read(lake(), table).to_pylist() if all(r[k] == v for k, v in where.items())]
    return sorted(rows, key=lambda r: tuple(str(r.get(k)) for k in ("date", "period_start", "device_id")))


def _devices(kind: str) -> list[dict[str, Any]]:
    import pyarrow.compute as pc

    from etl.registry.load import load_registry

    registry = load_registry()
    return registry.filter(pc.equal(registry["kind"], kind)).to_pylist()


def _uplink(device: str, ts: datetime, fill: float, battery: float = 80.0, tilt: float = 0.0) -> list[dict[str, Any]]:
    """One smart-bin uplink: the four metrics of the registry."""
    distance = 1000.0 * (1 - fill / 100.0) + 30
    return [_row(device, "waste_bins", metric, ts, value)
            for metric, value in (("fill_level", fill), ("distance", distance), ("battery", battery), ("tilt", tilt))]


def _occupied(space: str, ts: datetime, value: int) -> dict[str, Any]:
    return _row(space, "parking", "occupied", ts, float(value))


# ---- smart bins ---------------------------------------------------------------------------------
def _ramp_bin_rows(device: str) -> list[dict[str, Any]]:
    """Uplinks at hh:10 KST: 10 % rising 5 points an hour to 95 % at 17:10, emptied to 5 % at 18:10,
    then 2 points an hour. Hour 5 never arrived, hour 7's battery reading was quarantined, an
    extra fill reading came at 12:40, the battery drops to 79 % from 12:00 and the bin is tilted at 20:10."""
    rows = []
    for h in range(24):
        if h == 5:
            continue
        fill = 10.0 + 5 * h if h <= 17 else 5.0 + 2 * (h - 18)
        uplink = _uplink(device, _at(DAY, h, 10), fill, battery=80.0 - (h >= 12), tilt=float(h == 20))
        rows += [r for r in uplink if not (h == 7 and r["metric"] == "battery")]
    rows.append(_row(device, "waste_bins", "fill_level", _at(DAY, 12, 40), 72.0))
    return rows


def _midnight_bin_rows(device: str) -> list[dict[str, Any]]:
    """92 % at 23:10 the day before, 4 % at 00:10 (a collection found through the lookback), then a
    drop of 29 points (not a collection) and one of exactly 30 (a collection)."""
    fills = [(_at(PREV, 22, 10), 80.0), (_at(PREV, 23, 10), 92.0), (_at(DAY, 0, 10), 4.0), (_at(DAY, 1, 10), 40.0),
             (_at(DAY, 2, 10), 11.0), (_at(DAY, 3, 10), 45.0), (_at(DAY, 4, 10), 15.0)]
    return [r for ts, fill in fills for r in _uplink(device, ts, fill)]


def test_bin_hourly_collections_and_daily(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild

    ramp, midnight = (d["device_id"] for d in _devices("smart_bin")[:2])
    _write_silver(_ramp_bin_rows(ramp) + _midnight_bin_rows(midnight))
    _write_quarantined(_row(ramp, "waste_bins", "battery", _at(DAY, 7, 10), 250.0), "out_of_physical_range")
    result = rebuild("waste_bins", [DAY.isoformat()])
    assert set(result["tables"]) == {"waste_bins_hourly", "waste_bins_collections", "waste_bins_daily",
                                     "waste_bins_to_empty"}

    hourly = _gold("waste_bins_hourly", device_id=ramp)
    assert [r["hour"] for r in hourly] == list(range(24)) and {r["date"] for r in hourly} == {DAY.isoformat()}
    h12 = hourly[12]
    assert h12["period_start"] == _at(DAY, 12) and h12["period_end"] == _at(DAY, 13)
    assert (h12["fill_level_mean"], h12["fill_level_max"], h12["fill_level_last"]) == (71.0, 72.0, 72.0)
    assert (h12["battery_last"], h12["battery_min"], h12["tilted"]) == (79.0, 79.0, False)
    assert (h12["expected"], h12["observed"], h12["missing_offline"]) == (4, 5, 0)   # an extra reading: none missing
    assert hourly[20]["tilted"] is True
    gap = hourly[5]
    assert (gap["fill_level_mean"], gap["tilted"], gap["observed"], gap["missing_offline"]) == (None, None, 0, 4)
    h7 = hourly[7]
    assert (h7["observed"], h7["missing_quarantined"], h7["missing_offline"], h7["battery_last"]) == (3, 1, 0, None)

    collections = _gold("waste_bins_collections")
    assert [(c["device_id"], c["period_end"]) for c in collections] == [
        (midnight, _at(DAY, 0, 10)), (midnight, _at(DAY, 4, 10)), (ramp, _at(DAY, 18, 10))]
    emptied = collections[2]
    assert (emptied["fill_before"], emptied["fill_after"], emptied["drop_pct"]) == (95.0, 5.0, 90.0)
    assert (emptied["date"], emptied["hour"], emptied["period_start"]) == (DAY.isoformat(), 18, _at(DAY, 17, 10))
    overnight = collections[0]
    assert (overnight["period_start"], overnight["hours_between"], overnight["fill_before"]) == (_at(PREV, 23, 10), 1.0, 92.0)
    assert overnight["date"] == DAY.isoformat() and overnight["district_code"]

    daily = {r["device_id"]: r for r in _gold("waste_bins_daily")}
    d = daily[ramp]
    assert (d["period_start"], d["period_end"]) == (_at(DAY, 0), _at(DAY + timedelta(days=1), 0))
    assert (d["overflow_hours"], d["collections"], d["fill_level_max"], d["fill_level_last"]) == (2, 1, 95.0, 15.0)
    assert (d["battery_min"], d["tilted_hours"]) == (79.0, 1)
    assert (d["expected"], d["observed"], d["missing_quarantined"], d["missing_offline"]) == (96, 92, 1, 4)
    assert d["completeness"] == pytest.approx(92 / 96)
    assert daily[midnight]["collections"] == 2 and daily[midnight]["overflow_hours"] == 0
    silent = [r for device, r in daily.items() if device not in (ramp, midnight)]
    assert silent and all(r["observed"] == 0 and r["completeness"] == 0 and r["collections"] == 0 for r in silent)

    to_empty = {r["device_id"]: r for r in _gold("waste_bins_to_empty")}
    t = to_empty[ramp]                          # rate over the readings since the 18:10 collection
    assert (t["last_collection_at"], t["rate_since"], t["rate_readings"]) == (_at(DAY, 18, 10), _at(DAY, 18, 10), 6)
    assert (t["fill_level"], t["last_reading_at"], t["overflowing"]) == (15.0, _at(DAY, 23, 10), False)
    assert t["fill_rate"] == pytest.approx(2.0) and t["hours_to_overflow"] == pytest.approx(37.5)
    assert t["overflow_eta"] == _at(DAY, 23, 10) + timedelta(hours=37.5)


def test_bins_to_empty_ranked_per_district(lake_env: Path) -> None:
    from collections import Counter

    from etl.aggregate.runner import rebuild

    bins = _devices("smart_bin")
    district = Counter(b["district_code"] for b in bins).most_common(1)[0][0]
    x, y, z = sorted(b["device_id"] for b in bins if b["district_code"] == district)[:3]
    ramps = {x: [50.0, 55.0, 60.0, 65.0],      # 5 points/h: 25 to go, 5 h
             y: [84.0, 86.0, 88.0, 91.0],      # already overflowing: 0 h
             z: [30.0, 40.0, 50.0, 60.0]}      # 10 points/h: 30 to go, 3 h
    _write_silver([r for device, fills in ramps.items() for h, fill in enumerate(fills)
                   for r in _uplink(device, _at(DAY, 20 + h), fill)])
    rebuild("waste_bins", [DAY.isoformat()])

    rows = {r["device_id"]: r for r in _gold("waste_bins_to_empty", date=DAY.isoformat())}
    assert [rows[d]["rank"] for d in (y, z, x)] == [1, 2, 3]
    assert (rows[y]["overflowing"], rows[y]["hours_to_overflow"]) == (True, 0.0)
    assert rows[y]["fill_rate"] == pytest.approx(2.3)                          # least squares over 4 readings
    assert rows[z]["fill_rate"] == pytest.approx(10.0) and rows[z]["hours_to_overflow"] == pytest.approx(3.0)
    assert rows[x]["fill_rate"] == pytest.approx(5.0) and rows[x]["hours_to_overflow"] == pytest.approx(5.0)
    assert rows[x]["overflow_eta"] == _at(DAY + timedelta(days=1), 4)
    assert (rows[x]["rate_since"], rows[x]["rate_readings"], rows[x]["last_collection_at"]) == (_at(DAY, 20), 4, None)
    others = [r for device, r in rows.items() if device not in ramps]
    assert others and all(r["rank"] is None and r["fill_level"] is None for r in others)
    assert len(rows) == len(bins) and {r["period_end"] - r["period_start"] for r in rows.values()} == {timedelta(days=1)}


# ---- parking ------------------------------------------------------------------------------------
def _lot_rows(s1: str, s2: str, s3: str, s4: str, s5: str) -> list[dict[str, Any]]:
    """Occupancy of five spaces of a lot (the others never report): s3 taken since 23:30 the day
    before; s2 taken and s1 free before 10:00, s1 taken 10:15-10:45; s1 in and out at noon; in the
    evening s5 taken at 20:59, s4 free at 21:30, s1 taken from 22:40 (heartbeat at 23:00:30)."""
    rows = [_occupied(s3, _at(PREV, 23, 30), 1)]                  # carried over midnight, until 01:30
    rows += [_occupied(s2, _at(DAY, 9, 30), 1), _occupied(s1, _at(DAY, 9, 50), 0),
             _occupied(s1, _at(DAY, 10, 0, 30), 0), _row(s1, "parking", "temperature", _at(DAY, 10, 0, 30), 5.0),
             _occupied(s1, _at(DAY, 10, 15), 1), _occupied(s1, _at(DAY, 10, 45), 0), _occupied(s2, _at(DAY, 10, 45), 0),
             _occupied(s1, _at(DAY, 11, 0, 30), 0)]
    rows += [_occupied(s1, _at(DAY, 12, 4 * i), 1 - i % 2) for i in range(14)]   # in and out every 4 minutes
    rows += [_occupied(s5, _at(DAY, 20, 59), 1), _occupied(s4, _at(DAY, 21, 30), 0),
             _occupied(s1, _at(DAY, 22, 40), 1), _occupied(s1, _at(DAY, 23, 0, 30), 1)]
    return rows


def _first_lot() -> tuple[str, list[str]]:
    """A lot of the registry and its spaces."""
    spaces = _devices("parking_space")
    lot = spaces[0]["group_id"]
    return lot, sorted(s["device_id"] for s in spaces if s["group_id"] == lot)


def test_parking_hourly_time_weighted_occupancy(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild

    lot, spaces = _first_lot()
    _write_silver(_lot_rows(*spaces[:5]))
    rebuild("parking", [DAY.isoformat()])
    hourly = _gold("parking_lot_hourly", lot_id=lot)
    assert [r["hour"] for r in hourly] == list(range(24)) and {r["date"] for r in hourly} == {DAY.isoformat()}
    assert all(r["spaces"] == len(spaces) and r["expected"] == 2 * len(spaces) for r in hourly)
    assert hourly[0]["lot_name_en"] and hourly[0]["district_code"]

    def occupancy(h: int) -> tuple[Any, ...]:
        r = hourly[h]
        return r["spaces_known"], r["occupancy_rate"], r["occupied_mean"], r["occupied_peak"], r["arrivals"]

    assert occupancy(0) == (1, 1.0, 1.0, 1, 0)                    # the state of 23:30 the day before
    assert occupancy(1) == (1, 1.0, 0.5, 1, 0)                    # ... known until 01:30 (two heartbeats)
    assert occupancy(2) == (0, None, None, None, 0)
    # 09:30 s2 occupied, 09:50 s1 free: 30 of 40 known space-minutes occupied
    assert occupancy(9) == (2, pytest.approx(0.75), pytest.approx(0.5), 1, 0)
    # s1 occupied 10:15-10:45, s2 until 10:45: 75 of 120 space-minutes, both at once from 10:15
    assert occupancy(10) == (2, pytest.approx(0.625), pytest.approx(1.25), 2, 1)
    assert occupancy(11) == (2, 0.0, 0.0, 0, 0)
    # s1 in for 7 x 4 minutes; s2's free state of 10:45 holds until 12:45: 28 of 105 known minutes
    assert occupancy(12) == (2, pytest.approx(28 / 105), pytest.approx(28 / 60), 1, 7)
    h10, h12 = hourly[10], hourly[12]
    assert (h10["observed"], h10["missing_offline"]) == (5, 7)
    assert (h12["observed"], h12["missing_offline"]) == (14, 0)   # change uplinks outnumber the heartbeats


def test_parking_availability_as_of_end_of_day(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild

    lot, spaces = _first_lot()
    _write_silver(_lot_rows(*spaces[:5]))
    rebuild("parking", [DAY.isoformat()])
    (row,) = _gold("parking_lot_availability", lot_id=lot)
    assert row["date"] == DAY.isoformat() and row["as_of"] == _at(DAY, 23, 0, 30)
    # known since 21:00:30: s1 occupied (23:00:30), s4 free (21:30); s5 (20:59) and the rest are stale
    assert (row["spaces"], row["occupied"], row["free"], row["stale_spaces"]) == (len(spaces), 1, 1, len(spaces) - 2)
    assert row["occupancy_rate"] == 0.5 and row["lat"] is not None
    other = [r for r in _gold("parking_lot_availability") if r["lot_id"] != lot]
    assert other and all(r["as_of"] is None and r["stale_spaces"] == r["spaces"] for r in other)
    assert all(r["occupancy_rate"] is None for r in other)


def test_rebuilding_one_date_leaves_the_other_untouched(lake_env: Path) -> None:
    from etl import tables
    from etl.aggregate.runner import MODELS, rebuild
    from etl.storage import lake

    bin_id = _devices("smart_bin")[1]["device_id"]
    lot, spaces = _first_lot()
    _write_silver(_midnight_bin_rows(bin_id) + _lot_rows(*spaces[:5]))
    days = [PREV.isoformat(), DAY.isoformat()]
    mine = [m for m in MODELS if m.domain in ("waste_bins", "parking")]
    for domain in ("waste_bins", "parking"):
        rebuild(domain, days)
    files = {m.name: {f for f in tables.open_table(lake(), m.table).file_uris() if f"date={DAY}" in f} for m in mine}
    assert all(files.values())
    assert _gold("parking_lot_availability", date=PREV.isoformat())[0]["as_of"] == _at(PREV, 23, 30)

    late = [_occupied(spaces[5], _at(PREV, 23, 45), 0)] + _uplink(bin_id, _at(PREV, 23, 40), 99.0)
    _write_silver(late, "late")
    for domain in ("waste_bins", "parking"):
        rebuild(domain, [PREV.isoformat()])
    for m in mine:
        assert {f for f in tables.open_table(lake(), m.table).file_uris() if f"date={DAY}" in f} == files[m.name]
    prev = [r for r in _gold("parking_lot_availability", date=PREV.isoformat()) if r["lot_id"] == lot]
    assert prev[0]["as_of"] == _at(PREV, 23, 45) and (prev[0]["occupied"], prev[0]["free"]) == (1, 1)
    assert _gold("waste_bins_daily", device_id=bin_id, date=PREV.isoformat())[0]["fill_level_last"] == 99.0
