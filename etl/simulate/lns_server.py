"""A LoRaWAN network server's application API: The Things Stack v3 Storage Integration.

``GET /api/v3/as/applications/{app}/packages/storage/uplink_message?after=&before=&limit=``
with ``Authorization: Bearer <api key>`` answers newline-separated ``{"result": {...}}``
uplink messages ordered by ``received_at``, as The Things Stack does. Clients page by
moving ``after`` to the last ``received_at`` they saw.
"""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from etl.simulate import messages
from etl.simulate.clock import SimClock
from etl.simulate.faults import FaultPlan, send_cut
from etl.timeutil import parse_iso

PREFIX = "/api/v3/as/applications/"
SUFFIX = "/packages/storage/uplink_message"


class LnsServer:
    def __init__(self, bins: list[dict], clock: SimClock, api_key: str, faults: FaultPlan | None = None,
                 application_id: str = "goyang-bins", port: int = 0):
        self.bins, self.clock, self.api_key = bins, clock, api_key
        self.faults = faults or FaultPlan.none()
        self.application_id = application_id
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "LnsServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="lns-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LnsServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def uplinks(self, after: datetime, before: datetime) -> list[dict]:
        """Stored uplinks with after < received_at <= before, oldest first."""
        from etl.extract.lorawan_envelope import ttn_v3_uplink

        out = []
        for d in self.bins:
            for ts, port, payload in messages.bin_uplinks(d, after, before):
                if ts <= after or self.faults.hit("gap", d["device_id"], ts):
                    continue
                if self.faults.hit("malformed", d["device_id"], ts):
                    payload = payload[:3]
                out.append(ttn_v3_uplink(d["external_id"], port, payload, ts, d["device_id"], self.application_id))
        out.sort(key=lambda u: (u["received_at"], u["end_device_ids"]["dev_eui"]))
        return out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _json(self, code: int, body: dict) -> None:
                self._send(code, json.dumps(body).encode())

            def _send(self, code: int, data: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a simulated stall outlived its timeout)

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if not (url.path.startswith(PREFIX) and url.path.endswith(SUFFIX)):
                    return self._json(404, {"code": 5, "message": "not found"})
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._json(401, {"code": 16, "message": "error:pkg/auth:unauthenticated (unauthenticated)"})
                if server.faults.outage:
                    server.faults.note("outage")
                    return self._json(503, {"code": 14, "message": "unavailable"})
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                key = self.path
                if server.faults.hit("http_5xx", key) and server.faults.first_attempt("5xx" + key):
                    server.faults.note("http_5xx")
                    return self._json(503, {"code": 14, "message": "unavailable"})
                if server.faults.hit("http_timeout", key) and server.faults.first_attempt("to" + key):
                    server.faults.note("http_timeout")
                    time.sleep(server.faults.timeout_s)
                try:
                    now = server.clock.now()
                    after = parse_iso(q["after"]) if "after" in q else now.replace(year=now.year - 1)
                    before = min(parse_iso(q["before"]), now) if "before" in q else now
                    limit = int(q.get("limit", "1000"))
                except (ValueError, KeyError) as exc:
                    return self._json(400, {"code": 3, "message": f"invalid argument: {exc}"})
                items = server.uplinks(after, before)[:limit]
                data = b"".join(json.dumps({"result": u}, separators=(",", ":")).encode() + b"\n" for u in items)
                if server.faults.hit("http_cut", key) and server.faults.first_attempt("cut" + key):
                    server.faults.note("http_cut")
                    return send_cut(self, "application/json", data)
                self._send(200, data)

        return Handler
