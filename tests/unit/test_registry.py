"""The device registry: seeded generation, packaged files and the validating loader."""
from __future__ import annotations

import collections
import csv
import gzip
import io
import math
import random
import re
from datetime import date
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pytest

from etl.registry import geo
from etl.registry.generate import COLUMNS, KINDS, PARKING_LOT_SPACES, Device, generate
from etl.registry.load import (
    RegistryError,
    by_source,
    clear_cache,
    csv_bytes,
    devices,
    load_registry,
    write_csv,
)
from etl.settings import get_settings
from quality.metrics import METRICS
from tests.conftest import real_data

TOLERANCE = 0.002
ID_FORMATS = {
    "reference_station": (r"aq-ref-\d{4}", r".+"),
    "lowcost_pm": (r"aq-lc-\d{4}", r"GYAQ\d{6}"),
    "weather_station": (r"wx-\d{4}", r"AWS-\d{4}"),
    "water_probe": (r"wq-\d{4}", r"GYWQ\d{3}"),
    "smart_bin": (r"bin-\d{5}", r"24E124[0-9A-F]{10}"),
    "parking_space": (r"pk-\d{4}-\d{3}", r"FCD6BD[0-9A-F]{10}"),
    "streetlight": (r"sl-\d{5}", r"SL-GY-\d{5}"),
    "daycare_gate": (r"dc-\d{4}", r"GATE-\d{4}"),
}


@pytest.fixture(scope="module")
def small() -> list[Device]:
    return generate("small")


@pytest.fixture(scope="module")
def goyang() -> list[Device]:
    return generate("goyang")


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


# --- geography -------------------------------------------------------------------------------

def test_boundaries_are_byte_identical_copies_of_the_shared_data():
    shared = real_data() / "goyang-boundaries"
    for name in ("goyang_municipalities_geo_simple.json", "goyang_submunicipalities_geo_simple.json"):
        packaged = resources.files("etl.registry.data").joinpath(name).read_bytes()
        assert packaged == (shared / name).read_bytes()


def test_districts_and_dongs_have_clean_names():
    assert {c: (d.name_ko, d.name_en) for c, d in geo.districts().items()} == {
        "31101": ("덕양구", "Deogyang-gu"), "31103": ("일산동구", "Ilsandong-gu"), "31104": ("일산서구", "Ilsanseo-gu"),
    }
    dongs = geo.dongs()
    assert len(dongs) == 39
    assert all(code[:5] in geo.districts() for code in dongs)
    names = {d.name_ko: d.name_en for d in dongs.values()}
    assert names["주엽1동"] == "Juyeop 1-dong"
    assert names["백석2동"] == "Baekseok 2-dong"
    assert names["고봉동"] == "Gobong-dong"
    assert all(re.fullmatch(r"[A-Z][a-z]+( \d)?-dong", n) for n in names.values()), names


def test_locate_finds_the_dong_and_rejects_points_outside():
    juyeop2 = geo.dongs()["3110456"]
    lon, lat = geo.random_point_in(juyeop2, random.Random(1))
    assert geo.locate(lon, lat) == ("31104", "3110456")
    assert geo.locate(127.5, 37.0) is None
    assert geo.locate(37.66, 126.76) is None  # swapped


def test_point_in_polygon_handles_holes_and_multipolygons():
    square = ((0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0))
    hole = ((1.0, 1.0), (3.0, 1.0), (3.0, 3.0), (1.0, 3.0), (1.0, 1.0))
    island = ((10.0, 10.0), (11.0, 10.0), (11.0, 11.0), (10.0, 10.0))
    polygons = geo._polygons({"type": "MultiPolygon", "coordinates": [[square, hole], [island]]})
    area = geo.Area("9999999", "시험동", "Test-dong", polygons, geo._bbox(polygons))
    assert area.contains(0.5, 0.5)
    assert not area.contains(2.0, 2.0)  # in the hole
    assert area.contains(10.8, 10.2)
    assert not area.contains(10.2, 10.8)  # outside the triangle
    assert area.distance_deg(2.0, 2.0) == pytest.approx(1.0)
    rng = random.Random(3)
    assert all(area.contains(*geo.random_point_in(area, rng)) for _ in range(200))


def test_bbox_constant():
    assert geo.GOYANG_BBOX == (126.67, 37.57, 126.99, 37.75)
    assert geo.in_goyang_bbox(126.77, 37.66) and not geo.in_goyang_bbox(37.66, 126.77)


# --- generation ------------------------------------------------------------------------------

def test_same_seed_gives_the_same_bytes_and_another_seed_differs(tmp_path: Path, small: list[Device]):
    a = write_csv(generate("small"), tmp_path / "a.csv.gz").read_bytes()
    b = write_csv(generate("small", seed=20261125), tmp_path / "b.csv.gz").read_bytes()
    c = write_csv(generate("small", seed=1), tmp_path / "c.csv.gz").read_bytes()
    assert a == b != c
    assert csv_bytes(small) != csv_bytes(generate("small", seed=2))


def test_unknown_size_is_refused():
    with pytest.raises(ValueError, match="unknown fleet size"):
        generate("seoul")


@pytest.mark.parametrize("size", ["small", "goyang"])
def test_counts_per_kind(size: str, small: list[Device], goyang: list[Device]):
    fleet = small if size == "small" else goyang
    counts = collections.Counter(d.kind for d in fleet)
    assert counts == {spec.kind: spec.count[size] for spec in KINDS}
    expected = {"small": {"reference_station": 5, "lowcost_pm": 4, "weather_station": 3, "water_probe": 2,
                          "smart_bin": 6, "parking_space": 12, "streetlight": 8, "daycare_gate": 3},
                "goyang": {"reference_station": 30, "lowcost_pm": 2000, "weather_station": 200, "water_probe": 50,
                           "smart_bin": 5000, "parking_space": 10000, "streetlight": 20000, "daycare_gate": 400}}
    assert counts == expected[size]
    lots = {d.group_id for d in fleet if d.kind == "parking_space"}
    assert len(lots) == counts["parking_space"] // PARKING_LOT_SPACES[size]


@pytest.mark.parametrize("size", ["small", "goyang"])
def test_identifiers_follow_their_formats_and_are_unique(size: str, small: list[Device], goyang: list[Device]):
    fleet = small if size == "small" else goyang
    for d in fleet:
        id_re, ext_re = ID_FORMATS[d.kind]
        assert re.fullmatch(id_re, d.device_id), d.device_id
        assert re.fullmatch(ext_re, d.external_id), d.external_id
    assert len({d.device_id for d in fleet}) == len(fleet)
    assert len({(d.source, d.external_id) for d in fleet}) == len(fleet)


def test_small_fleet_has_the_real_airkorea_stations(small: list[Device]):
    stations = {d.external_id: d for d in small if d.kind == "reference_station"}
    assert list(stations) == ["행신동", "식사동", "백마로(마두역)", "신원동", "주엽동"]
    assert {k: (d.district_en, d.dong_ko) for k, d in stations.items()} == {
        "행신동": ("Deogyang-gu", "행신3동"), "식사동": ("Ilsandong-gu", "식사동"),
        "백마로(마두역)": ("Ilsandong-gu", "마두1동"), "신원동": ("Deogyang-gu", "원신동"),
        "주엽동": ("Ilsanseo-gu", "주엽2동"),
    }
    assert stations["행신동"].name_en == "Haengsin-dong air monitoring station"
    assert all(d.install_date < date(2019, 1, 1) for d in stations.values())


def test_goyang_reference_station_names_are_unique(goyang: list[Device]):
    names = [d.external_id for d in goyang if d.kind == "reference_station"]
    assert len(set(names)) == len(names) == 30


@pytest.mark.parametrize("size", ["small", "goyang"])
def test_every_device_is_inside_its_dong_and_goyang(size: str, small: list[Device], goyang: list[Device]):
    fleet = small if size == "small" else goyang
    dongs, districts = geo.dongs(), geo.districts()
    for d in fleet:
        assert geo.in_goyang_bbox(d.lon, d.lat), d
        assert dongs[d.dong_code].distance_deg(d.lon, d.lat) <= TOLERANCE, d
        assert districts[d.district_code].distance_deg(d.lon, d.lat) <= TOLERANCE, d
        assert d.dong_code.startswith(d.district_code)
        assert (d.dong_ko, d.dong_en) == (dongs[d.dong_code].name_ko, dongs[d.dong_code].name_en)
        assert round(d.lat, 6) == d.lat and round(d.lon, 6) == d.lon


def test_every_district_is_present(small: list[Device], goyang: list[Device]):
    assert {d.district_en for d in small} == {"Deogyang-gu", "Ilsandong-gu", "Ilsanseo-gu"}
    for spec in KINDS:
        placed = [d for d in small if d.kind == spec.kind]
        if spec.kind == "parking_space":
            continue  # two lots: spaces follow their lot
        if len(placed) >= 3:
            assert len({d.district_code for d in placed}) == 3, spec.kind
    assert len({d.dong_code for d in goyang}) == 39


def test_kind_fields(small: list[Device], goyang: list[Device]):
    domain_metrics = {m.domain: set() for m in METRICS}
    for m in METRICS:
        domain_metrics[m.domain].add(m.metric)
    for d in small + goyang:
        assert set(d.metrics.split()) <= domain_metrics[d.domain]
        assert date(1998, 1, 1) <= d.install_date <= date(2025, 12, 31)
        if d.kind != "reference_station":
            assert d.install_date >= date(2019, 1, 1)
        if d.kind == "smart_bin":
            assert d.codec == "em310_udl" and 900 <= d.capacity <= 1500
        elif d.kind == "parking_space":
            assert d.codec == "bosch_pls" and d.capacity is None and d.group_id
        elif d.kind == "daycare_gate":
            assert d.interval_s == 0 and d.capacity > 0 and d.group_name_ko.endswith("어린이집")
            assert d.group_name_en.endswith("daycare centre")
        else:
            assert d.codec == "" and d.capacity is None and d.group_id == ""
    assert {d.interval_s for d in goyang if d.kind == "lowcost_pm"} == {300}
    assert {d.interval_s for d in small if d.kind == "lowcost_pm"} == {600}


def test_bin_names_read_naturally(small: list[Device]):
    bin_ = next(d for d in small if d.kind == "smart_bin")
    n = bin_.name_en.split(",")[0].removeprefix("Smart bin ")
    assert bin_.name_ko == f"{bin_.district_ko} {bin_.dong_ko} 스마트 쓰레기통 {n}"
    assert bin_.name_en == f"Smart bin {n}, {bin_.dong_en}, {bin_.district_en}"


def test_parking_spaces_sit_within_50_m_of_their_lot(goyang: list[Device]):
    lots: dict[str, list[Device]] = collections.defaultdict(list)
    for d in goyang:
        if d.kind == "parking_space":
            lots[d.group_id].append(d)
    for spaces in lots.values():
        assert len({(s.dong_code, s.install_date, s.group_name_en) for s in spaces}) == 1
        lat = sum(s.lat for s in spaces) / len(spaces)
        lon = sum(s.lon for s in spaces) / len(spaces)
        for s in spaces:
            metres = math.hypot((s.lat - lat) * 111_320, (s.lon - lon) * 111_320 * math.cos(math.radians(lat)))
            assert metres <= 100, (s.device_id, metres)


def test_one_gate_per_daycare_facility(goyang: list[Device]):
    gates = [d for d in goyang if d.kind == "daycare_gate"]
    assert len({d.group_id for d in gates}) == len(gates)
    assert len({d.group_name_ko for d in gates}) == len(gates)


# --- packaged files --------------------------------------------------------------------------

def test_packaged_files_equal_a_fresh_generation(small: list[Device], goyang: list[Device]):
    """Also the cross-process determinism check: the files were written by another run."""
    data = resources.files("etl.registry.data")
    assert data.joinpath("fleet-small.csv").read_bytes() == csv_bytes(small)
    # Compare the CSV inside the gzip: the compressed bytes may differ between zlib builds.
    assert gzip.decompress(data.joinpath("fleet-goyang.csv.gz").read_bytes()) == csv_bytes(goyang)


def test_gzip_output_is_reproducible_and_nameless(tmp_path: Path, small: list[Device]):
    a = write_csv(small, tmp_path / "x" / "one.csv.gz").read_bytes()
    b = write_csv(small, tmp_path / "two.csv.gz").read_bytes()
    assert a == b and a[4:8] == b"\0\0\0\0"  # mtime 0, and no file name in the header
    assert gzip.decompress(a).startswith(",".join(COLUMNS).encode() + b"\n")


# --- loading ---------------------------------------------------------------------------------

def test_load_registry_types_and_round_trip(small: list[Device]):
    table = load_registry("small")
    assert table.column_names == list(COLUMNS)
    types = {f.name: f.type for f in table.schema}
    assert types["lat"] == types["lon"] == pa.float64()
    assert types["install_date"] == pa.date32()
    assert types["interval_s"] == types["capacity"] == pa.int32()
    assert types["device_id"] == types["metrics"] == pa.string()
    assert table.schema.field("capacity").nullable
    assert devices("small") == small
    assert load_registry("small") is table  # cached


def test_load_goyang_is_valid():
    table = load_registry("goyang")
    assert table.num_rows == 37_680


def test_load_defaults_to_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small: list[Device]):
    path = write_csv(small[:5], tmp_path / "five.csv")
    monkeypatch.setenv("CITYLAKE_FLEET", str(path))
    get_settings.cache_clear()
    try:
        assert load_registry().num_rows == 5
    finally:
        get_settings.cache_clear()


def test_by_source_maps_external_ids():
    stations = by_source(load_registry("small"), "airkorea")
    assert stations["주엽동"]["device_id"] == "aq-ref-0005"
    bins = by_source(load_registry("small"), "bins_ttn")
    assert all(k.startswith("24E124") for k in bins) and len(bins) == 6


# --- validation ------------------------------------------------------------------------------

def _small_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_bytes(generate("small")).decode())))


def _write(tmp_path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    columns = columns or list(COLUMNS)
    path = tmp_path / "fleet.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _index(rows: list[dict[str, str]], kind: str) -> int:
    return next(i for i, r in enumerate(rows) if r["kind"] == kind)


def _problems(tmp_path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> list[str]:
    with pytest.raises(RegistryError) as info:
        load_registry(_write(tmp_path, rows, columns))
    assert str(info.value).startswith("device registry ")
    return info.value.problems


def _swap(row: dict[str, str]) -> None:
    row["lat"], row["lon"] = row["lon"], row["lat"]


def _move_to_other_district(row: dict[str, str]) -> None:
    row["lat"], row["lon"] = "37.720000", "126.950000"  # deep in Deogyang-gu


CASES = {
    "duplicate id": (lambda rows: rows[3].update(device_id=rows[2]["device_id"]), r"line 5: duplicate device_id 'aq-ref-0003' \(first on line 4\)"),
    "duplicate external id": (lambda rows: rows[1].update(external_id=rows[0]["external_id"]), r"line 3: duplicate \(source, external_id\)"),
    "swapped lat/lon": (lambda rows: _swap(rows[0]), r"line 2: .*outside Goyang's bounding box \(lat and lon swapped\?\)"),
    "unknown metric": (lambda rows: rows[0].update(metrics="pm10 pm1"), r"line 2: unknown air_quality metric\(s\) pm1"),
    "metric of another domain": (lambda rows: rows[0].update(metrics="pm10 fill_level"), r"unknown air_quality metric\(s\) fill_level"),
    "unknown domain": (lambda rows: rows[0].update(domain="noise"), r"line 2: unknown domain 'noise'"),
    "wrong district": (lambda rows: _move_to_other_district(rows[4]), r"line 6: lat 37.72, lon 126.95 is not in district 31104"),
    "unknown dong": (lambda rows: rows[0].update(dong_code="3110199"), r"unknown dong_code '3110199'"),
    "dong of another district": (lambda rows: rows[0].update(dong_code="3110456"), r"dong_code 3110456 is not in district 31101"),
    "bad date": (lambda rows: rows[0].update(install_date="2024-02-30"), r"install_date '2024-02-30' is not a calendar date"),
    "date format": (lambda rows: rows[0].update(install_date="20240201"), r"is not an ISO date"),
    "zero interval": (lambda rows: rows[0].update(interval_s="0"), r"line 2: interval_s 0 must be positive"),
    "negative interval": (lambda rows: rows[_index(rows, "daycare_gate")].update(interval_s="-5"), r"interval_s -5 must be positive"),
    "interval not a number": (lambda rows: rows[0].update(interval_s="hourly"), r"interval_s 'hourly' is not an integer"),
    "bin without codec": (lambda rows: rows[_index(rows, "smart_bin")].update(codec=""), r"codec is empty; waste_bins"),
    "parking without codec": (lambda rows: rows[_index(rows, "parking_space")].update(codec=""), r"codec is empty; parking"),
    "bin without depth": (lambda rows: rows[_index(rows, "smart_bin")].update(capacity=""), r"capacity is empty"),
    "lat not a number": (lambda rows: rows[0].update(lat="north"), r"lat 'north' is not a number"),
    "empty device id": (lambda rows: rows[0].update(device_id=""), r"device_id is empty"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validation_catches(case: str, tmp_path: Path):
    rows = _small_rows()
    mutate, expected = CASES[case]
    mutate(rows)
    problems = _problems(tmp_path, rows)
    assert any(re.search(expected, p) for p in problems), problems


def test_missing_and_extra_columns(tmp_path: Path):
    rows = _small_rows()
    for row in rows:
        row["colour"] = "red"
    columns = [c for c in COLUMNS if c != "codec"] + ["colour"]
    problems = _problems(tmp_path, rows, columns)
    assert problems == ["header: missing column(s) codec", "header: unexpected column(s) colour"]


def test_extra_column_alone_is_refused(tmp_path: Path):
    rows = _small_rows()
    problems = _problems(tmp_path, rows, list(COLUMNS) + ["note"])
    assert problems[0] == "header: unexpected column(s) note"


def test_every_problem_is_listed_at_once(tmp_path: Path):
    rows = _small_rows()
    rows[1]["device_id"] = rows[0]["device_id"]
    _swap(rows[2])
    rows[10]["metrics"] = "rain snow"
    with pytest.raises(RegistryError) as info:
        load_registry(_write(tmp_path, rows))
    message = str(info.value)
    assert "3 problem(s)" in message
    assert [p.split(":")[0] for p in info.value.problems] == ["line 3", "line 4", "line 12"]
    assert "unknown weather metric(s) snow" in message


def test_daycare_interval_zero_is_accepted(tmp_path: Path):
    rows = _small_rows()
    assert rows[_index(rows, "daycare_gate")]["interval_s"] == "0"
    assert load_registry(_write(tmp_path, rows)).num_rows == len(rows)


def test_empty_and_ragged_files(tmp_path: Path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(RegistryError, match="empty"):
        load_registry(str(empty))
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(RegistryError, match="no devices"):
        load_registry(str(header_only))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(",".join(COLUMNS) + "\n" + "a,b,c\n")
    with pytest.raises(RegistryError, match="line 2: 3 fields"):
        load_registry(str(ragged))
