"""Gold models on tiny hand-made silver: values, indices, completeness, rebuild semantics."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

KST = timezone(timedelta(hours=9))
DAY = date(2026, 11, 24)


def _silver(rows: list[dict[str, Any]]) -> pa.Table:
    from etl import tables
    from etl.timeutil import kst_date

    full = [{"domain": "air_quality", "unit": "", "quality_flag": None, "source": "test", "batch_id": "b1",
             "received_at": r["ts"], "subject": None, "date": kst_date(r["ts"]).isoformat(), **r} for r in rows]
    return pa.Table.from_pylist(full, schema=tables.SILVER_SCHEMA)


def _write(table: pa.Table, name: str = "silver") -> None:
    from deltalake import write_deltalake

    from etl import tables
    from etl.storage import lake

    store = lake()
    write_deltalake(store.table_uri(name), table, mode="append", partition_by=tables.PARTITIONS[name],
                    storage_options=store.delta_options())


def _station(registry: pa.Table) -> dict[str, Any]:
    import pyarrow.compute as pc

    return registry.filter(pc.equal(registry["kind"], "reference_station")).slice(0, 1).to_pylist()[0]


def _hours(start: datetime, n: int) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(n)]


GASES = {"o3": 0.031, "no2": 0.024, "co": 0.45, "so2": 0.003}


def _station_rows(device: str, start: datetime, pm10: list[float | None], pm25: list[float | None],
                  gases: dict[str, float] = GASES) -> list[dict[str, Any]]:
    rows = []
    for i, ts in enumerate(_hours(start, len(pm10))):
        for metric, value in (("pm10", pm10[i]), ("pm25", pm25[i]), *gases.items()):
            if value is not None:
                rows.append({"device_id": device, "metric": metric, "ts": ts.astimezone(timezone.utc), "value": value})
    return rows


def _gold(name: str, **where: Any) -> list[dict[str, Any]]:
    from etl.aggregate.runner import MODELS
    from etl import tables
    from etl.storage import lake

    table = next(m.table for m in MODELS if m.name == name)
    rows = tables.read(lake(), table).to_pylist()
    return sorted([r for r in rows if all(r[k] == v for k, v in where.items())],
                  key=lambda r: (r.get("period_start"), r.get("device_id") or r.get("district_code")))


def test_station_hourly_values_indices_and_completeness(lake_env: Path) -> None:
    from etl.aggregate import indices
    from etl.aggregate.runner import rebuild
    from etl.registry.load import load_registry

    st = _station(load_registry())
    start = datetime(2026, 11, 23, 0, tzinfo=KST)                  # the day before: the PM lookback
    pm10 = [40.0 + (i % 7) for i in range(48)]
    pm25 = [20.0 + (i % 5) for i in range(48)]
    pm25[30] = None                                                 # 2026-11-24 06:00 KST: source said "-"
    rows = _station_rows(st["device_id"], start, pm10, pm25)
    _write(_silver(rows))
    from etl import tables
    q = pa.Table.from_pylist([{
        "source": "airkorea", "batch_id": "b1", "frame": 0, "reason": "source_missing", "detail": "pm25Value='-'",
        "ref": st["external_id"], "device_id": st["device_id"], "domain": "air_quality", "metric": "pm25",
        "ts": datetime(2026, 11, 24, 6, tzinfo=KST).astimezone(timezone.utc), "value": None, "unit": "ug/m3",
        "raw": None, "received_at": datetime(2026, 11, 24, 7, tzinfo=KST), "date": "2026-11-24"}],
        schema=tables.QUARANTINE_SCHEMA)
    _write(q, "quarantine")

    result = rebuild("air_quality", [DAY.isoformat()])
    assert result["tables"]["air_quality_station_hourly"] > 0
    hourly = _gold("air_quality_station_hourly", device_id=st["device_id"])
    assert [r["date"] for r in hourly] == [DAY.isoformat()] * 24   # only the date asked for is written
    assert [r["hour"] for r in hourly] == list(range(24))
    h = hourly[9]                                                   # 09:00-10:00 KST
    assert h["period_start"] == datetime(2026, 11, 24, 9, tzinfo=KST)
    assert h["period_end"] - h["period_start"] == timedelta(hours=1)
    assert h["pm10"] == pm10[33] and h["o3"] == GASES["o3"]
    # the same index as the Python reference over the same trailing hours
    series = {"pm10": pm10[:34], "pm25": pm25[:34], **{g: [v] * 34 for g, v in GASES.items()}}
    ref = indices.cai_for_hour(series)
    assert (h["cai"], h["cai_grade"], h["cai_main"]) == (ref.index, ref.grade, ref.main_pollutant)
    assert h["pm25_24h"] == pytest.approx(indices.pm_predicted_24h(pm25[:34], "pm25"))
    aqi = indices.us_aqi_for_hour(series)
    assert (h["us_aqi"], h["aqi_main"]) == (aqi.index, aqi.main_pollutant)
    assert h["cai_version"] == indices.CAI.version and h["aqi_version"] == indices.AQI.version
    assert h["cai_grade_ko"] in ("좋음", "보통", "나쁨", "매우나쁨")
    # completeness: 6 metrics an hour expected; the missing PM2.5 is the source's
    assert (h["expected"], h["observed"], h["missing_offline"]) == (6, 6, 0)
    gap = hourly[6]
    assert (gap["observed"], gap["missing_source"], gap["missing_offline"], gap["pm25"]) == (5, 1, 0, None)


def test_cai_needs_its_required_pollutants(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild
    from etl.registry.load import load_registry

    st = _station(load_registry())
    start = datetime(2026, 11, 23, 0, tzinfo=KST)
    rows = _station_rows(st["device_id"], start, [30.0] * 48, [15.0] * 48, {"o3": 0.02, "co": 0.3, "so2": 0.002})
    _write(_silver(rows))                                           # no NO2 at all
    rebuild("air_quality", [DAY.isoformat()])
    hourly = _gold("air_quality_station_hourly", device_id=st["device_id"])
    assert all(r["cai"] is None and r["cai_grade"] is None for r in hourly)
    assert all(r["cai_pm10"] is not None and r["us_aqi"] is not None for r in hourly)
    assert all(r["missing_offline"] == 1 for r in hourly)           # the NO2 reading never came


def test_district_rows_and_daily_rows(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild
    from etl.registry.load import load_registry

    st = _station(load_registry())
    start = datetime(2026, 11, 23, 0, tzinfo=KST)
    _write(_silver(_station_rows(st["device_id"], start, [50.0] * 48, [25.0] * 48)))
    rebuild("air_quality", [DAY.isoformat()])
    district = _gold("air_quality_district_hourly", district_code=st["district_code"])
    assert len(district) == 24 and district[12]["pm10"] == 50.0 and district[12]["stations_reporting"] == 1
    station = _gold("air_quality_station_hourly", device_id=st["device_id"])
    assert district[12]["cai"] == station[12]["cai"] is not None
    daily = _gold("air_quality_station_daily", device_id=st["device_id"])
    assert len(daily) == 1 and daily[0]["pm10"] == 50.0 and daily[0]["cai_hours"] == 24
    assert sum(daily[0][k] for k in ("hours_good", "hours_moderate", "hours_bad", "hours_very_bad")) == 24
    dd = _gold("air_quality_district_daily", district_code=st["district_code"])
    assert len(dd) == 1 and dd[0]["completeness"] is not None


def test_late_data_rebuilds_only_its_dates_and_rebuilds_are_idempotent(lake_env: Path) -> None:
    from etl import tables
    from etl.aggregate.runner import MODELS, rebuild, with_followers
    from etl.registry.load import load_registry
    from etl.storage import lake

    st = _station(load_registry())
    start = datetime(2026, 11, 21, 0, tzinfo=KST)
    _write(_silver(_station_rows(st["device_id"], start, [30.0] * 96, [10.0] * 96)))
    days = ["2026-11-22", "2026-11-23", "2026-11-24"]
    rebuild("air_quality", days)
    table = next(m.table for m in MODELS if m.name == "air_quality_station_hourly")
    before = tables.read(lake(), table).sort_by([("date", "ascending"), ("period_start", "ascending"),
                                                 ("device_id", "ascending")])
    rebuild("air_quality", days)                                    # a re-run: the same rows
    again = tables.read(lake(), table).sort_by([("date", "ascending"), ("period_start", "ascending"),
                                                ("device_id", "ascending")])
    assert again.equals(before)

    # a late batch: a second SO2 reading at 2026-11-23 05:30 KST
    late = _silver([{"device_id": st["device_id"], "metric": "so2", "value": 0.004, "batch_id": "late",
                     "ts": datetime(2026, 11, 23, 5, 30, tzinfo=KST).astimezone(timezone.utc)}])
    _write(late)
    # the late date, and the day after it (whose 24-hour PM reads it), are rebuilt; not the day before
    assert with_followers("air_quality", ["2026-11-23"]) == ["2026-11-23", "2026-11-24"]
    assert with_followers("air_quality", ["2026-11-24"]) == ["2026-11-24"]     # no silver for the 25th
    dt = tables.open_table(lake(), table)
    files_22 = {a for a in dt.file_uris() if "date=2026-11-22" in a}
    rebuild("air_quality", with_followers("air_quality", ["2026-11-23"]))
    dt = tables.open_table(lake(), table)
    assert {a for a in dt.file_uris() if "date=2026-11-22" in a} == files_22   # untouched
    assert "2026-11-22" not in dt.history(1)[0]["operationParameters"]["predicate"]
    row = _gold("air_quality_station_hourly", device_id=st["device_id"], date="2026-11-23")[5]
    assert row["so2"] == pytest.approx((0.003 + 0.004) / 2) and row["observed"] == 7


def test_every_model_documents_exactly_its_columns(lake_env: Path) -> None:
    """The @column lines (DuckDB comments, docs/AGGREGATES.md) list each output column, in order."""
    from etl.aggregate import reference, runner
    from etl.storage import lake
    from quality.reasons import REASONS

    assert set(runner.SOURCE_MARKED) <= set(REASONS)
    con = runner.session(lake())
    try:
        runner._ensure_inputs(con, "summary")
        for m in runner.MODELS:
            if m.domain == "streetlights":
                from etl.aggregate.sun import sun_times

                con.register("sun", sun_times([DAY.isoformat()]))
            out = con.execute(runner.model_sql(m.name), runner._used(m.name, runner.parameters([DAY.isoformat()], m)))
            names = [d[0] for d in out.description]
            doc, columns = runner.model_doc(m.name)
            assert names == list(columns), m.name
            assert doc and "date" in names and "period_start" in names and "period_end" in names, m.name
    finally:
        con.close()
    text = (Path(__file__).resolve().parents[2] / "docs" / "AGGREGATES.md").read_text(encoding="utf-8")
    from quality.reference import render

    assert render(text, reference.SECTIONS) == text, "docs/AGGREGATES.md is stale: python -m etl.aggregate.reference"


def test_district_summary_joins_the_domains_of_the_day(lake_env: Path) -> None:
    from etl.aggregate.runner import rebuild
    from etl.registry.load import load_registry

    st = _station(load_registry())
    _write(_silver(_station_rows(st["device_id"], datetime(2026, 11, 23, 0, tzinfo=KST), [50.0] * 48, [25.0] * 48)))
    rebuild("air_quality", [DAY.isoformat()])
    rebuild("summary", [DAY.isoformat()])                      # the other domains have no gold tables yet
    rows = _gold("district_daily_summary", date=DAY.isoformat())
    assert len(rows) == len({r["district_code"] for r in load_registry().to_pylist()})
    mine = next(r for r in rows if r["district_code"] == st["district_code"])
    daily = _gold("air_quality_district_daily", district_code=st["district_code"])[0]
    assert (mine["cai_max"], mine["pm25"]) == (daily["cai_max"], 25.0)
    assert mine["water_exceedances"] == 0 and mine["lights"] is None and mine["daycare_arrivals"] is None
    assert mine["expected"] >= daily["expected"] and mine["observed"] == daily["observed"]
