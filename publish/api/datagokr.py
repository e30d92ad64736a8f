"""A data.go.kr / AirKorea compatible view of the hourly station table.

``GET /B552584/ArpltnInforInqireSvc/getMsrstnAcctoRltmMesureDnsty`` answers like AirKorea's
own operation (see ``data/real/airkorea-openapi/`` and :mod:`etl.extract.airkorea`), so a
client written for AirKorea can read our reference stations from the live release:

* every item value is a string; a missing concentration is ``"-"``, a missing grade and every
  ``*Flag`` is null (an empty element in XML), as in the real responses;
* ``dataTime`` is the KST hour *ending* at that time (our ``period_end``), midnight ``24:00``
  of the day before; items are newest first;
* concentrations are printed at AirKorea's precision (PM integer, CO 0.1 ppm, other gases
  0.001 ppm); ``khaiValue``/``khaiGrade`` are our CAI and its grade, the pollutant grades the
  grades of our CAI sub-indices (PM on the 24-hour predicted concentration, as AirKorea's are);
* ``ver`` picks the item fields as the guide does: 1.1 adds ``pm10Value24``/``pm25Value24``,
  1.2 ``mangName``, 1.3 the 1-hour PM grades;
* errors are answered with HTTP 200 like the portal: a missing ``serviceKey`` as the XML
  ``OpenAPI_ServiceResponse`` (returnReasonCode 30) whatever ``returnType`` says, a bad
  parameter as ``resultCode`` 10 in the requested format. An unknown station is a normal,
  empty answer (``totalCount`` 0).

Any non-empty ``serviceKey`` is accepted: the data is open. User input reaches DuckDB only as
bound parameters; column names come from the constants below.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fastapi import APIRouter, Request, Response

from etl.aggregate.indices import cai_grade, cai_subindex
from etl.storage import Store
from etl.timeutil import format_kst_hour
from publish.api import duck, schemas
from publish.api.live import LiveRelease
from etl.duck import identifier as quote

PATH = "/B552584/ArpltnInforInqireSvc/getMsrstnAcctoRltmMesureDnsty"
DATASET = "air-quality-station-hourly"
REGISTRY = "device-registry"
STATION_SUFFIX = " 대기측정소"
MAX_ROWS = 10_000
MISSING = "-"
VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")
DATA_TERMS = {"DAILY": "1 day", "MONTH": "1 month", "3MONTH": "3 months"}
# 측정망 of our stations as AirKorea's station list gives it (getMsrstnList); default 도시대기.
NETWORKS = {"백마로(마두역)": "도로변대기"}
URBAN = "도시대기"

# item field -> (table column, decimals as AirKorea prints it)
VALUES: dict[str, tuple[str, int]] = {
    "so2Value": ("so2", 3), "coValue": ("co", 1), "o3Value": ("o3", 3), "no2Value": ("no2", 3),
    "pm10Value": ("pm10", 0), "pm25Value": ("pm25", 0),
}
VALUES_24H: dict[str, tuple[str, int]] = {"pm10Value24": ("pm10_24h", 0), "pm25Value24": ("pm25_24h", 0)}
GRADES: dict[str, str] = {
    "so2Grade": "cai_so2", "coGrade": "cai_co", "o3Grade": "cai_o3", "no2Grade": "cai_no2",
    "pm10Grade": "cai_pm10", "pm25Grade": "cai_pm25",
}
FLAGS = ("so2Flag", "coFlag", "o3Flag", "no2Flag", "pm10Flag", "pm25Flag")
COLUMNS = ("period_end", "pm10", "pm25", "o3", "no2", "co", "so2", "pm10_24h", "pm25_24h",
           "cai_pm10", "cai_pm25", "cai_o3", "cai_no2", "cai_co", "cai_so2", "cai", "cai_grade")

# data.go.kr codes used here (the full table is etl.extract.airkorea.RESULT_CODES)
NORMAL = ("00", "NORMAL_CODE")
INVALID_PARAMETER = ("10", "INVALID_REQUEST_PARAMETER_ERROR")
KEY_NOT_REGISTERED = ("30", "SERVICE_KEY_IS_NOT_REGISTERED_ERROR")


class _BadParameter(ValueError):
    pass


# ---- formatting ------------------------------------------------------------------------------

def fmt_value(value: Any, decimals: int) -> str:
    """A concentration as AirKorea prints it (half-up), ``-`` when missing."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    q = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{q:.{decimals}f}"


def _grade(index: Any) -> str | None:
    grade = cai_grade(int(index)) if index is not None else None
    return str(grade) if grade is not None else None


def _version(ver: str | None) -> tuple[int, int]:
    if ver is None or ver == "":
        return (1, 0)
    if ver not in VERSIONS:
        raise _BadParameter(f"ver={ver!r}")
    major, minor = ver.split(".")
    return int(major), int(minor)


def item(row: dict[str, Any], version: tuple[int, int], network: str) -> dict[str, Any]:
    """One AirKorea item from one row of the hourly table."""
    out: dict[str, Any] = {"dataTime": format_kst_hour(row["period_end"])}
    if version >= (1, 2):
        out["mangName"] = network
    for name, (column, decimals) in VALUES.items():
        out[name] = fmt_value(row[column], decimals)
        if name in ("pm10Value", "pm25Value") and version >= (1, 1):
            name24 = name + "24"
            col24, dec24 = VALUES_24H[name24]
            out[name24] = fmt_value(row[col24], dec24)
    out["khaiValue"] = MISSING if row["cai"] is None else str(int(row["cai"]))
    out["khaiGrade"] = None if row["cai_grade"] is None else str(int(row["cai_grade"]))
    for name, column in GRADES.items():
        out[name] = _grade(row[column])
    if version >= (1, 3):
        for name, pol in (("pm10Grade1h", "pm10"), ("pm25Grade1h", "pm25")):
            out[name] = _grade(cai_subindex(pol, row[pol]) if row[pol] is not None else None)
    for name in FLAGS:
        out[name] = None
    return out


# ---- envelopes -------------------------------------------------------------------------------

def _xml_bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def gateway_error(code: tuple[str, str]) -> Response:
    """The portal's own error document: XML and HTTP 200, even when JSON was asked for."""
    root = ET.Element("OpenAPI_ServiceResponse")
    header = ET.SubElement(root, "cmmMsgHeader")
    ET.SubElement(header, "errMsg").text = "SERVICE ERROR"
    ET.SubElement(header, "returnAuthMsg").text = code[1]
    ET.SubElement(header, "returnReasonCode").text = code[0]
    return Response(_xml_bytes(root), media_type="text/xml;charset=UTF-8", headers={"Cache-Control": "no-store"})


def envelope(code: tuple[str, str], items: list[dict[str, Any]] | None, total: int, page: int, rows: int,
             as_json: bool) -> Response:
    cache = {"Cache-Control": "public, max-age=60" if code == NORMAL else "no-store"}
    if as_json:
        doc: dict[str, Any] = {"response": {"header": {"resultCode": code[0], "resultMsg": code[1]}}}
        if items is not None:
            doc["response"]["body"] = {"totalCount": total, "items": items, "pageNo": page, "numOfRows": rows}
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return Response(body, media_type="application/json;charset=UTF-8", headers=cache)
    root = ET.Element("response")
    header = ET.SubElement(root, "header")
    ET.SubElement(header, "resultCode").text = code[0]
    ET.SubElement(header, "resultMsg").text = code[1]
    if items is not None:
        body_el = ET.SubElement(root, "body")
        items_el = ET.SubElement(body_el, "items")
        for it in items:
            item_el = ET.SubElement(items_el, "item")
            for key, value in it.items():
                ET.SubElement(item_el, key).text = value     # None -> empty element
        ET.SubElement(body_el, "numOfRows").text = str(rows)
        ET.SubElement(body_el, "pageNo").text = str(page)
        ET.SubElement(body_el, "totalCount").text = str(total)
    return Response(_xml_bytes(root), media_type="text/xml;charset=UTF-8", headers=cache)


# ---- data ------------------------------------------------------------------------------------

def _positive(text: str | None, default: int, name: str, cap: int | None = None) -> int:
    if text is None or text == "":
        return default
    try:
        n = int(text)
    except ValueError:
        raise _BadParameter(f"{name}={text!r}") from None
    if n < 1 or (cap is not None and n > cap):
        raise _BadParameter(f"{name}={text!r}")
    return n


def _device_of(con: Any, store: Store, registry_key: str, station: str) -> tuple[str, str] | None:
    """(device_id, network) of the reference station AirKorea calls ``station``."""
    row = con.execute(
        "SELECT device_id, name_ko FROM read_parquet(?) WHERE kind = 'reference_station' "
        "AND (name_ko = ? OR name_ko = ? OR device_id = ?) ORDER BY device_id LIMIT 1",
        [duck.source(store, registry_key), station, station + STATION_SUFFIX, station]).fetchone()
    if row is None:
        return None
    name = row[1].removesuffix(STATION_SUFFIX) if row[1] else station
    return row[0], NETWORKS.get(name, URBAN)


def station_rows(store: Store, key: str, registry_key: str, station: str, term: str,
                 page: int, rows: int) -> tuple[int, list[dict[str, Any]], str]:
    """(totalCount, the page's rows newest first, network) of a station over ``term``."""
    types = duck.schema(store, key)
    select = ", ".join(quote(c) if c in types else f"NULL AS {quote(c)}" for c in COLUMNS)
    con = duck.connect(store)
    try:
        found = _device_of(con, store, registry_key, station)
        if found is None:
            return 0, [], URBAN
        device, network = found
        src = duck.source(store, key)
        window = ("FROM read_parquet(?) WHERE device_id = ? AND period_end > "
                  "(SELECT max(period_end) FROM read_parquet(?)) - CAST(? AS INTERVAL)")
        params = [src, device, src, DATA_TERMS[term]]
        total = con.execute(f"SELECT count(*) {window}", params).fetchone()[0]
        offset = (page - 1) * rows
        if offset >= total:         # past the last page, maybe past what a BIGINT OFFSET holds
            return int(total), [], network
        cur = con.execute(f"SELECT {select} {window} ORDER BY period_end DESC LIMIT ? OFFSET ?",
                          [*params, rows, offset])
        names = [d[0] for d in cur.description]
        return int(total), [dict(zip(names, r)) for r in cur.fetchall()], network
    finally:
        con.close()


def _parameter(name: str, schema: dict[str, Any], text: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": text}


# Read from the query string by hand (an error is a data.go.kr document, never FastAPI's 400).
PARAMETERS = {"parameters": [
    _parameter("serviceKey", {"type": "string"}, "any non-empty key; none: the portal's XML error 30", True),
    _parameter("stationName", {"type": "string"}, "AirKorea station name (or our device id)", True),
    _parameter("returnType", {"type": "string", "enum": ["xml", "json"]}, "default xml"),
    _parameter("numOfRows", {"type": "integer", "minimum": 1, "maximum": MAX_ROWS}, "page size, default 10"),
    _parameter("pageNo", {"type": "integer", "minimum": 1}, "default 1"),
    _parameter("dataTerm", {"type": "string", "enum": list(DATA_TERMS)}, "window before the newest hour, default DAILY"),
    _parameter("ver", {"type": "string", "enum": list(VERSIONS)}, "item fields as in the guide, default 1.0"),
]}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.DataGoKrResponse,
          "description": "AirKorea's envelope as returnType asks (resultCode 00, or 10 for a bad parameter); a "
                         "missing serviceKey is the portal's XML OpenAPI_ServiceResponse whatever returnType says",
          "content": {"text/xml": schemas.TEXT}},
    **schemas.errors(503),
}


def router(live: LiveRelease, store: Store) -> APIRouter:
    api = APIRouter(tags=["data.go.kr compatible"])

    @api.get(PATH, responses=RESPONSES, openapi_extra=PARAMETERS)
    def get_msrstn_acctortm_mesure_dnsty(request: Request) -> Response:
        q = request.query_params
        if not (q.get("serviceKey") or "").strip():
            return gateway_error(KEY_NOT_REGISTERED)
        as_json = (q.get("returnType") or "xml").strip().lower() == "json"
        try:
            rows = _positive(q.get("numOfRows"), 10, "numOfRows", MAX_ROWS)
            page = _positive(q.get("pageNo"), 1, "pageNo")
            term = (q.get("dataTerm") or "DAILY").strip().upper()
            if term not in DATA_TERMS:
                raise _BadParameter(f"dataTerm={term!r}")
            version = _version(q.get("ver"))
            station = (q.get("stationName") or "").strip()
            if not station:
                raise _BadParameter("stationName is required")
        except _BadParameter:
            return envelope(INVALID_PARAMETER, None, 0, 1, 10, as_json)
        release = live.current()
        total, found, network = station_rows(store, release.bulk_parquet(DATASET), release.bulk_parquet(REGISTRY),
                                             station, term, page, rows)
        return envelope(NORMAL, [item(r, version, network) for r in found], total, page, rows, as_json)

    return api

