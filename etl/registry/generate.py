"""Seeded generation of Goyang's device fleet.

The fleet is data, not code: this module only (re)creates the packaged CSV files, and everything
else reads them through :mod:`etl.registry.load`. One ``random.Random(seed)`` drives everything, so
the same seed gives byte-identical files. Each kind draws from its own child generator (seeded from
the parent in a fixed order) so that changing one kind does not reshuffle the others.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from datetime import date, timedelta

from etl.registry import geo
from quality.metrics import DOMAINS, METRICS

DEFAULT_SEED = 20261125
SIZES: tuple[str, ...] = ("small", "goyang")


@dataclass(frozen=True)
class Device:
    """One registry row; the field order is the CSV column order."""

    device_id: str
    domain: str
    kind: str
    source: str
    external_id: str
    name_ko: str
    name_en: str
    district_code: str
    district_ko: str
    district_en: str
    dong_code: str
    dong_ko: str
    dong_en: str
    lat: float
    lon: float
    install_date: date
    interval_s: int
    metrics: str
    group_id: str
    group_name_ko: str
    group_name_en: str
    capacity: int | None
    codec: str


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Device))


@dataclass(frozen=True)
class KindSpec:
    """How many devices of a kind each fleet size has, and what they report through which gateway."""

    domain: str
    kind: str
    source: str
    interval_s: dict[str, int]
    count: dict[str, int]
    metrics: tuple[str, ...] | None = None  # None: every metric of the domain
    codec: str = ""

    def metric_names(self) -> str:
        """Space-separated, in the metric table's order; fails if the kind and metric tables drift apart."""
        if self.domain not in DOMAINS:
            raise ValueError(f"{self.kind}: unknown domain {self.domain!r}")
        names = [m.metric for m in METRICS if m.domain == self.domain]
        if self.metrics is not None:
            unknown = set(self.metrics) - set(names)
            if unknown:
                raise ValueError(f"{self.kind}: {sorted(unknown)} are not {self.domain} metrics")
            names = [n for n in names if n in self.metrics]
        return " ".join(names)


# interval_s and counts per fleet size; parking counts are spaces (PARKING_LOT_SPACES[size] per lot).
KINDS: tuple[KindSpec, ...] = (
    KindSpec("air_quality", "reference_station", "airkorea",
             {"small": 3600, "goyang": 3600}, {"small": 5, "goyang": 30}),
    KindSpec("air_quality", "lowcost_pm", "air_mqtt",
             {"small": 600, "goyang": 300}, {"small": 4, "goyang": 2000}, metrics=("pm10", "pm25")),
    KindSpec("weather", "weather_station", "weather_http",
             {"small": 600, "goyang": 600}, {"small": 3, "goyang": 200}),
    KindSpec("water_quality", "water_probe", "water_csv",
             {"small": 900, "goyang": 900}, {"small": 2, "goyang": 50}),
    KindSpec("waste_bins", "smart_bin", "bins_ttn",
             {"small": 3600, "goyang": 3600}, {"small": 6, "goyang": 5000}, codec="em310_udl"),
    KindSpec("parking", "parking_space", "parking_chirpstack",  # interval = heartbeat; events come on change
             {"small": 3600, "goyang": 3600}, {"small": 12, "goyang": 10000}, codec="bosch_pls"),
    KindSpec("streetlights", "streetlight", "lights_mqtt",
             {"small": 900, "goyang": 300}, {"small": 8, "goyang": 20000}),
    KindSpec("daycare_safety", "daycare_gate", "daycare_http",  # event-driven: interval 0
             {"small": 0, "goyang": 0}, {"small": 3, "goyang": 400}),
)
KIND_BY_NAME: dict[str, KindSpec] = {k.kind: k for k in KINDS}
PARKING_LOT_SPACES: dict[str, int] = {"small": 6, "goyang": 50}

# The five real AirKorea stations of Goyang (station master list, 2024-02-18; dmX = lat, dmY = lon):
# (name, English name, lat, lon, year opened, 2013 dongs it may belong to, nearest wins).
# 신원동 has no 2013 dong of its own: it is administered by 원신동.
AIRKOREA_STATIONS: tuple[tuple[str, str, float, float, int, tuple[str, ...]], ...] = (
    ("행신동", "Haengsin-dong", 37.6251, 126.8423, 1998, ("행신1동", "행신2동", "행신3동")),
    ("식사동", "Siksa-dong", 37.685514, 126.813441, 2002, ("식사동",)),
    ("백마로(마두역)", "Baengma-ro (Madu Station)", 37.6545086, 126.7755571, 2004, ("마두1동", "마두2동")),
    ("신원동", "Sinwon-dong", 37.666362, 126.886708, 2015, ("원신동",)),
    ("주엽동", "Juyeop-dong", 37.6683, 126.7564, 2018, ("주엽1동", "주엽2동")),
)

# Daycare name stems (Korean, romanised) for plausible "<area> <stem>어린이집" names.
DAYCARE_STEMS: tuple[tuple[str, str], ...] = (
    ("해바라기", "Haebaragi"), ("무지개", "Mujigae"), ("꿈나무", "Kkumnamu"), ("새싹", "Saessak"),
    ("햇살", "Haetsal"), ("별빛", "Byeolbit"), ("푸른숲", "Pureunsup"), ("아이사랑", "Aisarang"),
    ("도담도담", "Dodamdodam"), ("꿈동산", "Kkumdongsan"), ("다솜", "Dasom"), ("튼튼", "Teunteun"),
    ("초록", "Chorok"), ("은하수", "Eunhasu"), ("하늘", "Haneul"), ("바다", "Bada"),
    ("솔빛", "Solbit"), ("나래", "Narae"), ("소나무", "Sonamu"), ("민들레", "Mindeulle"),
    ("개나리", "Gaenari"), ("진달래", "Jindallae"), ("열매", "Yeolmae"), ("풀잎", "Pullip"),
    ("아람", "Aram"), ("한울", "Hanul"), ("예담", "Yedam"), ("다온", "Daon"),
    ("라온", "Raon"), ("마루", "Maru"), ("숲속", "Supsok"), ("행복", "Haengbok"),
)

# Simple device kinds: (kind, device id format, Korean label, English label).
_LABELS: dict[str, tuple[str, str, str]] = {
    "lowcost_pm": ("aq-lc-{:04d}", "간이 미세먼지 측정기", "Low-cost PM sensor"),
    "weather_station": ("wx-{:04d}", "생활기상 관측소", "Weather station"),
    "water_probe": ("wq-{:04d}", "수질 측정기", "Water quality probe"),
    "smart_bin": ("bin-{:05d}", "스마트 쓰레기통", "Smart bin"),
    "streetlight": ("sl-{:05d}", "보안등", "Security light"),
}

INSTALL_START, INSTALL_END = date(2019, 1, 1), date(2025, 12, 31)
REFERENCE_INSTALL_START, REFERENCE_INSTALL_END = date(2005, 1, 1), date(2018, 12, 31)
LOT_RADIUS_M = 50.0
_M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class _Place:
    dong: geo.Area
    lon: float
    lat: float


def generate(size: str = "small", seed: int = DEFAULT_SEED) -> list[Device]:
    """The whole fleet of one size; deterministic for a seed."""
    if size not in SIZES:
        raise ValueError(f"unknown fleet size {size!r}; expected one of {SIZES}")
    parent = random.Random(seed)
    builders = {
        "reference_station": _reference_stations, "parking_space": _parking_spaces, "daycare_gate": _daycare_gates,
    }
    devices: list[Device] = []
    for spec in KINDS:
        rng = random.Random(parent.getrandbits(64))
        devices.extend(builders.get(spec.kind, _simple_devices)(spec, size, rng))
    return devices


# --- placement -------------------------------------------------------------------------------

def _rounded_inside(dong: geo.Area, lon: float, lat: float) -> _Place | None:
    """Round to 6 decimals and keep the point only if it is in both its dong and its district polygon.

    The dong and district polygons are simplified separately, so a dong's edge can stick out of
    its district, and Deogyang-gu's eastern tip (lon 126.994) out of the documented Goyang bbox:
    requiring all three keeps every device valid for the checks on load.
    """
    lon, lat = round(lon, 6), round(lat, 6)
    if not geo.in_goyang_bbox(lon, lat):
        return None
    if dong.contains(lon, lat) and geo.districts()[dong.district_code].contains(lon, lat):
        return _Place(dong, lon, lat)
    return None


def _random_place(dong: geo.Area, rng: random.Random) -> _Place:
    while True:
        place = _rounded_inside(dong, *geo.random_point_in(dong, rng))
        if place:
            return place


def _place_near(centre: _Place, rng: random.Random, radius_m: float = LOT_RADIUS_M) -> _Place:
    """A point within ``radius_m`` of the centre, in the centre's dong (the centre itself as last resort)."""
    m_per_deg_lon = _M_PER_DEG_LAT * math.cos(math.radians(centre.lat))
    for _ in range(1000):
        r, theta = radius_m * rng.random() ** 0.5, rng.uniform(0, 2 * math.pi)
        lon = centre.lon + r * math.cos(theta) / m_per_deg_lon
        lat = centre.lat + r * math.sin(theta) / _M_PER_DEG_LAT
        place = _rounded_inside(centre.dong, lon, lat)
        if place:
            return place
    return centre


def _choose_dongs(rng: random.Random, n: int) -> list[geo.Area]:
    """Dongs uniformly at random, except that the first three land in three different districts.

    That keeps every district in the small fleet while the city-scale fleet follows the dongs.
    """
    all_dongs = list(geo.dongs().values())
    district_codes = list(geo.districts())
    rng.shuffle(district_codes)
    chosen = []
    for i in range(n):
        if i < len(district_codes):
            chosen.append(rng.choice([d for d in all_dongs if d.district_code == district_codes[i]]))
        else:
            chosen.append(rng.choice(all_dongs))
    return chosen


# --- identifiers and dates -------------------------------------------------------------------

def _unique_numbers(rng: random.Random, n: int, digits: int) -> list[str]:
    return [f"{x:0{digits}d}" for x in rng.sample(range(10**digits), n)]


def _unique_eui(rng: random.Random, n: int, oui: str) -> list[str]:
    """LoRaWAN devEUIs: the vendor's OUI plus 40 random bits, upper-case hex, no repeats."""
    seen: set[str] = set()
    euis = []
    while len(euis) < n:
        eui = f"{oui}{rng.getrandbits(40):010X}"
        if eui not in seen:
            seen.add(eui)
            euis.append(eui)
    return euis


def _random_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange((end - start).days + 1))


# --- devices ---------------------------------------------------------------------------------

def _device(spec: KindSpec, size: str, device_id: str, external_id: str, names: tuple[str, str],
            place: _Place, install: date, group: tuple[str, str, str] = ("", "", ""),
            capacity: int | None = None) -> Device:
    district = geo.districts()[place.dong.district_code]
    return Device(
        device_id=device_id, domain=spec.domain, kind=spec.kind, source=spec.source, external_id=external_id,
        name_ko=names[0], name_en=names[1],
        district_code=district.code, district_ko=district.name_ko, district_en=district.name_en,
        dong_code=place.dong.code, dong_ko=place.dong.name_ko, dong_en=place.dong.name_en,
        lat=place.lat, lon=place.lon, install_date=install, interval_s=spec.interval_s[size],
        metrics=spec.metric_names(), group_id=group[0], group_name_ko=group[1], group_name_en=group[2],
        capacity=capacity, codec=spec.codec,
    )


def _numbered_names(label_ko: str, label_en: str, dong: geo.Area, number: int) -> tuple[str, str]:
    """'일산서구 주엽1동 스마트 쓰레기통 17' / 'Smart bin 17, Juyeop 1-dong, Ilsanseo-gu'."""
    district = geo.districts()[dong.district_code]
    return (f"{district.name_ko} {dong.name_ko} {label_ko} {number}",
            f"{label_en} {number}, {dong.name_en}, {district.name_en}")


def _external_ids(spec: KindSpec, rng: random.Random, n: int) -> list[str]:
    if spec.kind == "lowcost_pm":
        return ["GYAQ" + x for x in _unique_numbers(rng, n, 6)]
    if spec.kind == "weather_station":
        return ["AWS-" + x for x in _unique_numbers(rng, n, 4)]
    if spec.kind == "water_probe":
        return ["GYWQ" + x for x in _unique_numbers(rng, n, 3)]
    if spec.kind == "smart_bin":
        return _unique_eui(rng, n, "24E124")  # Milesight
    if spec.kind == "streetlight":
        return ["SL-GY-" + x for x in _unique_numbers(rng, n, 5)]
    raise ValueError(f"no external id scheme for {spec.kind}")


def _simple_devices(spec: KindSpec, size: str, rng: random.Random) -> list[Device]:
    """Kinds that are one device at one spot, numbered per dong: sensors, stations, bins, lights."""
    id_format, label_ko, label_en = _LABELS[spec.kind]
    n = spec.count[size]
    external_ids = _external_ids(spec, rng, n)
    per_dong: dict[str, int] = {}
    devices = []
    for i, dong in enumerate(_choose_dongs(rng, n)):
        per_dong[dong.code] = per_dong.get(dong.code, 0) + 1
        place = _random_place(dong, rng)
        install = _random_date(rng, INSTALL_START, INSTALL_END)
        capacity = 50 * rng.randint(18, 30) if spec.kind == "smart_bin" else None  # bin depth 900–1500 mm
        names = _numbered_names(label_ko, label_en, dong, per_dong[dong.code])
        devices.append(_device(spec, size, id_format.format(i + 1), external_ids[i], names, place, install,
                               capacity=capacity))
    return devices


def _airkorea_places() -> list[tuple[str, str, _Place, int]]:
    """The real stations, moved into their 2013 administrative dong where simplification put them outside."""
    by_name = {d.name_ko: d for d in geo.dongs().values()}
    result = []
    for name_ko, name_en, lat, lon, year, candidates in AIRKOREA_STATIONS:
        dong = min((by_name[c] for c in candidates), key=lambda d: d.distance_deg(lon, lat))
        district = geo.districts()[dong.district_code]
        place = _rounded_inside(dong, *geo.nearest_point_inside(dong, lon, lat, also_in=district))
        if place is None:
            raise RuntimeError(f"cannot place AirKorea station {name_ko}")
        result.append((name_ko, name_en, place, year))
    return result


def _reference_stations(spec: KindSpec, size: str, rng: random.Random) -> list[Device]:
    """The five real AirKorea stations, then (city scale) plausible extra ones named after their dong."""
    devices = []
    for name_ko, name_en, place, year in _airkorea_places():
        install = _random_date(rng, date(year, 1, 1), date(year, 12, 31))
        names = (f"{name_ko} 대기측정소", f"{name_en} air monitoring station")
        devices.append(_device(spec, size, f"aq-ref-{len(devices) + 1:04d}", name_ko, names, place, install))
    used = {d.dong_code for d in devices}
    free = [d for d in geo.dongs().values() if d.code not in used]
    for dong in rng.sample(free, spec.count[size] - len(devices)):
        install = _random_date(rng, REFERENCE_INSTALL_START, REFERENCE_INSTALL_END)
        names = (f"{dong.name_ko} 대기측정소", f"{dong.name_en} air monitoring station")
        devices.append(_device(spec, size, f"aq-ref-{len(devices) + 1:04d}", dong.name_ko, names,
                               _random_place(dong, rng), install))
    return devices


def _parking_spaces(spec: KindSpec, size: str, rng: random.Random) -> list[Device]:
    """Public car parks, each a group of spaces within ~50 m of the lot centre, installed together."""
    per_lot = PARKING_LOT_SPACES[size]
    n_lots = spec.count[size] // per_lot
    euis = _unique_eui(rng, n_lots * per_lot, "FCD6BD")
    devices = []
    for lot, dong in enumerate(_choose_dongs(rng, n_lots), start=1):
        centre = _random_place(dong, rng)
        install = _random_date(rng, INSTALL_START, INSTALL_END)
        group = (f"pk-{lot:04d}", f"고양 공영주차장 {lot}", f"Goyang public car park {lot}")
        for space in range(1, per_lot + 1):
            names = (f"{group[1]} 주차면 {space}", f"{group[2]}, space {space}")
            devices.append(_device(spec, size, f"pk-{lot:04d}-{space:03d}", euis[len(devices)], names,
                                   _place_near(centre, rng), install, group=group))
    return devices


def _area_stem(dong: geo.Area) -> tuple[str, str]:
    """'화정1동' / 'Hwajeong 1-dong' → '화정' / 'Hwajeong': how a neighbourhood names its daycare."""
    ko = dong.name_ko.removesuffix("동").rstrip("0123456789")
    en = dong.name_en.removesuffix("-dong").rstrip("0123456789 ")
    return ko, en


def _daycare_name(dong: geo.Area, rng: random.Random, taken: set[str]) -> tuple[str, str]:
    area_ko, area_en = _area_stem(dong)
    stems = list(DAYCARE_STEMS)
    rng.shuffle(stems)
    for number in range(1, 100):
        for stem_ko, stem_en in stems:
            prefix_ko, suffix_en = ("", "") if number == 1 else (f"제{number}", f" No. {number}")
            name_ko = f"{area_ko} {prefix_ko}{stem_ko}어린이집"
            if name_ko not in taken:
                taken.add(name_ko)
                return name_ko, f"{area_en} {stem_en}{suffix_en} daycare centre"
    raise RuntimeError("ran out of daycare names")


def _daycare_gates(spec: KindSpec, size: str, rng: random.Random) -> list[Device]:
    """One gate reader per daycare facility; the facility is the group, capacity its enrolled children."""
    n = spec.count[size]
    readers = ["GATE-" + x for x in _unique_numbers(rng, n, 4)]
    taken: set[str] = set()
    devices = []
    for i, dong in enumerate(_choose_dongs(rng, n), start=1):
        name_ko, name_en = _daycare_name(dong, rng, taken)
        group = (f"dcf-{i:04d}", name_ko, name_en)
        capacity = rng.randint(10, 20) if rng.random() < 0.35 else rng.randint(21, 120)  # home vs centre
        names = (f"{name_ko} 출입문 리더기", f"Gate reader, {name_en}")
        devices.append(_device(spec, size, f"dc-{i:04d}", readers[i - 1], names, _random_place(dong, rng),
                               _random_date(rng, INSTALL_START, INSTALL_END), group=group, capacity=capacity))
    return devices

