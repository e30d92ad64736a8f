"""Unit conversion, in one place. Every metric has one canonical unit (quality.metrics)."""
from __future__ import annotations

# (from_unit, to_unit) -> (factor, offset): canonical = raw * factor + offset
CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("mg/m3", "ug/m3"): (1000.0, 0.0),
    ("ppb", "ppm"): (0.001, 0.0),
    ("degF", "degC"): (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    ("K", "degC"): (1.0, -273.15),
    ("km/h", "m/s"): (1.0 / 3.6, 0.0),
    ("mS/cm", "uS/cm"): (1000.0, 0.0),
    ("kPa", "hPa"): (10.0, 0.0),
    ("mm", "cm"): (0.1, 0.0),
    ("kW", "W"): (1000.0, 0.0),
    ("fraction", "%"): (100.0, 0.0),
}

# Spellings seen in real sources -> our unit symbols.
ALIASES: dict[str, str] = {
    "µg/m³": "ug/m3", "μg/m³": "ug/m3", "㎍/㎥": "ug/m3", "ug/m³": "ug/m3", "µg/m3": "ug/m3",
    "mircrogram/m3": "ug/m3", "microgram/m3": "ug/m3",
    "°c": "degC", "℃": "degC", "c": "degC", "degc": "degC", "°f": "degF", "f": "degF", "degf": "degF",
    "µs/cm": "uS/cm", "μs/cm": "uS/cm", "us/cm": "uS/cm", "ms/cm": "mS/cm",
    "mg/l": "mg/L", "ntu": "NTU", "ph": "pH", "hpa": "hPa", "m/s": "m/s", "percent": "%",
}


def canonical_unit(unit: str | None) -> str | None:
    if unit is None:
        return None
    u = unit.strip()
    return ALIASES.get(u.lower(), ALIASES.get(u, u))


def conversion(from_unit: str, to_unit: str) -> tuple[float, float]:
    """(factor, offset) turning ``from_unit`` into ``to_unit``; raises KeyError if unknown."""
    f, t = canonical_unit(from_unit), canonical_unit(to_unit)
    if f == t:
        return 1.0, 0.0
    return CONVERSIONS[(f, t)]


def convert(value: float, from_unit: str, to_unit: str) -> float:
    factor, offset = conversion(from_unit, to_unit)
    return value * factor + offset
