"""The SCADA CSV drop simulator, read back through the adapter's ``goyang_scada`` profile."""
from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from etl.extract import csv_drop
from etl.simulate import csv_drop as sim
from etl.simulate import signals
from etl.simulate.faults import FaultPlan
from etl.timeutil import KST, UTC

DEVICES = [
    {"device_id": "WQ-0001", "kind": "water_probe", "external_id": "GYWQ001", "name_ko": "일산호수공원", "interval_s": 900},
    {"device_id": "WQ-0002", "kind": "water_probe", "external_id": "GYWQ002", "name_ko": "행주산성 취수장", "interval_s": 900},
]
DEVICE_OF = {d["external_id"]: d["device_id"] for d in DEVICES}
START = datetime(2026, 11, 24, tzinfo=KST)
END = START + timedelta(days=1)
FAULTS = FaultPlan(seed=7, gap=0.05, duplicate=0.05, malformed=0.05, wrong_unit=0.2, spike=0.03, stuck=0.2)
DECIMALS = {metric: dec for _, metric, _, dec in sim.COLUMNS}
HEADER = "측정일시,측정소코드,측정소명,수온(℃),수소이온농도(pH),용존산소(mg/L),탁도(NTU),전기전도도(μS/cm),상태코드"


def _text(body: bytes) -> str:
    """The file as text, read independently of the adapter."""
    return body.decode("utf-8-sig") if body.startswith(codecs.BOM_UTF8) else body.decode("cp949")


def _decode(folder: Path) -> tuple[list[str], pa.Table, pa.Table]:
    names = csv_drop.list_new(str(folder), set())
    decoded, rejects = csv_drop.decode(csv_drop.fetch(str(folder), names), "goyang_scada")
    return names, decoded, rejects


def _utc(ts: datetime) -> datetime:
    """Arrow gives ZoneInfo("UTC"); signals key their noise on repr(ts), so use timezone.utc as the simulator does."""
    return ts.astimezone(UTC)


def _close(got: float, want: float, decimals: int) -> bool:
    return abs(got - want) <= 0.5 * 10 ** -decimals + 1e-9


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clean")
    sim.write_drops(DEVICES, START, END, folder)
    return folder


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faulty")
    sim.write_drops(DEVICES, START, END, folder, FAULTS)
    return folder


def test_one_file_per_kst_hour_and_nothing_else(clean: Path) -> None:
    names = sorted(p.name for p in clean.iterdir())  # no temporary files left behind
    assert len(names) == 24
    assert names[0] == "GYWQ_20261124_0000-0100.csv"
    assert names[-1] == "GYWQ_20261124_2300-2400.csv"


def test_file_format(clean: Path) -> None:
    body = (clean / "GYWQ_20261124_0100-0200.csv").read_bytes()
    assert body.count(b"\n") == body.count(b"\r\n") == 1 + 2 * 4
    lines = _text(body).split("\r\n")
    assert lines[0] == HEADER
    assert lines[1].startswith("2026-11-24 01:00:00,GYWQ001,일산호수공원,")
    assert lines[1].endswith(",0")


def test_cp949_and_utf8_bom_files_both_decode(clean: Path) -> None:
    bodies = [p.read_bytes() for p in sorted(clean.iterdir())]
    bom = [b for b in bodies if b.startswith(codecs.BOM_UTF8)]
    cp949 = [b for b in bodies if not b.startswith(codecs.BOM_UTF8)]
    assert bom and cp949
    with pytest.raises(UnicodeDecodeError):
        cp949[0].decode("utf-8")
    names, decoded, rejects = _decode(clean)
    assert rejects.num_rows == 0
    assert decoded.num_rows == 2 * 96 * 5
    assert Counter(decoded.column("frame").to_pylist()) == {i: 2 * 4 * 5 for i in range(24)}
    assert set(decoded.column("ref").to_pylist()) == set(DEVICE_OF)


def test_values_equal_the_signals(clean: Path) -> None:
    _, decoded, _ = _decode(clean)
    slots = {START.astimezone(UTC) + timedelta(minutes=15 * i) for i in range(96)}
    assert set(decoded.column("ts").to_pylist()) == slots
    for r in decoded.to_pylist():
        want = signals.water(DEVICE_OF[r["ref"]], _utc(r["ts"]))[r["metric"]]
        assert _close(r["value"], want, DECIMALS[r["metric"]]), r
        assert r["src_flag"] is None
    units = dict(zip(decoded.column("metric").to_pylist(), decoded.column("unit").to_pylist()))
    assert units == {"water_temp": "℃", "ph": "pH", "dissolved_oxygen": "mg/L", "turbidity": "NTU",
                     "conductivity": "μS/cm"}


def test_writing_is_deterministic(tmp_path: Path) -> None:
    for run in ("a", "b"):
        sim.write_drops(DEVICES, START, END, tmp_path / run, FAULTS)
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert a == b and len(a) == 24


def test_wrong_unit_file_declares_and_reports_ms_per_cm(faulty: Path) -> None:
    names, decoded, _ = _decode(faulty)
    ms_frames = {i for i, n in enumerate(names) if "전기전도도(mS/cm)" in _text((faulty / n).read_bytes())}
    assert ms_frames and len(ms_frames) < len(names)
    cond = [r for r in decoded.to_pylist() if r["metric"] == "conductivity"]
    for r in cond:
        assert r["unit"] == ("mS/cm" if r["frame"] in ms_frames else "μS/cm")
        assert (r["value"] < 1.0) == (r["frame"] in ms_frames)


def _file_rows(folder: Path) -> list[tuple[str, list[str]]]:
    """(file name, fields) of every data line, parsed with the csv module."""
    out = []
    for path in sorted(folder.iterdir()):
        for fields in list(csv.reader(io.StringIO(_text(path.read_bytes()))))[1:]:
            out.append((path.name, fields))
    return out


def test_malformed_rows_are_rejected_one_each(faulty: Path) -> None:
    _, _, rejects = _decode(faulty)
    bad = [f for _, f in _file_rows(faulty) if len(f) != 9]
    malformed = rejects.filter(pc.equal(rejects.column("reason"), "malformed_csv")).to_pylist()
    assert bad and len(malformed) == len(bad)
    assert {len(f) for f in bad} - set(range(5, 9)) == {10}  # cut-off rows and decimal-comma rows
    assert all("expected 9 fields, found" in r["detail"] for r in malformed)
    assert all(r["raw"].startswith("2026-11-2") for r in malformed)


def test_gaps_and_duplicates_within_and_across_files(faulty: Path) -> None:
    rows = [(name, f[1], f[0]) for name, f in _file_rows(faulty)]
    seen = Counter((code, ts) for _, code, ts in rows)
    assert len(seen) < 2 * 96  # gaps
    files_of: dict[tuple[str, str], set[str]] = {}
    for name, code, ts in rows:
        files_of.setdefault((code, ts), set()).add(name)
    twice = [k for k, n in seen.items() if n > 1]
    assert any(len(files_of[k]) == 1 for k in twice)  # repeated in the same file
    assert any(len(files_of[k]) == 2 for k in twice)  # repeated in the next window's file


def test_failed_sensor_sentinel_and_abnormal_status(faulty: Path) -> None:
    _, _, rejects = _decode(faulty)
    sentinel = [r for r in rejects.to_pylist() if r["reason"] == "sentinel"]
    status = [r for r in rejects.to_pylist() if r["reason"] == "instrument_status"]
    assert sentinel
    assert len(status) == 4 * len(sentinel)  # the other four values of each failed row
    assert all(",-999," in r["raw"] for r in sentinel)
    assert all("status 9 (abnormal data); value " in r["detail"] for r in status)


def test_every_other_value_is_the_signal_or_stuck(faulty: Path) -> None:
    """What decodes is the signal, except for stuck sensors holding their block's first value."""
    names, decoded, _ = _decode(faulty)
    stuck = 0
    for r in decoded.to_pylist():
        did, metric, ts = DEVICE_OF[r["ref"]], r["metric"], _utc(r["ts"])
        value = r["value"] * (1000.0 if r["unit"] == "mS/cm" else 1.0)
        decimals = DECIMALS[metric] if r["unit"] != "mS/cm" else 0
        if _close(value, signals.water(did, ts)[metric], decimals):
            continue
        block = datetime.fromtimestamp(int(ts.timestamp()) // sim.STUCK_BLOCK_S * sim.STUCK_BLOCK_S, tz=UTC)
        assert _close(value, signals.water(did, block)[metric], decimals), r
        stuck += 1
    assert stuck > 0


def test_undecodable_line_is_one_reject(clean: Path, tmp_path: Path) -> None:
    name = next(p.name for p in sorted(clean.iterdir()) if not p.read_bytes().startswith(codecs.BOM_UTF8))
    lines = (clean / name).read_bytes().split(b"\r\n")
    cut = lines[2].index("행주".encode("cp949")) + 1  # half of a two-byte character
    lines[2] = lines[2][:cut]
    (tmp_path / name).write_bytes(b"\r\n".join(lines))
    decoded, rejects = csv_drop.decode(csv_drop.fetch(str(tmp_path), [name]), "goyang_scada")
    assert rejects.column("reason").to_pylist() == ["malformed_csv"]
    assert "line 3: not valid cp949" in rejects.column("detail")[0].as_py()
    assert decoded.num_rows == (2 * 4 - 1) * 5


def test_status_time_and_value_rules(tmp_path: Path) -> None:
    rows = [
        "2026-11-24 09:00:00,GYWQ001,일산호수공원,9.10,7.40,11.20,4.0,312,0",
        "2026-11-24 09:15:00,GYWQ001,일산호수공원,9.10,7.40,11.20,4.0,312,1",     # calibration
        "2026-11-24 09:30:00,GYWQ001,일산호수공원,9.10,7.40,,n/a,312,2",           # unknown code: flagged
        "2026-11-24 24:00:00,GYWQ001,일산호수공원,9.10,7.40,11.20,4.0,312,0",     # Korean midnight
        "2026-13-24 09:45:00,GYWQ001,일산호수공원,9.10,7.40,11.20,4.0,312,0",     # no 13th month
    ]
    body = ("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp949")
    (tmp_path / "GYWQ_x.csv").write_bytes(body)
    decoded, rejects = csv_drop.decode(csv_drop.fetch(str(tmp_path), ["GYWQ_x.csv"]), "goyang_scada")
    reasons = Counter(rejects.column("reason").to_pylist())
    assert reasons == {"instrument_status": 5, "source_missing": 1, "bad_value": 1, "bad_timestamp": 5}
    assert decoded.num_rows == 5 + 3 + 5
    flags = Counter(decoded.column("src_flag").to_pylist())
    assert flags == {None: 10, "2": 3}
    assert datetime(2026, 11, 24, 15, 0, tzinfo=UTC) in decoded.column("ts").to_pylist()  # 25th 00:00 KST
    calib = [r for r in rejects.to_pylist() if r["reason"] == "instrument_status"]
    assert calib[0]["detail"].endswith("status 1 (calibration); value 9.10 ℃")


def test_list_new_skips_seen_and_unfinished_files(clean: Path, tmp_path: Path) -> None:
    names = csv_drop.list_new(str(clean), set())
    assert names == sorted(p.name for p in clean.iterdir())
    assert csv_drop.list_new(str(clean), set(names[:3])) == names[3:]
    (tmp_path / "GYWQ_20261125_0000-0100.csv").write_bytes(b"x")
    (tmp_path / ".GYWQ_20261125_0100-0200.csv.tmp").write_bytes(b"half")
    (tmp_path / "GYWQ_20261125_0200-0300.csv.part").write_bytes(b"half")
    (tmp_path / "sub").mkdir()
    assert csv_drop.list_new(str(tmp_path), set()) == ["GYWQ_20261125_0000-0100.csv"]
    assert csv_drop.list_new(str(tmp_path / "absent"), set()) == []


def test_fetch_keeps_exact_bytes_and_file_meta(clean: Path) -> None:
    names = csv_drop.list_new(str(clean), set())[:2]
    frames = csv_drop.fetch(str(clean), names)
    assert [f.seq for f in frames] == [0, 1]
    for frame, name in zip(frames, names):
        assert frame.body == (clean / name).read_bytes()
        assert frame.meta["file"] == name and frame.meta["size"] == len(frame.body)
        assert datetime.fromisoformat(frame.meta["mtime"]).tzinfo is not None
    with pytest.raises(ValueError):
        csv_drop.fetch(str(clean), ["../etc/passwd"])
