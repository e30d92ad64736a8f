"""The privacy gate: nothing personal leaves the private zone.

Runs on every release and blocks it on failure (:class:`PrivacyError`), before a byte of the
release is written to the public side:

1. **Rules on the daycare data** (:func:`check_rows`): the daycare datasets carry only rows
   whose embargo has passed (``publishable_from`` ≤ the release's as-of date) and counts that
   are either withheld (null), zero, or at least k (``gold_daycare_min_count``); the district
   summary's daycare columns are null until their embargo passes.
2. **A scan of every file** (:meth:`Gate.scan`): the decoded text of every published file
   (every string of a Parquet file, with its metadata) is searched for private identifiers:
   pseudonymous daycare subjects (any ``p_`` + 20 hex digits, the form
   ``etl.extract.http_cursor.pseudonym`` makes, and every subject value the lake holds), raw tag
   ids (``TAG-…``), MAC addresses, the ids of private-source devices (gate readers), and the
   coordinates of those devices (as text, and as numbers in Parquet float columns).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Identifier shapes that are personal wherever they appear.
PATTERNS = {
    "pseudonymous subject": re.compile(r"p_[0-9a-f]{20}"),
    "raw tag id": re.compile(r"TAG-[0-9A-F]{4,}"),
    "MAC address": re.compile(r"(?<![0-9A-Fa-f:-])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:-])"),
}
DAYCARE_COUNTS = ("arrivals", "departures", "children")


class PrivacyError(RuntimeError):
    """The release would publish personal data; nothing of it was written."""


@dataclass
class Gate:
    """What must not appear in public output, and what the scan found."""

    values: frozenset[str] = frozenset()          # exact private identifiers (subjects, gate ids)
    coordinates: frozenset[float] = frozenset()   # lat/lon of private-source devices (6 decimals)
    files: int = 0
    bytes: int = 0
    findings: list[str] = field(default_factory=list)

    def scan(self, name: str, data: bytes, fmt: str) -> None:
        """Record what ``data`` (a file about to be published) leaks, if anything."""
        self.files += 1
        self.bytes += len(data)
        if fmt == "parquet":
            texts, numbers = _parquet_values(data)
            self._numbers(name, numbers)
        else:
            texts = [data.decode("utf-8", errors="replace")]
        for text in texts:
            self._text(name, text)

    def _text(self, name: str, text: str) -> None:
        for what, pattern in PATTERNS.items():
            found = pattern.search(text)
            if found:
                self.findings.append(f"{name}: {what} {_mask(found.group())}")
        for value in self.values:
            if value in text:
                self.findings.append(f"{name}: private identifier {_mask(value)}")
        for coordinate in self.coordinates:
            if f"{coordinate:.6f}" in text or f"{coordinate:.5f}" in text:
                self.findings.append(f"{name}: coordinate {coordinate:.6f} of a private device")

    def _numbers(self, name: str, numbers: list[pa.Array]) -> None:
        if not self.coordinates:
            return
        wanted = pa.array(sorted(self.coordinates), pa.float64())
        for array in numbers:
            hit = pc.any(pc.is_in(pc.round(array, 6), wanted)).as_py()
            if hit:
                self.findings.append(f"{name}: coordinate of a private device in a number column")

    def raise_if_failed(self) -> None:
        if self.findings:
            listed = "\n  ".join(self.findings[:20])
            more = f"\n  … and {len(self.findings) - 20} more" if len(self.findings) > 20 else ""
            raise PrivacyError(f"privacy gate: the release is blocked, {len(self.findings)} finding(s) "
                               f"in {self.files} file(s) scanned:\n  {listed}{more}")

    def report(self) -> dict[str, Any]:
        return {"passed": not self.findings, "files_scanned": self.files, "bytes_scanned": self.bytes,
                "identifiers_checked": len(self.values), "coordinates_checked": len(self.coordinates),
                "patterns": sorted(PATTERNS)}


def _mask(value: str) -> str:
    return value[:4] + "…" if len(value) > 4 else "…"


def _parquet_values(data: bytes) -> tuple[list[str], list[pa.Array]]:
    """Every string (values, column names, key-value metadata) and the float columns of a file."""
    pf = pq.ParquetFile(io.BytesIO(data))
    meta = pf.metadata.metadata or {}
    texts = [" ".join(pf.schema_arrow.names)] + [k.decode(errors="replace") + " " + v.decode(errors="replace")
                                                 for k, v in meta.items()]
    numbers: list[pa.Array] = []
    table = pf.read()
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            unique = pc.unique(col.combine_chunks()).drop_null()
            texts.append("\n".join(unique.to_pylist()))
        elif pa.types.is_floating(col.type):
            numbers.append(col.combine_chunks().cast(pa.float64()))
    return texts, numbers


def load(lake_store: Any) -> Gate:
    """The private identifiers the lake holds: every daycare subject in silver,
    and the ids and coordinates of the devices of private sources."""
    from etl import tables
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import SILVER

    values: set[str] = set()
    dt = tables.open_table(lake_store, SILVER)      # quarantine keeps no subject (its raw tags are masked)
    if dt is not None:
        subjects = dt.to_pyarrow_dataset().to_table(
            columns=["subject"], filter=(pc.field("domain") == "daycare_safety") & pc.field("subject").is_valid())
        values.update(pc.unique(subjects["subject"]).to_pylist())
    private = [sid for sid, s in load_sources().items() if s.private]
    registry = load_registry()
    rows = registry.filter(pc.is_in(registry["source"], pa.array(private, pa.string()))).to_pylist()
    coordinates = set()
    for row in rows:
        values.update(v for v in (row["device_id"], row["external_id"]) if v)
        coordinates.update(round(row[c], 6) for c in ("lat", "lon") if row[c] is not None)
    return Gate(values=frozenset(values), coordinates=frozenset(coordinates))


def check_rows(dataset_id: str, domain: str, table: pa.Table, as_of: date, min_count: int,
               embargo_until: str = "", embargo_columns: tuple[str, ...] = ()) -> list[str]:
    """Problems of a dataset's rows under the daycare rules (empty when it may be published)."""
    problems = []
    if embargo_until and table.num_rows:
        until = table[embargo_until]
        early = pc.greater(until, pa.scalar(as_of, pa.date32()))
        if embargo_columns:
            for name in embargo_columns:
                shown = pc.and_(early, pc.is_valid(table[name]))
                if pc.any(shown).as_py():
                    problems.append(f"{dataset_id}: {name} shown before {embargo_until}")
        elif pc.any(early).as_py():
            problems.append(f"{dataset_id}: rows published before {embargo_until} (as of {as_of})")
    if domain == "daycare_safety":
        for name in DAYCARE_COUNTS:
            if name not in table.column_names:
                continue
            col = table[name]
            small = pc.and_(pc.greater(col, 0), pc.less(col, min_count))
            if pc.any(small).as_py():
                problems.append(f"{dataset_id}: {name} below k={min_count} not suppressed")
    return problems
