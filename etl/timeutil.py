"""Every time-zone and time-format rule of citylake lives here.

Canonical time is UTC with microseconds. Korean sources speak KST (UTC+9, no DST)
without an offset and write midnight as ``24:00`` of the previous day.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")
UTC = timezone.utc

_KST_HOUR = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})[ T]?(\d{2}):?(\d{2})(?::?(\d{2}))?$")
_ISO_FRACTION = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$")


def parse_local(text: str, tz: ZoneInfo | timezone = KST) -> datetime:
    """Parse ``YYYY-MM-DD HH:MM[:SS]`` (or compact ``YYYYMMDDHHMM``) local time, allowing ``24:00``."""
    m = _KST_HOUR.match(text.strip())
    if not m:
        raise ValueError(f"not a local timestamp: {text!r}")
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    extra = timedelta(0)
    if h == 24:
        if mi or s:
            raise ValueError(f"24:xx is only valid as 24:00: {text!r}")
        h, extra = 0, timedelta(days=1)
    local = datetime(y, mo, d, h, mi, s, tzinfo=tz) + extra
    return local.astimezone(UTC)


def parse_iso(text: str) -> datetime:
    """ISO 8601 with any fraction length (nanoseconds are truncated to µs); naive means UTC."""
    t = text.strip().replace("Z", "+00:00")
    m = _ISO_FRACTION.match(t)
    if m:
        t = f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}{m.group(3)}"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def from_epoch_ms(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def kst_date(ts: datetime) -> date:
    return ts.astimezone(KST).date()


def format_kst_hour(ts: datetime) -> str:
    """AirKorea ``dataTime``: the hour *ending* at ts, midnight written as ``24:00``."""
    local = ts.astimezone(KST)
    if local.hour == 0 and local.minute == 0:
        prev = local - timedelta(days=1)
        return f"{prev:%Y-%m-%d} 24:00"
    return f"{local:%Y-%m-%d %H}:00"


def kst_day_bounds(day: date) -> tuple[datetime, datetime]:
    """UTC start and end of a KST calendar day."""
    start = datetime(day.year, day.month, day.day, tzinfo=KST).astimezone(UTC)
    return start, start + timedelta(days=1)


def utc(dt: datetime) -> datetime:
    """``dt`` in UTC as a plain ``datetime`` (Airflow hands out pendulum DateTimes, whose
    arithmetic can come out naive)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: say which zone it is in")
    d = dt.astimezone(UTC)
    return datetime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, tzinfo=UTC)


def kst_date_strings(ts: Any) -> Any:
    """KST calendar dates (``YYYY-MM-DD`` strings) of a UTC Arrow timestamp array, vectorised."""
    import pyarrow as pa
    import pyarrow.compute as pc

    local = pc.add(ts.cast(pa.timestamp("us")), pa.scalar(9 * 3600 * 1_000_000, pa.duration("us")))
    return pc.strftime(local, format="%Y-%m-%d")
