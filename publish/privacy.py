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
   locations of those devices (a lat/lon pair, as neighbouring numbers in text and as the
   lat/lon columns of Parquet; a lat or a lon alone is shared by many public devices).
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
# Tokens are what lies between these characters (a value is found when it is a whole token).
TOKEN_SEP = r"[^A-Za-z0-9_.:\-]+"
# The same shapes in RE2 syntax (no look-around): the fast pass; a hit is confirmed with PATTERNS.
RE2_PATTERNS = (r"p_[0-9a-f]{20}", r"TAG-[0-9A-F]{4,}", r"(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}")
DAYCARE_COUNTS = ("arrivals", "departures", "children")


class PrivacyError(RuntimeError):
    """The release would publish personal data; nothing of it was written."""


@dataclass
class Gate:
    """What must not appear in public output, and what the scan found."""

    values: frozenset[str] = frozenset()          # exact private identifiers (subjects, gate ids)
    coordinates: frozenset[tuple[float, float]] = frozenset()   # (lat, lon) of private-source devices
    files: int = 0
    bytes: int = 0
    findings: list[str] = field(default_factory=list)
    _values_array: pa.Array | None = field(default=None, repr=False)
    _pairs_array: pa.Array | None = field(default=None, repr=False)

    def scan(self, name: str, data: bytes, fmt: str) -> None:
        """Record what ``data`` (a file about to be published) leaks, if anything."""
        self.files += 1
        self.bytes += len(data)
        if fmt == "parquet":
            texts, located = _parquet_values(data)
            self._located(name, located)
        else:
            texts = list(_chunks(data.decode("utf-8", errors="replace")))
        for text in texts:
            self._text(name, text)

    def _text(self, name: str, text: str) -> None:
        """Split the text into tokens (in C++), then look the distinct tokens up: the shapes by
        RE2, every other private value and every private coordinate by hash."""
        every = pc.list_flatten(pc.split_pattern_regex(pa.array([text], pa.large_string()), TOKEN_SEP))
        if self.coordinates and len(every) > 1:     # a location is two neighbouring numbers
            pairs = pc.binary_join_element_wise(every[:-1], every[1:], pa.scalar(",", pa.large_string()))
            if pc.any(pc.is_in(pairs, self._pairs())).as_py():
                self.findings.append(f"{name}: coordinates of a private device")
        tokens = pc.unique(every)
        shaped = tokens.filter(pc.match_substring_regex(tokens, "|".join(RE2_PATTERNS)))
        for token in shaped.to_pylist():
            for what, pattern in PATTERNS.items():
                found = pattern.search(token)
                if found:
                    self.findings.append(f"{name}: {what} {_mask(found.group())}")
        for token in tokens.filter(pc.is_in(tokens, self._lookup())).to_pylist():
            self.findings.append(f"{name}: private identifier {_mask(token)}")

    def _lookup(self) -> pa.Array:
        """Private values no shape covers (gate ids, ...: subjects are all p_ + 20 hex)."""
        if self._values_array is None:
            literals = {v for v in self.values if not any(p.fullmatch(v) for p in PATTERNS.values())}
            self._values_array = pa.array(sorted(literals), pa.large_string())
        return self._values_array

    def _pairs(self) -> pa.Array:
        """The private locations as text: "lat,lon" and "lon,lat", with 5 or 6 decimals or in
        the shortest form (a lat or a lon alone is shared by many public devices)."""
        if self._pairs_array is None:
            forms = set()
            for lat, lon in self.coordinates:
                for a, b in ((lat, lon), (lon, lat)):
                    forms |= {f"{a:.6f},{b:.6f}", f"{a:.5f},{b:.5f}", f"{a!r},{b!r}"}
            self._pairs_array = pa.array(sorted(forms), pa.large_string())
        return self._pairs_array

    def _located(self, name: str, located: tuple[pa.Array, pa.Array] | None) -> None:
        """Rows of a Parquet file whose (lat, lon) is a private device's location."""
        if not self.coordinates or located is None:
            return
        lat, lon = (pc.cast(pc.round(a, 6), pa.string()) for a in located)
        wanted = pa.array(sorted(f"{a!r},{b!r}" for a, b in self.coordinates), pa.string())
        if pc.any(pc.is_in(pc.binary_join_element_wise(lat, lon, ","), wanted)).as_py():
            self.findings.append(f"{name}: coordinates of a private device in lat/lon")

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


def _chunks(text: str, size: int = 8 << 20) -> Any:
    """The text in pieces of about ``size`` characters, cut after a newline."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _parquet_values(data: bytes) -> tuple[list[str], tuple[pa.Array, pa.Array] | None]:
    """Every string (values, column names, key-value metadata) and the lat/lon columns of a file."""
    pf = pq.ParquetFile(io.BytesIO(data))
    meta = pf.metadata.metadata or {}
    texts = [" ".join(pf.schema_arrow.names)] + [k.decode(errors="replace") + " " + v.decode(errors="replace")
                                                 for k, v in meta.items()]
    table = pf.read()
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            unique = pc.unique(col.combine_chunks()).drop_null()
            texts.append("\n".join(unique.to_pylist()))
    located = None
    if {"lat", "lon"} <= set(table.column_names):
        located = (table["lat"].combine_chunks().cast(pa.float64()), table["lon"].combine_chunks().cast(pa.float64()))
    return texts, located


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
        if row["lat"] is not None and row["lon"] is not None:
            coordinates.add((round(row["lat"], 6), round(row["lon"], 6)))
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
