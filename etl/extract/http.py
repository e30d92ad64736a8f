"""HTTP GET with retries and exponential backoff, shared by every HTTP adapter."""
from __future__ import annotations

import logging
import re
import time
from typing import Any

import requests

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}


_QUERY = re.compile(r"\?[^\s'\")]*")


def _scrub(text: str) -> str:
    """Drop query strings from messages: they can carry API keys (data.go.kr serviceKey)."""
    return _QUERY.sub("?…", text)


class GatewayError(RuntimeError):
    """The gateway kept failing after every retry; the task fails and a re-run resumes."""


def get(
    url: str,
    params: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    retries: int = 4,
    backoff_s: float = 0.2,
    timeout_s: float = 10.0,
    session: requests.Session | None = None,
) -> requests.Response:
    """GET ``url``; retry timeouts, connection errors, bodies cut short and 429/5xx with backoff
    0.2, 0.4, 0.8 ... s. The body is read before returning, so a cut connection is retried here."""
    http = session or requests
    last: str = ""
    for attempt in range(retries + 1):
        try:
            resp = http.get(url, params=params, headers=headers, timeout=timeout_s)
            if resp.status_code not in RETRY_STATUS:
                if resp.status_code >= 400:
                    raise GatewayError(f"GET {url} answered HTTP {resp.status_code}: {_scrub(resp.text[:300])}")
                return resp
            last = f"HTTP {resp.status_code}"
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            # ChunkedEncodingError: the connection closed mid-body (chunked, or shorter than its
            # Content-Length); requests raises it from get() since the body is read eagerly
            last = f"{type(exc).__name__}: {_scrub(str(exc))}"
        if attempt < retries:
            delay = backoff_s * (2 ** attempt)
            log.warning("GET %s failed (%s); retry %d/%d in %.1fs", url, last, attempt + 1, retries, delay)
            time.sleep(delay)
    raise GatewayError(f"GET {url} failed after {retries + 1} attempts: {last}")
