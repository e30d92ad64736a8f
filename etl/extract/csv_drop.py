"""The CSV file-drop gateway: SCADA exports (and open-data CSV files) landed from a directory.

A *profile* describes one CSV dialect as data: encodings, time columns and zone, the device
reference, the column -> (metric, unit) table, sentinels and the status column. Every cell of
a metric column is one candidate reading; whatever cannot become one is a reject with a reason
from :mod:`quality.reasons`. Values and units are reported as sent: conversion happens in
normalisation (:mod:`etl.units`), validation in the quality suites.

``seoul_daily_air`` carries **daily means**: its ``측정일시`` is a KST calendar day
(``YYYYMMDD``), and the reading is stamped at the *start* of that day, 00:00 KST
(= 15:00 UTC the day before), the same convention as :func:`etl.timeutil.kst_day_bounds`.
"""
from __future__ import annotations

import codecs
import csv
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

import pyarrow as pa

from etl.extract.frames import DECODED, REJECTS, Frame, Rows, excerpt
from etl.timeutil import UTC, parse_local, utc


@dataclass(frozen=True)
class Column:
    metric: str
    unit: str                                   # used when the header gives no unit
    sentinels: frozenset[float] = frozenset()   # values meaning "no reading"


@dataclass(frozen=True)
class Profile:
    name: str
    encodings: tuple[str, ...]                  # tried in order; a UTF-8 BOM always wins
    time_columns: tuple[str, ...]               # joined with a space when several
    time_format: str | None                     # strptime format; None = timeutil.parse_local
    tz: str
    ref_column: str
    columns: dict[str, Column]                  # header label (units stripped) -> column
    delimiter: str = ","
    units_from_header: bool = False             # "수온(℃)": the unit in parentheses is the unit sent
    status_column: str | None = None
    normal_status: frozenset[str] = frozenset({"", "0"})
    abnormal_status: dict[str, str] = field(default_factory=dict)  # code -> meaning; rejected


SCADA_SENTINELS = frozenset({-999.0})
CHICAGO_SENTINELS = frozenset({-99999.992, -100000.0})

PROFILES: dict[str, Profile] = {
    # Goyang water utility SCADA hourly exports (etl.simulate.csv_drop writes them).
    "goyang_scada": Profile(
        name="goyang_scada", encodings=("utf-8", "cp949"), time_columns=("측정일시",), time_format=None,
        tz="Asia/Seoul", ref_column="측정소코드", units_from_header=True, status_column="상태코드",
        columns={
            "수온": Column("water_temp", "℃", SCADA_SENTINELS),
            "수소이온농도": Column("ph", "pH", SCADA_SENTINELS),
            "용존산소": Column("dissolved_oxygen", "mg/L", SCADA_SENTINELS),
            "탁도": Column("turbidity", "NTU", SCADA_SENTINELS),
            "전기전도도": Column("conductivity", "μS/cm", SCADA_SENTINELS),
        },
        abnormal_status={"1": "calibration", "4": "power cut", "8": "repair", "9": "abnormal data"},
    ),
    # City of Chicago beach sensors (portal qmqz-2xku), a real SCADA-like export.
    # depth, wave_height, wave_period and battery_v are not citylake metrics: kept here,
    # quarantined as unknown_metric by normalisation.
    "chicago_beach": Profile(
        name="chicago_beach", encodings=("utf-8",), time_columns=("Measurement Timestamp",),
        time_format="%m/%d/%Y %I:%M:%S %p", tz="America/Chicago", ref_column="Beach Name",
        columns={
            "Water Temperature": Column("water_temp", "degC", CHICAGO_SENTINELS),
            "Turbidity": Column("turbidity", "NTU", CHICAGO_SENTINELS),
            "Transducer Depth": Column("depth", "m", CHICAGO_SENTINELS),
            "Wave Height": Column("wave_height", "m", CHICAGO_SENTINELS),
            "Wave Period": Column("wave_period", "s", CHICAGO_SENTINELS),
            "Battery Life": Column("battery_v", "V", CHICAGO_SENTINELS),
        },
    ),
    # Seoul Open Data Plaza OA-2218 daily means, cp949; stamped 00:00 KST of the day (see above).
    "seoul_daily_air": Profile(
        name="seoul_daily_air", encodings=("utf-8", "cp949"), time_columns=("측정일시",), time_format="%Y%m%d",
        tz="Asia/Seoul", ref_column="측정소명", units_from_header=True,
        columns={
            "이산화질소농도": Column("no2", "ppm"),
            "오존농도": Column("o3", "ppm"),
            "일산화탄소농도": Column("co", "ppm"),
            "아황산가스농도": Column("so2", "ppm"),
            "미세먼지농도": Column("pm10", "㎍/㎥"),
            "초미세먼지농도": Column("pm25", "㎍/㎥"),
        },
    ),
}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# Names of files still being written (or editor droppings): never listed.
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", "~")


# ---- the drop directory -------------------------------------------------------------------
def list_new(drop_dir: str, seen: set[str]) -> list[str]:
    """Complete files not seen yet, by name (export names sort in time order)."""
    root = Path(drop_dir)
    if not root.is_dir():
        return []
    with os.scandir(root) as entries:
        names = [e.name for e in entries if e.is_file() and not _in_progress(e.name) and e.name not in seen]
    return sorted(names)


def _in_progress(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES)


def fetch(drop_dir: str, names: list[str]) -> list[Frame]:
    """One frame per file, its exact bytes; meta gives name, size and modification time (UTC)."""
    frames = []
    for seq, name in enumerate(names):
        if Path(name).name != name:
            raise ValueError(f"not a file name in the drop directory: {name!r}")
        path = Path(drop_dir) / name
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        body = path.read_bytes()
        frames.append(Frame(body=body, meta={"file": name, "size": len(body), "mtime": mtime.isoformat()}, seq=seq))
    return frames


# ---- decoding -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    """Where a profile's columns sit in one file's header."""

    width: int
    time_idx: tuple[int, ...]
    ref_idx: int
    status_idx: int | None
    cells: tuple[tuple[int, str, str, frozenset[float]], ...]  # index, metric, unit, sentinels


class _Out:
    """Both output tables of one decode call; readings are appended column-wise (hot path)."""

    def __init__(self, profile: Profile):
        self.decoded = Rows(DECODED)
        self.rejects = Rows(REJECTS)
        self.parse_time = _time_parser(profile)
        cols = self.decoded.cols
        self._append = tuple(cols[n].append for n in ("ref", "metric", "ts", "value", "unit", "src_flag", "frame"))
        self._subject = cols["subject"].append

    def reading(self, ref: str | None, metric: str, ts_us: int, value: float, unit: str, flag: str | None,
                frame: int) -> None:
        for append, v in zip(self._append, (ref, metric, ts_us, value, unit, flag, frame)):
            append(v)
        self._subject(None)

    def reject(self, frame: int, reason: str, detail: str, raw: str, **key: object) -> None:
        self.rejects.add(frame=frame, reason=reason, detail=detail, raw=excerpt(raw), **key)


def decode(frames: list[Frame], profile: str) -> tuple[pa.Table, pa.Table]:
    """(DECODED, REJECTS) for the files in ``frames`` read with the named profile; never raises on data.

    A row with the wrong field count is one ``malformed_csv`` reject. Otherwise each metric cell
    is a reading or one reject, the first that applies: ``bad_timestamp``, ``source_missing``
    (empty), ``bad_value``, ``sentinel``, ``instrument_status`` (abnormal status code; the value
    is kept in the detail). A status that is neither normal nor abnormal goes into ``src_flag``.
    """
    prof = PROFILES[profile]
    out = _Out(prof)
    for frame in frames:
        _decode_file(frame, prof, out)
    return out.decoded.table(), out.rejects.table()


def _decode_file(frame: Frame, prof: Profile, out: _Out) -> None:
    encoding = _encoding(frame.body, prof.encodings)
    if encoding is None:
        detail = f"{_name(frame)}: the header is not text in {' or '.join(prof.encodings)}"
        out.reject(frame.seq, "malformed_csv", detail, frame.body[:200].decode("latin-1"))
        return
    lines = _lines(frame, *encoding, out)
    header = next(lines, None)
    if header is None:
        out.reject(frame.seq, "malformed_csv", f"{_name(frame)}: empty file", "")
        return
    layout = _layout(_split(header[1], prof.delimiter), prof)
    if isinstance(layout, str):
        out.reject(frame.seq, "malformed_csv", f"{_name(frame)}: {layout}", header[1])
        return
    for lineno, line in lines:
        _decode_row(frame.seq, lineno, line, layout, prof, out)


def _name(frame: Frame) -> str:
    return str(frame.meta.get("file", f"frame {frame.seq}"))


def _encoding(body: bytes, encodings: tuple[str, ...]) -> tuple[str, bool] | None:
    """(encoding, whether the whole file decodes with it); None if even the header does not.

    A UTF-8 BOM decides; otherwise the profile's encodings in order (UTF-8 first: cp949 text
    is practically never valid UTF-8). A file that only partly decodes is read line by line.
    """
    candidates = ("utf-8-sig",) if body.startswith(codecs.BOM_UTF8) else encodings
    for enc in candidates:
        try:
            body.decode(enc)
            return enc, True
        except UnicodeDecodeError:
            continue
    first = body.split(b"\n", 1)[0]
    for enc in candidates:
        try:
            first.decode(enc)
            return enc, False
        except UnicodeDecodeError:
            continue
    return None


def _lines(frame: Frame, encoding: str, whole: bool, out: _Out) -> Iterator[tuple[int, str]]:
    """Non-blank text lines with their 1-based numbers; undecodable lines become rejects."""
    if whole:
        raw_lines: list[str] | list[bytes] = frame.body.decode(encoding).split("\n")
    else:
        raw_lines = frame.body.split(b"\n")
    for n, raw in enumerate(raw_lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode(encoding if n == 1 else encoding.replace("-sig", ""))
            except UnicodeDecodeError as exc:
                detail = f"{_name(frame)} line {n}: not valid {encoding} ({exc.reason} at byte {exc.start})"
                out.reject(frame.seq, "malformed_csv", detail, raw.decode(encoding, errors="replace"))
                continue
        else:
            text = raw
        text = text.rstrip("\r")
        if text.strip():
            yield n, text


def _split(line: str, delimiter: str) -> list[str]:
    """Fields of one line; the csv module only when quoting is involved (it is slower)."""
    if '"' not in line:
        return line.split(delimiter)
    return next(csv.reader([line], delimiter=delimiter))


def _label_unit(label: str) -> tuple[str, str | None]:
    """``수온(℃)`` -> (``수온``, ``℃``); a label without parentheses has no unit."""
    label = label.strip()
    if label.endswith(")") and "(" in label:
        name, _, unit = label[:-1].rpartition("(")
        return name.strip(), unit.strip()
    return label, None


def _layout(header: list[str], prof: Profile) -> _Layout | str:
    """Column positions for this file, or why the header cannot be used."""
    labels = [_label_unit(h) for h in header]
    index = {name: i for i, (name, _) in reversed(list(enumerate(labels)))}
    missing = [c for c in (*prof.time_columns, prof.ref_column) if c not in index]
    cells = tuple(
        (i, col.metric, (unit if prof.units_from_header and unit else col.unit), col.sentinels)
        for i, (name, unit) in enumerate(labels) if (col := prof.columns.get(name)) is not None
    )
    if missing or not cells:
        return f"header lacks {', '.join(missing) or 'any metric column'} (profile {prof.name})"
    status_idx = index.get(prof.status_column) if prof.status_column else None
    return _Layout(len(header), tuple(index[c] for c in prof.time_columns), index[prof.ref_column], status_idx, cells)


def _time_parser(prof: Profile) -> Callable[[str], int | str]:
    """Text -> UTC epoch microseconds, or why it is not a time; cached, since rows share time stamps.

    Microseconds rather than datetimes: Arrow builds the column from ints ~50x faster.
    """
    tz = ZoneInfo(prof.tz)
    fmt = prof.time_format
    cache: dict[str, int | str] = {}

    def parse(text: str) -> int | str:
        hit = cache.get(text)
        if hit is None:
            hit = cache[text] = _epoch_us(text, fmt, tz) if text else "no timestamp"
        return hit

    return parse


def _epoch_us(text: str, fmt: str | None, tz: ZoneInfo) -> int | str:
    """Local time text -> UTC epoch µs; ambiguous DST hours read as the first (fold=0)."""
    try:
        when = parse_local(text, tz) if fmt is None else utc(datetime.strptime(text, fmt).replace(tzinfo=tz))
    except ValueError:
        return f"cannot read {text!r} as {fmt or 'YYYY-MM-DD HH:MM[:SS]'} ({tz.key})"
    return (when - EPOCH) // _US


def _decode_row(seq: int, lineno: int, line: str, layout: _Layout, prof: Profile, out: _Out) -> None:
    try:
        fields = _split(line, prof.delimiter)
    except csv.Error as exc:
        out.reject(seq, "malformed_csv", f"line {lineno}: {exc}", line)
        return
    if len(fields) != layout.width:
        ref = fields[layout.ref_idx].strip() if len(fields) > layout.ref_idx else None
        detail = f"line {lineno}: expected {layout.width} fields, found {len(fields)}"
        out.reject(seq, "malformed_csv", detail, line, ref=ref)
        return
    ref = fields[layout.ref_idx].strip() or None
    ts = out.parse_time(" ".join(fields[i].strip() for i in layout.time_idx).strip())
    status = fields[layout.status_idx].strip() if layout.status_idx is not None else ""
    flag = None if status in prof.normal_status else status
    abnormal = prof.abnormal_status.get(status)
    for idx, metric, unit, sentinels in layout.cells:
        cell = fields[idx].strip()
        if isinstance(ts, str):
            out.reject(seq, "bad_timestamp", f"line {lineno}: {ts}", line, ref=ref, metric=metric)
            continue
        reason, detail, value = _cell(cell, unit, sentinels, abnormal, status)
        if reason:
            out.reject(seq, reason, f"line {lineno}: {detail}", line, ref=ref, metric=metric, ts=ts)
        else:
            out.reading(ref, metric, ts, value, unit, flag, seq)


def _cell(cell: str, unit: str, sentinels: frozenset[float], abnormal: str | None,
          status: str) -> tuple[str | None, str, float | None]:
    """(reject reason or None, detail, value) for one metric cell of a row with a good time."""
    if not cell:
        return "source_missing", "empty field", None
    try:
        value = float(cell)
    except ValueError:
        return "bad_value", f"not a number: {cell!r}", None
    if not math.isfinite(value):
        return "bad_value", f"not a finite number: {cell!r}", None
    if value in sentinels:
        return "sentinel", f"missing-data sentinel {cell}", None
    if abnormal is not None:
        return "instrument_status", f"status {status} ({abnormal}); value {cell} {unit}", None
    return None, "", value
