"""A vendor IoT cloud API with cursor paging, serving living-weather stations and daycare gates.

Real HTTP on 127.0.0.1 so the extraction adapter is tested over the wire, the way it meets the
vendor. ``since``/``until`` select on the server's *receipt* time (incremental sync, as cloud
APIs do): a late item is received an hour after it was observed, so the next window's
extraction picks it up with its real ``observed_at`` instead of it being lost.

Paging is keyset: the opaque cursor is the last (receipt time, id) served, so items that
arrive while a client pages never shift or repeat the pages it has not read yet.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import math
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from etl.simulate import signals
from etl.simulate.clock import SimClock
from etl.simulate.faults import FaultPlan, fraction, send_cut
from etl.timeutil import KST, UTC, kst_date, parse_iso
from etl.units import conversion

log = logging.getLogger(__name__)

LATE_S = 3600
MAX_LIMIT = 1000

# The vendor's own field names for each signal (deliberately not the adapter's table:
# the simulator is the vendor, and the adapter must be checked against it, not mirror it).
VENDOR_WEATHER = {"temperature": "temp_c", "humidity": "rh_pct", "wind_speed": "wind_ms",
                  "wind_dir": "wind_deg", "rain": "rain_mm", "pressure": "pressure_hpa"}
DIRECTION = {"arrival": "in", "departure": "out"}


class ApiError(Exception):
    """An error the API answers with a JSON error envelope."""

    def __init__(self, status: HTTPStatus, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Record:
    """One item as the server stores it; pages are ordered by :func:`position`."""

    received_ms: int
    id: str
    device_id: str
    ts: datetime                       # true observation time (UTC)
    tag: str = ""
    metric: str = ""


def position(rec: Record) -> tuple[int, str]:
    """Keyset order: when the server received the item, then its id (unique)."""
    return rec.received_ms, rec.id


# ---- cursors ----------------------------------------------------------------------------
def encode_cursor(received_ms: int, item_id: str) -> str:
    raw = json.dumps([received_ms, item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(token: str) -> tuple[int, str]:
    """The (receipt ms, id) position in a cursor; ApiError 400 when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        t, item_id = json.loads(raw)
        if isinstance(t, int) and not isinstance(t, bool) and isinstance(item_id, str):
            return t, item_id
    except (binascii.Error, ValueError, TypeError):
        pass
    raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_cursor", "cursor is not a token this API issued")


# ---- the stored items ---------------------------------------------------------------------
def _ms(ts: datetime) -> int:
    return int(ts.timestamp()) * 1000 + ts.microsecond // 1000


@functools.lru_cache(maxsize=4096)
def _day_events(device_id: str, facility: str, enrolled: int, day: date) -> tuple[tuple[datetime, str, str], ...]:
    """Gate events of one day, cached: every page of a window asks for the same days."""
    return tuple(signals.gate_events(device_id, facility, enrolled, day))


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = kst_date(start), kst_date(end - timedelta(microseconds=1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class Store:
    """What the vendor cloud holds at a given moment, with the fault plan applied."""

    def __init__(self, stations: list[dict], gates: list[dict], clock: SimClock, faults: FaultPlan):
        self.stations, self.gates, self.clock, self.faults = stations, gates, clock, faults

    def received_ms(self, ts: datetime, *key: object) -> int:
        late = self.faults.hit("late", *key)
        return _ms(ts + timedelta(seconds=LATE_S if late else 0))

    def weather_records(self, since: datetime, until: datetime) -> list[Record]:
        lo, hi, now = _ms(since), _ms(until), _ms(self.clock.now())
        out = []
        for st in self.stations:
            step = int(st.get("interval_s") or 600)
            first = -(-int((since - timedelta(seconds=LATE_S)).timestamp()) // step) * step
            for epoch in range(first, math.ceil(until.timestamp()), step):
                ts = datetime.fromtimestamp(epoch, tz=UTC)
                key = ("weather", st["device_id"], epoch)
                got = self.received_ms(ts, *key)
                if lo <= got < hi and got <= now and not self.faults.hit("gap", *key):
                    out.append(Record(got, f"{st['external_id']}/{epoch}", st["device_id"], ts))
        return sorted(out, key=position)

    def gate_records(self, since: datetime, until: datetime) -> list[Record]:
        lo, hi, now = _ms(since), _ms(until), _ms(self.clock.now())
        out = []
        for gate in self.gates:
            facility, enrolled = str(gate.get("group_id") or gate["device_id"]), int(gate.get("capacity") or 0)
            for day in _days(since - timedelta(seconds=LATE_S), until):
                for ts, tag, metric in _day_events(gate["device_id"], facility, enrolled, day):
                    key = ("gate", gate["device_id"], tag, metric, _ms(ts))
                    got = self.received_ms(ts, *key)
                    if lo <= got < hi and got <= now and not self.faults.hit("gap", *key):
                        out.append(Record(got, _event_id(*key), gate["device_id"], ts, tag, metric))
        return sorted(out, key=position)


def _event_id(*key: object) -> str:
    return "EV-" + hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()


# ---- rendering items ----------------------------------------------------------------------
class Renderer:
    """Turns stored records into the vendor's JSON items, faults included."""

    def __init__(self, stations: list[dict], gates: list[dict], faults: FaultPlan):
        self.stations = {d["device_id"]: d for d in stations}
        self.gates = {d["device_id"]: d for d in gates}
        self.faults = faults

    def weather(self, rec: Record) -> dict[str, Any]:
        did = rec.device_id
        skew = self.faults.clock_skew_s if self.faults.hit("skewed", did) else 0.0
        item: dict[str, Any] = {"station": self.stations[did]["external_id"],
                                "observed_at": (rec.ts + timedelta(seconds=skew)).astimezone(KST).isoformat()}
        for metric, value in signals.weather(did, rec.ts).items():
            item[VENDOR_WEATHER[metric]] = int(value) if metric == "wind_dir" else value
        if self.faults.hit("wrong_unit", did):
            item = _in_fahrenheit(item)
        if self.faults.hit("malformed", "weather", rec.id):
            _corrupt(item, "temp_f" if "temp_f" in item else "temp_c", "observed_at", rec.id)
        return item

    def gate(self, rec: Record) -> dict[str, Any]:
        item: dict[str, Any] = {"event_id": rec.id, "gate": self.gates[rec.device_id]["external_id"],
                                "tag": rec.tag, "direction": DIRECTION[rec.metric], "ts": _ms(rec.ts)}
        if self.faults.hit("malformed", "gate", rec.id):
            _corrupt(item, "direction", "ts", rec.id)
        return item


def _in_fahrenheit(item: dict[str, Any]) -> dict[str, Any]:
    """The item as a station configured for Fahrenheit sends it (same field order)."""
    factor, offset = conversion("degF", "degC")
    return {("temp_f" if k == "temp_c" else k): round((v - offset) / factor, 1) if k == "temp_c" else v
            for k, v in item.items()}


def _corrupt(item: dict[str, Any], value_field: str, time_field: str, key: str) -> None:
    """Half the malformed items carry "N/A" as a value, the other half lose their time."""
    if fraction("malformed-kind", key) < 0.5:
        item[value_field] = "N/A"
    else:
        del item[time_field]


# ---- HTTP ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    since: datetime
    until: datetime
    limit: int
    cursor: tuple[int, str] | None


def parse_query(query: str) -> Query:
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    try:
        since, until = parse_iso(params["since"]), parse_iso(params["until"])
        limit = int(params.get("limit") or 100)
    except (KeyError, ValueError) as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_parameter",
                       f"since and until (ISO 8601) are required, limit is an integer: {exc}") from None
    if until < since or not 1 <= limit <= MAX_LIMIT:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_parameter",
                       f"need since <= until and 1 <= limit <= {MAX_LIMIT}")
    cursor = decode_cursor(params["cursor"]) if params.get("cursor") else None
    return Query(since, until, limit, cursor)


class CursorServer:
    """The vendor API on a free (or given) port; ``with CursorServer(...) as srv: srv.url``."""

    def __init__(self, weather_stations: list[dict], gates: list[dict], clock: SimClock, token: str,
                 faults: FaultPlan | None = None, port: int = 0):
        self.clock, self.token, self.faults = clock, token, faults or FaultPlan.none()
        self.store = Store(weather_stations, gates, clock, self.faults)
        self.render = Renderer(weather_stations, gates, self.faults)
        self.routes = {"/v1/observations": (self.store.weather_records, self.render.weather),
                       "/v1/gate-events": (self.store.gate_records, self.render.gate)}
        self._port = port
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "CursorServer":
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        httpd.daemon_threads = True
        httpd.app = self  # type: ignore[attr-defined]
        self._stopping.clear()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cursor-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes requests stalled by a timeout fault
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> "CursorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (called from handler threads) --
    def authorised(self, header: str | None) -> bool:
        expected = f"Bearer {self.token}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)

    def transient_fault(self, request_key: str) -> str | None:
        """'5xx', 'timeout' or 'cut' on the first attempt of a request, as the fault plan decides."""
        f = self.faults
        if not (f.http_5xx or f.http_timeout or f.http_cut) or not f.first_attempt(request_key):
            return None
        if f.hit("http_5xx", request_key):
            return "5xx"
        if f.hit("http_timeout", request_key):
            return "timeout"
        return "cut" if f.hit("http_cut", request_key) else None

    def stall(self) -> None:
        self._stopping.wait(self.faults.timeout_s)

    def page(self, path: str, query: Query) -> dict[str, Any]:
        records_of, render = self.routes[path]
        records = records_of(query.since, query.until)
        start = 0
        if query.cursor is not None:
            # the duplicate fault: this page repeats the item the previous page ended with
            repeat = query.limit > 1 and self.faults.hit("duplicate", path, *query.cursor)
            start = (bisect_left if repeat else bisect_right)(records, query.cursor, key=position)
        chunk = records[start:start + query.limit]
        more = start + query.limit < len(records)
        return {"data": [render(r) for r in chunk],
                "next_cursor": encode_cursor(chunk[-1].received_ms, chunk[-1].id) if more and chunk else None,
                "server_time": self.clock.now().isoformat().replace("+00:00", "Z")}


class _Handler(BaseHTTPRequestHandler):
    server_version = "SimIoTCloud/1.0"

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        app: CursorServer = self.server.app  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        try:
            if not app.authorised(self.headers.get("Authorization")):
                raise ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", "missing or invalid bearer token")
            if url.path not in app.routes:
                raise ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no such resource: {url.path}")
            if app.faults.outage:
                app.faults.note("outage")
                raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "service down for maintenance")
            query = parse_query(url.query)
            fault = app.transient_fault(self.path)
            if fault:
                app.faults.note(f"http_{fault}")  # the FaultPlan field that caused it
            if fault == "5xx":
                raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "service temporarily unavailable")
            if fault == "timeout":
                app.stall()
            if fault == "cut":
                body = json.dumps(app.page(url.path, query), ensure_ascii=False, separators=(",", ":")).encode()
                return send_cut(self, "application/json; charset=utf-8", body)
            self._send(HTTPStatus.OK, app.page(url.path, query))
        except ApiError as err:
            self._send(err.status, {"error": {"code": err.code, "message": err.message}})

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == HTTPStatus.UNAUTHORIZED:
                self.send_header("WWW-Authenticate", 'Bearer realm="iot"')
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away before %s was answered", self.path)  # it timed out: expected

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s " + format, self.address_string(), *args)
