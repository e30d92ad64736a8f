"""Goyang's districts and dongs as polygons, so devices can be placed in (and checked against) them.

The boundaries are KOSTAT's 2013 census polygons (simplified), packaged in ``etl/registry/data``.
Point-in-polygon is plain ray casting: the polygons are small (5–30 vertices), so no shapely.
"""
from __future__ import annotations

import functools
import json
import math
import random
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

# (lon_min, lat_min, lon_max, lat_max): anything outside is not Goyang (e.g. swapped lat/lon).
GOYANG_BBOX: tuple[float, float, float, float] = (126.67, 37.57, 126.99, 37.75)

# KOSTAT names read "고양시덕양구" / "Goyangsideogyanggu"; the city writes these.
DISTRICT_NAMES: dict[str, tuple[str, str]] = {
    "31101": ("덕양구", "Deogyang-gu"),
    "31103": ("일산동구", "Ilsandong-gu"),
    "31104": ("일산서구", "Ilsanseo-gu"),
}

_DATA_PACKAGE = "etl.registry.data"
_DISTRICT_FILE = "goyang_municipalities_geo_simple.json"
_DONG_FILE = "goyang_submunicipalities_geo_simple.json"

Ring = tuple[tuple[float, float], ...]
# A polygon is an outer ring followed by its holes; an area is one or more polygons.
Polygon = tuple[Ring, ...]


@dataclass(frozen=True)
class Area:
    """A district or dong: code, clean names, polygons and bounding box."""

    code: str
    name_ko: str
    name_en: str
    polygons: tuple[Polygon, ...]
    bbox: tuple[float, float, float, float]

    @property
    def district_code(self) -> str:
        return self.code[:5]

    def contains(self, lon: float, lat: float) -> bool:
        return _in_bbox(self.bbox, lon, lat) and any(_in_polygon(p, lon, lat) for p in self.polygons)

    def distance_deg(self, lon: float, lat: float) -> float:
        """Distance in degrees to the area (0 inside); for tolerance checks on simplified borders."""
        if self.contains(lon, lat):
            return 0.0
        return min(_ring_distance(ring, lon, lat) for poly in self.polygons for ring in poly)


def _in_bbox(bbox: tuple[float, float, float, float], lon: float, lat: float) -> bool:
    return bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]


def in_goyang_bbox(lon: float, lat: float) -> bool:
    return _in_bbox(GOYANG_BBOX, lon, lat)


def _in_ring(ring: Ring, x: float, y: float) -> bool:
    """Even-odd ray casting towards +x."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _in_polygon(polygon: Polygon, x: float, y: float) -> bool:
    outer, holes = polygon[0], polygon[1:]
    return _in_ring(outer, x, y) and not any(_in_ring(h, x, y) for h in holes)


def _segment_distance(x: float, y: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.dist((x, y), _closest_on_segment(x, y, a, b))


def _ring_distance(ring: Ring, x: float, y: float) -> float:
    return min(_segment_distance(x, y, ring[i - 1], ring[i]) for i in range(len(ring)))


def _polygons(geometry: dict[str, Any]) -> tuple[Polygon, ...]:
    coords = geometry["coordinates"]
    if geometry["type"] == "Polygon":
        coords = [coords]
    elif geometry["type"] != "MultiPolygon":
        raise ValueError(f"unsupported geometry type {geometry['type']!r}")
    return tuple(tuple(tuple((float(p[0]), float(p[1])) for p in ring) for ring in poly) for poly in coords)


def _bbox(polygons: tuple[Polygon, ...]) -> tuple[float, float, float, float]:
    points = [p for poly in polygons for p in poly[0]]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def clean_dong_en(name_eng: str) -> str:
    """'Juyeop 1(il)-dong' → 'Juyeop 1-dong', 'Baekseok2-dong' → 'Baekseok 2-dong', 'Gobongdong' → 'Gobong-dong'."""
    name = re.sub(r"\([a-z]+\)", "", name_eng).strip()
    name = re.sub(r"-?dong$", "", name).strip()
    name = re.sub(r"(?<=[a-z])(?=\d)", " ", name)
    return f"{name}-dong"


def _load_features(filename: str) -> list[dict[str, Any]]:
    text = resources.files(_DATA_PACKAGE).joinpath(filename).read_text(encoding="utf-8")
    return json.loads(text)["features"]


def _area(feature: dict[str, Any], name_ko: str, name_en: str) -> Area:
    polygons = _polygons(feature["geometry"])
    return Area(str(feature["properties"]["code"]), name_ko, name_en, polygons, _bbox(polygons))


@functools.lru_cache(maxsize=1)
def districts() -> dict[str, Area]:
    """District code → Area, in code order."""
    areas = {}
    for feature in _load_features(_DISTRICT_FILE):
        code = str(feature["properties"]["code"])
        areas[code] = _area(feature, *DISTRICT_NAMES[code])
    return dict(sorted(areas.items()))


@functools.lru_cache(maxsize=1)
def dongs() -> dict[str, Area]:
    """Dong code → Area (codes start with the district code), in code order."""
    areas = {}
    for feature in _load_features(_DONG_FILE):
        props = feature["properties"]
        areas[str(props["code"])] = _area(feature, props["name"], clean_dong_en(props["name_eng"]))
    return dict(sorted(areas.items()))


def locate(lon: float, lat: float) -> tuple[str, str] | None:
    """(district_code, dong_code) of the dong containing the point, or None outside every dong."""
    for code, dong in dongs().items():
        if dong.contains(lon, lat):
            return dong.district_code, code
    return None


def nearest_dong(lon: float, lat: float) -> str:
    """Code of the dong containing the point or else the closest one (simplified borders leave gaps)."""
    return min(dongs().values(), key=lambda d: d.distance_deg(lon, lat)).code


def random_point_in(dong: Area | str, rng: random.Random, max_tries: int = 10_000) -> tuple[float, float]:
    """A uniform random (lon, lat) inside the dong, by rejection sampling in its bbox."""
    area = dongs()[dong] if isinstance(dong, str) else dong
    x0, y0, x1, y1 = area.bbox
    for _ in range(max_tries):
        lon, lat = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if area.contains(lon, lat):
            return lon, lat
    raise RuntimeError(f"no point found inside {area.code} after {max_tries} tries")


def nearest_point_inside(area: Area, lon: float, lat: float, also_in: Area | None = None) -> tuple[float, float]:
    """The point itself if inside ``area`` (and ``also_in``), else a point just inside, near the closest border.

    Real coordinates (e.g. an AirKorea station) can fall on the wrong side of a simplified border;
    this moves them the least distance that puts them in their administrative dong.
    """
    def ok(x: float, y: float) -> bool:
        return area.contains(x, y) and (also_in is None or also_in.contains(x, y))

    if ok(lon, lat):
        return lon, lat
    edges = [(ring[i - 1], ring[i]) for poly in area.polygons for ring in poly for i in range(len(ring))]
    candidates = sorted((_closest_on_segment(lon, lat, a, b) for a, b in edges), key=lambda p: math.dist(p, (lon, lat)))
    for bx, by in candidates:
        dx, dy = bx - lon, by - lat
        norm = math.hypot(dx, dy) or 1.0
        for step in (0.0003, 0.0006, 0.001, 0.002, 0.004):
            x, y = bx + dx / norm * step, by + dy / norm * step
            if ok(x, y):
                return x, y
    raise RuntimeError(f"cannot move ({lon}, {lat}) inside {area.code}")


def _closest_on_segment(x: float, y: float, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / length2))
    return ax + t * dx, ay + t * dy
