"""Water-quality SCADA exports dropped into a directory, as Goyang's water utility writes them.

The utility's SCADA exports one CSV per hour for all probes (``GYWQ_20261124_0000-0100.csv``,
KST, the last window of a day ends at ``2400``): a Korean header with units in parentheses,
KST times without an offset, CRLF line ends. Files are cp949 (the SCADA's Windows default);
about three windows in ten go out through the newer export job in UTF-8 with a BOM, chosen
by a hash of the file name so the choice is stable. Every file is written under a temporary
dot-name and renamed, so a reader never sees half a file.

Status codes (``상태코드``), after the Seoul instrument status convention:

====  =========================
code  meaning
====  =========================
0     정상 (normal)
1     교정 중 (calibration)
4     전원 이상 (power cut)
8     보수 중 (repair)
9     자료 이상 (abnormal data)
====  =========================

The simulator writes 0, and 9 for a failed sensor; 1, 4 and 8 appear in real exports.

Faults (``FaultPlan`` rates, decided per device and reading time):

- ``gap``: the row is not exported;
- ``duplicate``: the row is written twice, half the time again at the top of the next window's
  file (as overlapping exports do);
- ``malformed``: the row is cut off mid-way (too few fields) or its pH is written with a
  decimal comma (one field too many);
- ``wrong_unit``: a whole file gives conductivity in mS/cm, and its header says so;
- ``spike``: a sensor fails: one value reads the sentinel ``-999`` and the status is 9;
- ``stuck``: one sensor of a probe repeats its value for a three-hour block.
"""
from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping

from etl.simulate import signals
from etl.simulate.faults import FaultPlan, fraction
from etl.timeutil import KST, UTC, utc

PREFIX = "GYWQ"
WINDOW_S = 3600
STUCK_BLOCK_S = 3 * 3600
BOM_SHARE = 0.3
SENTINEL = -999.0
FAILED_STATUS = 9

STATUS: dict[int, str] = {
    0: "정상 (normal)", 1: "교정 중 (calibration)", 4: "전원 이상 (power cut)",
    8: "보수 중 (repair)", 9: "자료 이상 (abnormal data)",
}

# Export columns after time, code and name: (label, metric, unit, decimals).
COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("수온", "water_temp", "℃", 2),
    ("수소이온농도", "ph", "pH", 2),
    ("용존산소", "dissolved_oxygen", "mg/L", 2),
    ("탁도", "turbidity", "NTU", 1),
    ("전기전도도", "conductivity", "μS/cm", 0),
)
WRONG_UNIT = ("mS/cm", 3)  # conductivity as exported by a misconfigured window

Device = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Row:
    """One exported line: its time, probe, values (metric -> number) and status."""

    ts: datetime
    device: Device
    values: dict[str, float]
    status: int
    malformed: bool


def write_drops(devices: list[dict], start: datetime, end: datetime, drop_dir: Path,
                faults: FaultPlan | None = None) -> list[Path]:
    """Write the hourly exports covering [start, end) and return their paths in time order.

    Only ``water_probe`` devices are exported; other kinds in the list are ignored.
    """
    plan = faults or FaultPlan.none()
    start, end = utc(start), utc(end)
    windows = _windows(start, end)
    rows: dict[datetime, list[_Row]] = defaultdict(list)
    for device in devices:
        if device.get("kind", "water_probe") == "water_probe":
            _place_rows(device, start, end, plan, windows, rows)
    target = Path(drop_dir)
    target.mkdir(parents=True, exist_ok=True)
    return [_write_atomic(target, file_name(w), _render(w, rows.get(w, []), plan)) for w in windows]


def file_name(window_start: datetime) -> str:
    """``GYWQ_YYYYMMDD_HHMM-HHMM.csv`` in KST; a window ending at midnight ends at ``2400``."""
    local = window_start.astimezone(KST)
    end = local + timedelta(seconds=WINDOW_S)
    end_hhmm = "2400" if end.date() != local.date() and end.hour == 0 and end.minute == 0 else f"{end:%H%M}"
    return f"{PREFIX}_{local:%Y%m%d}_{local:%H%M}-{end_hhmm}.csv"


def _windows(start: datetime, end: datetime) -> list[datetime]:
    first = int(start.timestamp()) // WINDOW_S * WINDOW_S
    return [datetime.fromtimestamp(t, tz=UTC) for t in range(first, int(end.timestamp()), WINDOW_S)]


def _slots(start: datetime, end: datetime, interval_s: int) -> list[datetime]:
    first = -(-int(start.timestamp()) // interval_s) * interval_s
    return [datetime.fromtimestamp(t, tz=UTC) for t in range(first, int(end.timestamp()), interval_s)]


def _window_of(ts: datetime) -> datetime:
    return datetime.fromtimestamp(int(ts.timestamp()) // WINDOW_S * WINDOW_S, tz=UTC)


def _place_rows(device: Device, start: datetime, end: datetime, plan: FaultPlan,
                windows: list[datetime], rows: dict[datetime, list[_Row]]) -> None:
    """Put each reading of one probe into its window, applying the row-level faults."""
    did = device["device_id"]
    last_window = windows[-1] if windows else None
    for ts in _slots(start, end, int(device.get("interval_s") or 900)):
        t = int(ts.timestamp())
        if plan.hit("gap", did, t):
            continue
        values, status = _values(did, ts, plan)
        row = _Row(ts, device, values, status, plan.hit("malformed", did, t))
        window = _window_of(ts)
        rows[window].append(row)
        if plan.hit("duplicate", did, t):
            spill = fraction(plan.seed, "dup-next", did, t) < 0.5 and window != last_window
            rows[window + timedelta(seconds=WINDOW_S) if spill else window].append(row)


def _values(did: str, ts: datetime, plan: FaultPlan) -> tuple[dict[str, float], int]:
    """Probe values at ts after the stuck and failed-sensor faults, and the status code."""
    values = dict(signals.water(did, ts))
    block = int(ts.timestamp()) // STUCK_BLOCK_S
    if plan.hit("stuck", did, block):
        metric = _pick_metric(plan.seed, "stuck-metric", did, block)
        held = datetime.fromtimestamp(block * STUCK_BLOCK_S, tz=UTC)
        values[metric] = signals.water(did, held)[metric]
    t = int(ts.timestamp())
    if plan.hit("spike", did, t):
        values[_pick_metric(plan.seed, "failed-metric", did, t)] = SENTINEL
        return values, FAILED_STATUS
    return values, 0


def _pick_metric(*key: object) -> str:
    return COLUMNS[int(fraction(*key) * len(COLUMNS))][1]


def _render(window: datetime, rows: list[_Row], plan: FaultPlan) -> bytes:
    """The file's bytes: header, rows in time then probe order, CRLF, in the file's encoding."""
    name = file_name(window)
    wrong_unit = plan.hit("wrong_unit", int(window.timestamp()))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(_header(wrong_unit))
    for row in sorted(rows, key=lambda r: (r.ts, str(r.device["external_id"]))):
        fields = _fields(row, wrong_unit)
        if row.malformed:
            buf.write(_malform(fields, plan.seed, row))
        else:
            writer.writerow(fields)
    encoding = "utf-8-sig" if fraction("csv-encoding", name) < BOM_SHARE else "cp949"
    return buf.getvalue().encode(encoding)


def _header(wrong_unit: bool) -> list[str]:
    units = [WRONG_UNIT[0] if metric == "conductivity" and wrong_unit else unit for _, metric, unit, _ in COLUMNS]
    return ["측정일시", "측정소코드", "측정소명"] + [f"{c[0]}({u})" for c, u in zip(COLUMNS, units)] + ["상태코드"]


def _fields(row: _Row, wrong_unit: bool) -> list[str]:
    cells = []
    for _, metric, _, decimals in COLUMNS:
        value = row.values[metric]
        if value == SENTINEL:
            cells.append(f"{SENTINEL:.0f}")
        elif metric == "conductivity" and wrong_unit:
            cells.append(f"{value / 1000.0:.{WRONG_UNIT[1]}f}")
        else:
            cells.append(f"{value:.{decimals}f}")
    local = row.ts.astimezone(KST)
    return [f"{local:%Y-%m-%d %H:%M:%S}", str(row.device["external_id"]), str(row.device["name_ko"])] + cells + [
        str(row.status)]


def _malform(fields: list[str], seed: int, row: _Row) -> str:
    """A cut-off line (the export died mid-row) or a decimal comma in pH (one field too many)."""
    key = (seed, "malformed-kind", row.device["device_id"], int(row.ts.timestamp()))
    if fraction(*key) < 0.5:
        keep = 4 + int(fraction(*key, "cut") * 4)  # 4..7 whole fields, then half of the next
        line = ",".join(fields[:keep]) + "," + fields[keep][: max(1, len(fields[keep]) // 2)]
    else:
        ph = 3 + [c[1] for c in COLUMNS].index("ph")
        line = ",".join(fields[:ph] + [fields[ph].replace(".", ",")] + fields[ph + 1:])
    return line + "\r\n"


def _write_atomic(drop_dir: Path, name: str, body: bytes) -> Path:
    """Write under a temporary dot-name, then rename: readers see the whole file or none."""
    final = drop_dir / name
    tmp = drop_dir / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final
