"""The cursor-paging adapter against the simulated vendor cloud, over real HTTP on 127.0.0.1."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
import requests

from etl.extract.frames import Frame
from etl.extract.http import GatewayError
from etl.extract.http_cursor import decode, fetch
from etl.settings import get_settings
from etl.simulate import signals
from etl.simulate.clock import SimClock
from etl.simulate.cursor_server import CursorServer
from etl.simulate.faults import FaultPlan
from etl.timeutil import KST, kst_day_bounds

DAY = date(2026, 11, 24)  # a Tuesday: children come to daycare
START, END = kst_day_bounds(DAY)
TOKEN = "test-token-5f3a"
WEATHER, GATES = "/v1/observations", "/v1/gate-events"
STATIONS = [{"device_id": f"wx-{i:03d}", "external_id": f"AWS-{i:04d}", "interval_s": 600,
             "group_id": "ilsanseo-gu", "capacity": None} for i in (1, 2, 3)]
DAYCARE_GATES = [{"device_id": f"dc-{i:03d}", "external_id": f"GATE-{i:04d}", "interval_s": 0,
                  "group_id": f"daycare-{i:03d}", "capacity": n} for i, n in ((1, 12), (2, 20))]
VENDOR_FIELD = {"temperature": ("temp_c", "degC"), "humidity": ("rh_pct", "%"), "wind_speed": ("wind_ms", "m/s"),
                "wind_dir": ("wind_deg", "deg"), "rain": ("rain_mm", "mm"), "pressure": ("pressure_hpa", "hPa")}


def kst(hour: int) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, tzinfo=KST)


def serve(faults: FaultPlan | None = None, now: datetime = END) -> CursorServer:
    return CursorServer(STATIONS, DAYCARE_GATES, SimClock.frozen(now), TOKEN, faults)


@pytest.fixture(scope="module")
def server() -> Iterator[CursorServer]:
    with serve() as srv:
        yield srv


def get(srv: CursorServer, path: str, since: datetime = START, until: datetime = END, **kw: Any) -> list[Frame]:
    kw.setdefault("backoff_s", 0.01)
    return fetch(srv.url, path, TOKEN, since, until, **kw)


def items(frames: list[Frame]) -> list[dict[str, Any]]:
    return [item for f in frames for item in json.loads(f.body)["data"]]


def expected_weather() -> list[tuple]:
    rows = []
    for st in STATIONS:
        ts = START
        while ts < END:
            for metric, value in signals.weather(st["device_id"], ts).items():
                rows.append((st["external_id"], metric, ts, value, VENDOR_FIELD[metric][1]))
            ts += timedelta(seconds=st["interval_s"])
    return sorted(rows)


def expected_gates(key: bytes) -> list[tuple]:
    rows = []
    for gate in DAYCARE_GATES:
        for ts, tag, metric in signals.gate_events(gate["device_id"], gate["group_id"], gate["capacity"], DAY):
            subject = "p_" + hmac.new(key, tag.encode(), hashlib.sha256).hexdigest()[:20]
            rows.append((gate["external_id"], metric, ts, 1.0, "count", subject))
    return sorted(rows)


def all_tags() -> set[str]:
    return {tag for g in DAYCARE_GATES
            for _, tag, _ in signals.gate_events(g["device_id"], g["group_id"], g["capacity"], DAY)}


def string_cells(table: pa.Table) -> Iterator[str]:
    for column in table.columns:
        if pa.types.is_string(column.type):
            yield from (v for v in column.to_pylist() if v is not None)


def test_a_day_of_weather_decodes_to_the_signals(server: CursorServer) -> None:
    frames = get(server, WEATHER, limit=37)
    decoded, rejects = decode(frames, "weather", get_settings().pseudonym_key())
    assert len(frames) == -(-3 * 144 // 37) and rejects.num_rows == 0
    got = sorted((r["ref"], r["metric"], r["ts"], r["value"], r["unit"]) for r in decoded.to_pylist())
    assert got == expected_weather() and len(got) == 3 * 144 * 6
    assert [f.meta for f in frames[:2]] == [
        {"path": WEATHER, "since": "2026-11-23T15:00:00Z", "until": "2026-11-24T15:00:00Z", "page": p} for p in (0, 1)]
    assert TOKEN not in json.dumps([f.meta for f in frames])


def test_a_day_of_gate_events_decodes_to_pseudonymous_events(server: CursorServer) -> None:
    key = get_settings().pseudonym_key()
    frames = get(server, GATES, limit=9)
    decoded, rejects = decode(frames, "gate", key)
    got = sorted((r["ref"], r["metric"], r["ts"], r["value"], r["unit"], r["subject"]) for r in decoded.to_pylist())
    assert rejects.num_rows == 0 and len(frames) > 3
    assert got == expected_gates(key) and len(got) > 40


@pytest.mark.parametrize("path,key", [(WEATHER, ("station", "observed_at")), (GATES, ("event_id",))])
def test_cursor_paging_serves_every_item_exactly_once(server: CursorServer, path: str, key: tuple[str, ...]) -> None:
    frames = get(server, path, limit=7)
    pages = [json.loads(f.body) for f in frames]
    keys = [tuple(item[k] for k in key) for item in items(frames)]
    whole = items(get(server, path, limit=1000))
    assert len(keys) == len(set(keys)) == len(whole) and len(frames) > 5
    assert all(len(p["data"]) <= 7 for p in pages)
    assert [p["next_cursor"] is None for p in pages] == [False] * (len(pages) - 1) + [True]


def test_items_are_served_only_up_to_the_clock() -> None:
    with serve(now=kst(12)) as srv:
        observed = {item["observed_at"] for item in items(get(srv, WEATHER))}
    assert max(observed) == "2026-11-24T12:00:00+09:00" and len(observed) == 12 * 6 + 1


@dataclass
class SteppingClock(SimClock):
    """Moves on every time it is read, so new items arrive between any two pages."""

    step: timedelta = timedelta(minutes=5)

    def now(self) -> datetime:
        self.start += self.step
        return self.start


def test_paging_is_stable_while_items_keep_arriving(server: CursorServer) -> None:
    known = [json.dumps(i, sort_keys=True) for i in items(get(server, WEATHER, kst(9), kst(12)))]
    with CursorServer(STATIONS, DAYCARE_GATES, SteppingClock(kst(10)), TOKEN) as srv:
        frames = get(srv, WEATHER, kst(9), kst(12), limit=2)
    got = [json.dumps(i, sort_keys=True) for i in items(frames)]
    # paging began at 10:10 KST, when most of the window had not arrived yet
    assert json.loads(frames[0].body)["server_time"] == "2026-11-24T01:10:00Z"
    assert got == known and len(got) == 3 * 18  # all of it, none twice, in order: nothing shifted


def test_a_bad_token_is_a_clear_gateway_error(server: CursorServer) -> None:
    with pytest.raises(GatewayError) as err:
        fetch(server.url, WEATHER, "wrong-token", START, END)
    message = str(err.value)
    assert "HTTP 401" in message and "unauthorized" in message and "token" in message
    assert "wrong-token" not in message


def test_503_on_the_first_attempt_is_retried(server: CursorServer, caplog: pytest.LogCaptureFixture) -> None:
    clean = get(server, GATES, limit=20)
    with serve(FaultPlan(http_5xx=1.0)) as flaky, caplog.at_level(logging.WARNING, logger="etl.extract.http"):
        frames = get(flaky, GATES, limit=20)
    assert [f.body for f in frames] == [f.body for f in clean]
    assert caplog.text.count("HTTP 503") == len(frames)


def test_a_stalled_request_recovers_through_retries(server: CursorServer, caplog: pytest.LogCaptureFixture) -> None:
    clean = get(server, WEATHER, limit=1000)
    with serve(FaultPlan(http_timeout=1.0, timeout_s=2.0)) as slow, caplog.at_level(logging.WARNING):
        frames = get(slow, WEATHER, limit=1000, timeout_s=0.3)
    assert [f.body for f in frames] == [f.body for f in clean]
    assert "ReadTimeout" in caplog.text


def test_refetching_a_window_gives_identical_frames(server: CursorServer) -> None:
    first, again = get(server, WEATHER, limit=100), get(server, WEATHER, limit=100)
    assert [(f.body, f.meta, f.seq) for f in first] == [(f.body, f.meta, f.seq) for f in again]


@pytest.mark.parametrize("cursor", ["not a cursor!", base64.urlsafe_b64encode(b'{"offset": 40}').decode(), "e30"])
def test_an_invalid_cursor_is_a_400(server: CursorServer, cursor: str) -> None:
    resp = requests.get(server.url + WEATHER, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5,
                        params={"since": "2026-11-23T15:00:00Z", "until": "2026-11-24T15:00:00Z", "cursor": cursor})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_cursor"


def test_late_items_appear_in_the_next_window(server: CursorServer) -> None:
    def window(srv: CursorServer, hour: int) -> list[str]:
        return [json.dumps(i, sort_keys=True) for i in items(get(srv, WEATHER, kst(hour), kst(hour + 1), limit=5))]

    on_time = window(server, 9)
    with serve(FaultPlan(late=0.3, seed=11)) as srv:
        first, second = window(srv, 9), window(srv, 10)
    own = {i for i in first if json.loads(i)["observed_at"].startswith("2026-11-24T09:")}
    late = set(on_time) - own
    assert late and own <= set(on_time)
    assert late <= set(second)  # with their real observed_at, an hour late
    assert len(own) < len(first)  # the 09:00 window too received late items of the hour before


def test_raw_tags_never_reach_decoded_or_rejects() -> None:
    with serve(FaultPlan(malformed=0.2, duplicate=0.5, seed=3)) as srv:
        frames = get(srv, GATES, limit=10)
    decoded, rejects = decode(frames, "gate", get_settings().pseudonym_key())
    assert decoded.num_rows > 0 and set(rejects.column("reason").to_pylist()) == {"bad_timestamp", "bad_value"}
    tags, cells = all_tags(), [*string_cells(decoded), *string_cells(rejects)]
    assert any(t.encode() in frames[0].body for t in tags)  # the tags are there to leak
    assert not [c for c in cells if re.search(r"TAG-[0-9A-F]{2,}", c) or any(t in c for t in tags)]
    assert any("TAG-***" in c for c in string_cells(rejects))


def test_data_faults_look_as_the_vendor_sends_them(server: CursorServer) -> None:
    clean = items(get(server, WEATHER, kst(9), kst(12), limit=1000))
    plan = FaultPlan(wrong_unit=0.5, malformed=0.1, skewed=1.0, clock_skew_s=90, duplicate=1.0, gap=0.1, seed=5)
    with serve(plan) as srv:
        frames = get(srv, WEATHER, kst(9), kst(12), limit=10)
    faulty = items(frames)
    decoded, rejects = decode(frames, "weather", b"k")
    assert len(faulty) < len(clean) + len(frames) - 1  # gaps, and each later page repeats one item
    assert len({json.dumps(i, sort_keys=True) for i in faulty}) == len(faulty) - (len(frames) - 1)
    assert {i["observed_at"][17:19] for i in faulty if "observed_at" in i} == {"30"}  # 90 s fast
    assert {"degC", "degF"} <= set(decoded.column("unit").to_pylist())
    assert set(rejects.column("reason").to_pylist()) == {"bad_value", "bad_timestamp"}
