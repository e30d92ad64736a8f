"""Decoding real AirKorea Open API responses (data/real/airkorea-openapi, see PROVENANCE.md).

Expected counts are computed independently from the JSON here and pinned to the numbers stated
in PROVENANCE.md, so a decoder change that drops or invents readings shows up as a count.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl.extract.airkorea import FIELDS, decode
from etl.extract.frames import DECODED, REJECTS, Frame
from tests.conftest import real_data

REAL = real_data() / "airkorea-openapi"
REALTIME = REAL / "getCtprvnRltmMesureDnsty_sidoName-all_2024-02-18T20.json"
SERIES = REAL / "getMsrstnAcctoRltmMesureDnsty_2024-02-18.json"
STATIONS = REAL / "MsrstnInfoInqireSvc_getMsrstnList_2024-02-18.json"
GOYANG = {"행신동", "식사동", "백마로(마두역)", "신원동", "주엽동"}
UTC = timezone.utc



def items_of(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_bytes())["response"]["body"]["items"]


def reasons(rejects: pa.Table) -> Counter:
    return Counter(rejects.column("reason").to_pylist())


def metric_counts(table: pa.Table, reason: str | None = None) -> Counter:
    rows = table.to_pylist()
    return Counter(r["metric"] for r in rows if reason is None or r["reason"] == reason)


@pytest.fixture(scope="module")
def realtime() -> tuple[pa.Table, pa.Table]:
    return decode([Frame(REALTIME.read_bytes(), {"op": "getCtprvnRltmMesureDnsty"}, seq=3)])


def test_schemas_are_the_canonical_ones(realtime: tuple[pa.Table, pa.Table]) -> None:
    good, bad = realtime
    assert good.schema == DECODED and bad.schema == REJECTS


def test_realtime_counts_match_an_independent_count(realtime: tuple[pa.Table, pa.Table]) -> None:
    good, bad = realtime
    items = items_of(REALTIME)
    timed = [i for i in items if i["dataTime"] is not None]
    expect_missing = Counter(FIELDS[f][0] for i in timed for f in FIELDS if i[f] == "-")
    expect_good = Counter(FIELDS[f][0] for i in timed for f in FIELDS if i[f] != "-")

    assert len(items) == 656 and len(timed) == 650
    assert metric_counts(bad, "source_missing") == expect_missing
    assert metric_counts(good) == expect_good
    assert good.num_rows == 3792 and sum(expect_missing.values()) == 108
    assert reasons(bad) == {"source_missing": 108, "bad_timestamp": 36}
    assert good.num_rows + bad.num_rows == 656 * 6  # every item x pollutant is accounted for once


def test_realtime_missing_counts_match_provenance(realtime: tuple[pa.Table, pa.Table]) -> None:
    missing = metric_counts(realtime[1], "source_missing")
    assert missing["pm25"] == 64
    assert all(7 <= missing[m] <= 12 for m in ("pm10", "o3", "no2", "co", "so2"))
    details = [r["detail"] for r in realtime[1].to_pylist() if r["reason"] == "source_missing"]
    assert all("통신장애" in d for d in details)  # in this snapshot every "-" carries the flag


def test_all_null_stations_are_bad_timestamps(realtime: tuple[pa.Table, pa.Table]) -> None:
    bad = [r for r in realtime[1].to_pylist() if r["reason"] == "bad_timestamp"]
    null_stations = {i["stationName"] for i in items_of(REALTIME) if i["dataTime"] is None}
    assert len(null_stations) == 6
    assert Counter(r["ref"] for r in bad) == {name: 6 for name in null_stations}
    assert {r["metric"] for r in bad} == {m for m, _, _ in FIELDS.values()}
    assert all(r["ts"] is None and r["frame"] == 3 for r in bad)


def test_realtime_times_units_and_frame(realtime: tuple[pa.Table, pa.Table]) -> None:
    good = realtime[0].to_pylist()
    # hours ending 19:00 and 20:00 KST start at 09:00 and 10:00 UTC: stations report late (113 + 537 items), and
    # one 20:00 station, 고성(DMZ), sent "-" for all six pollutants, so it has no reading at all.
    station_hours = {(r["ts"], r["ref"]) for r in good}
    per_hour = Counter(ts for ts, _ in station_hours)
    assert per_hour == {datetime(2024, 2, 18, 9, tzinfo=UTC): 113, datetime(2024, 2, 18, 10, tzinfo=UTC): 536}
    silent = [r for r in realtime[1].to_pylist() if r["ref"] == "고성(DMZ)"]
    assert len(silent) == 6 and {r["reason"] for r in silent} == {"source_missing"}
    assert {(r["metric"], r["unit"]) for r in good} == {(m, u) for m, u, _ in FIELDS.values()}
    assert {r["frame"] for r in good} == {3}
    assert all(r["src_flag"] is None and r["subject"] is None for r in good)


def test_goyang_stations_present(realtime: tuple[pa.Table, pa.Table]) -> None:
    good, bad = (t.to_pylist() for t in realtime)
    by_station = Counter(r["ref"] for r in good if r["ref"] in GOYANG)
    assert by_station == {"행신동": 6, "식사동": 6, "백마로(마두역)": 6, "주엽동": 6, "신원동": 5}
    sinwon = [r for r in bad if r["ref"] == "신원동"]
    assert [(r["metric"], r["reason"]) for r in sinwon] == [("pm25", "source_missing")]
    assert "통신장애" in sinwon[0]["detail"]
    haengsin = {r["metric"]: r["value"] for r in good if r["ref"] == "행신동"}
    assert haengsin == {"pm10": 16.0, "pm25": 11.0, "o3": 0.028, "no2": 0.015, "co": 0.4, "so2": 0.004}


def test_station_series_takes_ref_from_the_request() -> None:
    frame = Frame(SERIES.read_bytes(), {"op": "getMsrstnAcctoRltmMesureDnsty", "stationName": "행신동"}, seq=0)
    good, bad = decode([frame])
    rows = good.to_pylist()
    assert all("stationName" not in i for i in items_of(SERIES))
    assert good.num_rows == 10 * 6 and bad.num_rows == 0
    assert {r["ref"] for r in rows} == {"행신동"}
    times = sorted({r["ts"] for r in rows})
    assert times[0] == datetime(2024, 2, 18, 0, tzinfo=UTC) and times[-1] == datetime(2024, 2, 18, 9, tzinfo=UTC)
    first = {r["metric"]: r["value"] for r in rows if r["ts"] == times[-1]}
    assert first == {"pm10": 21.0, "pm25": 11.0, "o3": 0.019, "no2": 0.044, "co": 0.5, "so2": 0.003}


def test_station_list_is_not_a_measurement_response() -> None:
    """getMsrstnList items have no pollutant fields: nothing to read, nothing to reject."""
    good, bad = decode([Frame(STATIONS.read_bytes(), {"op": "getMsrstnList"})])
    assert good.num_rows == 0 and bad.num_rows == 0


# --- small synthetic bodies for the cases the real files do not show ---------------------------

def body(items: list[dict[str, Any]], code: str = "00") -> bytes:
    resp = {"response": {"body": {"totalCount": len(items), "items": items, "pageNo": 1, "numOfRows": 10},
                         "header": {"resultMsg": "NORMAL_CODE", "resultCode": code}}}
    return json.dumps(resp, ensure_ascii=False).encode()


def item(data_time: str | None, **values: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"dataTime": data_time, "stationName": "주엽동"}
    for field, (_, _, flag) in FIELDS.items():
        out[field], out[flag] = values.get(field, "1"), None
    return out


def test_midnight_24_00_is_the_last_hour_of_the_same_kst_date() -> None:
    good, bad = decode([Frame(body([item("2024-02-18 24:00")]))])
    assert bad.num_rows == 0
    # hour 23:00-24:00 KST of 02-18 = 14:00-15:00 UTC; silver keeps the hour's start
    assert set(good.column("ts").to_pylist()) == {datetime(2024, 2, 18, 14, tzinfo=UTC)}


def test_bad_values_and_missing_without_flag() -> None:
    good, bad = decode([Frame(body([item("2024-02-18 20:00", pm10Value="abc", o3Value="-", coValue="nan",
                                           so2Value=None)]), seq=7)])
    got = {(r["metric"], r["reason"]) for r in bad.to_pylist()}
    assert got == {("pm10", "bad_value"), ("o3", "source_missing"), ("co", "bad_value"), ("so2", "source_missing")}
    assert all("no flag" in r["detail"] for r in bad.to_pylist() if r["reason"] == "source_missing")
    assert good.num_rows == 2 and set(good.column("frame").to_pylist()) == {7}


def test_unparseable_time_rejects_every_pollutant() -> None:
    good, bad = decode([Frame(body([item("2024-02-18 25:00")]))])
    assert good.num_rows == 0 and reasons(bad) == {"bad_timestamp": 6}


def test_frames_that_are_not_readings() -> None:
    gateway = (b"<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE ERROR</errMsg><returnAuthMsg>"
               b"SERVICE_KEY_IS_NOT_REGISTERED_ERROR</returnAuthMsg><returnReasonCode>30</returnReasonCode>"
               b"</cmmMsgHeader></OpenAPI_ServiceResponse>")
    frames = [Frame(b'{"response": {"body": ', seq=0), Frame(b"<response><header>", seq=1),
              Frame(gateway, seq=2), Frame(body([], code="10"), seq=3), Frame(b'{"other": 1}', seq=4)]
    good, bad = decode(frames)
    assert good.num_rows == 0
    assert bad.column("reason").to_pylist() == ["malformed_json", "malformed_xml", "api_error", "api_error",
                                                "bad_envelope"]
    assert "SERVICE_KEY_IS_NOT_REGISTERED_ERROR" in bad.column("detail")[2].as_py()
    assert bad.column("frame").to_pylist() == [0, 1, 2, 3, 4]


def test_xml_body_decodes_like_json() -> None:
    xml = ("<?xml version='1.0' encoding='UTF-8'?><response><header><resultCode>00</resultCode>"
           "<resultMsg>NORMAL_CODE</resultMsg></header><body><items><item><pm10Value>15</pm10Value>"
           "<pm10Flag /><pm25Value>-</pm25Value><pm25Flag>통신장애</pm25Flag><dataTime>2024-02-18 20:00"
           "</dataTime></item></items><numOfRows>10</numOfRows><pageNo>1</pageNo><totalCount>1</totalCount>"
           "</body></response>").encode()
    good, bad = decode([Frame(xml, {"stationName": "신원동"})])
    assert good.to_pylist()[0] | {"ts": None} == {"ref": "신원동", "metric": "pm10", "ts": None, "value": 15.0,
                                                  "unit": "ug/m3", "src_flag": None, "subject": None, "frame": 0}
    assert [(r["metric"], r["reason"]) for r in bad.to_pylist()] == [("pm25", "source_missing")]
    assert "통신장애" in bad.column("detail")[0].as_py()
