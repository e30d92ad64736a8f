"""The CSV drop adapter against the real files, as they are.

Expected numbers are computed here with the csv module, independently of the adapter, and
checked against what PROVENANCE.md says about the files.
"""
from __future__ import annotations

import csv
import io
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from etl.extract import csv_drop
from etl.extract.frames import DECODED, REJECTS
from etl.timeutil import UTC
from quality.reasons import REASONS
from tests.conftest import real_data

REAL = real_data()
CHICAGO = REAL / "chicago-beach-water"
PART1 = "Beach_Water_Quality_-_Automated_Sensors_rows00001-17000.csv"
PART2 = "Beach_Water_Quality_-_Automated_Sensors_rows30001-31400.csv"
SEOUL = REAL / "seoul-daily-air-cp949"
SEOUL_FILE = "seoul_daily_air_2019.csv"

CHICAGO_METRICS = {
    "Water Temperature": "water_temp", "Turbidity": "turbidity", "Transducer Depth": "depth",
    "Wave Height": "wave_height", "Wave Period": "wave_period", "Battery Life": "battery_v",
}
SENTINELS = {"-99999.992", "-100000"}
SEOUL_METRICS = ["no2", "o3", "co", "so2", "pm10", "pm25"]


def _decode(folder: Path, name: str, profile: str) -> tuple[pa.Table, pa.Table]:
    return csv_drop.decode(csv_drop.fetch(str(folder), [name]), profile)


def _rows(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with open(path, encoding=encoding, newline="") as fh:
        return list(csv.DictReader(fh))


def _count(table: pa.Table, *columns: str) -> Counter:
    return Counter(zip(*(table.column(c).to_pylist() for c in columns)))


def _chicago_expected(rows: list[dict[str, str]]) -> tuple[Counter, Counter]:
    """(accepted cells per metric, rejects per (reason, metric)) by the rules of the profile."""
    accepted: Counter = Counter()
    rejected: Counter = Counter()
    for row in rows:
        for column, metric in CHICAGO_METRICS.items():
            cell = row[column]
            if not row["Measurement Timestamp"]:
                rejected["bad_timestamp", metric] += 1
            elif cell == "":
                rejected["source_missing", metric] += 1
            elif cell in SENTINELS:
                rejected["sentinel", metric] += 1
            else:
                accepted[metric] += 1
    return accepted, rejected


@pytest.fixture(scope="module")
def part1() -> tuple[pa.Table, pa.Table]:
    return _decode(CHICAGO, PART1, "chicago_beach")


@pytest.fixture(scope="module")
def part2() -> tuple[pa.Table, pa.Table]:
    return _decode(CHICAGO, PART2, "chicago_beach")


@pytest.fixture(scope="module")
def seoul() -> tuple[pa.Table, pa.Table]:
    return _decode(SEOUL, SEOUL_FILE, "seoul_daily_air")


def test_tables_have_the_frame_schemas(part1: tuple[pa.Table, pa.Table]) -> None:
    decoded, rejects = part1
    assert decoded.schema == DECODED
    assert rejects.schema == REJECTS
    assert set(rejects.column("reason").to_pylist()) <= set(REASONS)


@pytest.mark.parametrize("name", [PART1, PART2])
def test_chicago_counts_per_metric_and_reason(name: str, part1: tuple[pa.Table, pa.Table],
                                              part2: tuple[pa.Table, pa.Table]) -> None:
    decoded, rejects = part1 if name == PART1 else part2
    rows = _rows(CHICAGO / name)
    accepted, rejected = _chicago_expected(rows)
    assert Counter(decoded.column("metric").to_pylist()) == accepted
    assert _count(rejects, "reason", "metric") == rejected
    # every metric cell is accounted for exactly once
    assert decoded.num_rows + rejects.num_rows == len(rows) * len(CHICAGO_METRICS)


def test_chicago_sentinel_rows_match_provenance(part1: tuple[pa.Table, pa.Table],
                                                part2: tuple[pa.Table, pa.Table]) -> None:
    for (_, rejects), name, provenance_rows in ((part1, PART1, 1), (part2, PART2, 17)):
        sentinel_rows = [r for r in _rows(CHICAGO / name) if r["Wave Height"] == "-99999.992"]
        assert len(sentinel_rows) == provenance_rows
        counts = _count(rejects, "reason", "metric")
        assert counts["sentinel", "wave_height"] == counts["sentinel", "wave_period"] == provenance_rows
        assert sum(n for (reason, _), n in counts.items() if reason == "sentinel") == 2 * provenance_rows


def test_chicago_name_only_rows_are_bad_timestamps(part2: tuple[pa.Table, pa.Table]) -> None:
    _, rejects = part2
    name_only = [r for r in _rows(CHICAGO / PART2) if not r["Measurement Timestamp"]]
    assert len(name_only) == 5
    bad = rejects.filter(pc.equal(rejects.column("reason"), "bad_timestamp"))
    assert bad.num_rows == len(name_only) * len(CHICAGO_METRICS)
    assert set(bad.column("ref").to_pylist()) == {r["Beach Name"] for r in name_only}
    assert bad.column("ts").null_count == bad.num_rows
    assert set(bad.column("raw").to_pylist()) == {",".join(r.values()) for r in name_only}


def _at(decoded: pa.Table, ref: str, metric: str) -> dict[datetime, float]:
    return {r["ts"]: r["value"] for r in decoded.to_pylist() if r["ref"] == ref and r["metric"] == metric}


def test_chicago_twelve_hour_clock_in_chicago_time(part1: tuple[pa.Table, pa.Table]) -> None:
    decoded, _ = part1
    rows = _rows(CHICAGO / PART1)
    midnight = next(r for r in rows if r["Measurement Timestamp"] == "05/30/2014 12:00:00 AM")
    assert midnight["Measurement ID"].endswith("201405302400")  # the ID's hour-24 midnight is the same instant
    temps = _at(decoded, midnight["Beach Name"], "water_temp")
    assert temps[datetime(2014, 5, 30, 5, 0, tzinfo=UTC)] == float(midnight["Water Temperature"])  # CDT, UTC-5
    first = rows[0]  # Montrose Beach, 08/30/2013 08:00:00 AM
    assert _at(decoded, first["Beach Name"], "turbidity")[datetime(2013, 8, 30, 13, 0, tzinfo=UTC)] == float(
        first["Turbidity"])


def test_chicago_units_and_no_status(part1: tuple[pa.Table, pa.Table]) -> None:
    decoded, _ = part1
    units = dict(zip(decoded.column("metric").to_pylist(), decoded.column("unit").to_pylist()))
    assert units == {"water_temp": "degC", "turbidity": "NTU", "depth": "m", "wave_height": "m",
                     "wave_period": "s", "battery_v": "V"}
    assert decoded.column("src_flag").null_count == decoded.num_rows
    assert set(decoded.column("frame").to_pylist()) == {0}


def test_chicago_decodes_fast() -> None:
    frames = csv_drop.fetch(str(CHICAGO), [PART1])
    csv_drop.decode(frames, "chicago_beach")  # warm lazy imports
    t0 = time.perf_counter()
    csv_drop.decode(frames, "chicago_beach")
    assert time.perf_counter() - t0 < 2.0


def _seoul_rows() -> tuple[list[str], list[list[str]]]:
    text = (SEOUL / SEOUL_FILE).read_bytes().decode("cp949")
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def test_seoul_every_cell_accounted_for(seoul: tuple[pa.Table, pa.Table]) -> None:
    decoded, rejects = seoul
    header, rows = _seoul_rows()
    assert len(rows) == 17_745 and len(header) == 8
    missing = Counter()
    for row in rows:
        for metric, cell in zip(SEOUL_METRICS, row[2:]):
            missing[metric] += cell == ""
    assert Counter(rejects.column("metric").to_pylist()) == missing
    assert set(rejects.column("reason").to_pylist()) == {"source_missing"}
    assert all(529 <= n <= 752 for n in missing.values())  # PROVENANCE: 529-752 per pollutant
    assert Counter(decoded.column("metric").to_pylist()) == {m: len(rows) - missing[m] for m in SEOUL_METRICS}
    assert decoded.num_rows + rejects.num_rows == 17_745 * 6


def test_seoul_korean_names_units_and_day_convention(seoul: tuple[pa.Table, pa.Table]) -> None:
    decoded, _ = seoul
    _, rows = _seoul_rows()
    refs = set(decoded.column("ref").to_pylist())
    assert refs == {r[1] for r in rows}
    assert len(refs) == 50 and {"강남구", "강남대로", "행주"} <= refs
    units = dict(zip(decoded.column("metric").to_pylist(), decoded.column("unit").to_pylist()))
    assert units == {"no2": "ppm", "o3": "ppm", "co": "ppm", "so2": "ppm", "pm10": "㎍/㎥", "pm25": "㎍/㎥"}
    first = decoded.slice(0, 6).to_pylist()
    assert [r["value"] for r in first] == [0.027, 0.013, 0.6, 0.005, 35.0, 30.0]  # 20190101 강남구
    assert {r["ts"] for r in first} == {datetime(2018, 12, 31, 15, 0, tzinfo=UTC)}  # 00:00 KST of the day
    ts = decoded.column("ts").to_pylist()
    assert min(ts) == datetime(2018, 12, 31, 15, 0, tzinfo=UTC)
    assert max(ts) == datetime(2019, 12, 30, 15, 0, tzinfo=UTC)


def test_seoul_true_zero_ozone_is_a_value(seoul: tuple[pa.Table, pa.Table]) -> None:
    decoded, _ = seoul
    _, rows = _seoul_rows()
    zeros = sum(1 for r in rows if r[3] != "" and float(r[3]) == 0.0)
    o3 = [v for m, v in zip(decoded.column("metric").to_pylist(), decoded.column("value").to_pylist()) if m == "o3"]
    assert zeros > 0 and o3.count(0.0) == zeros


def test_wrong_profile_rejects_the_file_once_without_raising() -> None:
    decoded, rejects = _decode(CHICAGO, PART2, "seoul_daily_air")
    assert decoded.num_rows == 0
    assert rejects.column("reason").to_pylist() == ["malformed_csv"]
    assert "header lacks 측정일시, 측정소명" in rejects.column("detail")[0].as_py()


def test_cp949_file_read_as_utf8_only_is_one_reject() -> None:
    decoded, rejects = _decode(SEOUL, SEOUL_FILE, "chicago_beach")
    assert decoded.num_rows == 0
    assert rejects.column("reason").to_pylist() == ["malformed_csv"]
    assert "not text in utf-8" in rejects.column("detail")[0].as_py()
