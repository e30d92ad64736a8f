"""A simulated AirKorea Open API (data.go.kr) over real HTTP, for tests and the demo.

It answers like data.go.kr, field for field with the real samples in
``data/real/airkorea-openapi/``: the ``response.header``/``response.body`` envelope in XML (the
default) or JSON, every value a string, ``dataTime`` as the KST hour ending (``24:00`` for
midnight), ``"-"`` plus ``통신장애`` for a missing value, and gateway errors as HTTP 200 with an
XML ``OpenAPI_ServiceResponse``. Every answer is a function of the request, the simulated clock
and the fault plan, so the same request at the same clock time gives the same bytes.

Without ``ver`` (or below 1.0) the items carry no PM2.5 fields, as on data.go.kr.
"""
from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from etl.extract.airkorea import FIELDS, MISSING, PATHS, PROVINCE_LATEST, RESULT_CODES, STATION_SERIES
from etl.simulate.clock import SimClock
from etl.simulate.faults import FaultPlan, send_cut
from etl.timeutil import format_kst_hour, kst_date

Values = Callable[[str, datetime], dict[str, float | None]]
Item = dict[str, str | None]

COMM_FAILURE = "통신장애"
POLLUTANTS: tuple[str, ...] = tuple(metric for metric, _, _ in FIELDS.values())
DECIMALS: dict[str, int] = {"pm10": 0, "pm25": 0, "o3": 3, "no2": 3, "co": 1, "so2": 3}
TERM_HOURS: dict[str, int] = {"DAILY": 24, "MONTH": 24 * 30, "3MONTH": 24 * 90}
SIDO: frozenset[str] = frozenset({"전국", "서울", "부산", "대구", "인천", "광주", "대전", "울산", "경기", "강원",
                                  "충북", "충남", "전북", "전남", "경북", "경남", "제주", "세종"})

# Item keys in the order data.go.kr sends them (from the real samples).
SERIES_KEYS: tuple[str, ...] = (
    "so2Grade", "coFlag", "khaiValue", "so2Value", "coValue", "pm25Flag", "pm10Flag", "pm10Value", "o3Grade",
    "khaiGrade", "pm25Value", "no2Flag", "no2Grade", "o3Flag", "pm25Grade", "so2Flag", "dataTime", "coGrade",
    "no2Value", "pm10Grade", "o3Value",
)
PROVINCE_KEYS: tuple[str, ...] = (
    "so2Grade", "coFlag", "khaiValue", "so2Value", "coValue", "pm25Flag", "pm10Flag", "o3Grade", "pm10Value",
    "khaiGrade", "pm25Value", "sidoName", "no2Flag", "no2Grade", "o3Flag", "pm25Grade", "so2Flag", "dataTime",
    "coGrade", "no2Value", "stationName", "pm10Grade", "o3Value",
)
STATION_KEYS: tuple[str, ...] = ("dmX", "item", "mangName", "year", "addr", "stationName", "dmY")

# An approximation of the Korean Comprehensive Air-quality Index (CAI, 통합대기환경지수), used only by
# this simulator to give khaiValue and the grades plausible values. Each pollutant's concentration
# is mapped linearly onto the index bands 0-50 / 51-100 / 101-250 / 251-500 between the breakpoints
# below (the published grade limits); khaiValue is the largest sub-index. Unlike the real CAI it uses
# the hourly value for PM (not the 24-hour mean) and adds no penalty when several pollutants are bad.
BREAKPOINTS: dict[str, tuple[float, float, float, float]] = {
    "pm10": (30, 80, 150, 600),
    "pm25": (15, 35, 75, 500),
    "o3": (0.030, 0.090, 0.150, 0.6),
    "no2": (0.030, 0.060, 0.200, 2.0),
    "co": (2.0, 9.0, 15.0, 50.0),
    "so2": (0.020, 0.050, 0.150, 1.0),
}
INDEX_BANDS: tuple[tuple[int, int], ...] = ((0, 50), (51, 100), (101, 250), (251, 500))


def grade(metric: str, value: float) -> int:
    """Grade 1 (good) .. 4 (very bad) of a concentration (simulator approximation, see above)."""
    limits = BREAKPOINTS[metric][:3]
    return 1 + sum(value > limit for limit in limits)


def sub_index(metric: str, value: float) -> float:
    """Linear interpolation of the concentration within its grade's index band (capped at 500)."""
    g = grade(metric, value)
    c_lo = 0.0 if g == 1 else BREAKPOINTS[metric][g - 2]
    c_hi = BREAKPOINTS[metric][g - 1]
    i_lo, i_hi = INDEX_BANDS[g - 1]
    return min(500.0, i_lo + (i_hi - i_lo) * (min(value, c_hi) - c_lo) / (c_hi - c_lo))


def index_grade(index: float) -> int:
    return next(g for g, (_, hi) in enumerate(INDEX_BANDS, start=1) if index <= hi or g == len(INDEX_BANDS))


class BadRequest(Exception):
    """A request data.go.kr would answer with an error resultCode in the header."""

    def __init__(self, code: int, detail: str = ""):
        super().__init__(detail)
        self.code = code


class Cut(Exception):
    """The handler must send ``body`` cut off mid-way (the ``http_cut`` fault)."""

    def __init__(self, content_type: str, body: bytes):
        super().__init__("cut")
        self.content_type, self.body = content_type, body


class AirKoreaServer:
    """The three AirKorea operations the city uses, on 127.0.0.1 (``port=0`` picks a free port)."""

    def __init__(
        self,
        stations: list[dict[str, Any]],
        values: Values,
        clock: SimClock,
        service_key: str,
        faults: FaultPlan | None = None,
        port: int = 0,
        daily_quota: int = 1_000_000,
    ):
        self.stations = list(stations)
        self.by_name = {s["stationName"]: s for s in self.stations}
        self.values = values
        self.clock = clock
        self.service_key = service_key
        self.faults = faults or FaultPlan.none()
        self.port = port
        self.daily_quota = daily_quota
        self.calls: list[tuple[str, int]] = []  # (operation, result code or HTTP status), never the key
        self._used: dict[str, int] = {}  # KST date -> authorised requests
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "AirKoreaServer":
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.daemon_threads = True
        httpd.app = self  # type: ignore[attr-defined]
        self._httpd, self.port = httpd, httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"airkorea-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "AirKoreaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- requests --------------------------------------------------------------------------

    def respond(self, path: str, query: str) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for a GET; the handler only transports this."""
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        op = next((name for name, p in PATHS.items() if p == path.rstrip("/")), None)
        if op is None:
            return self._gateway_error("?", 12)
        if self.faults.outage:
            self.faults.note("outage")
            self.calls.append((op, 503))
            return 503, "text/html;charset=UTF-8", b"<html><body><h1>503 Service Unavailable</h1></body></html>"
        if params.get("serviceKey") != self.service_key:
            return self._gateway_error(op, 30)
        if not self._within_quota():
            return self._gateway_error(op, 22)
        fault = self._transient_fault(op, params)
        if fault == "http_5xx":
            self.calls.append((op, 503))
            return 503, "text/html;charset=UTF-8", b"<html><body><h1>503 Service Unavailable</h1></body></html>"
        if fault == "http_timeout":
            time.sleep(self.faults.timeout_s)
        as_json = params.get("returnType", "xml").lower() == "json"
        try:
            items, page, rows, total = self._answer(op, params)
        except BadRequest as exc:
            self.calls.append((op, exc.code))
            return 200, _content_type(as_json), _render(as_json, exc.code, None)
        self.calls.append((op, 0))
        body = _render(as_json, 0, (items, page, rows, total))
        if fault == "http_cut":
            raise Cut(_content_type(as_json), body)
        return 200, _content_type(as_json), body

    def _gateway_error(self, op: str, code: int) -> tuple[int, str, bytes]:
        self.calls.append((op, code))
        return 200, "text/xml;charset=UTF-8", gateway_error_body(code)

    def _within_quota(self) -> bool:
        day = kst_date(self.clock.now()).isoformat()
        with self._lock:
            self._used[day] = self._used.get(day, 0) + 1
            return self._used[day] <= self.daily_quota

    def _transient_fault(self, op: str, params: dict[str, str]) -> str | None:
        """503 or a stall on the first attempt of a request (same query, same served hour)."""
        query = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "serviceKey")
        key = f"{op}?{query}@{self._latest().isoformat()}"
        kinds = [k for k in ("http_5xx", "http_timeout", "http_cut") if self.faults.hit(k, key)]
        if kinds and self.faults.first_attempt(key):
            self.faults.note(kinds[0])
            return kinds[0]
        return None

    def _answer(self, op: str, params: dict[str, str]) -> tuple[list[Item], int, int, int]:
        if params.get("returnType", "xml").lower() not in ("json", "xml"):
            raise BadRequest(10, "returnType")
        rows, page = _positive(params, "numOfRows", 10), _positive(params, "pageNo", 1)
        if op == STATION_SERIES:
            items = self._series(params)
        elif op == PROVINCE_LATEST:
            items = self._province(params)
        else:
            items = self._station_list(params)
        return items[(page - 1) * rows: page * rows], page, rows, len(items)

    # --- operations ------------------------------------------------------------------------

    def _series(self, params: dict[str, str]) -> list[Item]:
        """One station's hours within dataTerm up to now, newest first; no stationName in items."""
        name, term = _required(params, "stationName"), _required(params, "dataTerm").upper()
        if term not in TERM_HOURS:
            raise BadRequest(10, "dataTerm")
        pm25 = _with_pm25(params)
        station = self.by_name.get(name)
        if station is None:
            return []
        latest = self._latest()
        hours = (latest - timedelta(hours=k) for k in range(TERM_HOURS[term]))
        return [self._item(station, h, SERIES_KEYS, pm25) for h in hours if self._published(name, h, latest)]

    def _province(self, params: dict[str, str]) -> list[Item]:
        """The newest published hour of every station of the province (or all, for 전국)."""
        sido = _required(params, "sidoName")
        if sido not in SIDO:
            raise BadRequest(10, "sidoName")
        pm25, latest = _with_pm25(params), self._latest()
        out = []
        for s in self.stations:
            if sido == "전국" or s["sidoName"] == sido:
                fresh = self._published(s["stationName"], latest, latest)
                out.append(self._item(s, latest if fresh else latest - timedelta(hours=1), PROVINCE_KEYS, pm25))
        return out

    def _station_list(self, params: dict[str, str]) -> list[Item]:
        addr, name = params.get("addr", ""), params.get("stationName", "")
        return [_station_item(s) for s in self.stations
                if addr in s.get("addr", "") and (not name or s["stationName"] == name)]

    # --- values ----------------------------------------------------------------------------

    def _latest(self) -> datetime:
        """The newest hour end the gateway can serve: now, truncated to the hour."""
        return self.clock.now().replace(minute=0, second=0, microsecond=0)

    def _published(self, name: str, hour: datetime, latest: datetime) -> bool:
        """A ``late`` station-hour shows up one hour after it should."""
        delay = timedelta(hours=1) if self.faults.hit("late", name, hour.isoformat()) else timedelta(0)
        return hour + delay <= latest

    def _measure(self, name: str, hour: datetime) -> dict[str, float | None]:
        got = self.values(name, hour) or {}
        gap = {m for m in POLLUTANTS if self.faults.hit("gap", name, hour.isoformat(), m)}
        return {m: None if m in gap else got.get(m) for m in POLLUTANTS}

    def _item(self, station: dict[str, Any], hour: datetime, keys: tuple[str, ...], pm25: bool) -> Item:
        full = measurement_fields(self._measure(station["stationName"], hour))
        full.update(dataTime=format_kst_hour(hour), stationName=station["stationName"],
                    sidoName=station["sidoName"])
        return {k: full[k] for k in keys if pm25 or not k.startswith("pm25")}


def measurement_fields(conc: dict[str, float | None]) -> Item:
    """Value, flag and grade strings per pollutant, plus khaiValue/khaiGrade (approximate CAI)."""
    out: Item = {}
    indices = []
    for metric in POLLUTANTS:
        v = conc.get(metric)
        text = None if v is None else f"{v:.{DECIMALS[metric]}f}"
        out[f"{metric}Value"] = MISSING if text is None else text
        out[f"{metric}Flag"] = COMM_FAILURE if text is None else None
        out[f"{metric}Grade"] = None if text is None else str(grade(metric, float(text)))
        if text is not None:
            indices.append(sub_index(metric, float(text)))
    khai = round(max(indices)) if indices else None
    out["khaiValue"] = MISSING if khai is None else str(khai)
    out["khaiGrade"] = None if khai is None else str(index_grade(khai))
    return out


def _station_item(s: dict[str, Any]) -> Item:
    full = {"dmX": str(s["lat"]), "dmY": str(s["lon"]), "mangName": s.get("mangName", "도시대기"),
            "item": s.get("item", "SO2, CO, O3, NO2, PM10, PM2.5"), "year": str(s.get("year", "2000")),
            "addr": s.get("addr", ""), "stationName": s["stationName"]}
    return {k: full[k] for k in STATION_KEYS}


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise BadRequest(11, name)
    return value


def _positive(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name) or str(default)
    if not text.isdigit() or int(text) < 1:
        raise BadRequest(10, name)
    return int(text)


def _with_pm25(params: dict[str, str]) -> bool:
    ver = params.get("ver")
    if ver is None:
        return False
    try:
        return float(ver) >= 1.0
    except ValueError:
        raise BadRequest(10, "ver") from None


# --- rendering -------------------------------------------------------------------------------

def _content_type(as_json: bool) -> str:
    return "application/json;charset=UTF-8" if as_json else "text/xml;charset=UTF-8"


def _render(as_json: bool, code: int, page: tuple[list[Item], int, int, int] | None) -> bytes:
    return _render_json(code, page) if as_json else _render_xml(code, page)


def _result(code: int) -> tuple[str, str]:
    return f"{code:02d}", RESULT_CODES[code][0]


def _render_json(code: int, page: tuple[list[Item], int, int, int] | None) -> bytes:
    result_code, result_msg = _result(code)
    response: dict[str, Any] = {}
    if page is not None:
        items, page_no, rows, total = page
        response["body"] = {"totalCount": total, "items": items, "pageNo": page_no, "numOfRows": rows}
    response["header"] = {"resultMsg": result_msg, "resultCode": result_code}
    return json.dumps({"response": response}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _render_xml(code: int, page: tuple[list[Item], int, int, int] | None) -> bytes:
    root = ET.Element("response")
    header = ET.SubElement(root, "header")
    result_code, result_msg = _result(code)
    ET.SubElement(header, "resultCode").text = result_code
    ET.SubElement(header, "resultMsg").text = result_msg
    if page is not None:
        items, page_no, rows, total = page
        body = ET.SubElement(root, "body")
        items_el = ET.SubElement(body, "items")
        for item in items:
            item_el = ET.SubElement(items_el, "item")
            for key, value in item.items():
                ET.SubElement(item_el, key).text = value
        for key, value in (("numOfRows", rows), ("pageNo", page_no), ("totalCount", total)):
            ET.SubElement(body, key).text = str(value)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def gateway_error_body(code: int) -> bytes:
    """The data.go.kr gateway's own error (auth, quota), XML whatever returnType asked for."""
    return (
        "<OpenAPI_ServiceResponse>\n\t<cmmMsgHeader>\n\t\t<errMsg>SERVICE ERROR</errMsg>\n"
        f"\t\t<returnAuthMsg>{RESULT_CODES[code][0]}</returnAuthMsg>\n"
        f"\t\t<returnReasonCode>{code:02d}</returnReasonCode>\n\t</cmmMsgHeader>\n</OpenAPI_ServiceResponse>"
    ).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    def version_string(self) -> str:
        return "Apache-Coyote/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        parts = urlsplit(self.path)
        app: AirKoreaServer = self.server.app  # type: ignore[attr-defined]
        try:
            status, content_type, body = app.respond(parts.path, parts.query)
        except Cut as cut:
            return send_cut(self, cut.content_type, cut.body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a simulated stall outlived its timeout)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: request lines carry the serviceKey."""
