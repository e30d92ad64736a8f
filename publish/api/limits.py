"""Rate limits: a fixed window per client, announced on every response.

Anonymous clients are counted per IP address; a client with an API key (``X-API-Key`` header
or ``api_key`` parameter, keys from the environment variable ``CITYLAKE_API_KEYS``,
comma-separated) per key, with a higher limit. Every response carries ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds to the next window), and a 429
carries them too, with ``Retry-After`` (the OpenAQ lesson: clients need them most on a 429).
In memory and per process: behind several workers, put the limit in the gateway instead.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WINDOW_S = 60
ANONYMOUS_PER_WINDOW = 600
KEYED_PER_WINDOW = 6000
KEYS_ENV = "CITYLAKE_API_KEYS"


class RateLimit:
    """ASGI middleware; ``clock`` is injectable for tests."""

    def __init__(self, app: ASGIApp, anonymous: int = ANONYMOUS_PER_WINDOW, keyed: int = KEYED_PER_WINDOW,
                 window_s: int = WINDOW_S, clock: Any = time.monotonic) -> None:
        self.app, self.anonymous, self.keyed, self.window_s, self.clock = app, anonymous, keyed, window_s, clock
        self.counts: dict[str, tuple[int, int]] = {}      # client -> (window number, requests)
        self.lock = threading.Lock()

    def _client(self, scope: Scope) -> tuple[str, int]:
        headers = dict(scope.get("headers") or [])
        key = headers.get(b"x-api-key", b"").decode() or _query_value(scope, "api_key")
        keys = {k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()}
        if key and key in keys:
            return f"key:{key}", self.keyed
        host = (scope.get("client") or ("unknown", 0))[0]
        return f"ip:{host}", self.anonymous

    def _count(self, client: str) -> tuple[int, int]:
        now = self.clock()
        window = int(now // self.window_s)
        with self.lock:
            seen_window, n = self.counts.get(client, (window, 0))
            n = n + 1 if seen_window == window else 1
            self.counts[client] = (window, n)
        reset = int((window + 1) * self.window_s - now) + 1
        return n, reset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client, limit = self._client(scope)
        n, reset = self._count(client)
        headers = [(b"x-ratelimit-limit", str(limit).encode()),
                   (b"x-ratelimit-remaining", str(max(0, limit - n)).encode()),
                   (b"x-ratelimit-reset", str(reset).encode())]
        if n > limit:
            body = json.dumps({"error": "rate limit exceeded",
                               "detail": f"{limit} requests per {self.window_s} s; retry in {reset} s, or use "
                                         "an API key (X-API-Key) for a higher limit"}).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(reset).encode()), *headers]})
            await send({"type": "http.response.body", "body": body})
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _query_value(scope: Scope, name: str) -> str:
    from urllib.parse import parse_qs

    values = parse_qs((scope.get("query_string") or b"").decode(errors="replace")).get(name)
    return values[0] if values else ""
