"""Kill -9 a stage's process and check what it leaves behind.

:func:`run` and :func:`kill_after` run any command (``citylake`` commands through
:func:`cli_cmd`: the gold, quality and publish kill tests use them too). An ingest stage
runs as a real subprocess (``python -m tests.faults.kills ingest_<source>``: what
``citylake run-dag`` does, ``dag.test()`` of the real DAG, or with ``--direct`` the DAG's two
task functions without Airflow) and dies either at a failpoint ``name@N`` (exit 137, as
SIGKILL) or from a SIGKILL after a random delay, wherever it happens to be. After
every kill the lake must show no half-written object and every Delta table must still open
and read; after the final re-run :func:`reconcile` accounts for every reading received.

Random choices come from a ``random.Random(seed)``; the seed is in every assertion message
(``CITYLAKE_KILL_SEED=<seed>`` replays a failing run).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from tests.faults import figures

KILLED = (137, -signal.SIGKILL)

# Failpoints an ingest run of each gateway kind passes, in order.
PULL_POINTS = ("after_landing_data", "after_landing", "after_cursor", "before_batch", "after_silver_commit",
               "after_quarantine_commit", "after_checks_commit")
MQTT_POINTS = ("after_landing_data", "after_landing", "after_ack", "before_batch", "after_silver_commit",
               "after_quarantine_commit", "after_checks_commit")

# Points passed once per batch normalised (a run may normalise several: ``@2`` dies mid-loop).
PER_BATCH = ("before_batch", "after_silver_commit", "after_quarantine_commit", "after_checks_commit")


def seed() -> int:
    """The run's seed: ``CITYLAKE_KILL_SEED`` to replay one, else a fresh one."""
    return int(os.environ.get("CITYLAKE_KILL_SEED") or random.SystemRandom().randrange(1 << 31))


def ingest_cmd(source: str, start: datetime, end: datetime, airflow: bool = True,
               barrier: str | None = None) -> list[str]:
    """``citylake run-dag ingest_<source>`` with only the ingest DAG file parsed, or (``airflow``
    false) its two tasks called directly (see :func:`main`)."""
    return [sys.executable, "-m", "tests.faults.kills", f"ingest_{source}", "--start", start.isoformat(),
            "--end", end.isoformat(), *([] if airflow else ["--direct"]),
            *(["--barrier", barrier] if barrier else [])]


def cli_cmd(args: list[str], barrier: str | None = None) -> list[str]:
    """``citylake <args>``; with ``barrier`` (``DIR:N``) its command starts once N are imported."""
    if not barrier:
        return [sys.executable, "-m", "etl.cli", *args]
    code = ("import sys; import etl.cli, etl.aggregate.runner; from tests.faults.kills import _barrier; "
            "_barrier(sys.argv[1]); sys.exit(etl.cli.main(sys.argv[2:]))")
    return [sys.executable, "-c", code, barrier, *args]


def main(argv: list[str] | None = None) -> int:
    """What ``citylake run-dag`` does (``dag.test()`` of the real DAG), parsing only
    ``dags/citylake_ingest.py``: a DAG file being edited elsewhere in the checkout cannot fail
    the run, and each killed process spends less of its life importing DAGs."""
    import argparse
    import json
    from pathlib import Path

    from etl import airflow_local
    from etl.timeutil import parse_iso

    p = argparse.ArgumentParser()
    p.add_argument("dag_id")
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument("--direct", action="store_true", help="call the DAG's two task functions without Airflow")
    p.add_argument("--barrier", help="DIR:N: once imported, wait until N processes are ready in DIR")
    args = p.parse_args(argv)
    if args.direct:
        import etl.ingest  # noqa: F401 - the slow imports, before the barrier
        import etl.normalize  # noqa: F401
        _barrier(args.barrier)
        return _direct(args.dag_id.removeprefix("ingest_"), parse_iso(args.start), parse_iso(args.end))
    airflow_local.configure(Path(os.environ["AIRFLOW_HOME"]))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(airflow_local.DAGS / "citylake_ingest.py"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    _barrier(args.barrier)
    dr = airflow_local.run(bag.dags[args.dag_id], parse_iso(args.start),
                           {"window_start": args.start, "window_end": args.end})
    print(json.dumps({"dag_id": args.dag_id, "run_id": dr.run_id, "state": str(dr.state)}))
    return 0


def _env(failpoint: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CITYLAKE_FAILPOINT"}
    if failpoint:
        env["CITYLAKE_FAILPOINT"] = failpoint
    return {**env, **(extra or {})}


@dataclass
class Outcome:
    how: str          # "name@N", "sigkill after 4.2s" or "rerun"
    returncode: int
    seconds: float
    tail: str = ""

    @property
    def killed(self) -> bool:
        return self.returncode in KILLED


def run(cmd: list[str], failpoint: str | None = None, timeout: float = 240,
        extra_env: dict[str, str] | None = None) -> Outcome:
    """Run to the end (or to the failpoint's exit 137)."""
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=_env(failpoint, extra_env), capture_output=True, text=True, timeout=timeout)
    return Outcome(failpoint or "rerun", p.returncode, time.monotonic() - t0, (p.stdout + p.stderr)[-3000:])


def kill_after(cmd: list[str], delay: float, timeout: float = 240, extra_env: dict[str, str] | None = None) -> Outcome:
    """Start ``cmd`` and SIGKILL its whole process group after ``delay`` seconds (if it is still running)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=_env(None, extra_env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        p.wait(delay)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the group this call started, and nothing else
    try:
        _, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    return Outcome(f"sigkill after {delay:.1f}s", p.returncode, time.monotonic() - t0, (err or "")[-3000:])


@dataclass
class KillPlan:
    """Seeded kills of one source's run, in a row: failpoints ``name@N`` (N > 1 only for the
    points passed once per batch), then SIGKILLs after a share (a float) of the mean run time
    seen so far, i.e. somewhere in the middle of the work however busy the machine is
    (before any run was timed, of ``DEFAULT_RUN_S``)."""

    seed: int
    steps: list[str | float] = field(default_factory=list)

    @classmethod
    def make(cls, seed: int, points: tuple[str, ...], failpoints: int, timed: int,
             share: tuple[float, float] = (0.3, 0.9), max_n: int = 2) -> "KillPlan":
        rng = random.Random(seed)
        steps: list[str | float] = []
        for _ in range(failpoints):
            point = rng.choice(points)
            steps.append(f"{point}@{rng.randint(1, max_n) if point in PER_BATCH else 1}")
        return cls(seed, steps + [round(rng.uniform(*share), 2) for _ in range(timed)])


DEFAULT_RUN_S = 10.0


def kill_repeatedly(cmd: list[str], plan: KillPlan, label: str = "") -> list[Outcome]:
    """Every step of ``plan`` in a row (each a kill, unless the run finished first), checking
    the lake after each; then one clean re-run, which must succeed."""
    outcomes: list[Outcome] = []
    for step in plan.steps:
        typical = sum(o.seconds for o in outcomes) / len(outcomes) if outcomes else DEFAULT_RUN_S
        o = run(cmd, step) if isinstance(step, str) else kill_after(cmd, step * typical)
        outcomes.append(o)
        ctx = f"{label} seed={plan.seed} step {o.how}"
        assert o.returncode in (0, *KILLED), f"{ctx}: exit {o.returncode}\n{o.tail}"
        if o.killed:
            figures.record("kills")
        assert_lake_readable(ctx)
    final = run(cmd)
    outcomes.append(final)
    assert final.returncode == 0, f"{label} seed={plan.seed}: re-run failed after {[o.how for o in outcomes]}\n{final.tail}"
    return outcomes


# ---- after every kill: nothing half-written is visible -------------------------------------
def assert_lake_readable(ctx: str = "") -> None:
    """No temporary object in the listing; every landed object whole; every Delta table reads."""
    from etl import landing, tables
    from etl.storage import BATCHES, CHECKS, LANDING, QUARANTINE, SILVER, lake

    store = lake()
    keys = store.list("")
    assert not [k for k in keys if k.rsplit("/", 1)[-1].startswith(".tmp-")], f"{ctx}: temporary file listed"
    envelopes = {k for k in keys if k.startswith(f"{LANDING}/") and k.endswith(".envelope.json")}
    for k in envelopes:
        env = landing.read_envelope(store, k)  # parses: written whole
        landing.read_data(store, env)          # its data object is there and matches its checksum
    tables._OPEN.clear()  # open afresh, as a new process would
    for name in (SILVER, QUARANTINE, BATCHES, CHECKS):
        dt = tables.open_table(store, name)
        if dt is not None:
            dt.to_pyarrow_table()  # every file the log names exists and reads
    tables._OPEN.clear()


# ---- after the final re-run: every reading accounted for ------------------------------------
KEY = ("device_id", "metric", "ts", "subject")


def _rows(table: pa.Table, cols: tuple[str, ...] = KEY) -> list[tuple]:
    return list(zip(*(table[c].to_pylist() for c in cols))) if table.num_rows else []


def _of(table: pa.Table, column: str, value: str) -> pa.Table:
    return table.filter(pc.equal(table[column], value))


def reconcile(source: str, ctx: str = "") -> dict[str, int]:
    """Decode every landed batch afresh and account for each reading; assert, and return counts.

    Per batch: the ledger's ``received`` is what the landed bytes decode to, and equals
    accepted + quarantined + duplicates, with accepted and quarantined matching the rows the
    batch holds in silver and quarantine. Per reading: every usable one is in silver exactly
    once or in quarantine with a reason; silver holds nothing that was not received; the
    landed batches are exactly the ledger's.
    """
    from etl import landing, tables
    from etl.extract.frames import decode_frames
    from etl.ingest import _registry
    from etl.normalize import classify, decode
    from etl.sources import load_sources
    from etl.storage import BATCHES, QUARANTINE, SILVER, lake

    store, src, reg = lake(), load_sources()[source], _registry()
    tables._OPEN.clear()
    silver = _of(tables.read(store, SILVER), "source", source)
    quarantine = _of(tables.read(store, QUARANTINE), "source", source)
    ledger = _of(tables.read(store, BATCHES), "source", source)
    tables._OPEN.clear()

    landed = {landing.batch_id_of(k): k for k in landing.list_envelopes(store, source)}
    in_ledger = ledger["batch_id"].to_pylist()
    assert len(in_ledger) == len(set(in_ledger)), f"{ctx}: a batch recorded twice in the ledger"
    assert set(in_ledger) == set(landed), (f"{ctx}: landed {sorted(set(landed) - set(in_ledger))} never normalised; "
                                           f"ledger {sorted(set(in_ledger) - set(landed))} never landed")
    usable: set[tuple] = set()
    received = 0
    for batch_id, key in sorted(landed.items()):
        env = landing.read_envelope(store, key)
        decoded, rejects = decode(src, decode_frames(landing.read_data(store, env)), reg)
        c = classify(decoded, reg, source)
        usable |= set(_rows(c.filter(pc.is_null(c["reason"]))))
        row = _of(ledger, "batch_id", batch_id).to_pylist()[0]
        got = decoded.num_rows + rejects.num_rows
        received += got
        n_silver = _of(silver, "batch_id", batch_id).num_rows if silver.num_rows else 0
        n_quar = _of(quarantine, "batch_id", batch_id).num_rows if quarantine.num_rows else 0
        assert row["received"] == got, f"{ctx}: {batch_id}: ledger received {row['received']}, landed {got}"
        assert row["received"] == row["accepted"] + row["quarantined"] + row["duplicates"], f"{ctx}: {row}"
        assert (n_silver, n_quar) == (row["accepted"], row["quarantined"]), (
            f"{ctx}: {batch_id}: silver {n_silver} / quarantine {n_quar} rows, ledger {row}")
    in_silver = Counter(_rows(silver))
    duplicated = sum(n - 1 for n in in_silver.values())
    quarantined = {k for k, r in zip(_rows(quarantine, KEY[:3]), quarantine["reason"].to_pylist()) if r} \
        if quarantine.num_rows else set()
    lost = [k for k in usable if k not in in_silver and k[:3] not in quarantined]
    figures.record("readings", received)
    figures.record("lost", len(lost))
    figures.record("duplicated", duplicated)
    assert not duplicated, f"{ctx}: {duplicated} readings duplicated in silver, e.g. " \
                           f"{[k for k, n in in_silver.items() if n > 1][:3]}"
    assert not lost, f"{ctx}: {len(lost)} readings received but in neither silver nor quarantine, e.g. {lost[:3]}"
    assert set(in_silver) <= usable, f"{ctx}: silver holds readings no landed batch carries"
    assert received == int(pc.sum(ledger["received"]).as_py() or 0)
    return {"received": received, "silver": silver.num_rows, "quarantined": quarantine.num_rows,
            "duplicates": int(pc.sum(ledger["duplicates"]).as_py() or 0), "batches": len(landed)}


def silver_by_date(source: str, root: str | None = None) -> dict[str, list[tuple]]:
    """Silver keys of a source per KST date, sorted (duplicates kept, so they show), in the
    lake or in the one at ``root``."""
    from etl import tables
    from etl.storage import SILVER, Store, lake

    store = lake() if root is None else Store(root, lake().settings)
    tables._OPEN.clear()
    s = _of(tables.read(store, SILVER), "source", source)
    tables._OPEN.clear()
    out: dict[str, list[tuple]] = {}
    for key, day in zip(_rows(s), s["date"].to_pylist()):
        out.setdefault(day, []).append(key)
    return {d: sorted(v, key=repr) for d, v in out.items()}


def describe(outcomes: list[Outcome]) -> str:
    return ", ".join(f"{o.how}→{o.returncode} ({o.seconds:.0f}s)" for o in outcomes)


def kind_points(source: str) -> tuple[str, ...]:
    from etl.sources import load_sources

    s = load_sources()[source]
    mqtt = s.kind == "mqtt" or (s.kind == "lorawan" and s.options.get("transport") == "mqtt")
    return MQTT_POINTS if mqtt else PULL_POINTS



def _barrier(spec: str | None, timeout: float = 600) -> None:
    """Start the real work together: Python and Airflow imports take a different time in
    each process, which would otherwise let one run finish before the other begins."""
    if not spec:
        return
    folder, _, n = spec.rpartition(":")
    open(os.path.join(folder, f"ready-{os.getpid()}"), "w").close()
    deadline = time.monotonic() + timeout
    while len([f for f in os.listdir(folder) if f.startswith("ready-")]) < int(n):
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {spec}: the other processes never got ready")
        time.sleep(0.02)


def _direct(source: str, start: datetime, end: datetime) -> int:
    """The ingest DAG's tasks, in order, as its task bodies call them (no Airflow: seconds
    less per process, so more kills fit in the suite's budget)."""
    import json

    from etl import ingest as job

    landed = job.extract(source, start, end)
    summary = job.normalize_all(source, landed.get("envelope"), start)
    job.record_run(f"ingest_{source}", f"kills__{start.isoformat()}", summary)
    print(json.dumps({k: summary[k] for k in ("batches", "received", "accepted", "quarantined", "duplicates")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
