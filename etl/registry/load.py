"""Reading and writing the device registry, validated on every load.

Every later stage joins readings to this table (device → district, install date, codec), so a bad
row here would silently mislabel data downstream: the loader refuses the whole file instead and
lists every problem it found, with the CSV line number (the header is line 1).
"""
from __future__ import annotations

import csv
import functools
import gzip
import io
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.registry import geo
from etl.registry.generate import COLUMNS, Device
from quality.metrics import DOMAINS, METRICS

PACKAGED_FLEETS: dict[str, str] = {"small": "fleet-small.csv", "goyang": "fleet-goyang.csv.gz"}
DISTRICT_TOLERANCE_DEG = 0.002  # the district polygons are simplified; borders are off by ~100 m
EVENT_DRIVEN_DOMAINS = frozenset({"daycare_safety"})  # interval_s 0: devices report on events only
CODEC_DOMAINS = frozenset({"waste_bins", "parking"})  # payloads are vendor bytes that need a codec
CAPACITY_KINDS = frozenset({"smart_bin"})  # fill level is derived from the bin depth
MAX_LISTED_PROBLEMS = 100
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(2100, 12, 31)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_TYPED_COLUMNS: dict[str, pa.DataType] = {
    "lat": pa.float64(), "lon": pa.float64(), "install_date": pa.date32(), "interval_s": pa.int32(),
    "capacity": pa.int32(),
}
# Only capacity is nullable: "not applicable" strings are empty, never null.
SCHEMA = pa.schema(
    [pa.field(name, _TYPED_COLUMNS.get(name, pa.string()), nullable=name == "capacity") for name in COLUMNS]
)


class RegistryError(ValueError):
    """The registry file is unusable; ``problems`` holds one message per problem."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        listed = problems[:MAX_LISTED_PROBLEMS]
        more = len(problems) - len(listed)
        text = "\n  ".join(listed) + (f"\n  … and {more} more" if more else "")
        super().__init__(f"device registry {where}: {len(problems)} problem(s):\n  {text}")


# --- writing ---------------------------------------------------------------------------------

def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def csv_bytes(devices: Iterable[Device]) -> bytes:
    """The registry as UTF-8 CSV bytes (header, LF line ends)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for device in devices:
        writer.writerow(_csv_value(getattr(device, name)) for name in COLUMNS)
    return buffer.getvalue().encode("utf-8")


def write_csv(devices: Iterable[Device], path: str | Path) -> Path:
    """Write atomically; ``.gz`` paths are gzipped with no name and mtime 0 so the bytes are reproducible."""
    path = Path(path)
    data = csv_bytes(devices)
    if path.name.endswith(".gz"):
        out = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
            gz.write(data)
        data = out.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary data files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- reading ---------------------------------------------------------------------------------

def resolve_fleet(fleet: str | None = None) -> str:
    """'small' / 'goyang' → the packaged file, anything else → an absolute path; None → settings."""
    if fleet is None:
        from etl.settings import get_settings  # lazy: settings are built on first use only

        fleet = get_settings().fleet
    if fleet in PACKAGED_FLEETS:
        return str(resources.files("etl.registry.data").joinpath(PACKAGED_FLEETS[fleet]))
    return str(Path(fleet).expanduser().resolve())


def load_registry(fleet: str | None = None) -> pa.Table:
    """The validated registry as a typed Arrow table (cached per resolved path)."""
    return _load_path(resolve_fleet(fleet))


def clear_cache() -> None:
    """Forget loaded registries (tests that rewrite a file at the same path)."""
    _load_path.cache_clear()


@functools.lru_cache(maxsize=8)
def _load_path(path: str) -> pa.Table:
    raw = Path(path).read_bytes()
    return parse_registry(raw, where=path)


def parse_registry(raw: bytes, where: str = "<bytes>") -> pa.Table:
    """Parse and validate registry CSV bytes (gzip or plain); raise :class:`RegistryError` on any problem."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RegistryError(where, [f"not UTF-8 text: {exc}"]) from None
    rows, problems = _validated_rows(_read_rows(text, where))
    if problems:
        raise RegistryError(where, problems)
    return _to_table(rows)


def _read_rows(text: str, where: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RegistryError(where, [f"line {reader.line_num}: unreadable CSV: {exc}"]) from None
        yield reader.line_num, row


def devices(fleet: str | None = None) -> list[Device]:
    """The registry as :class:`Device` objects (for code that wants attributes, not columns)."""
    return [Device(**row) for row in load_registry(fleet).to_pylist()]


def by_source(table: pa.Table, source: str) -> dict[str, dict[str, Any]]:
    """external_id → device row, for one gateway: how an adapter maps what it receives to a device."""
    rows = table.filter(pc.equal(table["source"], source)).to_pylist()
    return {row["external_id"]: row for row in rows}


# --- validation ------------------------------------------------------------------------------

@dataclass
class _Seen:
    """What earlier rows used, for the uniqueness checks."""

    device_ids: dict[str, int]
    external_ids: dict[tuple[str, str], int]


def _validated_rows(lines: Iterator[tuple[int, list[str]]]) -> tuple[list[dict[str, Any]], list[str]]:
    header_line = next(lines, None)
    if header_line is None:
        return [], ["the file is empty (no header)"]
    header = [h.strip() for h in header_line[1]]
    problems = _header_problems(header)
    if any(name not in header for name in COLUMNS):
        return [], problems  # rows cannot be typed without every column
    seen = _Seen({}, {})
    rows = []
    for line, values in lines:
        if not values:
            continue
        if len(values) != len(header):
            problems.append(f"line {line}: {len(values)} fields, the header has {len(header)}")
            continue
        record = dict(zip(header, values))
        row, row_problems = _check_row(record, seen, line)
        problems.extend(f"line {line}: {p}" for p in row_problems)
        rows.append(row)
    if not rows and not problems:
        problems.append("the file has a header but no devices")
    return rows, problems


def _header_problems(header: list[str]) -> list[str]:
    problems = []
    missing = [c for c in COLUMNS if c not in header]
    extra = [c for c in header if c not in COLUMNS]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing:
        problems.append(f"header: missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"header: unexpected column(s) {', '.join(extra)}")
    if duplicated:
        problems.append(f"header: repeated column(s) {', '.join(duplicated)}")
    return problems


def _check_row(record: dict[str, str], seen: _Seen, line: int) -> tuple[dict[str, Any], list[str]]:
    row: dict[str, Any] = {name: record[name].strip() for name in COLUMNS}
    problems = _identity_problems(row, seen, line) + _metric_problems(row)
    problems += _typed_problems(row) + _place_problems(row) + _kind_field_problems(row)
    return row, problems


def _identity_problems(row: dict[str, Any], seen: _Seen, line: int) -> list[str]:
    problems = []
    for name in ("device_id", "domain", "kind", "source", "external_id", "name_ko", "name_en"):
        if not row[name]:
            problems.append(f"{name} is empty")
    device_id, key = row["device_id"], (row["source"], row["external_id"])
    if device_id and device_id in seen.device_ids:
        problems.append(f"duplicate device_id {device_id!r} (first on line {seen.device_ids[device_id]})")
    elif device_id:
        seen.device_ids[device_id] = line
    if row["external_id"] and key in seen.external_ids:
        problems.append(f"duplicate (source, external_id) {key!r} (first on line {seen.external_ids[key]})")
    elif row["external_id"]:
        seen.external_ids[key] = line
    return problems


@functools.lru_cache(maxsize=1)
def _domain_metrics() -> dict[str, frozenset[str]]:
    return {d: frozenset(m.metric for m in METRICS if m.domain == d) for d in DOMAINS}


def _metric_problems(row: dict[str, Any]) -> list[str]:
    domain = row["domain"]
    if domain not in _domain_metrics():
        return [f"unknown domain {domain!r} (known: {', '.join(DOMAINS)})"] if domain else []
    names = row["metrics"].split()
    if not names:
        return ["metrics is empty"]
    known = _domain_metrics()[domain]
    unknown = [m for m in names if m not in known]
    if unknown:
        return [f"unknown {domain} metric(s) {', '.join(unknown)} (known: {' '.join(sorted(known))})"]
    if len(set(names)) != len(names):
        return [f"metrics repeats a name: {row['metrics']!r}"]
    return []


def _typed_problems(row: dict[str, Any]) -> list[str]:
    """Convert lat, lon, install_date, interval_s and capacity in place; report what does not parse."""
    problems = []
    for name in ("lat", "lon"):
        try:
            row[name] = float(row[name])
        except ValueError:
            problems.append(f"{name} {row[name]!r} is not a number")
            row[name] = None
    problems += _date_field(row, "install_date")
    problems += _int_field(row, "interval_s", required=True)
    problems += _int_field(row, "capacity", required=False)
    return problems


def _date_field(row: dict[str, Any], name: str) -> list[str]:
    text = row[name]
    row[name] = None
    if not _ISO_DATE.match(text):
        return [f"{name} {text!r} is not an ISO date (YYYY-MM-DD)"]
    try:
        value = date.fromisoformat(text)
    except ValueError:
        return [f"{name} {text!r} is not a calendar date"]
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        return [f"{name} {text} is outside {EARLIEST_DATE}..{LATEST_DATE}"]
    row[name] = value
    return []


def _int_field(row: dict[str, Any], name: str, required: bool) -> list[str]:
    text = row[name]
    if text == "" and not required:
        row[name] = None
        return []
    try:
        row[name] = int(text)
    except ValueError:
        row[name] = None
        return [f"{name} {text!r} is not an integer"]
    if not -(2**31) <= row[name] < 2**31:
        row[name] = None
        return [f"{name} {text} does not fit in 32 bits"]
    return []


def _place_problems(row: dict[str, Any]) -> list[str]:
    problems = _code_problems(row)
    lat, lon = row["lat"], row["lon"]
    if lat is None or lon is None:
        return problems
    if not geo.in_goyang_bbox(lon, lat):
        hint = " (lat and lon swapped?)" if geo.in_goyang_bbox(lat, lon) else ""
        return problems + [f"lat {lat}, lon {lon} is outside Goyang's bounding box{hint}"]
    district = geo.districts().get(row["district_code"])
    if district is not None and district.distance_deg(lon, lat) > DISTRICT_TOLERANCE_DEG:
        problems.append(f"lat {lat}, lon {lon} is not in district {row['district_code']} ({district.name_en})")
    return problems


def _code_problems(row: dict[str, Any]) -> list[str]:
    district_code, dong_code = row["district_code"], row["dong_code"]
    if district_code not in geo.districts():
        return [f"unknown district_code {district_code!r} (known: {', '.join(geo.districts())})"]
    if dong_code not in geo.dongs():
        return [f"unknown dong_code {dong_code!r}"]
    if not dong_code.startswith(district_code):
        return [f"dong_code {dong_code} is not in district {district_code}"]
    return []


def _kind_field_problems(row: dict[str, Any]) -> list[str]:
    problems = []
    interval, domain = row["interval_s"], row["domain"]
    if interval is not None and interval <= 0 and not (interval == 0 and domain in EVENT_DRIVEN_DOMAINS):
        problems.append(f"interval_s {interval} must be positive (0 is allowed only for event-driven devices)")
    if domain in CODEC_DOMAINS and not row["codec"]:
        problems.append(f"codec is empty; {domain} devices need one to decode their payloads")
    capacity = row["capacity"]
    if capacity is not None and capacity <= 0:
        problems.append(f"capacity {capacity} must be positive")
    if capacity is None and row["kind"] in CAPACITY_KINDS:
        problems.append(f"capacity is empty; a {row['kind']} needs its depth in mm")
    return problems


def _to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pydict({name: [row[name] for row in rows] for name in COLUMNS}, schema=SCHEMA)
