"""Benchmark: landing -> silver for one simulated day, next to the floor.

    .venv/bin/python bench/bench_ingest.py --fleet goyang              # the full Goyang day (~30 M readings)
    .venv/bin/python bench/bench_ingest.py --fleet small --faults none

1. Writes the day's gateway payloads straight into a file:// landing zone with
   ``etl.simulate.bulk.write_day`` (timed separately: not part of the ratio). ``--reuse`` keeps
   an already written landing zone in ``--workdir``.
2. ``ours``: ``etl.normalize.normalize`` over every landed batch, in window order, into fresh
   silver/quarantine/batches Delta tables: readings/s, wall time, peak RSS.
3. ``floor``: the same landed files parsed by DuckDB and written by pyarrow as the same
   partitioned zstd Parquet (bench/floor.py): readings/s, peak RSS.
4. Prints a table per source and overall, ratio = ours / floor readings per second (both over
   the readings received), and writes it as JSON to ``bench/results/ingest_<fleet>.json``.

Each measured phase runs in its own process, so its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

DEFAULT_DAY = "2026-11-24"


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fleet", default="goyang", help="small | goyang (37,680 devices) | a registry CSV")
    p.add_argument("--day", default=DEFAULT_DAY, help="KST day to simulate (YYYY-MM-DD)")
    p.add_argument("--workdir", help="where the lake goes (default: a temporary directory, removed after)")
    p.add_argument("--hours-per-batch", type=int, default=1)
    p.add_argument("--faults", choices=("demo", "none"), default="demo")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes writing landing")
    p.add_argument("--sources", help="comma-separated source ids (default: all)")
    p.add_argument("--reuse", action="store_true", help="reuse the landing zone already in --workdir")
    p.add_argument("--skip", choices=("ours", "floor"), action="append", default=[])
    p.add_argument("--results", default=str(HERE / "results"), help="directory for the JSON results")
    p.add_argument("--phase", choices=("ours", "floor"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _environment(workdir: Path, fleet: str) -> None:
    os.environ["CITYLAKE_LAKE_URI"] = f"file://{workdir / 'lake'}"
    os.environ["CITYLAKE_PUBLIC_URI"] = f"file://{workdir / 'public'}"
    os.environ["CITYLAKE_FLEET"] = fleet
    os.environ.setdefault("CITYLAKE_PSEUDONYM_KEY", "bench-pseudonym-key")


def _manifest(workdir: Path) -> Path:
    return workdir / "landing-manifest.json"


def _params(a: argparse.Namespace) -> dict[str, Any]:
    return {"fleet": a.fleet, "day": a.day, "hours_per_batch": a.hours_per_batch, "faults": a.faults,
            "sources": a.sources}


# ---- 1. landing ---------------------------------------------------------------------------
def write_landing(a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Write (or reuse) the day's landing zone; the manifest lists its envelopes in order."""
    from dataclasses import asdict

    man = _manifest(workdir)
    if a.reuse and man.exists() and json.loads(man.read_text())["params"] == _params(a):
        saved = json.loads(man.read_text())
        print(f"landing: reusing {len(saved['envelopes'])} batches in {workdir / 'lake'}")
        return saved
    from etl.simulate import bulk
    from etl.simulate.faults import FaultPlan
    from etl.storage import lake

    shutil.rmtree(workdir / "lake", ignore_errors=True)
    plan = FaultPlan.demo() if a.faults == "demo" else FaultPlan.none()
    sources = a.sources.split(",") if a.sources else None
    t0 = time.perf_counter()
    envs = bulk.write_day(lake(), date.fromisoformat(a.day), a.fleet, a.hours_per_batch, plan,
                          workers=a.workers, sources=sources)
    seconds = time.perf_counter() - t0
    saved = {"params": _params(a), "seconds": seconds, "workers": a.workers,
             "bytes": sum(e.bytes for e in envs), "frames": sum(e.frames for e in envs),
             "envelopes": [asdict(e) for e in envs]}
    man.write_text(json.dumps(saved))
    print(f"landing: {len(envs)} batches, {saved['frames']:,} frames, {saved['bytes'] / 1e6:,.0f} MB "
          f"written in {seconds:.1f} s ({a.workers} processes)")
    return saved


def _in_window_order(envelopes: list[dict[str, Any]], hours: int | None = None) -> list[Any]:
    """As the scheduler would run them: every source's batch of an hour, then the next hour
    (only the windows that start in the first ``hours`` hours, if given)."""
    from etl.landing import Envelope

    envs = sorted((Envelope(**e) for e in envelopes), key=lambda e: e.window_start)
    if hours is None or not envs:
        return envs
    from datetime import datetime, timedelta

    cut = (datetime.fromisoformat(envs[0].window_start) + timedelta(hours=hours)).isoformat()
    return [e for e in envs if e.window_start < cut]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class BatchPeak:
    """Peak RSS between two ``lap()`` calls: a thread samples /proc/self/statm every ``every_s``
    (``ru_maxrss`` only ever grows, so it cannot tell one batch's peak from the day's)."""

    def __init__(self, every_s: float = 0.005):
        import threading

        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        self._peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _now(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page_mb

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self._peak = max(self._peak, self._now())

    def lap(self) -> float:
        """The peak since the last lap (MB), and start a new one."""
        peak, self._peak = max(self._peak, self._now()), self._now()
        return peak

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class QualityClock:
    """Seconds inside the quality step of ``etl.normalize.normalize``: ``quality.check.check``
    (row and batch suites, series history) and ``Checked.commit`` (GX results, checks)."""

    def __init__(self) -> None:
        import quality.check as qc

        self.seconds = 0.0
        self._qc, self._check, self._commit = qc, qc.check, qc.Checked.commit
        qc.check = self._timed(self._check)
        qc.Checked.commit = self._timed(self._commit)

    def _timed(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed

    def lap(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds

    def close(self) -> None:
        self._qc.check, self._qc.Checked.commit = self._check, self._commit


# ---- 2. ours ------------------------------------------------------------------------------
def phase_ours(workdir: Path, hours: int | None = None) -> dict[str, Any]:
    """Normalise every landed batch (of the first ``hours``) in window order; per batch its
    seconds, the quality step's seconds and its own peak RSS (``BatchPeak``)."""
    from etl import normalize
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import lake

    saved = json.loads(_manifest(workdir).read_text())
    for name in ("silver", "quarantine", "batches"):
        shutil.rmtree(workdir / "lake" / name, ignore_errors=True)
    store, sources = lake(), load_sources()
    registry = load_registry()
    per: dict[str, dict[str, Any]] = {}
    rss_start = _rss_mb()
    envs = _in_window_order(saved["envelopes"], hours)
    trail, batches = [], []
    peaks, qclock = BatchPeak(), QualityClock()
    t_all = time.perf_counter()
    for i, env in enumerate(envs):
        peaks.lap()
        qclock.lap()
        t0 = time.perf_counter()
        r = normalize.normalize(store, sources[env.source], env, registry)
        dt = time.perf_counter() - t0
        batches.append({"source": env.source, "window_start": env.window_start, "received": r.received,
                        "seconds": round(dt, 4), "quality_s": round(qclock.lap(), 4),
                        "peak_rss_mb": round(peaks.lap(), 1)})
        s = per.setdefault(env.source, {"batches": 0, "seconds": 0.0, "received": 0, "accepted": 0,
                                        "quarantined": 0, "duplicates": 0, "max_batch_received": 0,
                                        "quality_s": 0.0})
        s["batches"] += 1
        s["seconds"] += dt
        s["quality_s"] += batches[-1]["quality_s"]
        s["max_batch_received"] = max(s["max_batch_received"], r.received)
        for k in ("received", "accepted", "quarantined", "duplicates"):
            s[k] += getattr(r, k)
        if r.received != r.accepted + r.quarantined + r.duplicates:
            raise SystemExit(f"batch {env.batch_id} does not reconcile")
        if (i + 1) % max(1, len(envs) // 8) == 0 or i + 1 == len(envs):
            trail.append({"batches": i + 1, "peak_rss_mb": round(_rss_mb(), 1)})
    seconds = time.perf_counter() - t_all
    peaks.close()
    qclock.close()
    return {"seconds": seconds, "sources": per, "peak_rss_mb": _rss_mb(), "rss_before_mb": rss_start,
            "rss_trail": trail, "quality_s": sum(b["quality_s"] for b in batches), "batches": batches}


# ---- 3. floor -----------------------------------------------------------------------------
def phase_floor(workdir: Path, hours: int | None = None) -> dict[str, Any]:
    import floor
    from etl.registry.load import load_registry
    from etl.settings import get_settings
    from etl.sources import load_sources

    saved = json.loads(_manifest(workdir).read_text())
    out = workdir / "floor" / "silver"
    shutil.rmtree(out, ignore_errors=True)
    sources = load_sources()
    runner = floor.Floor(out, load_registry(), get_settings().pseudonym_key())
    per: dict[str, dict[str, Any]] = {}
    rss_start = _rss_mb()
    t_all = time.perf_counter()
    for env in _in_window_order(saved["envelopes"], hours):
        t0 = time.perf_counter()
        rows = runner.batch(sources[env.source], env, str(workdir / "lake" / env.key))
        s = per.setdefault(env.source, {"batches": 0, "seconds": 0.0, "rows": 0})
        s["batches"] += 1
        s["seconds"] += time.perf_counter() - t0
        s["rows"] += rows
    return {"seconds": time.perf_counter() - t_all, "sources": per, "peak_rss_mb": _rss_mb(),
            "rss_before_mb": rss_start}


def _run_phase(phase: str, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A phase in a fresh interpreter, so peak RSS is the phase's own."""
    out = workdir / f"{phase}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--phase", phase, "--workdir", str(workdir), "--fleet", a.fleet]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"{phase}: {time.perf_counter() - t0:.1f} s")
    return json.loads(out.read_text())


# ---- 4. report ----------------------------------------------------------------------------
def report(a: argparse.Namespace, landing: dict[str, Any], ours: dict[str, Any] | None,
           flo: dict[str, Any] | None) -> dict[str, Any]:
    from etl.sources import load_sources

    rows = []
    for sid in [s for s in load_sources() if (ours or flo or {}).get("sources", {}).get(s)]:
        o = (ours or {}).get("sources", {}).get(sid)
        f = (flo or {}).get("sources", {}).get(sid)
        received = o["received"] if o else None
        row = {"source": sid, "batches": (o or f)["batches"], "received": received,
               "accepted": o and o["accepted"], "quarantined": o and o["quarantined"],
               "duplicates": o and o["duplicates"], "ours_s": o and o["seconds"], "floor_s": f and f["seconds"],
               "floor_rows": f and f["rows"]}
        rows.append(row)
    total = {"source": "total", "batches": sum(r["batches"] for r in rows)}
    for k in ("received", "accepted", "quarantined", "duplicates", "ours_s", "floor_s", "floor_rows"):
        vals = [r[k] for r in rows]
        total[k] = sum(vals) if all(v is not None for v in vals) else None
    for r in rows + [total]:
        r["ours_rps"] = r["received"] / r["ours_s"] if r["received"] and r["ours_s"] else None
        r["floor_rps"] = r["received"] / r["floor_s"] if r["received"] and r["floor_s"] else None
        r["ratio"] = r["floor_s"] / r["ours_s"] if r["ours_s"] and r["floor_s"] else None

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    print(f"\n{a.fleet} fleet, KST day {a.day}, faults {a.faults}, {a.hours_per_batch} h per batch, "
          f"{os.cpu_count()} cores")
    head = f"{'source':<20}{'batches':>8}{'readings':>12}{'ours s':>9}{'ours r/s':>12}{'floor s':>9}{'floor r/s':>12}{'ratio':>7}"
    print(head + "\n" + "-" * len(head))
    for r in rows + [total]:
        print(f"{r['source']:<20}{r['batches']:>8}{num(r['received'], ',d'):>12}{num(r['ours_s'], '.1f'):>9}"
              f"{num(r['ours_rps'], ',.0f'):>12}{num(r['floor_s'], '.1f'):>9}{num(r['floor_rps'], ',.0f'):>12}"
              f"{num(r['ratio'], '.2f'):>7}")
    if ours:
        print(f"\nours:  wall {ours['seconds']:.1f} s, peak RSS {ours['peak_rss_mb']:,.0f} MB "
              f"(after imports and registry: {ours['rss_before_mb']:,.0f} MB); "
              f"peak RSS as batches went by: {', '.join(str(round(t['peak_rss_mb'])) for t in ours['rss_trail'])} MB")
        print(f"       accepted {total['accepted']:,}, quarantined {total['quarantined']:,}, "
              f"duplicates {total['duplicates']:,}")
    if flo:
        print(f"floor: wall {flo['seconds']:.1f} s, peak RSS {flo['peak_rss_mb']:,.0f} MB, "
              f"{total['floor_rows'] or 0:,} rows written")
    print(f"landing written in {landing['seconds']:.1f} s ({landing['frames']:,} frames, "
          f"{landing['bytes'] / 1e6:,.0f} MB; not part of the ratio)")
    return {"params": _params(a), "machine": _machine(), "landing": {k: landing[k] for k in ("seconds", "bytes", "frames")},
            "per_source": rows, "total": total, "ours": ours and {k: v for k, v in ours.items() if k != "sources"},
            "floor": flo and {k: v for k, v in flo.items() if k != "sources"}}


def _machine() -> dict[str, Any]:
    import deltalake
    import duckdb
    import pyarrow

    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__, "deltalake": deltalake.__version__}


def main(argv: list[str] | None = None) -> None:
    a = _args(argv)
    if a.phase:
        workdir = Path(a.workdir)
        _environment(workdir, a.fleet)
        result = (phase_ours if a.phase == "ours" else phase_floor)(workdir)
        (workdir / f"{a.phase}.json").write_text(json.dumps(result))
        return
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="citylake-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _environment(workdir, a.fleet)
    try:
        landing = write_landing(a, workdir)
        ours = None if "ours" in a.skip else _run_phase("ours", a, workdir)
        flo = None if "floor" in a.skip else _run_phase("floor", a, workdir)
        result = report(a, landing, ours, flo)
        out = Path(a.results)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"ingest_{Path(a.fleet).stem}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"results: {out / f'ingest_{Path(a.fleet).stem}.json'}")
    finally:
        if not a.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
