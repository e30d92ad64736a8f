"""The backfill planner: how a date range splits into (source, chunk of KST days)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from etl.backfill import Chunk, announcements, by_source, can_replay, plan, windows

SOURCES = {"weather_http": True, "bins_ttn": True, "lights_mqtt": False, "airkorea": False}


def test_a_year_in_weeks_per_source() -> None:
    chunks = plan("2025-01-01", "2025-12-31", SOURCES, chunk_days=7)
    assert len(chunks) == 53 * len(SOURCES)                       # 52 weeks + 1 day, per source
    weather = [c for c in chunks if c.source == "weather_http"]
    assert [len(c.days) for c in weather] == [7] * 52 + [1]
    days = [d for c in weather for d in c.days]
    assert days == [(date(2025, 1, 1) + timedelta(days=i)).isoformat() for i in range(365)]   # no gap, no overlap
    assert weather[0].label == "weather_http 2025-01-01..2025-01-07" and weather[-1].label == "weather_http 2025-12-31"


@pytest.mark.parametrize("chunk_days, per_source", [(1, 365), (7, 53), (14, 27), (31, 12)])
def test_chunk_sizes(chunk_days: int, per_source: int) -> None:
    chunks = plan("2025-01-01", "2025-12-31", {"weather_http": True}, chunk_days=chunk_days)
    assert len(chunks) == per_source
    assert sum(len(c.days) for c in chunks) == 365


def test_chunk_windows_are_kst_days_in_utc() -> None:
    (c,) = plan("2026-11-23", "2026-11-24", {"weather_http": True}, chunk_days=7)
    assert c.window == (datetime(2026, 11, 22, 15, tzinfo=timezone.utc), datetime(2026, 11, 24, 15, tzinfo=timezone.utc))
    d = c.as_dict()
    assert d["window_start"] == "2026-11-22T15:00:00+00:00" and d["window_end"] == "2026-11-24T15:00:00+00:00"
    assert Chunk.from_dict(d) == c
    w = windows(c)
    assert len(w) == 48 and w[0] == (c.window[0], c.window[0] + timedelta(hours=1)) and w[-1][1] == c.window[1]
    assert all(a[1] == b[0] for a, b in zip(w, w[1:]))            # the hourly schedule's windows, back to back


def test_month_boundary_in_kst() -> None:
    chunks = plan("2026-10-30", "2026-11-02", {"weather_http": True}, chunk_days=2)
    assert [c.days for c in chunks] == [["2026-10-30", "2026-10-31"], ["2026-11-01", "2026-11-02"]]
    # 2026-11-01 00:00 KST is still October in UTC
    assert chunks[1].window[0] == datetime(2026, 10, 31, 15, tzinfo=timezone.utc)


def test_sources_filter_and_extract_only_where_the_gateway_replays() -> None:
    chunks = plan("2026-11-01", "2026-11-03", SOURCES, only=["weather_http", "lights_mqtt"], chunk_days=7,
                  extract=True)
    assert [(c.source, c.extract) for c in chunks] == [("lights_mqtt", False), ("weather_http", True)]
    assert all(not c.extract for c in plan("2026-11-01", "2026-11-03", SOURCES))   # extract is opt-in
    grouped = by_source(chunks, sorted(SOURCES))
    assert set(grouped) == set(SOURCES) and grouped["airkorea"] == [] and len(grouped["weather_http"]) == 1


def test_single_day_range() -> None:
    chunks = plan(date(2026, 11, 24), date(2026, 11, 24), SOURCES)
    assert [c.days for c in chunks] == [["2026-11-24"]] * len(SOURCES)


@pytest.mark.parametrize("kwargs, message", [
    ({"start": "2026-11-25", "end": "2026-11-24"}, "before start"),
    ({"start": "2026-13-01", "end": "2026-12-24"}, "start: '2026-13-01' is not a date"),
    ({"start": "2026-11-01", "end": "yesterday"}, "end: 'yesterday' is not a date"),
    ({"start": "2026-11-01", "end": "2026-11-30", "today": date(2026, 11, 30)}, "not before today"),
    ({"start": "2026-11-01", "end": "2026-11-02", "chunk_days": 0}, "chunk_days"),
    ({"start": "2026-11-01", "end": "2026-11-02", "chunk_days": 32}, "chunk_days"),
    ({"start": "2026-11-01", "end": "2026-11-02", "chunk_days": "7"}, "chunk_days"),
    ({"start": "2026-11-01", "end": "2026-11-02", "only": ["nope"]}, "unknown sources ['nope']"),
    ({"start": "2023-01-01", "end": "2025-12-31", "chunk_days": 1}, "raise chunk_days"),
])
def test_bad_params_say_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        plan(sources=SOURCES, **kwargs)


def test_end_yesterday_is_fine() -> None:
    assert plan("2026-11-01", "2026-11-29", SOURCES, today=date(2026, 11, 30))


def test_which_gateways_can_replay() -> None:
    assert can_replay("http_cursor", {})
    assert can_replay("lorawan", {"transport": "http"})
    assert not can_replay("lorawan", {"transport": "mqtt"})
    assert not any(can_replay(k, {}) for k in ("airkorea", "mqtt", "csv_drop"))


def test_every_active_source_is_planned() -> None:
    from etl.sources import load_sources

    known = {s.id: can_replay(s.kind, s.options) for s in load_sources().values() if s.active}
    assert {s for s, ok in known.items() if ok} == {"weather_http", "daycare_http", "bins_ttn"}
    assert {c.source for c in plan("2026-11-01", "2026-11-01", known)} == set(known)


def _result(source: str, domains: list[str], dates: list[str], accepted: int, normalized: int = 1) -> dict:
    return {"source": source, "domains": domains, "dates": dates, "batches": 2, "normalized": normalized,
            "received": accepted + 1, "accepted": accepted, "flagged": 0, "quarantined": 1, "duplicates": 0}


def test_one_announcement_per_domain_for_the_whole_range() -> None:
    results = [_result("air_mqtt", ["air_quality"], ["2026-11-22", "2026-11-23"], 10),
               _result("airkorea", ["air_quality"], ["2026-11-24"], 5, normalized=0),   # committed earlier
               _result("weather_http", ["weather"], ["2026-11-23"], 7), None,
               _result("water_csv", ["water_quality"], [], 0, normalized=0)]            # no data: no event
    got = announcements(results)
    assert set(got) == {"air_quality", "weather"}
    aq = got["air_quality"]
    assert aq["dates"] == ["2026-11-22", "2026-11-23", "2026-11-24"] and aq["sources"] == ["air_mqtt", "airkorea"]
    assert (aq["chunks"], aq["batches"], aq["normalized"], aq["accepted"], aq["received"]) == (2, 4, 1, 15, 17)
    assert aq["backfill"] is True
