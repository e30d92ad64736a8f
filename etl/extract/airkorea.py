"""AirKorea Open API (data.go.kr, Korea Environment Corporation) adapter.

Fetches each configured station's hourly series (``getMsrstnAcctoRltmMesureDnsty``), lands every
response body as it came, and decodes bodies into candidate readings. It never validates: ranges
and plausibility belong to the quality suites, unit conversion to :mod:`etl.units`.

Protocol notes (see the real samples in ``data/real/airkorea-openapi/``):

* every item value is a string; a missing value is ``"-"`` with ``*Flag`` = ``"통신장애"``;
* ``dataTime`` is the KST hour *ending* at that time, midnight written ``24:00``;
* the per-station series carries no ``stationName``: the station is only in the request;
* data.go.kr answers auth and quota errors with HTTP 200 and an XML ``OpenAPI_ServiceResponse``,
  even when JSON was requested; API errors come as a ``header.resultCode`` other than ``00``.

``service_key`` is the *decoded* data.go.kr key (the HTTP client percent-encodes it). It is sent
in the query string, as data.go.kr requires, and never written to frame meta, logs or errors.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator
from urllib.parse import quote, quote_plus, urlencode

import pyarrow as pa
import requests

from etl.extract import http
from etl.extract.frames import DECODED, REJECTS, Frame, Rows, excerpt
from etl.extract.http import GatewayError
from etl.timeutil import parse_local

HOUR = timedelta(hours=1)
from quality.reasons import check

# value field -> (canonical metric, unit as sent, flag field)
FIELDS: dict[str, tuple[str, str, str]] = {
    "pm10Value": ("pm10", "ug/m3", "pm10Flag"),
    "pm25Value": ("pm25", "ug/m3", "pm25Flag"),
    "o3Value": ("o3", "ppm", "o3Flag"),
    "no2Value": ("no2", "ppm", "no2Flag"),
    "coValue": ("co", "ppm", "coFlag"),
    "so2Value": ("so2", "ppm", "so2Flag"),
}

log = logging.getLogger(__name__)

# Operations and their paths on the gateway (shared with the simulator in etl.simulate).
STATION_SERIES = "getMsrstnAcctoRltmMesureDnsty"
PROVINCE_LATEST = "getCtprvnRltmMesureDnsty"
STATION_LIST = "getMsrstnList"
PATHS: dict[str, str] = {
    STATION_SERIES: f"/B552584/ArpltnInforInqireSvc/{STATION_SERIES}",
    PROVINCE_LATEST: f"/B552584/ArpltnInforInqireSvc/{PROVINCE_LATEST}",
    STATION_LIST: f"/B552584/MsrstnInfoInqireSvc/{STATION_LIST}",
}
VERSION = "1.0"  # ver=1.0 adds the PM2.5 fields to the items
MISSING = "-"

# data.go.kr result codes (header.resultCode, or returnReasonCode of OpenAPI_ServiceResponse).
RESULT_CODES: dict[int, tuple[str, str]] = {
    0: ("NORMAL_CODE", "정상"),
    1: ("APPLICATION_ERROR", "어플리케이션 에러"),
    2: ("DB_ERROR", "데이터베이스 에러"),
    3: ("NODATA_ERROR", "데이터없음 에러"),
    4: ("HTTP_ERROR", "HTTP 에러"),
    5: ("SERVICETIME_OUT", "서비스 연결실패 에러"),
    10: ("INVALID_REQUEST_PARAMETER_ERROR", "잘못된 요청 파라메터 에러"),
    11: ("NO_MANDATORY_REQUEST_PARAMETERS_ERROR", "필수요청 파라메터가 없음"),
    12: ("NO_OPENAPI_SERVICE_ERROR", "해당 오픈API서비스가 없거나 폐기됨"),
    20: ("SERVICE_ACCESS_DENIED_ERROR", "서비스 접근거부"),
    21: ("TEMPORARILY_DISABLE_THE_SERVICEKEY_ERROR", "일시적으로 사용할 수 없는 서비스키"),
    22: ("LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR", "서비스 요청제한횟수 초과에러"),
    30: ("SERVICE_KEY_IS_NOT_REGISTERED_ERROR", "등록되지 않은 서비스키"),
    31: ("DEADLINE_HAS_EXPIRED_ERROR", "기한만료된 서비스키"),
    32: ("UNREGISTERED_IP_ERROR", "등록되지 않은 IP"),
    33: ("UNSIGNED_CALL_ERROR", "서명되지 않은 호출"),
    99: ("UNKNOWN_ERROR", "기타에러"),
}
# Retrying cannot fix these (credentials, request or endpoint are wrong): fail at once.
# Everything else (quota 22, service errors 1-5, 99, unknown codes) is retried with backoff.
FATAL_CODES = frozenset({10, 11, 12, 20, 21, 30, 31, 32, 33})


@dataclass
class Envelope:
    """A parsed response body: the result code and, on success, the items."""

    code: int | None
    message: str
    items: list[Any]
    total_count: int | None = None
    gateway: bool = False  # the data.go.kr gateway's OpenAPI_ServiceResponse

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def reason(self) -> str:
        name = RESULT_CODES.get(self.code, ("UNKNOWN_CODE", ""))[0] if self.code is not None else "NO_CODE"
        return f"resultCode {self.code} {name}: {self.message}".strip()


class MalformedBody(ValueError):
    """The body is not a readable AirKorea envelope; ``reason`` is a quality.reasons code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = check(reason)


# --- parsing -------------------------------------------------------------------------------

def parse_body(body: bytes) -> Envelope:
    """Parse a JSON or XML response body (sniffed, since data.go.kr errors are XML even for JSON)."""
    is_xml = body.lstrip()[:1] == b"<"
    return _parse_xml(body) if is_xml else _parse_json(body)


def _code(text: Any) -> int | None:
    try:
        return int(str(text).strip())
    except ValueError:
        return None


def _parse_json(body: bytes) -> Envelope:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedBody("malformed_json", f"not JSON: {exc}") from None
    resp = doc.get("response") if isinstance(doc, dict) else None
    header = resp.get("header") if isinstance(resp, dict) else None
    if not isinstance(header, dict):
        raise MalformedBody("bad_envelope", "JSON without response.header")
    body_obj = resp.get("body") if isinstance(resp.get("body"), dict) else {}
    items = body_obj.get("items") or []
    if isinstance(items, dict):  # some data.go.kr services wrap the list as {"item": [...]}
        items = items.get("item") or []
        items = items if isinstance(items, list) else [items]
    return Envelope(_code(header.get("resultCode")), str(header.get("resultMsg") or ""),
                    items if isinstance(items, list) else [], _code(body_obj.get("totalCount")))


def _parse_xml(body: bytes) -> Envelope:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise MalformedBody("malformed_xml", f"not XML: {exc}") from None
    if root.tag == "OpenAPI_ServiceResponse":
        msg = " ".join(t for t in (root.findtext("cmmMsgHeader/errMsg"),
                                   root.findtext("cmmMsgHeader/returnAuthMsg")) if t)
        return Envelope(_code(root.findtext("cmmMsgHeader/returnReasonCode")), msg, [], gateway=True)
    if root.tag != "response" or root.find("header") is None:
        raise MalformedBody("bad_envelope", f"XML root <{root.tag}> is not an AirKorea response")
    items = [{child.tag: _xml_text(child) for child in item} for item in root.iterfind("body/items/item")]
    return Envelope(_code(root.findtext("header/resultCode")), root.findtext("header/resultMsg") or "",
                    items, _code(root.findtext("body/totalCount")))


def _xml_text(elem: ET.Element) -> str | None:
    """XML cannot tell null from empty: an empty element is null, as in the JSON."""
    text = (elem.text or "").strip()
    return text or None


# --- fetching ------------------------------------------------------------------------------

def op_url(base_url: str, op: str) -> str:
    """The operation URL under ``base_url``: a host root, ``.../B552584`` or ``.../ArpltnInforInqireSvc``."""
    base = base_url.rstrip("/")
    segments = PATHS[op].strip("/").split("/")
    for i in range(len(segments), 0, -1):
        if base.endswith("/" + "/".join(segments[:i])):
            return base + "/" + "/".join(segments[i:]) if i < len(segments) else base
    return base + PATHS[op]


def fetch(
    base_url: str,
    service_key: str,
    station_names: list[str],
    *,
    data_term: str = "DAILY",
    return_type: str = "json",
    num_of_rows: int = 100,
    retries: int = 4,
    backoff_s: float = 0.2,
    timeout_s: float = 10,
) -> list[Frame]:
    """Every page of every station's series, one frame per response body, exactly as received."""
    url = op_url(base_url, STATION_SERIES)
    frames: list[Frame] = []
    with requests.Session() as session, _scrubbed(http.log, service_key):
        for name in station_names:
            page = 1
            while True:
                params = {"returnType": return_type, "numOfRows": num_of_rows, "pageNo": page,
                          "stationName": name, "dataTerm": data_term, "ver": VERSION}
                body, env = _get_page(url, params, service_key, session=session, retries=retries,
                                      backoff_s=backoff_s, timeout_s=timeout_s)
                meta = {"op": STATION_SERIES, "stationName": name, "pageNo": page,
                        "returnType": return_type, "url": f"{url}?{urlencode(params)}"}
                frames.append(Frame(body=body, meta=meta, seq=len(frames)))
                if not env.items or page * num_of_rows >= (env.total_count or 0):
                    break
                page += 1
    return frames


def _get_page(
    url: str,
    params: dict[str, Any],
    service_key: str,
    *,
    session: requests.Session,
    retries: int,
    backoff_s: float,
    timeout_s: float,
) -> tuple[bytes, Envelope]:
    """GET one page; retry error envelopes that may pass (quota, service errors), fail on the rest."""
    what = f"{STATION_SERIES} stationName={params['stationName']} pageNo={params['pageNo']}"
    last = ""
    for attempt in range(retries + 1):
        body = _http_get(url, {**params, "serviceKey": service_key}, service_key, session=session,
                         retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
        try:
            env = parse_body(body)
        except MalformedBody as exc:
            last = f"{exc.reason}: {exc}"
        else:
            if env.ok:
                return body, env
            if env.code in FATAL_CODES:
                raise GatewayError(f"AirKorea {what}: {env.reason}")
            last = env.reason
        if attempt < retries:
            delay = backoff_s * (2 ** attempt)
            log.warning("AirKorea %s failed (%s); retry %d/%d in %.1fs", what, last, attempt + 1, retries, delay)
            time.sleep(delay)
    raise GatewayError(f"AirKorea {what} failed after {retries + 1} attempts: {last}")


def _http_get(url: str, params: dict[str, Any], service_key: str, *, session: requests.Session,
              retries: int, backoff_s: float, timeout_s: float) -> bytes:
    """http.get, with the service key scrubbed from any error (requests puts the full URL in them)."""
    try:
        resp = http.get(url, params, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, session=session)
    except (GatewayError, requests.RequestException) as exc:
        raise GatewayError(redact(str(exc), service_key)) from None
    return resp.content


class _Redact(logging.Filter):
    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secret)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


@contextlib.contextmanager
def _scrubbed(logger: logging.Logger, secret: str) -> Iterator[None]:
    """http.get logs requests' error text, which holds the full URL and so the service key."""
    scrub = _Redact(secret)
    logger.addFilter(scrub)
    try:
        yield
    finally:
        logger.removeFilter(scrub)


def redact(text: str, secret: str) -> str:
    """Remove a secret in every spelling it can take in a URL."""
    if not secret:
        return text
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(form, "***")
    return text


# --- decoding ------------------------------------------------------------------------------

def decode(frames: list[Frame]) -> tuple[pa.Table, pa.Table]:
    """(DECODED, REJECTS) for JSON or XML bodies; never raises on bad input, it rejects instead."""
    good, bad = Rows(DECODED), Rows(REJECTS)
    for frame in frames:
        _decode_frame(frame, good, bad)
    return good.table(), bad.table()


def _decode_frame(frame: Frame, good: Rows, bad: Rows) -> None:
    ref = frame.meta.get("stationName")
    try:
        env = parse_body(frame.body)
    except MalformedBody as exc:
        bad.add(frame=frame.seq, reason=exc.reason, detail=str(exc), ref=ref, raw=excerpt(frame.body))
        return
    if not env.ok:
        bad.add(frame=frame.seq, reason=check("api_error"), detail=env.reason, ref=ref, raw=excerpt(frame.body))
        return
    for item in env.items:
        if isinstance(item, dict):
            _decode_item(item, frame, good, bad)
        else:
            bad.add(frame=frame.seq, reason=check("bad_envelope"), detail="item is not an object",
                    ref=ref, raw=excerpt(json.dumps(item, ensure_ascii=False)))


def _decode_item(item: dict[str, Any], frame: Frame, good: Rows, bad: Rows) -> None:
    """One reading or one reject per pollutant field present in the item (items without any,
    such as getMsrstnList stations, yield nothing), so counts reconcile per reading."""
    ref = item.get("stationName") or frame.meta.get("stationName")
    present = [f for f in FIELDS if f in item]
    raw = excerpt(json.dumps(item, ensure_ascii=False))
    ts = _data_time(item.get("dataTime"))
    for field in present:
        metric, unit, flag_field = FIELDS[field]
        text, flag = item.get(field), item.get(flag_field)
        reject = {"frame": frame.seq, "ref": ref, "metric": metric, "ts": ts, "raw": raw}
        if ts is None:
            bad.add(reason=check("bad_timestamp"), detail=f"dataTime={item.get('dataTime')!r}", **reject)
        elif text is None or (isinstance(text, str) and text.strip() in ("", MISSING)):
            bad.add(reason=check("source_missing"), detail=f"{field}={text!r} ({flag or 'no flag'})", **reject)
        else:
            value = _number(text)
            if value is None:
                bad.add(reason=check("bad_value"), detail=f"{field}={text!r} is not a number", **reject)
            else:
                good.add(ref=ref, metric=metric, ts=ts, value=value, unit=unit, src_flag=flag, frame=frame.seq)


def _data_time(text: Any) -> datetime | None:
    """Start (UTC) of the averaging hour a KST ``dataTime`` names, None if unreadable.

    AirKorea's ``dataTime`` is hour-ending (``24:00`` = 23:00–24:00 of that day); silver
    stores the start of the hour, so an hour belongs to the KST date it was measured on.
    """
    if not isinstance(text, str):
        return None
    try:
        return parse_local(text) - HOUR
    except ValueError:
        return None


def _number(text: Any) -> float | None:
    if isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
