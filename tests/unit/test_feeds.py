"""The citizen alerts feed on tiny hand-made gold tables: alert rules and their stable ids,
the time window, release entries, and the four rendered documents as a feed reader parses them."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, Iterator

import duckdb
import feedparser
import pyarrow as pa
import pytest

from etl.timeutil import KST, UTC
from publish.feeds import Entry, alert_entries, release_entries, render

BASE = "https://data.goyang.example.kr"
AS_OF = date(2026, 11, 29)
TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    """Settings are cached; tests that override them through the environment need a fresh copy."""
    from etl.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _kst(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=KST)


def _con(**tables: list[dict[str, Any]] | pa.Table) -> Any:
    con = duckdb.connect()
    for name, rows in tables.items():
        con.register(name, rows if isinstance(rows, pa.Table) else _TABLES[name](rows))
    return con


# ---- gold tables: only the columns the feed reads, with the gold types ------------------------

DISTRICTS = {"31101": ("덕양구", "Deogyang-gu"), "31103": ("일산동구", "Ilsandong-gu"),
             "31104": ("일산서구", "Ilsanseo-gu")}
GRADES = {1: ("좋음", "Good"), 2: ("보통", "Moderate"), 3: ("나쁨", "Unhealthy"), 4: ("매우나쁨", "Very Unhealthy")}

AIR_SCHEMA = pa.schema([("date", pa.string()), ("hour", pa.int32()), ("period_start", TS), ("period_end", TS),
                        ("district_code", pa.string()), ("district_ko", pa.string()), ("district_en", pa.string()),
                        ("cai", pa.int32()), ("cai_grade", pa.int32()), ("cai_grade_ko", pa.string()),
                        ("cai_grade_en", pa.string()), ("cai_main", pa.string())])


def _air(district: str, start: datetime, grades: list[int], main: str = "pm25") -> list[dict[str, Any]]:
    """Consecutive hours from ``start`` (KST) with these CAI grades."""
    cai = {1: 40, 2: 80, 3: 150, 4: 300}
    rows = []
    for i, g in enumerate(grades):
        t = start + timedelta(hours=i)
        rows.append({"date": f"{t:%Y-%m-%d}", "hour": t.hour, "period_start": t.astimezone(UTC),
                     "period_end": (t + timedelta(hours=1)).astimezone(UTC), "district_code": district,
                     "district_ko": DISTRICTS[district][0], "district_en": DISTRICTS[district][1],
                     "cai": cai[g] + i, "cai_grade": g, "cai_grade_ko": GRADES[g][0], "cai_grade_en": GRADES[g][1],
                     "cai_main": main})
    return rows


WATER_SCHEMA = pa.schema([
    ("date", pa.string()), ("period_start", TS), ("period_end", TS), ("device_id", pa.string()),
    ("district_code", pa.string()), ("district_ko", pa.string()), ("district_en", pa.string()),
    ("metric", pa.string()), ("unit", pa.string()), ("bound", pa.string()), ("limit_value", pa.float64()),
    ("limit_name_en", pa.string()), ("limit_name_ko", pa.string()), ("start_ts", TS), ("end_ts", TS),
    ("open_at_start", pa.bool_()), ("open_at_end", pa.bool_()), ("peak_value", pa.float64()), ("peak_ts", TS),
    ("readings", pa.int64()), ("duration_min", pa.float64())])


def _water(start: datetime, end: datetime, peak: float, *, open_start: bool = False, open_end: bool = False,
           device: str = "wq-0001") -> dict[str, Any]:
    day = start.astimezone(KST).date()
    day_start = _kst(day, 0)
    p_start = day_start if open_start else start
    p_end = day_start + timedelta(days=1) if open_end else end
    return {"date": day.isoformat(), "period_start": p_start.astimezone(UTC), "period_end": p_end.astimezone(UTC),
            "device_id": device, "district_code": "31104", "district_ko": "일산서구", "district_en": "Ilsanseo-gu",
            "metric": "turbidity", "unit": "NTU", "bound": "max", "limit_value": 100.0,
            "limit_name_en": "turbidity above 100 NTU", "limit_name_ko": "탁도 100 NTU 초과",
            "start_ts": start.astimezone(UTC), "end_ts": end.astimezone(UTC), "open_at_start": open_start,
            "open_at_end": open_end, "peak_value": peak, "peak_ts": start.astimezone(UTC), "readings": 10,
            "duration_min": (p_end - p_start).total_seconds() / 60}


BINS_SCHEMA = pa.schema([("date", pa.string()), ("device_id", pa.string()), ("district_code", pa.string()),
                         ("district_ko", pa.string()), ("district_en", pa.string()), ("dong_ko", pa.string()),
                         ("dong_en", pa.string()), ("overflow_hours", pa.int64())])


def _bin(day: date, device: str, district: str, overflow_hours: int, dong: str = "마두1동") -> dict[str, Any]:
    return {"date": day.isoformat(), "device_id": device, "district_code": district,
            "district_ko": DISTRICTS[district][0], "district_en": DISTRICTS[district][1],
            "dong_ko": dong, "dong_en": "Madu 1(il)-dong", "overflow_hours": overflow_hours}


LIGHTS_SCHEMA = pa.schema([
    ("date", pa.string()), ("period_start", TS), ("period_end", TS), ("device_id", pa.string()),
    ("district_code", pa.string()), ("district_ko", pa.string()), ("district_en", pa.string()),
    ("dong_code", pa.string()), ("dong_ko", pa.string()), ("dong_en", pa.string()), ("night", pa.string()),
    ("minutes", pa.float64())])


def _outage(night: date, device: str, dong_code: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"date": start.astimezone(KST).date().isoformat(), "period_start": start.astimezone(UTC),
            "period_end": end.astimezone(UTC), "device_id": device, "district_code": "31101",
            "district_ko": "덕양구", "district_en": "Deogyang-gu", "dong_code": dong_code,
            "dong_ko": f"동{dong_code[-2:]}", "dong_en": f"Dong {dong_code[-2:]}", "night": night.isoformat(),
            "minutes": (end - start).total_seconds() / 60}


_TABLES = {
    "air_quality_district_hourly": lambda rows: pa.Table.from_pylist(rows, schema=AIR_SCHEMA),
    "water_quality_exceedances": lambda rows: pa.Table.from_pylist(rows, schema=WATER_SCHEMA),
    "waste_bins_daily": lambda rows: pa.Table.from_pylist(rows, schema=BINS_SCHEMA),
    "streetlight_outages": lambda rows: pa.Table.from_pylist(rows, schema=LIGHTS_SCHEMA),
}


def _alerts(kind: str, **tables: list[dict[str, Any]]) -> list[Entry]:
    return [e for e in alert_entries(_con(**tables), AS_OF, BASE) if e.kind == kind]


# ---- air ---------------------------------------------------------------------------------------

def test_bad_air_episode_is_one_entry_whose_id_survives_growth() -> None:
    start = _kst(date(2026, 11, 24), 10)
    [entry] = _alerts("air", air_quality_district_hourly=_air("31101", start, [3, 4, 3]))
    assert entry.id == "tag:data.goyang.example.kr,2026:alert/air/31101/2026-11-24T10"
    assert entry.updated == _kst(date(2026, 11, 24), 13).astimezone(UTC)
    assert entry.title_ko == "덕양구 대기질 매우나쁨 (PM2.5)"
    assert entry.title_en == "Deogyang-gu air quality: Very Unhealthy (PM2.5)"
    assert "2026-11-24 10:00 KST" in entry.summary_ko and "2026-11-24 13:00 KST" in entry.summary_ko
    assert "301" in entry.summary_en           # the peak CAI
    assert entry.link == f"{BASE}/datasets/air-quality-district-hourly/" and entry.district_code == "31101"

    [grown] = _alerts("air", air_quality_district_hourly=_air("31101", start, [3, 4, 3, 3]))
    assert grown.id == entry.id and grown.updated == entry.updated + timedelta(hours=1)


def test_bad_air_per_district_and_episode_and_never_below_grade_3() -> None:
    start = _kst(date(2026, 11, 25), 6)
    rows = (_air("31101", start, [3, 3]) + _air("31103", start, [3], main="o3")
            + _air("31104", start, [2, 2, 1, 2]) + _air("31101", start + timedelta(hours=2), [2, 3]))
    entries = _alerts("air", air_quality_district_hourly=rows)
    assert sorted((e.district_code, e.id.rsplit("/", 1)[1]) for e in entries) == [
        ("31101", "2026-11-25T06"), ("31101", "2026-11-25T09"), ("31103", "2026-11-25T06")]
    assert any(e.title_ko == "일산동구 대기질 나쁨 (O3)" for e in entries)


def test_only_alerts_of_the_last_alerts_days_are_in_the_feed() -> None:
    old = _air("31101", _kst(AS_OF - timedelta(days=7), 20), [3, 3])       # ends 22:00 on the day before the window
    edge = _air("31103", _kst(AS_OF - timedelta(days=6), 23), [3])        # the window's first day
    later = _air("31104", _kst(AS_OF + timedelta(days=1), 1), [4])         # after the as-of day
    entries = _alerts("air", air_quality_district_hourly=old + edge + later)
    assert [e.district_code for e in entries] == ["31103"]


def test_an_episode_that_began_before_the_window_keeps_its_start() -> None:
    rows = _air("31101", _kst(AS_OF - timedelta(days=7), 22), [3, 3, 3, 3])
    [entry] = _alerts("air", air_quality_district_hourly=rows)
    assert entry.id.endswith(f"/{AS_OF - timedelta(days=7)}T22")


# ---- water, bins, lights -------------------------------------------------------------------------

def test_water_event_across_midnight_is_one_entry() -> None:
    d1, d2 = date(2026, 11, 26), date(2026, 11, 27)
    rows = [_water(_kst(d1, 21, 10), _kst(d1, 23, 50), 180.0, open_end=True),
            _water(_kst(d2, 0, 0), _kst(d2, 2, 30), 240.0, open_start=True),
            _water(_kst(d2, 9, 0), _kst(d2, 9, 40), 120.0)]   # a later, separate event
    entries = _alerts("water", water_quality_exceedances=rows)
    assert len(entries) == 2
    first = next(e for e in entries if "2026-11-26T12:10:00Z" in e.id)
    assert first.id == "tag:data.goyang.example.kr,2026:alert/water/wq-0001/turbidity/max/2026-11-26T12:10:00Z"
    assert first.updated == _kst(d2, 2, 30).astimezone(UTC)
    assert first.title_ko == "일산서구 수질 기준 초과: 탁도 100 NTU 초과"
    assert "240 NTU" in first.summary_en and "2026-11-26 21:10 KST" in first.summary_ko


def test_water_event_keeps_its_id_when_the_next_day_arrives() -> None:
    d1 = date(2026, 11, 28)
    day1 = [_water(_kst(d1, 22, 0), _kst(d1, 23, 55), 150.0, open_end=True)]
    day2 = day1 + [_water(_kst(AS_OF, 0, 0), _kst(AS_OF, 4, 0), 160.0, open_start=True)]
    [before] = _alerts("water", water_quality_exceedances=day1)
    [after] = _alerts("water", water_quality_exceedances=day2)
    assert before.id == after.id and after.updated > before.updated


def test_bins_overflowing_need_the_configured_count(monkeypatch: pytest.MonkeyPatch) -> None:
    day = date(2026, 11, 27)
    rows = [_bin(day, "bin-1", "31103", 3), _bin(day, "bin-2", "31103", 1, "백석1동"),
            _bin(day, "bin-3", "31103", 2), _bin(day, "bin-4", "31103", 0),
            _bin(day, "bin-5", "31101", 1), _bin(day, "bin-6", "31104", 0)]
    entries = _alerts("bins", waste_bins_daily=rows)
    assert sorted(e.district_code for e in entries) == ["31101", "31103"]     # default minimum: 1
    big = next(e for e in entries if e.district_code == "31103")
    assert big.title_ko == "일산동구 쓰레기통 3개 넘침"
    assert big.id == "tag:data.goyang.example.kr,2026:alert/bins/31103/2026-11-27"
    assert big.updated == _kst(day + timedelta(days=1), 0).astimezone(UTC)

    monkeypatch.setenv("CITYLAKE_ALERTS_BINS_OVERFLOWING_MIN", "2")
    from etl.settings import get_settings

    get_settings.cache_clear()
    assert [e.district_code for e in _alerts("bins", waste_bins_daily=rows)] == ["31103"]


def test_streetlight_clusters_count_distinct_lights_per_dong_and_night() -> None:
    night = date(2026, 11, 26)
    dusk, midnight = _kst(night, 18), _kst(night + timedelta(days=1), 0)
    rows = [_outage(night, "sl-1", "3110151000", dusk, midnight),            # one light across midnight:
            _outage(night, "sl-1", "3110151000", midnight, midnight + timedelta(hours=3)),   # counted once
            _outage(night, "sl-2", "3110151000", dusk, dusk + timedelta(hours=1)),
            _outage(night, "sl-3", "3110151000", dusk + timedelta(hours=2), dusk + timedelta(hours=4)),
            _outage(night, "sl-4", "3110152000", dusk, dusk + timedelta(hours=1)),   # other dong: 2 lights only
            _outage(night, "sl-5", "3110152000", dusk, dusk + timedelta(hours=1)),
            _outage(night + timedelta(days=1), "sl-1", "3110151000",      # the next night: one light
                    dusk + timedelta(days=1), dusk + timedelta(days=1, hours=1))]
    [entry] = _alerts("lights", streetlight_outages=rows)
    assert entry.id == "tag:data.goyang.example.kr,2026:alert/lights/3110151000/2026-11-26"
    assert entry.title_ko == "덕양구 동00 보안등 3개 꺼짐"
    assert entry.updated == (midnight + timedelta(hours=3)).astimezone(UTC)
    three = rows[:4] + [_outage(night, "sl-6", "3110152000", dusk, dusk + timedelta(hours=1))] + rows[4:6]
    assert len(_alerts("lights", streetlight_outages=three)) == 2      # the second dong reaches 3


def test_missing_gold_tables_give_no_entries() -> None:
    assert alert_entries(duckdb.connect(), AS_OF, BASE) == []
    only_air = _air("31101", _kst(AS_OF, 1), [3])
    assert [e.kind for e in alert_entries(_con(air_quality_district_hourly=only_air), AS_OF, BASE)] == ["air"]


def test_ids_of_a_local_base_url_use_the_local_authority() -> None:
    [entry] = alert_entries(_con(air_quality_district_hourly=_air("31101", _kst(AS_OF, 1), [3])), AS_OF,
                            "file:///srv/public")
    assert entry.id.startswith("tag:citylake.local,2026:alert/air/")
    assert entry.link == "file:///srv/public/datasets/air-quality-district-hourly/"


# ---- releases --------------------------------------------------------------------------------

def _manifest(release: str, issued: str, air_version: str, weather_version: str) -> dict[str, Any]:
    return {"release": release, "as_of": release[:10], "issued": issued, "datasets": {
        "air-quality-station-hourly": {"version": air_version, "rows": 432, "title_ko": "대기질 측정소별 시간",
                                       "title_en": "Air quality by station, hourly",
                                       "changes": {"2026-11": {"added": 10, "changed": 2, "removed": 0}}},
        "weather-station-hourly": {"version": weather_version, "rows": 96, "title_ko": "기상 관측소별 시간",
                                   "title_en": "Weather by station, hourly", "changes": {}}}}


def test_release_entries_list_the_datasets_whose_version_changed() -> None:
    older = _manifest("2026-11-28.aaaa1111", "2026-11-28T10:00:00+00:00", "v-1", "v-w1")
    newer = _manifest("2026-11-29.3f2a9c1d", "2026-11-29T10:00:00+00:00", "v-2", "v-w1")
    entries = release_entries([newer, older], BASE)
    assert [e.id for e in entries] == ["tag:data.goyang.example.kr,2026:release/2026-11-28.aaaa1111",
                                       "tag:data.goyang.example.kr,2026:release/2026-11-29.3f2a9c1d"]
    latest = entries[1]
    assert latest.kind == "release" and latest.updated == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert latest.link == f"{BASE}/releases/2026-11-29.3f2a9c1d/manifest.json"
    assert "air-quality-station-hourly" in latest.summary_en and "10 rows added, 2 changed" in latest.summary_en
    assert "weather-station-hourly" not in latest.summary_en and "추가 10행" in latest.summary_ko
    assert "weather-station-hourly" in entries[0].summary_en       # nothing before it: every dataset is new


# ---- rendering -------------------------------------------------------------------------------

def _sample() -> list[Entry]:
    rows = _air("31101", _kst(date(2026, 11, 24), 10), [3, 4, 3])
    bins = [_bin(date(2026, 11, 27), f"bin-{i}", "31103", 2) for i in range(3)]
    alerts = alert_entries(_con(air_quality_district_hourly=rows, waste_bins_daily=bins), AS_OF, BASE)
    releases = release_entries([_manifest("2026-11-29.3f2a9c1d", "2026-11-29T10:00:00+00:00", "v-2", "v-w")], BASE)
    tricky = Entry(id="tag:data.goyang.example.kr,2026:test/escape", kind="water",
                   updated=datetime(2026, 11, 20, tzinfo=UTC), title_ko="<탁도> & \"수온\"",
                   title_en="<turbidity> & \"temp\"", summary_ko="a < b & c", summary_en="a < b & c",
                   link=f"{BASE}/datasets/water-quality-exceedances/?a=1&b=2")
    return alerts + releases + [tricky]


def test_render_gives_four_documents_that_feed_readers_parse() -> None:
    entries = _sample()
    docs = render(entries, BASE)
    assert sorted(docs) == ["feeds/alerts.en.atom", "feeds/alerts.en.json", "feeds/alerts.ko.atom",
                            "feeds/alerts.ko.json"]
    newest_first = sorted(entries, key=lambda e: e.updated, reverse=True)
    for lang in ("ko", "en"):
        atom = feedparser.parse(docs[f"feeds/alerts.{lang}.atom"])
        assert atom.bozo == 0, atom.get("bozo_exception")
        assert atom.version == "atom10" and atom.feed.language == lang
        assert [e.id for e in atom.entries] == [e.id for e in newest_first]
        assert [e.title for e in atom.entries] == [getattr(e, f"title_{lang}") for e in newest_first]
        assert [t.term for t in atom.entries[0].tags] == [newest_first[0].kind]
        assert atom.feed.updated == "2026-11-29T10:00:00Z"
        assert docs[f"feeds/alerts.{lang}.atom"].startswith(b"<?xml version='1.0' encoding='utf-8'?>")

        feed = json.loads(docs[f"feeds/alerts.{lang}.json"])
        assert feed["version"] == "https://jsonfeed.org/version/1.1" and feed["language"] == lang
        assert feed["feed_url"] == f"{BASE}/feeds/alerts.{lang}.json"
        assert [i["id"] for i in feed["items"]] == [e.id for e in newest_first]
        assert [i["title"] for i in feed["items"]] == [getattr(e, f"title_{lang}") for e in newest_first]
        assert feed["items"][0]["date_modified"] == "2026-11-29T10:00:00Z"
    assert "덕양구 대기질 매우나쁨 (PM2.5)".encode() in docs["feeds/alerts.ko.json"]   # not \u-escaped


def test_render_is_deterministic_and_collapses_duplicate_ids() -> None:
    entries = _sample()
    first = render(entries, BASE)
    assert render(list(reversed(entries)), BASE) == first
    stale = replace(entries[0], updated=entries[0].updated - timedelta(hours=5), title_en="stale")
    doubled = render([stale, *entries, entries[0]], BASE)
    assert doubled == first
    feed = json.loads(doubled["feeds/alerts.en.json"])
    assert len(feed["items"]) == len(entries) and "stale" not in {i["title"] for i in feed["items"]}


def test_an_empty_feed_is_valid_and_dated_at_the_epoch() -> None:
    docs = render([], BASE)
    atom = feedparser.parse(docs["feeds/alerts.en.atom"])
    assert atom.bozo == 0 and atom.entries == [] and atom.feed.updated == "1970-01-01T00:00:00Z"
    assert json.loads(docs["feeds/alerts.ko.json"])["items"] == []
