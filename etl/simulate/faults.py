"""Configurable gateway faults, decided deterministically.

Every decision is a hash of (seed, fault kind, key), so replaying a window gives the same
bytes (landing stays idempotent) while the faults still look random across devices.
Transient faults (HTTP 5xx, timeouts, a body cut mid-way) hit only the first attempt of a
request, so a client that retries recovers, as it would from a real flaky gateway. ``outage``
is a switch, not a rate: while it is set every request answers 503, however often it is retried.
"""
from __future__ import annotations

import hashlib
import socket
import threading
from collections import Counter
from datetime import datetime
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class FaultPlan:
    seed: int = 7
    duplicate: float = 0.0       # a reading is sent twice
    out_of_order: float = 0.0    # a message is sent after later ones
    late: float = 0.0            # a reading arrives one window late
    gap: float = 0.0             # a reading is never sent
    stuck: float = 0.0           # a device repeats its last value for hours
    spike: float = 0.0           # a value jumps far beyond the max step
    malformed: float = 0.0       # a payload is corrupted (bad JSON / truncated bytes)
    wrong_unit: float = 0.0      # a value is sent in another unit (declared)
    clock_skew_s: float = 0.0    # device clock offset for skewed devices
    skewed: float = 0.0          # share of devices with a skewed clock
    http_5xx: float = 0.0        # first attempt of a request answers 503
    http_timeout: float = 0.0    # first attempt of a request stalls past the client timeout
    http_cut: float = 0.0        # first attempt of a request: the connection closes mid-body
    timeout_s: float = 12.0
    outage: bool = False         # the gateway is down: every request answers 503 until cleared
    broker_disconnects: int = 0  # the MQTT publisher drops its connection this many times
    _attempts: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _served: Counter = field(default_factory=Counter, repr=False, compare=False)  # kind -> failures served

    @classmethod
    def none(cls) -> "FaultPlan":
        return cls()

    @classmethod
    def demo(cls) -> "FaultPlan":
        """A little of everything, as a real city sees on an ordinary day."""
        return cls(duplicate=0.01, out_of_order=0.02, late=0.005, gap=0.01, stuck=0.002, spike=0.001,
                   malformed=0.002, wrong_unit=0.002, skewed=0.05, clock_skew_s=90, http_5xx=0.2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FaultPlan":
        names = {f.name for f in fields(cls) if not f.name.startswith("_")}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**values)

    def hit(self, kind: str, *key: object) -> bool:
        rate = getattr(self, kind)
        return rate > 0 and fraction(self.seed, kind, *key) < rate

    def note(self, kind: str) -> None:
        """Count a failure a gateway served (5xx, timeout, cut, outage), for tests to report."""
        with self._lock:
            self._served[kind] += 1

    def served(self) -> Counter:
        """Failures served so far, by kind."""
        with self._lock:
            return Counter(self._served)

    def first_attempt(self, request_key: str) -> bool:
        """True the first time a request is seen (transient faults strike only then)."""
        with self._lock:
            n = self._attempts.get(request_key, 0)
            self._attempts[request_key] = n + 1
        return n == 0


def send_cut(handler: Any, content_type: str, body: bytes) -> None:
    """Answer 200 with a chunked body and close the connection half-way through its only chunk
    (what a proxy or gateway restart does to a response in flight); the client gets a truncated
    body it must not accept (requests raises ChunkedEncodingError)."""
    try:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.write(b"%x\r\n" % len(body) + body[: len(body) // 2])
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the client went away first
    handler.close_connection = True


def fraction(*key: object) -> float:
    """A stable number in [0, 1) for a key."""
    # datetimes by their instant, so the same moment in any tz object gives the same number
    norm = tuple(k.timestamp() if isinstance(k, datetime) else k for k in key)
    digest = hashlib.blake2b(repr(norm).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
