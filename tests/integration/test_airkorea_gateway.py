"""The AirKorea adapter against the simulated data.go.kr gateway, over real HTTP on 127.0.0.1.

The clock is frozen at 00:30 KST, so the newest hour is written ``2024-02-18 24:00``.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pytest
import requests

from etl.extract.airkorea import PATHS, PROVINCE_LATEST, STATION_LIST, STATION_SERIES, decode, fetch
from etl.extract.frames import Frame
from etl.extract.http import GatewayError
from etl.simulate.airkorea_server import AirKoreaServer
from etl.simulate.clock import SimClock
from etl.simulate.faults import FaultPlan
from tests.conftest import real_data

UTC = timezone.utc
KEY = "test+Key/AirKorea=="  # characters that need percent-encoding, as real data.go.kr keys do
NOW = datetime(2024, 2, 18, 15, 30, tzinfo=UTC)  # 2024-02-19 00:30 KST
HOUR = timedelta(hours=1)
LATEST = datetime(2024, 2, 18, 15, tzinfo=UTC)   # hour ending 2024-02-18 24:00 KST
MISSING_AT = ("주엽동", "pm25", datetime(2024, 2, 18, 14, tzinfo=UTC))
REAL = real_data() / "airkorea-openapi"

STATIONS = [
    {"stationName": "행신동", "sidoName": "경기", "addr": "경기 고양시 덕양구 화신로 148 행신배수지 가라산공원",
     "lat": 37.6251, "lon": 126.8423, "mangName": "도시대기"},
    {"stationName": "주엽동", "sidoName": "경기", "addr": "경기도 고양시 일산서구 주엽로 104 주엽어린이도서관 (주엽동)",
     "lat": 37.6683, "lon": 126.7564, "mangName": "도시대기"},
    {"stationName": "백마로(마두역)", "sidoName": "경기", "addr": "경기 고양시 일산동구 장항2동 888 뉴코아백화점사거리",
     "lat": 37.6545086, "lon": 126.7755571, "mangName": "도로변대기"},
    {"stationName": "종로구", "sidoName": "서울", "addr": "서울 종로구 종로35가길 19 종로5,6가 동 주민센터",
     "lat": 37.572025, "lon": 127.005028, "mangName": "도시대기"},
]
NAMES = ["행신동", "주엽동"]


def values(name: str, hour: datetime) -> dict[str, float | None]:
    """Deterministic values already at the gateway's precision, so they come back exactly."""
    k = hour.day * 24 + hour.hour + len(name) * 7
    out: dict[str, float | None] = {
        "pm10": float(10 + k % 80), "pm25": float(5 + k % 40), "o3": (k % 60) / 1000,
        "no2": (k % 70) / 1000, "co": (k % 20) / 10, "so2": (k % 9 + 1) / 1000,
    }
    if (name, hour) == (MISSING_AT[0], MISSING_AT[2]):
        out["pm25"] = None
    return out


def expected(names: list[str], hours: int = 24) -> dict[tuple[str, str, datetime], float]:
    out = {}
    for name in names:
        for k in range(hours):
            hour = LATEST - timedelta(hours=k)
            out |= {(name, m, hour): v for m, v in values(name, hour).items() if v is not None}
    return out


def readings(table: pa.Table) -> dict[tuple[str, str, datetime], float]:
    """Keyed by the hour *end* the gateway speaks of (decoded ts is the hour's start)."""
    return {(r["ref"], r["metric"], r["ts"] + HOUR): r["value"] for r in table.to_pylist()}


@pytest.fixture
def serve() -> Iterator[Callable[..., AirKoreaServer]]:
    started: list[AirKoreaServer] = []

    def start(faults: FaultPlan | None = None, **kwargs: Any) -> AirKoreaServer:
        server = AirKoreaServer(STATIONS, values, SimClock.frozen(NOW), KEY, faults=faults, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def get(server: AirKoreaServer, op: str, **params: Any) -> requests.Response:
    return requests.get(server.url + PATHS[op], params={"serviceKey": KEY, **params}, timeout=5)


def test_json_fetch_decodes_to_the_values(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    frames = fetch(server.url, KEY, NAMES, backoff_s=0.01)
    good, bad = decode(frames)

    assert readings(good) == expected(NAMES)
    assert max(good.column("ts").to_pylist()) == LATEST - HOUR
    assert all(b'"dataTime":"2024-02-18 24:00"' in f.body for f in frames)  # midnight as 24:00
    rejects = [(r["ref"], r["metric"], r["ts"] + HOUR, r["reason"]) for r in bad.to_pylist()]
    assert rejects == [(*MISSING_AT, "source_missing")]
    assert "통신장애" in bad.column("detail")[0].as_py()
    assert [f.meta["stationName"] for f in frames] == NAMES and [f.seq for f in frames] == [0, 1]
    assert set(frames[0].meta) == {"op", "stationName", "pageNo", "returnType", "url"}
    assert "serviceKey" not in json.dumps([f.meta for f in frames]) and "test" not in frames[0].meta["url"]


def test_xml_decodes_like_json(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    xml_frames = fetch(server.url, KEY, NAMES, return_type="xml")
    assert all(f.body.startswith(b"<?xml") and f.meta["returnType"] == "xml" for f in xml_frames)
    xml_good, xml_bad = decode(xml_frames)
    json_good, json_bad = decode(fetch(server.url, KEY, NAMES))
    assert xml_good.equals(json_good) and xml_bad.drop(["raw"]).equals(json_bad.drop(["raw"]))


def test_paging_fetches_every_item(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    frames = fetch(server.url, KEY, NAMES, num_of_rows=5)
    pages = [(f.meta["stationName"], f.meta["pageNo"]) for f in frames]
    assert pages == [(n, p) for n in NAMES for p in range(1, 6)]
    assert [f.seq for f in frames] == list(range(10))
    assert json.loads(frames[-1].body)["response"]["body"]["totalCount"] == 24
    assert readings(decode(frames)[0]) == expected(NAMES)


def test_station_series_service_base_url_from_sources_yaml(serve: Callable[..., AirKoreaServer]) -> None:
    """sources.yaml configures the service URL (.../ArpltnInforInqireSvc), not the host root."""
    server = serve()
    frames = fetch(server.url + "/B552584/ArpltnInforInqireSvc", KEY, ["행신동"])
    assert readings(decode(frames)[0]) == expected(["행신동"])


def test_503_on_first_attempt_is_retried(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve(FaultPlan(http_5xx=1.0))
    frames = fetch(server.url, KEY, NAMES, num_of_rows=10, backoff_s=0.01)
    assert readings(decode(frames)[0]) == expected(NAMES)
    assert [status for _, status in server.calls] == [503, 0] * 6  # 3 pages per station


def test_stall_on_first_attempt_is_retried(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve(FaultPlan(http_timeout=1.0, timeout_s=0.6))
    frames = fetch(server.url, KEY, ["행신동"], timeout_s=0.2, backoff_s=0.01)
    assert readings(decode(frames)[0]) == expected(["행신동"])


def test_wrong_key_fails_at_once_without_leaking_it(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    with pytest.raises(GatewayError, match="SERVICE_KEY_IS_NOT_REGISTERED_ERROR") as err:
        fetch(server.url, "wrong+key", NAMES, backoff_s=0.01)
    assert "30" in str(err.value) and "wrong" not in str(err.value)
    assert server.calls == [(STATION_SERIES, 30)]  # not retried


def test_quota_is_retried_then_fails(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve(daily_quota=2)
    with pytest.raises(GatewayError, match="LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR"):
        fetch(server.url, KEY, ["행신동"], num_of_rows=10, retries=2, backoff_s=0.01)
    assert [code for _, code in server.calls] == [0, 0, 22, 22, 22]


def test_unreachable_gateway_keeps_the_key_out_of_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.WARNING), pytest.raises(GatewayError) as err:
        fetch(f"http://127.0.0.1:{port}", KEY, ["행신동"], retries=1, backoff_s=0.01)
    assert caplog.records and "failed" in caplog.text
    for text in (str(err.value), caplog.text):
        assert KEY not in text and "test%2BKey" not in text


def test_refetch_is_byte_identical(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve(FaultPlan(gap=0.05, late=0.3))
    first, second = fetch(server.url, KEY, NAMES, num_of_rows=7), fetch(server.url, KEY, NAMES, num_of_rows=7)
    assert [(f.body, f.meta) for f in first] == [(f.body, f.meta) for f in second]
    for return_type in ("json", "xml"):
        bodies = {get(server, PROVINCE_LATEST, sidoName="전국", ver="1.0", returnType=return_type).content
                  for _ in range(2)}
        assert len(bodies) == 1


def test_gap_and_late_faults(serve: Callable[..., AirKoreaServer]) -> None:
    plan = FaultPlan(seed=3, gap=0.05, late=0.5)
    late = {n for n in NAMES if plan.hit("late", n, LATEST.isoformat())}
    gaps = {(n, m, h) for (n, m, h) in expected(NAMES) if plan.hit("gap", n, h.isoformat(), m)}
    assert late and gaps, "pick a seed that exercises both faults"
    server = serve(plan)
    good, bad = decode(fetch(server.url, KEY, NAMES))

    want = {k: v for k, v in expected(NAMES).items() if k not in gaps and not (k[0] in late and k[2] == LATEST)}
    assert readings(good) == want
    missing = {(r["ref"], r["metric"], r["ts"] + HOUR) for r in bad.to_pylist()}
    assert missing == {k for k in gaps | {MISSING_AT} if not (k[0] in late and k[2] == LATEST)}
    assert set(bad.column("reason").to_pylist()) == {"source_missing"}
    # The province view shows a late station's previous hour.
    resp = get(server, PROVINCE_LATEST, sidoName="경기", ver="1.0", returnType="json")
    items = resp.json()["response"]["body"]["items"]
    times = {i["stationName"]: i["dataTime"] for i in items}
    assert {n for n in NAMES if times[n] == "2024-02-18 23:00"} == late


def test_province_latest_hour(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    resp = get(server, PROVINCE_LATEST, sidoName="경기", ver="1.0", returnType="json", numOfRows=100)
    frame = Frame(resp.content, {"op": PROVINCE_LATEST})
    got = readings(decode([frame])[0])
    names = ["행신동", "주엽동", "백마로(마두역)"]
    assert got == expected(names, hours=1)
    assert resp.json()["response"]["body"]["totalCount"] == 3
    everywhere = get(server, PROVINCE_LATEST, sidoName="전국", returnType="json").json()
    assert everywhere["response"]["body"]["totalCount"] == 4


def test_response_keys_match_the_real_samples(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    cases = [
        (STATION_SERIES, {"stationName": "행신동", "dataTerm": "DAILY", "ver": "1.0"},
         "getMsrstnAcctoRltmMesureDnsty_2024-02-18.json"),
        (PROVINCE_LATEST, {"sidoName": "전국", "ver": "1.0"},
         "getCtprvnRltmMesureDnsty_sidoName-all_2024-02-18T20.json"),
        (STATION_LIST, {}, "MsrstnInfoInqireSvc_getMsrstnList_2024-02-18.json"),
    ]
    for op, params, sample in cases:
        real = json.loads((REAL / sample).read_bytes())["response"]
        ours = get(server, op, returnType="json", **params).json()["response"]
        assert set(ours) == set(real) and ours["header"] == real["header"]
        assert set(ours["body"]) == set(real["body"])
        real_keys = {frozenset(i) for i in real["body"]["items"]}
        assert {frozenset(i) for i in ours["body"]["items"]} == real_keys, op
        assert all(v is None or isinstance(v, str) for i in ours["body"]["items"] for v in i.values())


def test_without_ver_there_is_no_pm25(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    item = get(server, STATION_SERIES, stationName="행신동", dataTerm="DAILY", returnType="json").json()
    keys = set(item["response"]["body"]["items"][0])
    assert not {k for k in keys if k.startswith("pm25")} and "pm10Value" in keys


def test_station_list_coordinates(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    items = get(server, STATION_LIST, returnType="json", addr="고양시").json()["response"]["body"]["items"]
    assert [(i["stationName"], i["dmX"], i["dmY"]) for i in items][0] == ("행신동", "37.6251", "126.8423")
    assert len(items) == 3 and items[2]["mangName"] == "도로변대기"


def test_error_envelopes(serve: Callable[..., AirKoreaServer]) -> None:
    server = serve()
    bad_term = get(server, STATION_SERIES, stationName="행신동", dataTerm="WEEKLY", returnType="json")
    assert bad_term.status_code == 200
    assert bad_term.json() == {"response": {"header": {"resultMsg": "INVALID_REQUEST_PARAMETER_ERROR",
                                                       "resultCode": "10"}}}
    xml = get(server, STATION_SERIES, stationName="행신동", dataTerm="WEEKLY").content  # XML is the default
    assert b"<resultCode>10</resultCode>" in xml and b"<body>" not in xml
    no_station = get(server, STATION_SERIES, dataTerm="DAILY", returnType="json").json()
    assert no_station["response"]["header"]["resultCode"] == "11"
    wrong_key = requests.get(server.url + PATHS[STATION_SERIES], timeout=5,
                             params={"serviceKey": "nope", "returnType": "json", "stationName": "행신동"})
    assert wrong_key.status_code == 200 and wrong_key.content.startswith(b"<OpenAPI_ServiceResponse>")
    assert b"<returnReasonCode>30</returnReasonCode>" in wrong_key.content
    _, bad = decode([Frame(bad_term.content, seq=0), Frame(xml, seq=1), Frame(wrong_key.content, seq=2)])
    assert bad.column("reason").to_pylist() == ["api_error"] * 3
