"""Requests exactly as written: into the ASGI app in process, or over a socket to the app
served by uvicorn. No HTTP client in between to normalise ``/../``, cap a URL at 64 kB or
refuse a header, so what the test wrote is what the app (or the server) gets."""
from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]          # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Asgi:
    """The app called in process with the request target as given: the path is percent-decoded
    as uvicorn decodes it, nothing else is touched. A request that raises is a 500."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def __call__(self, method: str, target: str, headers: dict[str, bytes] | None = None,
                 body: bytes = b"") -> Answer:
        return self.loop.run_until_complete(self._request(method, target, headers or {}, body))

    async def _request(self, method: str, target: str, headers: dict[str, bytes], body: bytes) -> Answer:
        path, _, query = target.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": unquote(path), "raw_path": path.encode("latin-1"),
                 "query_string": query.encode("latin-1"), "root_path": "", "client": ("127.0.0.1", 40000),
                 "server": ("testserver", 80),
                 "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode()),
                             *((k.lower().encode(), v) for k, v in headers.items())]}
        done = asyncio.Event()
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, send)
        except Exception:            # Starlette answers 500 first, then re-raises
            if not start:
                start["status"] = 500
        finally:
            done.set()
        names = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
        return Answer(start["status"], names, b"".join(chunks))


def raw_request(base: str, target: str, method: str = "GET", extra: str = "") -> Answer:
    """One request over a socket to the served app, the target as given; ``extra``: more header
    lines, each ending in CRLF."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: {url.netloc}\r\n{extra}Connection: close\r\n\r\n"
                  .encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Answer(int(lines[0].split()[1]), headers, body)
