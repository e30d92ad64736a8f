"""Physically plausible signals for every device kind, as pure functions of (device, time).

No state: a value depends only on the device, the time and a seed, so any window can be
served (or re-served) at any moment and always gives the same numbers. Diurnal cycles
follow KST; parking has rush hours, bins fill and get emptied, lights burn at night.
"""
from __future__ import annotations

import hashlib
import math
from datetime import date, datetime, timedelta
from typing import Any, Mapping

from etl.simulate.faults import fraction
from etl.timeutil import KST, UTC

Device = Mapping[str, Any]


def _noise(*key: object) -> float:
    """Deterministic noise in [-1, 1)."""
    return fraction("noise", *key) * 2.0 - 1.0


def _local_hours(ts: datetime) -> float:
    local = ts.astimezone(KST)
    return local.hour + local.minute / 60.0 + local.second / 3600.0


def _day_phase(ts: datetime, peak_hour: float) -> float:
    """cos wave over the KST day, 1.0 at ``peak_hour``, -1.0 twelve hours later."""
    return math.cos((_local_hours(ts) - peak_hour) / 24.0 * 2.0 * math.pi)


def _episode(ts: datetime, device_id: str) -> float:
    """Slow multi-day pollution episodes shared by the city, plus a local offset."""
    days = ts.timestamp() / 86400.0
    city = 1.0 + 0.6 * math.sin(days / 3.1 * 2 * math.pi) + 0.3 * math.sin(days / 1.7 * 2 * math.pi + 1.0)
    return max(0.2, city) * (1.0 + 0.15 * _noise("site", device_id))


def air(device_id: str, ts: datetime) -> dict[str, float]:
    """Hourly-ish pollutant levels (µg/m³ for PM, ppm for gases)."""
    e = _episode(ts, device_id)
    rush = max(_day_phase(ts, 8.5), _day_phase(ts, 19.0), 0.0)
    n = lambda m: 1.0 + 0.08 * _noise(device_id, m, ts)  # noqa: E731
    pm10 = 38.0 * e * (0.85 + 0.3 * rush) * n("pm10")
    pm25 = pm10 * (0.45 + 0.1 * _noise("ratio", device_id)) * n("pm25")
    o3 = max(0.002, 0.028 + 0.022 * _day_phase(ts, 15.0)) * n("o3")
    no2 = 0.022 * e * (0.8 + 0.5 * rush) * n("no2")
    co = 0.42 * e * (0.85 + 0.3 * rush) * n("co")
    so2 = 0.0032 * e * n("so2")
    return {"pm10": round(pm10, 1), "pm25": round(pm25, 1), "o3": round(o3, 4), "no2": round(no2, 4),
            "co": round(co, 2), "so2": round(so2, 4)}


def weather(device_id: str, ts: datetime) -> dict[str, float]:
    doy = ts.astimezone(KST).timetuple().tm_yday
    season = -math.cos((doy - 15) / 365.25 * 2 * math.pi)  # -1 mid-January, +1 mid-July
    temp = 12.5 + 14.5 * season + 5.0 * _day_phase(ts, 15.0) + 0.6 * _noise(device_id, "t", ts)
    humidity = min(100.0, max(15.0, 65 + 12 * season - 18 * _day_phase(ts, 15.0) + 4 * _noise(device_id, "h", ts)))
    wind = max(0.0, 2.2 + 1.4 * _day_phase(ts, 14.0) + 1.2 * _noise(device_id, "w", ts))
    wind_dir = (270 + 60 * math.sin(ts.timestamp() / 86400 * 2 * math.pi / 2.3) + 25 * _noise(device_id, "d", ts)) % 360
    wet = fraction("rain-day", ts.astimezone(KST).date(), device_id[:6]) < 0.25
    rain = round(max(0.0, 1.5 * _noise(device_id, "r", ts) + 0.8), 1) if wet else 0.0
    pressure = 1013 - 8 * season + 3 * math.sin(ts.timestamp() / 86400 / 4.0 * 2 * math.pi) + 0.3 * _noise(device_id, "p", ts)
    return {"temperature": round(temp, 1), "humidity": round(humidity, 1), "wind_speed": round(wind, 1),
            "wind_dir": round(wind_dir, 0), "rain": rain, "pressure": round(pressure, 1)}


def water(device_id: str, ts: datetime) -> dict[str, float]:
    doy = ts.astimezone(KST).timetuple().tm_yday
    season = -math.cos((doy - 25) / 365.25 * 2 * math.pi)
    wt = 14.0 + 11.0 * season + 1.2 * _day_phase(ts, 16.0) + 0.2 * _noise(device_id, "wt", ts)
    do = 14.6 - 0.33 * wt + 0.9 * _day_phase(ts, 15.0) + 0.2 * _noise(device_id, "do", ts)  # photosynthesis by day
    ph = 7.4 + 0.3 * _day_phase(ts, 15.0) + 0.05 * _noise(device_id, "ph", ts)
    turb = max(0.5, 6.0 + 3.0 * _noise(device_id, "tu", ts.astimezone(KST).date()) + 0.5 * _noise(device_id, "tu", ts))
    cond = 310 + 40 * _noise("cond", device_id) + 5 * _noise(device_id, "c", ts)
    return {"ph": round(ph, 2), "dissolved_oxygen": round(do, 2), "turbidity": round(turb, 1),
            "conductivity": round(cond, 0), "water_temp": round(wt, 2)}


# ---- smart bins ---------------------------------------------------------------------------
def _collection_days(device_id: str) -> tuple[int, int]:
    """Every bin is emptied every `period` days at a fixed phase (06:00-08:00 KST)."""
    period = 2 + int(fraction("bin-period", device_id) * 3)  # 2..4 days
    return period, int(fraction("bin-phase", device_id) * period)


def last_collection(device_id: str, ts: datetime) -> datetime:
    period, phase = _collection_days(device_id)
    local = ts.astimezone(KST)
    minute = 360 + int(fraction("bin-minute", device_id) * 120)
    d = local.date()
    for back in range(0, period + 1):
        day = d - timedelta(days=back)
        if (day.toordinal() - phase) % period == 0:
            when = datetime(day.year, day.month, day.day, tzinfo=KST) + timedelta(minutes=minute)
            if when <= local:
                return when.astimezone(UTC)
    return (datetime(d.year, d.month, d.day, tzinfo=KST) - timedelta(days=period)).astimezone(UTC)


def bin_state(device_id: str, ts: datetime, depth_mm: int) -> dict[str, float]:
    """Fill grows with daytime use since the last collection; distance is what the sensor sees."""
    since_h = (ts - last_collection(device_id, ts)).total_seconds() / 3600.0
    rate = 1.1 + 1.4 * fraction("bin-rate", device_id)  # % per hour, averaged over a day
    fill = min(100.0, since_h * rate * (1.0 + 0.05 * _noise(device_id, ts)))
    distance = int(round(depth_mm * (1 - fill / 100.0))) + 30
    battery = int(100 - 30 * fraction("bin-battery", device_id) - (ts.timestamp() / 86400 % 365) / 365 * 5)
    tilted = fraction("bin-tilt", device_id, ts.astimezone(KST).date()) < 0.01
    return {"fill_level": round(fill, 1), "distance": float(distance), "battery": float(battery), "tilt": float(tilted)}


# ---- parking ------------------------------------------------------------------------------
def occupancy_probability(ts: datetime) -> float:
    """Share of spaces taken: office hours and evening shopping peaks; fewer at weekends."""
    local = ts.astimezone(KST)
    h = _local_hours(ts)
    base = 0.15 + 0.65 * math.exp(-((h - 11.0) / 3.5) ** 2) + 0.35 * math.exp(-((h - 19.5) / 2.0) ** 2)
    if local.weekday() >= 5:
        base *= 0.75
    return min(0.97, base)


def occupied(device_id: str, ts: datetime, slot_s: int = 900) -> bool:
    """Whether a space is taken in the slot containing ts (slots of `slot_s` seconds)."""
    slot = int(ts.timestamp()) // slot_s
    # stays with a car for a few slots: decide on a coarser "stay" key too
    stay = slot // (1 + int(fraction("stay", device_id) * 6))
    return fraction("occ", device_id, stay) < occupancy_probability(ts)


# ---- streetlights -------------------------------------------------------------------------
def sun_times(day: date) -> tuple[float, float]:
    """Approximate sunrise/sunset in KST hours for Goyang (37.65 N)."""
    doy = day.timetuple().tm_yday
    swing = 1.25 * math.cos((doy - 172) / 365.25 * 2 * math.pi)  # long days in June
    noon = 12.55
    half = 6.0 + swing * 1.2
    return noon - half, noon + half


def light(device_id: str, ts: datetime) -> dict[str, float]:
    local = ts.astimezone(KST)
    rise, set_ = sun_times(local.date())
    h = _local_hours(ts)
    night = h < rise or h >= set_
    fault = 0
    if fraction("lamp-fault", device_id, local.date()) < 0.003:
        fault = 3  # lamp failure: should be on but is off
    on = night and fault == 0
    deep_night = night and (1.0 <= h < 5.0)
    dimming = 0.0 if not on else (50.0 if deep_night else 100.0)
    rated = 60 + 40 * int(fraction("lamp-w", device_id) * 3)  # 60/100/140 W fixtures
    power = round(rated * dimming / 100.0 * (1 + 0.02 * _noise(device_id, ts)), 1) if on else round(0.4, 1)
    return {"lamp_on": float(on), "power": power, "dimming": dimming, "fault_code": float(fault)}


# ---- daycare gates ------------------------------------------------------------------------
def tag_id(facility: str, child: int) -> str:
    """The beacon tag of a child: the raw personal identifier the gate reports."""
    return "TAG-" + hashlib.blake2b(f"{facility}/{child}".encode(), digest_size=5).hexdigest().upper()


def gate_events(device_id: str, facility: str, enrolled: int, day: date) -> list[tuple[datetime, str, str]]:
    """(ts, tag, 'arrival'|'departure') for one KST day; none at weekends."""
    if day.weekday() >= 5:
        return []
    events: list[tuple[datetime, str, str]] = []
    midnight = datetime(day.year, day.month, day.day, tzinfo=KST)
    for child in range(enrolled):
        if fraction("absent", facility, child, day) < 0.06:
            continue
        tag = tag_id(facility, child)
        arrive = 7.5 + 2.0 * fraction("arr", facility, child, day)
        leave = 15.5 + 3.5 * fraction("dep", facility, child, day)
        events.append(((midnight + timedelta(hours=arrive)).astimezone(UTC).replace(microsecond=0), tag, "arrival"))
        events.append(((midnight + timedelta(hours=leave)).astimezone(UTC).replace(microsecond=0), tag, "departure"))
    events.sort()
    return events


def reading(device: Device, ts: datetime) -> dict[str, float]:
    """Values of one device at one time, by kind."""
    kind, did = device["kind"], device["device_id"]
    if kind in ("reference_station", "lowcost_pm"):
        values = air(did, ts)
        return values if kind == "reference_station" else {"pm10": values["pm10"], "pm25": values["pm25"]}
    if kind == "weather_station":
        return weather(did, ts)
    if kind == "water_probe":
        return water(did, ts)
    if kind == "smart_bin":
        return bin_state(did, ts, int(device.get("capacity") or 1200))
    if kind == "parking_space":
        return {"occupied": float(occupied(did, ts))}
    if kind == "streetlight":
        return light(did, ts)
    raise ValueError(f"no signal for kind {kind!r}")
