"""A fault-injecting HTTP reverse proxy in front of the moto S3 server.

Requests are relayed byte for byte (the Host header and the SigV4 headers unchanged; moto
does not check signatures), one upstream connection per request, keep-alive towards the
client. Rules, set at runtime from any thread, fail the next N matching requests:

* ``error``: answer 500/503 with an S3 XML error body (the request never reaches moto);
* ``delay``: forward, then hold the answer for S seconds;
* ``drop``: close the connection without an answer (before or after forwarding: a lost answer
  to a request that did happen, e.g. a Delta commit);
* ``cut``: forward, send the headers and part of the body, then close the connection.

A rule matches on method, a substring of the (URL-decoded) target and of the User-Agent, which
tells the engines apart: botocore, aws-sdk-cpp (pyarrow), object_store (delta-rs), duckdb.
"""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

_ERRORS = {500: ("InternalError", "We encountered an internal error. Please try again."),
           502: ("BadGateway", "Bad gateway."),
           503: ("SlowDown", "Please reduce your request rate."),
           504: ("GatewayTimeout", "Gateway timeout.")}


@dataclass
class Rule:
    kind: str                     # error | delay | drop | cut
    method: str | None = None     # GET, PUT, HEAD, DELETE, POST; None: any
    key: str | None = None        # substring of the decoded target (path and query)
    agent: str | None = None      # substring of the User-Agent, lower case
    times: int | None = 1         # None: until cleared
    status: int = 503
    seconds: float = 0.0
    keep: float = 0.5             # cut: the share of the body sent before the cut
    forward: bool = False         # drop: forward first (the answer is lost, the request happened)
    hits: int = 0

    def matches(self, method: str, target: str, agent: str) -> bool:
        return ((self.method is None or self.method == method) and (self.key is None or self.key in target)
                and (self.agent is None or self.agent in agent) and (self.times is None or self.hits < self.times))


@dataclass
class Request:
    method: str
    target: str
    agent: str
    outcome: str                  # "ok <status>" or the fault kind


@dataclass
class S3Proxy:
    upstream: str                 # http://host:port of the moto server
    rules: list[Rule] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    log: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        u = urlsplit(self.upstream)
        self._up = (u.hostname or "127.0.0.1", u.port or 80)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._clients: set[socket.socket] = set()

    # ---- life cycle ------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        assert self._sock is not None, "not started"
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def start(self) -> "S3Proxy":
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        threading.Thread(target=self._accept, name="s3proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for c in list(self._clients):
                _close(c)

    def __enter__(self) -> "S3Proxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- rules ---------------------------------------------------------------------------------
    def add(self, kind: str, method: str | None = None, key: str | None = None, times: int | None = 1,
            **kw: object) -> Rule:
        rule = Rule(kind, method, key, times=times, **kw)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def injected(self) -> int:
        with self._lock:
            return sum(self.faults.values())

    def agents(self) -> set[str]:
        """Which engines went through the proxy (by User-Agent)."""
        names = ("botocore", "aws-sdk-cpp", "object_store", "duckdb")
        with self._lock:
            return {n for r in self.log for n in names if n in r.agent}

    def _pick(self, method: str, target: str, agent: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target, agent):
                    rule.hits += 1
                    self.faults[rule.kind] += 1
                    return rule
        return None

    def _record(self, method: str, target: str, agent: str, outcome: str) -> None:
        with self._lock:
            self.log.append(Request(method, target, agent, outcome))

    # ---- serving -------------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.settimeout(120)
            with self._lock:
                self._clients.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb")
        try:
            while self._one(conn, rfile):
                pass
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._clients.discard(conn)
            rfile.close()
            _close(conn)

    def _one(self, conn: socket.socket, rfile: BinaryIO) -> bool:
        """Relay one request; False when the connection is to be closed."""
        head = _read_head(rfile)
        if head is None:
            return False
        lines = head.split(b"\r\n")
        method, target, _ = lines[0].decode("latin-1").split(" ", 2)
        headers = _headers(lines[1:])
        if headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            head = b"\r\n".join(l for l in lines if not l.lower().startswith(b"expect:"))
        body = _read_body(rfile, headers, request=True)
        agent = headers.get("user-agent", "").lower()
        target_text = unquote(target)
        rule = self._pick(method, target_text, agent)
        kind = rule.kind if rule else ""
        if kind == "error":
            self._record(method, target_text, agent, f"error {rule.status}")
            conn.sendall(_error(rule.status, target_text, method == "HEAD"))
            return True
        if kind == "drop" and not rule.forward:
            self._record(method, target_text, agent, "drop")
            return False
        answer_head, answer_body, close = self._forward(head + b"\r\n\r\n" + body, method)
        if kind == "delay":
            time.sleep(rule.seconds)
        if kind == "drop":
            self._record(method, target_text, agent, "drop after forward")
            return False
        if kind == "cut":
            if answer_body:
                self._record(method, target_text, agent, "cut")
                sent = min(len(answer_body) - 1, max(1, int(len(answer_body) * rule.keep)))
                conn.sendall(answer_head + answer_body[:sent])
                return False
            with self._lock:   # nothing to cut: answered whole, the rule is not spent
                rule.hits -= 1
                self.faults["cut"] -= 1
        self._record(method, target_text, agent, kind or "ok " + answer_head[9:12].decode())
        conn.sendall(answer_head + answer_body)
        return not close

    def _forward(self, request: bytes, method: str) -> tuple[bytes, bytes, bool]:
        """(head with its blank line, raw body, connection to close) of moto's answer."""
        with socket.create_connection(self._up, timeout=120) as up:
            up.sendall(request)
            with up.makefile("rb") as f:
                head = _read_head(f)
                if head is None:
                    raise OSError("upstream closed")
                lines = head.split(b"\r\n")
                headers = _headers(lines[1:])
                status = int(lines[0].split(b" ")[1])
                if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                    body = b""
                elif "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", ""):
                    body, headers["connection"] = f.read(), "close"   # delimited by the close
                else:
                    body = _read_body(f, headers, request=False)
        return head + b"\r\n\r\n", body, headers.get("connection", "").lower() == "close"


def _read_head(f: BinaryIO) -> bytes | None:
    lines = []
    while True:
        line = f.readline(65537)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if not lines:      # stray blank line between requests
                continue
            return b"\r\n".join(lines)
        lines.append(line.rstrip(b"\r\n"))


def _headers(lines: list[bytes]) -> dict[str, str]:
    out = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        out[name.strip().lower()] = value.strip()
    return out


def _read_body(f: BinaryIO, headers: dict[str, str], request: bool) -> bytes:
    """The body as it came: chunked bodies are kept chunked (sizes, extensions, trailers)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size_line = f.readline(65537)
            if not size_line:
                raise OSError("truncated chunked body")
            out += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:   # trailers, up to the blank line
                    line = f.readline(65537)
                    out += line
                    if line in (b"\r\n", b"\n", b""):
                        return bytes(out)
            out += _exactly(f, size + 2)   # data and its CRLF
    n = int(headers.get("content-length", "0") or 0)
    return _exactly(f, n) if n else b""


def _exactly(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise OSError("truncated body")
    return data


def _error(status: int, resource: str, head: bool) -> bytes:
    code, message = _ERRORS.get(status, ("InternalError", "Injected fault."))
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<Resource>{resource.split('?')[0]}</Resource><RequestId>injected</RequestId></Error>").encode()
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
              504: "Gateway Timeout"}.get(status, "Error")
    head_bytes = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                  f"Content-Length: {len(body)}\r\nx-amz-request-id: injected\r\n\r\n").encode()
    return head_bytes if head else head_bytes + body


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
