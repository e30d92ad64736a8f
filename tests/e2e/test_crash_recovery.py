"""Killing an ingest run midway and running it again leaves no duplicate and no missing
reading. Runs are real subprocesses (`citylake run-dag`, dag.test) killed at failpoints
(exit 137, as SIGKILL) or with SIGKILL at an arbitrary moment."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.e2e.conftest import City


def run_dag(city: City, source: str, failpoint: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("CITYLAKE_FAILPOINT", None)
    if failpoint:
        env["CITYLAKE_FAILPOINT"] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "etl.cli", "run-dag", f"ingest_{source}", "--start", city.start.isoformat(),
         "--end", city.end.isoformat()], env=env, capture_output=True, text=True, timeout=timeout)


def expected_keys(source: str) -> set[tuple]:
    """Every usable reading of every batch landed for the source, decoded afresh."""
    from etl import landing
    from etl.extract.frames import decode_frames
    from etl.ingest import _registry
    from etl.normalize import classify, decode
    from etl.sources import load_sources
    from etl.storage import lake

    store, src, reg = lake(), load_sources()[source], _registry()
    keys: set[tuple] = set()
    for k in landing.list_envelopes(store, source):
        env = landing.read_envelope(store, k)
        decoded, _ = decode(src, decode_frames(landing.read_data(store, env)), reg)
        c = classify(decoded, reg, source)
        good = c.filter(pc.is_null(c["reason"]))
        keys |= set(zip(good["device_id"].to_pylist(), good["metric"].to_pylist(), good["ts"].to_pylist(),
                        good["subject"].to_pylist()))
    return keys


def silver_keys(source: str) -> list[tuple]:
    from etl import tables
    from etl.storage import SILVER, lake

    s = tables.read(lake(), SILVER)
    s = s.filter(pc.equal(s["source"], source))
    return list(zip(s["device_id"].to_pylist(), s["metric"].to_pylist(), s["ts"].to_pylist(), s["subject"].to_pylist()))


def assert_complete(source: str) -> None:
    from etl import landing, tables
    from etl.storage import BATCHES, lake

    got = silver_keys(source)
    assert len(got) == len(set(got)), "duplicate readings in silver"
    assert set(got) == expected_keys(source), "silver differs from what was landed"
    ledger = tables.read(lake(), BATCHES)
    ledger = ledger.filter(pc.equal(ledger["source"], source))
    landed = {landing.batch_id_of(k) for k in landing.list_envelopes(lake(), source)}
    assert set(ledger["batch_id"].to_pylist()) == landed, "a landed batch was never normalised"
    assert pc.all(pc.equal(ledger["received"], pc.add(pc.add(ledger["accepted"], ledger["quarantined"]),
                                                        ledger["duplicates"]))).as_py()


@pytest.mark.parametrize("source,failpoint", [
    ("lights_mqtt", "after_landing"),           # landed, not acked: the broker redelivers
    ("lights_mqtt", "after_silver_commit"),     # silver done, quarantine and ledger not
    ("bins_ttn", "after_landing_data"),         # data object without envelope
    ("bins_ttn", "after_quarantine_commit"),    # ledger missing
    ("water_csv", "after_landing"),             # cursor not saved: the files are listed again
])
def test_killed_run_then_rerun_is_complete(city: City, source: str, failpoint: str) -> None:
    first = run_dag(city, source, failpoint)
    assert first.returncode == 137, first.stderr[-3000:]
    second = run_dag(city, source)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_complete(source)
    assert silver_keys(source), "nothing was ingested"


def test_sigkill_at_an_arbitrary_moment(city: City) -> None:
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "etl.cli", "run-dag", "ingest_parking_chirpstack", "--start",
           city.start.isoformat(), "--end", city.end.isoformat()]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(6.0)  # mid-run: past Airflow start-up, inside the tasks
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    again = run_dag(city, "parking_chirpstack")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete("parking_chirpstack")
