"""Streetlight and daycare gold models on tiny hand-made silver: sunrise/sunset, outages across
midnight, grace minutes, uptime, energy, the district roll-up, small-count suppression and that
no daycare tag reaches gold."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pytest

KST = timezone(timedelta(hours=9))
DAY, NEXT = "2026-11-24", "2026-11-25"
STEP = timedelta(minutes=15)          # the small fleet's lights report every 900 s
MINUTE = timedelta(minutes=1)
LIGHT_MODELS = ("streetlight_outages", "streetlights_daily", "streetlights_district_daily")


# ---- sunrise and sunset ---------------------------------------------------------------------
SEOUL = (37.5665, 126.9780)
# KASI (한국천문연구원) sunrise/sunset for Seoul at sea level, as announced in the press:
# 2015-01-01 07:46:43 (동아사이언스, 2014-12-23); 2016-01-01 07:46:41 (국민일보, 2015-12-22);
# 2023-12-31 sunset 17:23 and 2024-01-01 sunrise 07:47 (동아일보, 2023-12-19). Summer check:
# 2024-06-21 (하지) Seoul 05:11 / 19:56 as reported that day (eggmoneyya.tistory.com/554).
KASI = [
    (date(2015, 1, 1), "sunrise", "07:46:43", 1.0),
    (date(2016, 1, 1), "sunrise", "07:46:41", 1.0),
    (date(2023, 12, 31), "sunset", "17:23:00", 1.5),
    (date(2024, 1, 1), "sunrise", "07:47:00", 1.5),
    (date(2024, 6, 21), "sunrise", "05:11:00", 1.5),
    (date(2024, 6, 21), "sunset", "19:56:00", 1.5),
]


@pytest.mark.parametrize(("day", "event", "kst", "tolerance_min"), KASI)
def test_noaa_sunrise_sunset_match_kasi(day: date, event: str, kst: str, tolerance_min: float) -> None:
    from etl.aggregate.sun import rise_set

    rise, set_ = rise_set(day, *SEOUL)
    got = (rise if event == "sunrise" else set_).astimezone(KST)
    h, m, s = (int(x) for x in kst.split(":"))
    want = datetime(day.year, day.month, day.day, h, m, s, tzinfo=KST)
    assert abs((got - want).total_seconds()) <= tolerance_min * 60


def test_sun_times_for_goyang() -> None:
    from etl.aggregate.sun import rise_set, sun_times

    t = sun_times([NEXT, DAY, DAY])
    assert t.schema.field("sunrise").type == pa.timestamp("us", tz="UTC")
    rows = t.to_pylist()
    assert [r["date"] for r in rows] == [DAY, NEXT]
    for r in rows:
        kst_dates = {r[e].astimezone(KST).date().isoformat() for e in ("sunrise", "sunset")}
        assert kst_dates == {r["date"]}
        assert 7 <= r["sunrise"].astimezone(KST).hour < 8 and r["sunset"].astimezone(KST).hour == 17
    # Goyang lies 0.15° west of Seoul: the sun rises and sets there about 0.6 min later
    seoul = rise_set(date(2026, 11, 24), *SEOUL)
    assert 20 <= (rows[0]["sunrise"] - seoul[0]).total_seconds() <= 60


# ---- lake helpers ---------------------------------------------------------------------------
def _silver(rows: list[dict[str, Any]], domain: str) -> pa.Table:
    from etl import tables
    from etl.timeutil import kst_date

    full = [{"domain": domain, "unit": "", "quality_flag": None, "source": "test", "batch_id": "b1",
             "received_at": r["ts"], "subject": None, "date": kst_date(r["ts"]).isoformat(), **r} for r in rows]
    return pa.Table.from_pylist(full, schema=tables.SILVER_SCHEMA)


def _write(table: pa.Table) -> None:
    from deltalake import write_deltalake

    from etl import tables
    from etl.storage import lake

    store = lake()
    write_deltalake(store.table_uri("silver"), table, mode="append", partition_by=tables.PARTITIONS["silver"],
                    storage_options=store.delta_options())


def _gold(name: str, **where: Any) -> list[dict[str, Any]]:
    from etl import tables
    from etl.aggregate.runner import MODELS
    from etl.storage import lake

    table = next(m.table for m in MODELS if m.name == name)
    rows = tables.read(lake(), table).to_pylist()
    return sorted([r for r in rows if all(r[k] == v for k, v in where.items())],
                  key=lambda r: (r["date"], r["period_start"], r.get("device_id") or r.get("district_code")
                                 or r.get("facility_id")))


def _devices(kind: str) -> list[dict[str, Any]]:
    import pyarrow.compute as pc

    from etl.registry.load import load_registry

    registry = load_registry()
    return registry.filter(pc.equal(registry["kind"], kind)).to_pylist()


# ---- streetlights ---------------------------------------------------------------------------
def _sun() -> dict[str, dict[str, datetime]]:
    from etl.aggregate.sun import sun_times

    return {r["date"]: r for r in sun_times([DAY, NEXT]).to_pylist()}


def _lit_normally(ts: datetime, late_by: timedelta = timedelta(minutes=15)) -> bool:
    """A healthy light: on from ``late_by`` after sunset to 15 min before sunrise."""
    sun = _sun()[ts.astimezone(KST).date().isoformat()]
    return ts >= sun["sunset"] + late_by or ts < sun["sunrise"] - timedelta(minutes=15)


def _light_rows(device: str, start: datetime, end: datetime,
                state: Callable[[datetime], tuple[bool, float, int]]) -> list[dict[str, Any]]:
    """Reports every 15 min in [start, end): state(ts) = (lamp on, power W, fault code)."""
    rows, ts = [], start
    while ts < end:
        on, power, fault = state(ts)
        for metric, value in (("lamp_on", float(on)), ("power", power), ("dimming", 100.0 if on else 0.0),
                              ("fault_code", float(fault))):
            rows.append({"device_id": device, "metric": metric, "ts": ts.astimezone(timezone.utc), "value": value})
        ts += STEP
    return rows


OUTAGE = (datetime(2026, 11, 24, 22, 0, tzinfo=KST), datetime(2026, 11, 25, 3, 0, tzinfo=KST))


def _light_a(ts: datetime) -> tuple[bool, float, int]:
    """Lamp failure (fault 3) from 22:00 to 03:00 across midnight, otherwise healthy."""
    if OUTAGE[0] <= ts < OUTAGE[1]:
        return False, 0.0, 3
    on = _lit_normally(ts)
    return on, 100.0 if on else 0.4, 0


def _light_b(ts: datetime) -> tuple[bool, float, int]:
    """Switches on 45 min after sunset: 15 min later than the 30 grace minutes allow."""
    on = _lit_normally(ts, late_by=timedelta(minutes=45))
    return on, 140.0 if on else 0.4, 0


def _light_c(ts: datetime) -> tuple[bool, float, int]:
    return True, 100.0, 0


@pytest.fixture
def lights(lake_env: Path) -> dict[str, dict[str, Any]]:
    """Three lights of one district: A (outage across midnight), B (late at dusk), C (100 W for
    2 h, then silent); two days of silver, both rebuilt."""
    from etl.aggregate.runner import rebuild

    by_district: dict[str, list[dict[str, Any]]] = {}
    for d in _devices("streetlight"):
        by_district.setdefault(d["district_code"], []).append(d)
    a, b, c = next(ds for ds in by_district.values() if len(ds) >= 3)[:3]
    assert a["interval_s"] == b["interval_s"] == c["interval_s"] == 900
    start, end = datetime(2026, 11, 24, tzinfo=KST), datetime(2026, 11, 26, tzinfo=KST)
    rows = (_light_rows(a["device_id"], start, end, _light_a) + _light_rows(b["device_id"], start, end, _light_b)
            + _light_rows(c["device_id"], datetime(2026, 11, 24, 20, tzinfo=KST),
                          datetime(2026, 11, 24, 22, tzinfo=KST), _light_c))
    _write(_silver(rows, "streetlights"))
    result = rebuild("streetlights", [DAY, NEXT])
    assert set(result["tables"]) == set(LIGHT_MODELS)
    return {"a": a, "b": b, "c": c}


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60.0


def test_outage_across_midnight_is_two_rows_with_open_flags(lights: dict[str, dict[str, Any]]) -> None:
    rows = _gold("streetlight_outages", device_id=lights["a"]["device_id"])
    assert len(rows) == 2        # daytime "off" reports and the dusk within grace are no outages
    evening, morning = rows
    midnight = datetime(2026, 11, 25, tzinfo=KST)
    assert (evening["date"], evening["period_start"], evening["period_end"]) == (DAY, OUTAGE[0], midnight)
    assert (evening["open_at_start"], evening["open_at_end"]) == (False, True)
    assert (morning["date"], morning["period_start"], morning["period_end"]) == (NEXT, midnight, OUTAGE[1])
    assert (morning["open_at_start"], morning["open_at_end"]) == (True, False)
    assert evening["night"] == morning["night"] == DAY
    assert (evening["minutes"], morning["minutes"]) == (120.0, 180.0)
    assert (evening["reports"], morning["reports"]) == (8, 12)     # 22:00-23:45, 00:00-02:45
    assert evening["fault_codes"] == morning["fault_codes"] == "3" and morning["fault_reports"] == 12
    assert evening["district_code"] == lights["a"]["district_code"]


def test_grace_minutes(lights: dict[str, dict[str, Any]]) -> None:
    sun = _sun()
    for day in (DAY, NEXT):
        rows = _gold("streetlight_outages", device_id=lights["b"]["device_id"], date=day)
        assert len(rows) == 1
        # the outage starts at sunset + 30 min (not at sunset) and ends at its first "on" report
        window_start = sun[day]["sunset"] + timedelta(minutes=30)
        midnight = datetime.fromisoformat(day).replace(tzinfo=KST)
        first_on = next(t for t in (midnight + i * STEP for i in range(96)) if t >= sun[day]["sunset"] + 45 * MINUTE)
        assert rows[0]["period_start"] == window_start and rows[0]["period_end"] == first_on
        assert rows[0]["minutes"] == pytest.approx(_minutes(first_on - window_start))
        assert rows[0]["fault_codes"] is None and rows[0]["fault_reports"] == 0
        assert not rows[0]["open_at_start"] and not rows[0]["open_at_end"]


def test_daily_uptime_energy_and_completeness(lights: dict[str, dict[str, Any]]) -> None:
    sun = _sun()[DAY]
    day_start, day_end = datetime(2026, 11, 24, tzinfo=KST), datetime(2026, 11, 25, tzinfo=KST)
    grace = timedelta(minutes=30)
    should = _minutes(sun["sunrise"] - grace - day_start) + _minutes(day_end - sun["sunset"] - grace)

    a = _gold("streetlights_daily", device_id=lights["a"]["device_id"], date=DAY)[0]
    assert (a["period_start"], a["period_end"]) == (day_start, day_end)
    assert (a["sunrise"], a["sunset"]) == (sun["sunrise"], sun["sunset"])
    assert a["minutes_should_be_on"] == pytest.approx(should)
    assert a["minutes_off"] == pytest.approx(120.0) and a["minutes_unreported"] == pytest.approx(0.0)
    assert a["minutes_on"] == pytest.approx(should - 120.0)
    assert a["uptime"] == pytest.approx((should - 120.0) / should)
    assert (a["outages"], a["outage_minutes"], a["fault_reports"]) == (1, 120.0, 8)
    reports = [_light_a(day_start + i * STEP) for i in range(96)]   # each stands for 15 min
    assert a["energy_kwh"] == pytest.approx(sum(p for _, p, _ in reports) * 0.25 / 1000)
    assert a["energy_minutes"] == pytest.approx(1440.0)
    assert (a["expected"], a["observed"], a["missing_offline"], a["completeness"]) == (384, 384, 0, 1.0)

    c = _gold("streetlights_daily", device_id=lights["c"]["device_id"], date=DAY)[0]
    assert c["energy_kwh"] == pytest.approx(0.2)                    # 100 W for 2 h
    assert (c["minutes_on"], c["minutes_off"], c["uptime"]) == (120.0, 0.0, 1.0)
    assert c["minutes_unreported"] == pytest.approx(should - 120.0)
    assert (c["observed"], c["missing_offline"]) == (32, 384 - 32)
    assert c["completeness"] == pytest.approx(32 / 384)
    assert _gold("streetlights_daily", device_id=lights["c"]["device_id"], date=NEXT)[0]["energy_kwh"] is None


def test_district_roll_up(lights: dict[str, dict[str, Any]]) -> None:
    district = lights["a"]["district_code"]
    daily = _gold("streetlights_daily", district_code=district, date=DAY)
    installed = [d for d in _devices("streetlight")
                 if d["district_code"] == district and d["install_date"] <= date(2026, 11, 24)]
    assert len(daily) == len(installed) >= 3
    row = _gold("streetlights_district_daily", district_code=district, date=DAY)[0]
    assert (row["lights"], row["lights_reporting"], row["lights_with_outage"]) == (len(installed), 3, 2)
    assert (row["outages"], row["fault_reports"]) == (2, 8)
    assert row["outage_minutes"] == pytest.approx(sum(r["outage_minutes"] for r in daily))
    assert row["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in daily if r["energy_kwh"] is not None))
    uptimes = [r["uptime"] for r in daily if r["uptime"] is not None]
    assert len(uptimes) == 3 and row["uptime_mean"] == pytest.approx(sum(uptimes) / 3)
    assert row["expected"] == 384 * len(installed) and row["observed"] == 384 * 2 + 32
    assert row["completeness"] == pytest.approx(row["observed"] / row["expected"])


def test_rebuilding_one_date_leaves_the_other_untouched(lights: dict[str, dict[str, Any]]) -> None:
    from etl import tables
    from etl.aggregate.runner import MODELS, rebuild
    from etl.storage import lake

    names = {m.name: m.table for m in MODELS if m.name in LIGHT_MODELS}
    before = {n: {f for f in tables.open_table(lake(), t).file_uris() if f"date={NEXT}" in f} for n, t in names.items()}
    late = datetime(2026, 11, 24, 22, tzinfo=KST)                  # light C: one more report, late
    _write(_silver(_light_rows(lights["c"]["device_id"], late, late + STEP, _light_c), "streetlights"))
    rebuild("streetlights", [DAY])
    for n, t in names.items():
        assert {f for f in tables.open_table(lake(), t).file_uris() if f"date={NEXT}" in f} == before[n]
    assert _gold("streetlights_daily", device_id=lights["c"]["device_id"], date=DAY)[0]["energy_kwh"] == \
        pytest.approx(0.225)
    morning = _gold("streetlight_outages", device_id=lights["a"]["device_id"], date=NEXT)
    assert len(morning) == 1 and morning[0]["open_at_start"]


def test_every_column_is_documented(lights: dict[str, dict[str, Any]]) -> None:
    from etl import tables
    from etl.aggregate.runner import MODELS, model_doc
    from etl.storage import lake

    for m in MODELS:
        if m.name in LIGHT_MODELS:
            assert tables.read(lake(), m.table).schema.names == list(model_doc(m.name)[1]), m.name


# ---- daycare --------------------------------------------------------------------------------
def _tag(facility: str, child: int) -> str:
    return f"PSN-{facility}-child{child:02d}-x7q"


def _passages(gate: str, facility: str, children: range, metric: str, at: datetime,
              times: int = 1) -> list[dict[str, Any]]:
    return [{"device_id": gate, "metric": metric, "unit": "count", "value": 1.0, "subject": _tag(facility, c),
             "ts": (at + timedelta(minutes=c, seconds=n)).astimezone(timezone.utc)}
            for c in children for n in range(times)]


@pytest.fixture
def daycare(lake_env: Path) -> dict[str, dict[str, Any]]:
    """Three facilities on DAY: 6 children in and out; 2 children passing 3 times in and once
    out; 7 children in, 4 out. On NEXT one child arrives at the third (so NEXT has data)."""
    from etl.aggregate.runner import rebuild

    gates = {g["group_id"]: g for g in _devices("daycare_gate")}
    f1, f2, f3 = sorted(gates)[:3]
    morning, evening = datetime(2026, 11, 24, 8, tzinfo=KST), datetime(2026, 11, 24, 17, tzinfo=KST)
    rows = []
    for facility, arrive, leave, times in ((f1, range(6), range(6), 1), (f2, range(2), range(2), 3),
                                           (f3, range(7), range(4), 1)):
        gate = gates[facility]["device_id"]
        rows += _passages(gate, facility, arrive, "arrival", morning, times)
        rows += _passages(gate, facility, leave, "departure", evening)
    rows += _passages(gates[f3]["device_id"], f3, range(1), "arrival", datetime(2026, 11, 25, 9, tzinfo=KST))
    _write(_silver(rows, "daycare_safety"))
    rebuild("daycare_safety", [DAY, NEXT])
    return {"f1": gates[f1], "f2": gates[f2], "f3": gates[f3], "rows": rows}


def test_daycare_counts_suppressed_below_k(daycare: dict[str, Any]) -> None:
    def row(key: str, day: str = DAY) -> tuple[Any, ...]:
        r = _gold("daycare_daily", facility_id=daycare[key]["group_id"], date=day)[0]
        return r["arrivals"], r["departures"], r["children"], r["suppressed"]

    assert row("f1") == (6, 6, 6, False)
    assert row("f2") == (None, None, None, True)      # 6 arrivals, but only 2 children behind them
    assert row("f3") == (7, None, 7, True)            # 4 departures < k
    assert row("f1", NEXT) == (0, 0, 0, False)        # a zero describes no child
    r = _gold("daycare_daily", facility_id=daycare["f1"]["group_id"], date=DAY)[0]
    assert r["min_count"] == 5 and r["publishable_from"] == date(2026, 12, 1)
    assert r["facility_ko"] == daycare["f1"]["group_name_ko"] and r["capacity"] == daycare["f1"]["capacity"]
    assert r["period_start"] == datetime(2026, 11, 24, tzinfo=KST)


def test_daycare_gold_holds_no_tag_or_gate(daycare: dict[str, Any]) -> None:
    from etl import tables
    from etl.aggregate.runner import MODELS, model_doc
    from etl.storage import lake

    table = tables.read(lake(), next(m.table for m in MODELS if m.name == "daycare_daily"))
    assert table.schema.names == list(model_doc("daycare_daily")[1])
    assert not any(word in name for name in table.schema.names for word in ("subject", "tag", "device", "gate"))
    text = json.dumps(table.to_pylist(), default=str, ensure_ascii=False)
    tags = {r["subject"] for r in daycare["rows"]}
    assert len(tags) == 15 and not any(t in text for t in tags)
    assert not any(daycare[k]["device_id"] in text for k in ("f1", "f2", "f3"))
