"""The data.go.kr / AirKorea compatible endpoint over a real release of the small fixture lake:
envelopes, paging, hour-ending KST times, values against the published Parquet, the portal's
error documents, and a round trip through our own AirKorea decoder."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterator

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from etl.timeutil import KST
from tests.lakes import released_lake

AS_OF = date(2026, 11, 29)
AQ = "air-quality-station-hourly"
PATH = "/B552584/ArpltnInforInqireSvc/getMsrstnAcctoRltmMesureDnsty"
STATION, DEVICE = "행신동", "aq-ref-0001"
DECIMALS = {"so2Value": ("so2", 3), "coValue": ("co", 1), "o3Value": ("o3", 3), "no2Value": ("no2", 3),
            "pm10Value": ("pm10", 0), "pm25Value": ("pm25", 0),
            "pm10Value24": ("pm10_24h", 0), "pm25Value24": ("pm25_24h", 0)}
METRIC_FIELD = {"pm10": "pm10Value", "pm25": "pm25Value", "o3": "o3Value", "no2": "no2Value",
                "co": "coValue", "so2": "so2Value"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from publish.api.app import create_app

    with released_lake(tmp_path_factory, "datagokr-lake", AS_OF) as (root, store):
        app = create_app(store)
        assert any(getattr(r, "path", "").startswith("/B552584") for r in app.routes)
        pointer = json.loads((root / "public" / "latest.json").read_text())
        manifest = json.loads((root / "public" / pointer["manifest"]).read_text())
        path = next(f["path"] for f in manifest["datasets"][AQ]["files"]
                    if f["format"] == "parquet" and f["period"] is None)
        table = pq.read_table(root / "public" / path)
        with TestClient(app) as client:
            yield {"client": client, "table": table}


def _get(api: dict[str, Any], **params: Any) -> Any:
    base = {"serviceKey": "any-open-key", "stationName": STATION, "returnType": "json"}
    return api["client"].get(PATH, params={**base, **params})


def _station_rows(api: dict[str, Any], term: timedelta) -> list[dict[str, Any]]:
    rows = api["table"].to_pylist()
    newest = max(r["period_end"] for r in rows)
    mine = [r for r in rows if r["device_id"] == DEVICE and r["period_end"] > newest - term]
    return sorted(mine, key=lambda r: r["period_end"], reverse=True)


def _printed(value: Any, decimals: int) -> str:
    if value is None:
        return "-"
    return f"{Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):.{decimals}f}"


def _expected_time(period_end: Any) -> str:
    local = period_end.astimezone(KST)
    if (local.hour, local.minute) == (0, 0):
        return f"{local - timedelta(days=1):%Y-%m-%d} 24:00"
    return f"{local:%Y-%m-%d %H:%M}"


# ---- envelopes ------------------------------------------------------------------------------------

def test_json_envelope_is_airkorea_shaped(api: dict[str, Any]) -> None:
    r = _get(api, ver="1.3")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["response"]["header"] == {"resultCode": "00", "resultMsg": "NORMAL_CODE"}
    body = doc["response"]["body"]
    assert (body["totalCount"], body["pageNo"], body["numOfRows"], len(body["items"])) == (24, 1, 10, 10)
    first = body["items"][0]
    assert "stationName" not in first                   # like the real per-station series
    assert first["mangName"] == "도시대기"
    assert all(isinstance(v, str) for k, v in first.items() if not k.endswith("Flag") and v is not None)
    assert all(first[f] is None for f in ("so2Flag", "coFlag", "o3Flag", "no2Flag", "pm10Flag", "pm25Flag"))
    assert {"pm10Value24", "pm25Value24", "khaiValue", "khaiGrade", "pm10Grade", "pm25Grade1h"} <= set(first)


def test_ver_1_0_has_the_fields_of_the_real_sample(api: dict[str, Any]) -> None:
    real = {"so2Grade", "coFlag", "khaiValue", "so2Value", "coValue", "pm25Flag", "pm10Flag", "pm10Value",
            "o3Grade", "khaiGrade", "pm25Value", "no2Flag", "no2Grade", "o3Flag", "pm25Grade", "so2Flag",
            "dataTime", "coGrade", "no2Value", "pm10Grade", "o3Value"}   # data/real/airkorea-openapi
    items = _get(api, ver="1.0").json()["response"]["body"]["items"]
    assert set(items[0]) == real


def test_xml_envelope_matches_the_json(api: dict[str, Any]) -> None:
    r = _get(api, returnType="xml", numOfRows=5, pageNo=2, ver="1.3")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "response"
    assert (root.findtext("header/resultCode"), root.findtext("header/resultMsg")) == ("00", "NORMAL_CODE")
    assert [root.findtext(f"body/{k}") for k in ("totalCount", "pageNo", "numOfRows")] == ["24", "2", "5"]
    xml_items = [{c.tag: (c.text or None) for c in it} for it in root.iterfind("body/items/item")]
    json_items = _get(api, numOfRows=5, pageNo=2, ver="1.3").json()["response"]["body"]["items"]
    assert xml_items == json_items and len(xml_items) == 5
    # no returnType at all is XML, as on the portal
    assert ET.fromstring(api["client"].get(PATH, params={"serviceKey": "k", "stationName": STATION}).content).tag == "response"


def test_paging_walks_the_whole_window_newest_first(api: dict[str, Any]) -> None:
    everything = _get(api, numOfRows=100).json()["response"]["body"]
    pages = []
    for page in range(1, 5):
        body = _get(api, numOfRows=7, pageNo=page).json()["response"]["body"]
        assert (body["totalCount"], body["pageNo"], body["numOfRows"]) == (24, page, 7)
        pages += body["items"]
    assert len(pages) == 24 and pages == everything["items"]
    times = [i["dataTime"].replace("24:00", "99:99") for i in pages]  # 24:00 is the day's last hour
    assert times == sorted(times, reverse=True)
    beyond = _get(api, numOfRows=10, pageNo=9).json()["response"]["body"]
    assert beyond["totalCount"] == 24 and beyond["items"] == []


def test_data_term_widens_the_window(api: dict[str, Any]) -> None:
    month = _get(api, dataTerm="MONTH", numOfRows=1).json()["response"]["body"]["totalCount"]
    assert month == len(_station_rows(api, timedelta(days=31))) > 24


# ---- values ---------------------------------------------------------------------------------------

def test_data_time_is_hour_ending_kst_with_24_00_for_midnight(api: dict[str, Any]) -> None:
    items = _get(api, dataTerm="MONTH", numOfRows=1000).json()["response"]["body"]["items"]
    expected = [_expected_time(r["period_end"]) for r in _station_rows(api, timedelta(days=31))]
    assert [i["dataTime"] for i in items] == expected
    midnight = [i["dataTime"] for i in items if i["dataTime"].endswith("24:00")]
    assert midnight and not any(i["dataTime"].endswith(" 00:00") for i in items)
    # the newest row is the hour 23:00-24:00 KST of the fixture day: period_end is next midnight
    assert items[0]["dataTime"] == "2026-11-24 24:00"


def test_values_equal_the_published_parquet(api: dict[str, Any]) -> None:
    items = _get(api, dataTerm="MONTH", numOfRows=1000, ver="1.5").json()["response"]["body"]["items"]
    rows = _station_rows(api, timedelta(days=31))
    assert len(items) == len(rows)
    dashes = 0
    for item, row in zip(items, rows):
        for field, (column, decimals) in DECIMALS.items():
            assert item[field] == _printed(row[column], decimals), (field, row["period_end"])
            if row[column] is not None:
                assert float(item[field]) == pytest.approx(row[column], abs=0.5 * 10 ** -decimals + 1e-12)
            dashes += item[field] == "-"
        assert item["khaiValue"] == ("-" if row["cai"] is None else str(row["cai"]))
        assert item["khaiGrade"] == (None if row["cai_grade"] is None else str(row["cai_grade"]))
        if row["cai"] is not None:
            grades = [int(item[g]) for g in ("so2Grade", "coGrade", "o3Grade", "no2Grade", "pm10Grade", "pm25Grade")
                      if item[g] is not None]
            assert max(grades) <= int(item["khaiGrade"])   # the CAI is the highest sub-index
    assert dashes > 0                                       # the fixture has missing hours


def test_roadside_station_reports_its_network(api: dict[str, Any]) -> None:
    items = _get(api, stationName="백마로(마두역)", ver="1.2").json()["response"]["body"]["items"]
    assert items and {i["mangName"] for i in items} == {"도로변대기"}


# ---- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [None, ""])
def test_missing_service_key_is_the_portal_xml_error_with_200(api: dict[str, Any], key: str | None) -> None:
    params = {"stationName": STATION, "returnType": "json"} | ({} if key is None else {"serviceKey": key})
    r = api["client"].get(PATH, params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "OpenAPI_ServiceResponse"
    assert root.findtext("cmmMsgHeader/returnReasonCode") == "30"
    assert root.findtext("cmmMsgHeader/returnAuthMsg") == "SERVICE_KEY_IS_NOT_REGISTERED_ERROR"


@pytest.mark.parametrize("bad", [{"numOfRows": "abc"}, {"numOfRows": "0"}, {"pageNo": "-1"},
                                 {"dataTerm": "YEAR"}, {"ver": "9.9"}])
def test_bad_parameters_are_result_code_10(api: dict[str, Any], bad: dict[str, str]) -> None:
    from etl.extract.airkorea import parse_body

    for fmt in ("json", "xml"):
        r = _get(api, returnType=fmt, **bad)
        assert r.status_code == 200
        env = parse_body(r.content)
        assert (env.code, env.message, env.ok) == (10, "INVALID_REQUEST_PARAMETER_ERROR", False)


def test_unknown_station_is_an_empty_normal_answer(api: dict[str, Any]) -> None:
    body = _get(api, stationName="종로구").json()["response"]
    assert body["header"]["resultCode"] == "00"
    assert (body["body"]["totalCount"], body["body"]["items"]) == (0, [])
    lowcost = _get(api, stationName="aq-lc-0001").json()["response"]["body"]    # not an AirKorea station
    assert lowcost["totalCount"] == 0


# ---- round trip through our own AirKorea adapter --------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_round_trip_through_our_airkorea_decoder(api: dict[str, Any], fmt: str) -> None:
    from etl.extract.airkorea import decode, parse_body
    from etl.extract.frames import Frame

    body = _get(api, returnType=fmt, dataTerm="MONTH", numOfRows=1000).content
    env = parse_body(body)
    assert env.ok and env.total_count == len(env.items) > 24
    good, bad = decode([Frame(body=body, meta={"stationName": STATION}, seq=0)])
    rows = {r["period_start"]: r for r in _station_rows(api, timedelta(days=31))}
    decoded = good.to_pylist()
    assert decoded and {d["ref"] for d in decoded} == {STATION}
    for d in decoded:
        row = rows[d["ts"]]                       # hour-ending dataTime decodes back to period_start
        field = METRIC_FIELD[d["metric"]]
        assert _printed(d["value"], DECIMALS[field][1]) == _printed(row[d["metric"]], DECIMALS[field][1])
    rejects = bad.to_pylist()
    assert {r["reason"] for r in rejects} <= {"source_missing"}
    assert len(decoded) + len(rejects) == 6 * len(rows)
    assert len(rejects) == sum(row[m] is None for row in rows.values() for m in METRIC_FIELD)
