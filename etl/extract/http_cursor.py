"""Adapter for vendor IoT cloud APIs with cursor paging: living-weather stations, daycare gates.

Fetching lands every response body exactly as received; decoding turns them into candidate
readings and rejects. Daycare tags are personal identifiers: they are pseudonymised while
decoding and masked in reject excerpts, so no raw tag ever leaves this module.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
from datetime import datetime
from typing import Any, Callable

import pyarrow as pa
import requests

from etl.extract import http
from etl.extract.frames import DECODED, REJECTS, Frame, Rows, excerpt
from etl.extract.http import GatewayError
from etl.timeutil import from_epoch_ms, parse_iso, utc
from quality.reasons import check

log = logging.getLogger(__name__)

# vendor field -> (canonical metric, unit as sent)
WEATHER_FIELDS: dict[str, tuple[str, str]] = {
    "temp_c": ("temperature", "degC"),
    "temp_f": ("temperature", "degF"),
    "rh_pct": ("humidity", "%"),
    "wind_ms": ("wind_speed", "m/s"),
    "wind_deg": ("wind_dir", "deg"),
    "rain_mm": ("rain", "mm"),
    "pressure_hpa": ("pressure", "hPa"),
}
WEATHER_KEYS = {"station", "observed_at"}

# gate event direction -> (canonical metric, unit); every event counts one passage
GATE_DIRECTIONS: dict[str, tuple[str, str]] = {
    "in": ("arrival", "count"),
    "out": ("departure", "count"),
}
GATE_KEYS = {"event_id", "gate", "tag", "direction", "ts"}

TAG = re.compile(r"TAG-[0-9A-F]+")


# ---- fetch ------------------------------------------------------------------------------
def _iso(ts: datetime) -> str:
    return utc(ts).isoformat().replace("+00:00", "Z")


def _next_cursor(url: str, page: int, body: bytes) -> str | None:
    try:
        cursor = json.loads(body)["next_cursor"]
    except (ValueError, KeyError, TypeError):
        raise GatewayError(f"GET {url} page {page} is not a cursor page, so paging cannot go on: "
                           f"{mask_tags(excerpt(body, 200))}") from None
    return cursor if isinstance(cursor, str) and cursor else None


def fetch(base_url: str, path: str, token: str, since: datetime, until: datetime, *, limit: int = 500,
          retries: int = 4, backoff_s: float = 0.2, timeout_s: float = 10) -> list[Frame]:
    """Every page of [since, until), one frame per response body.

    Errors (401, retries exhausted, a page that is not JSON) raise GatewayError: the task fails
    and its re-run fetches the window again, rather than landing part of it.
    """
    url = base_url.rstrip("/") + path
    params: dict[str, Any] = {"since": _iso(since), "until": _iso(until), "limit": limit}
    frames: list[Frame] = []
    seen: set[str] = set()
    with requests.Session() as session:  # one connection pool for every page
        session.headers["Authorization"] = f"Bearer {token}"  # in a header: never in a URL or a log
        while True:
            resp = http.get(url, params, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, session=session)
            page = len(frames)
            frames.append(Frame(body=resp.content, seq=page,
                                meta={"path": path, "since": params["since"], "until": params["until"], "page": page}))
            cursor = _next_cursor(url, page, resp.content)
            if cursor is None:
                return frames
            if cursor in seen:
                raise GatewayError(f"GET {url} page {page} repeats an earlier cursor; the API is looping")
            seen.add(cursor)
            params["cursor"] = cursor


# ---- decode -----------------------------------------------------------------------------
def pseudonym(tag: str, key: bytes) -> str:
    """Keyed, so the same child links across days but cannot be looked up without the key."""
    return "p_" + hmac.new(key, tag.encode(), hashlib.sha256).hexdigest()[:20]


def mask_tags(text: str) -> str:
    return TAG.sub("TAG-***", text)


def _number(value: Any) -> float | None:
    """The value as a float, None when the source sent null; ValueError when not a number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


class _Decoder:
    """Accumulates readings and rejects of one batch; ``private`` frames get their tags masked."""

    def __init__(self, private: bool):
        self.rows, self.rejects = Rows(DECODED), Rows(REJECTS)
        self.private = private
        self.unknown: set[str] = set()

    def reject(self, frame: Frame, reason: str, detail: str, raw: Any, **where: Any) -> None:
        if self.private and isinstance(raw, dict) and "tag" in raw:
            raw = {**raw, "tag": "TAG-***"}  # whatever its spelling, the tag field is personal
        text = raw if isinstance(raw, (bytes, str)) else json.dumps(raw, ensure_ascii=False)
        if self.private:
            text = mask_tags(text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text)
            detail = mask_tags(detail)
        self.rejects.add(frame=frame.seq, reason=check(reason), detail=detail, raw=excerpt(text), **where)

    def items(self, frame: Frame) -> list[Any]:
        """The ``data`` list of a page, or [] after rejecting the whole frame."""
        try:
            doc = json.loads(frame.body.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
            self.reject(frame, "malformed_json", f"page is not JSON: {exc}", frame.body)
            return []
        if isinstance(doc, dict) and "error" in doc:
            self.reject(frame, "api_error", "the gateway answered with an error envelope", frame.body)
            return []
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            self.reject(frame, "bad_envelope", "page has no 'data' list", frame.body)
            return []
        return doc["data"]

    def tables(self) -> tuple[pa.Table, pa.Table]:
        if self.unknown:
            log.debug("ignored unknown fields: %s", ", ".join(sorted(self.unknown)))
        return self.rows.table(), self.rejects.table()


def _weather_item(dec: _Decoder, frame: Frame, item: Any) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("station"), str) or not item["station"]:
        dec.reject(frame, "bad_envelope", "item has no station", item)
        return
    ref = item["station"]
    try:
        ts = parse_iso(item["observed_at"])
    except (KeyError, TypeError, ValueError, AttributeError):
        dec.reject(frame, "bad_timestamp", f"observed_at {item.get('observed_at')!r} is not ISO 8601", item, ref=ref)
        return
    dec.unknown.update(set(item) - WEATHER_KEYS - set(WEATHER_FIELDS))
    for field, value in item.items():
        if field not in WEATHER_FIELDS:
            continue
        metric, unit = WEATHER_FIELDS[field]
        try:
            dec.rows.add(ref=ref, metric=metric, ts=ts, value=_number(value), unit=unit, frame=frame.seq)
        except ValueError as exc:
            dec.reject(frame, "bad_value", f"{field}: {exc}", item, ref=ref, metric=metric, ts=ts)


def _gate_item(dec: _Decoder, frame: Frame, item: Any, key: bytes) -> None:
    if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item[k] for k in ("gate", "tag")):
        dec.reject(frame, "bad_envelope", "item has no gate or tag", item)
        return
    ref, ms = item["gate"], item.get("ts")
    try:
        if isinstance(ms, bool) or not isinstance(ms, (int, float)):
            raise TypeError
        ts = from_epoch_ms(ms)
    except (TypeError, ValueError, OverflowError, OSError):
        dec.reject(frame, "bad_timestamp", f"ts {ms!r} is not epoch milliseconds", item, ref=ref)
        return
    dec.unknown.update(set(item) - GATE_KEYS)
    direction = item.get("direction")
    if not isinstance(direction, str) or direction not in GATE_DIRECTIONS:
        dec.reject(frame, "bad_value", f"direction {direction!r} is neither 'in' nor 'out'", item, ref=ref, ts=ts)
        return
    metric, unit = GATE_DIRECTIONS[direction]
    dec.rows.add(ref=ref, metric=metric, ts=ts, value=1.0, unit=unit, subject=pseudonym(item["tag"], key),
                 frame=frame.seq)


def decode(frames: list[Frame], kind: str, pseudonym_key: bytes) -> tuple[pa.Table, pa.Table]:
    """(DECODED, REJECTS) of the pages of one window; bad data becomes rejects, never exceptions."""
    handlers: dict[str, Callable[[_Decoder, Frame, Any], None]] = {
        "weather": _weather_item,
        "gate": lambda dec, frame, item: _gate_item(dec, frame, item, pseudonym_key),
    }
    if kind not in handlers:
        raise ValueError(f"unknown decoder kind {kind!r}; expected one of {sorted(handlers)}")
    dec = _Decoder(private=kind == "gate")
    for frame in frames:
        for item in dec.items(frame):
            handlers[kind](dec, frame, item)
    return dec.tables()
