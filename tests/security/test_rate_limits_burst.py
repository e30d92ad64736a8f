"""Rate limits under a burst of concurrent requests, over uvicorn as deployed.

:mod:`publish.api.limits` counts a fixed window per client: the client's address as the server
gives it (``scope["client"]``) or, with a valid API key, the key. The app never reads
X-Forwarded-For itself: uvicorn rewrites the client address from it only for connections from
``FORWARDED_ALLOW_IPS`` (infra: ``CITYLAKE_API_FORWARDED_ALLOW_IPS``, the reverse proxy), taking
the right-most address its proxies did not add. Both set-ups are served here: clients straight
to the server (the test client is no trusted proxy) and behind a trusted proxy (loopback is).
The window is frozen by an injected clock, so "within the window" holds however slow the burst.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.lakes import serving
from tests.security.conftest import Released

LIMIT, KEYED, WINDOW_S = 50, 120, 60
BURST = 300
PATH = "/v1/datasets"
ALPHA, BETA = "k-alpha-5f1c2a9e7d", "k-beta-0b8e4c6f31"
NOT_A_PROXY = "192.0.2.1"            # TEST-NET-1: some proxy, not the test client


class Clock:
    """A monotonic clock that moves only when told: the whole burst falls in one window."""

    def __init__(self) -> None:
        self.now = 10 * WINDOW_S + 1.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def limited(released: Released, trusted_proxies: str) -> Iterator[tuple[str, Clock]]:
    """A fresh app (fresh counts) with small limits, served with ``FORWARDED_ALLOW_IPS`` as given
    and two API keys in ``CITYLAKE_API_KEYS``."""
    from publish.api.app import create_app

    clock = Clock()
    app = create_app(released.store, rate_limits={"anonymous": LIMIT, "keyed": KEYED, "window_s": WINDOW_S,
                                                  "clock": clock})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FORWARDED_ALLOW_IPS", trusted_proxies)     # uvicorn reads it when it starts
        mp.setenv("CITYLAKE_API_KEYS", f" {ALPHA}, ,{BETA},")   # limits.py reads it per request
        with serving(app) as base:
            yield base, clock


@pytest.fixture
def direct(released: Released) -> Iterator[tuple[str, Clock]]:
    with limited(released, NOT_A_PROXY) as served:
        yield served


@pytest.fixture
def proxied(released: Released) -> Iterator[tuple[str, Clock]]:
    with limited(released, "127.0.0.1") as served:
        yield served


def burst(base: str, n: int, request: Callable[[int], dict[str, Any]] = lambda i: {}, workers: int = 32) -> list[httpx.Response]:
    """``n`` GETs of PATH from ``workers`` threads at once over a shared connection pool;
    ``request(i)``: keyword arguments of the i-th request (headers, params)."""
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(base_url=base, limits=limits, timeout=60) as client, ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda i: client.get(PATH, **request(i)), range(n)))


def split(answers: list[httpx.Response]) -> tuple[list[httpx.Response], list[httpx.Response]]:
    assert {r.status_code for r in answers} <= {200, 429}, sorted({r.status_code for r in answers})
    return [r for r in answers if r.status_code == 200], [r for r in answers if r.status_code == 429]


def assert_limited(answers: list[httpx.Response], limit: int, allowed: int) -> None:
    """``allowed`` answers succeeded, each announcing the limit and what remains (every count
    once: no two requests were counted as the same one); the rest are 429s saying when to retry."""
    ok, refused = split(answers)
    assert (len(ok), len(refused)) == (allowed, len(answers) - allowed)
    assert all(r.headers["x-ratelimit-limit"] == str(limit) for r in answers)
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in ok) == list(range(limit - allowed, limit))
    for r in refused:
        reset = int(r.headers["x-ratelimit-reset"])
        assert r.headers["retry-after"] == str(reset) and 1 <= reset <= WINDOW_S + 1
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.json()["error"] == "rate limit exceeded" and "X-API-Key" in r.json()["detail"]


def test_a_burst_gets_exactly_the_limit(direct: tuple[str, Clock]) -> None:
    base, clock = direct
    assert_limited(burst(base, BURST), LIMIT, LIMIT)
    clock.now += WINDOW_S                                   # the next window: a new budget
    assert_limited(burst(base, LIMIT + 10), LIMIT, LIMIT)


def test_an_api_key_has_its_own_higher_limit(direct: tuple[str, Clock]) -> None:
    base, _ = direct
    assert_limited(burst(base, LIMIT), LIMIT, LIMIT)        # the address has used its budget
    assert_limited(burst(base, BURST, lambda i: {"headers": {"X-API-Key": ALPHA}}), KEYED, KEYED)
    # the same key as a parameter is the same client; another key is another
    assert_limited(burst(base, 20, lambda i: {"params": {"api_key": ALPHA}}), KEYED, 0)
    assert_limited(burst(base, KEYED + 30, lambda i: {"params": {"api_key": BETA}}), KEYED, KEYED)
    assert_limited(burst(base, 10), LIMIT, 0)               # and the anonymous budget is still spent


SPOOFS: list[Callable[[int], dict[str, Any]]] = [
    lambda i: {"headers": {"X-Forwarded-For": f"10.{i % 250}.{i // 250}.1"}},
    lambda i: {"headers": {"X-Forwarded-For": f"10.0.0.{i % 250}, 127.0.0.1"}},
    lambda i: {"headers": {"X-Real-IP": f"10.1.0.{i % 250}", "X-Client-IP": f"10.2.0.{i % 250}",
                           "True-Client-IP": f"10.3.0.{i % 250}", "CF-Connecting-IP": f"10.4.0.{i % 250}"}},
    lambda i: {"headers": {"Forwarded": f"for=10.5.0.{i % 250};proto=https"}},
    lambda i: {"headers": {"X-API-Key": f"k-guess-{i}"}},                     # an unknown key: the address counts
    lambda i: {"headers": {"X-API-Key": [ALPHA.upper(), ALPHA[:-1], f"{ALPHA},{BETA}", f"{ALPHA} {BETA}",
                                         "*", ",", ""][i % 7]}},
    lambda i: {"params": {"api_key": ["", " ", ",", f"{ALPHA}x", f"x{ALPHA}", ALPHA[:5]][i % 6]}},
]


def test_no_header_trick_gets_a_fresh_budget(direct: tuple[str, Clock]) -> None:
    """Once the address has used its budget, nothing a client can write gives it another:
    forwarding headers from a client that is no trusted proxy, unknown or mangled keys."""
    base, _ = direct
    assert_limited(burst(base, LIMIT), LIMIT, LIMIT)
    for spoof in SPOOFS:
        assert_limited(burst(base, 40, spoof), LIMIT, 0)


def test_behind_a_trusted_proxy_the_client_address_counts(proxied: tuple[str, Clock]) -> None:
    """The proxy appends the address it saw to what the client sent (nginx's
    $proxy_add_x_forwarded_for): the client's own entries do not make it another client."""
    base, _ = proxied
    forged = lambda i: {"headers": {"X-Forwarded-For": f"10.{i % 250}.{i // 250}.9, 203.0.113.7"}}  # noqa: E731
    assert_limited(burst(base, BURST, forged), LIMIT, LIMIT)
    assert_limited(burst(base, 20, lambda i: {"headers": {"X-Forwarded-For": "203.0.113.7"}}), LIMIT, 0)
    other = lambda i: {"headers": {"X-Forwarded-For": "203.0.113.8"}}  # noqa: E731
    assert_limited(burst(base, LIMIT + 20, other), LIMIT, LIMIT)      # another client: its own budget
