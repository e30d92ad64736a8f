"""Sunrise and sunset in Goyang: when a streetlight should be on.

NOAA's Solar Calculator (Global Monitoring Laboratory, https://gml.noaa.gov/grad/solcalc/,
its ``calcdetails.html`` and ``main.js``; after Meeus, *Astronomical Algorithms*): the sun's
declination and the equation of time from the Julian century, and the hour angle at which the
centre of the sun is 0.833° below the horizon (zenith 90.833°: 34' of standard refraction and
the sun's 16' radius, so the upper limb touches a sea-level horizon, which is how KASI defines
일출/일몰). As the calculator does, the time is computed once from 0h UTC of the date and again
at that first estimate. Within about a minute of KASI's published times (tests/unit/
test_gold_lights_daycare.py).
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pyarrow as pa

from etl.timeutil import UTC

GOYANG = (37.658, 126.832)   # latitude N, longitude E (Goyang city hall)
ZENITH_DEG = 90.833          # 90° + 0.833°: refraction and the sun's semi-diameter
JD_J2000 = 2451545.0
SCHEMA = pa.schema([("date", pa.string()), ("sunrise", pa.timestamp("us", tz="UTC")),
                    ("sunset", pa.timestamp("us", tz="UTC"))])


def sun_times(dates: list[str]) -> pa.Table:
    """Goyang's sunrise and sunset (UTC) on each KST date 'YYYY-MM-DD'."""
    rows = []
    for d in sorted(set(dates)):
        rise, set_ = rise_set(date.fromisoformat(d), *GOYANG)
        rows.append({"date": d, "sunrise": rise, "sunset": set_})
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def rise_set(day: date, lat: float, lon: float) -> tuple[datetime, datetime]:
    """Sunrise and sunset (UTC, to the second) on the local calendar ``day`` at (lat, lon).

    As in NOAA's calculator the minutes are counted from 0h UTC of the local date: a negative
    count (an Asian sunrise) falls on the previous UTC evening, which is the same local morning."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    jd = _julian_day(day)
    out = []
    for rise in (True, False):
        first = _event_minutes(rise, jd, lat, lon)
        minutes = _event_minutes(rise, jd + first / 1440.0, lat, lon)
        out.append(midnight + timedelta(seconds=round(minutes * 60.0)))
    return out[0], out[1]


def _julian_day(day: date) -> float:
    """Julian day at 0h UTC of a Gregorian date."""
    y, m = (day.year - 1, day.month + 12) if day.month <= 2 else (day.year, day.month)
    a = y // 100
    b = 2 - a + a // 4
    return math.floor(365.25 * (y + 4716)) + math.floor(30.6001 * (m + 1)) + day.day + b - 1524.5


def _event_minutes(rise: bool, jd: float, lat: float, lon: float) -> float:
    """Minutes after 0h UTC of ``jd``'s date of the sunrise (or sunset), sun taken at ``jd``."""
    declination, eq_time = _declination_eq_time((jd - JD_J2000) / 36525.0)
    phi, delta = math.radians(lat), math.radians(declination)
    cos_ha = math.cos(math.radians(ZENITH_DEG)) / (math.cos(phi) * math.cos(delta)) - math.tan(phi) * math.tan(delta)
    if not -1.0 <= cos_ha <= 1.0:
        raise ValueError(f"no sunrise or sunset at latitude {lat} (polar day or night)")
    hour_angle = math.degrees(math.acos(cos_ha)) * (1 if rise else -1)
    return 720.0 - 4.0 * (lon + hour_angle) - eq_time


def _declination_eq_time(t: float) -> tuple[float, float]:
    """The sun's apparent declination (degrees) and the equation of time (minutes) at Julian
    century ``t`` (NOAA's calcSunDeclination and calcEquationOfTime)."""
    l0 = (280.46646 + t * (36000.76983 + t * 0.0003032)) % 360.0        # geometric mean longitude
    m = 357.52911 + t * (35999.05029 - 0.0001537 * t)                   # mean anomaly
    e = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)              # eccentricity of the orbit
    mr = math.radians(m)
    centre = (math.sin(mr) * (1.914602 - t * (0.004817 + 0.000014 * t)) + math.sin(2 * mr) * (0.019993 - 0.000101 * t)
              + math.sin(3 * mr) * 0.000289)
    omega = math.radians(125.04 - 1934.136 * t)
    apparent = math.radians(l0 + centre - 0.00569 - 0.00478 * math.sin(omega))
    seconds = 21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))
    obliquity = math.radians(23.0 + (26.0 + seconds / 60.0) / 60.0 + 0.00256 * math.cos(omega))
    declination = math.degrees(math.asin(math.sin(obliquity) * math.sin(apparent)))
    y = math.tan(obliquity / 2.0) ** 2
    l0r = math.radians(l0)
    eq = (y * math.sin(2 * l0r) - 2 * e * math.sin(mr) + 4 * e * y * math.sin(mr) * math.cos(2 * l0r)
          - 0.5 * y * y * math.sin(4 * l0r) - 1.25 * e * e * math.sin(2 * mr))
    return declination, math.degrees(eq) * 4.0
