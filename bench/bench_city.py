"""Benchmark: one simulated city day through every stage, each next to its floor, with peak memory.

    .venv/bin/python bench/bench_city.py --fleet small --hours 2             # a quick check (minutes)
    .venv/bin/python bench/bench_city.py --fleet goyang --workdir /tmp/city   # one Goyang day (~30 M readings)
    .venv/bin/python bench/bench_city.py --workdir /tmp/city --report-only    # the report of an interrupted run

One work dir, the stages in order, each in its own process (``--phase``), so each stage's
peak RSS is its own: ``os.wait4`` gives the child's ``ru_maxrss`` (the orchestrator imports
nothing heavy, so the child's figure does not start from ours). The stages reuse the
per-stage benchmarks' functions:

1. **land**: ``bench_ingest.write_landing`` (the simulator writes the whole day's gateway
   payloads into the landing zone). Not a pipeline stage: the devices' side, no floor.
2. **extract**: ``bench_extract`` on a *slice* (``--extract-hours``, default 1 h from 08:00 KST)
   through a private Mosquitto and the simulated pull gateways. A whole Goyang day through the
   broker would take hours (publishing alone runs at ~7 k messages/s), so the day's ingest reads
   the simulator's landing instead; the extraction row is that slice's messages/s. No floor.
3. **ingest**: ``bench_ingest.phase_ours`` (``etl.normalize.normalize`` per batch, in window
   order, the quality step included and timed on its own) against ``bench_ingest.phase_floor``
   (bench/floor.py). Per batch: seconds, quality seconds and the batch's own peak RSS
   (``bench_ingest.BatchPeak``): the evidence that memory follows the batch, not the day.
4. **gold**: ``bench_gold.ours`` (every model of every domain, then the summary) against
   ``bench_gold.floor`` (DuckDB hourly aggregates).
5. **publish**: ``bench_publish.ours`` (a first release into an empty public side) against
   ``bench_publish.floor`` (DuckDB COPY).

ratio = floor seconds / ours seconds (as in the per-stage scripts). ``--hours N`` keeps the
windows of the first N hours for ingest (the landing zone is still the whole day). Results:
``<results>/city_<fleet>.json`` (``--hours``: ``city_<fleet>_<N>h.json``) and a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import results_file  # noqa: E402  (bench/, on the path above; stdlib only, keeps this process small)

DEFAULT_DAY = "2026-11-24"
PHASES = ("land", "extract", "ingest", "ingest_floor", "gold", "gold_floor", "publish", "publish_floor")


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", help="one work dir for every stage (default: a temporary directory, removed after)")
    p.add_argument("--fleet", choices=("goyang", "small"), default="goyang")
    p.add_argument("--day", default=DEFAULT_DAY, help="KST day to simulate (YYYY-MM-DD)")
    p.add_argument("--hours", type=int, help="ingest only the first N hours of the day (a quick check)")
    p.add_argument("--as-of", default="2026-12-05", help="the release's as-of date")
    p.add_argument("--extract-hours", type=int, default=1, help="the extraction slice (0: skip extraction)")
    p.add_argument("--extract-from-hour", type=int, default=8, help="the slice's start, KST hour of --day")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes writing landing")
    p.add_argument("--reuse", action="store_true", help="reuse the landing zone already in --workdir")
    p.add_argument("--skip-floor", action="store_true", help="only ours (no floor, no ratio)")
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--report-only", action="store_true",
                   help="no runs: the report from the stage results already in --workdir (an interrupted run)")
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _ingest_args(a: argparse.Namespace) -> argparse.Namespace:
    import bench_ingest

    argv = ["--fleet", a.fleet, "--day", a.day, "--workers", str(a.workers)]
    return bench_ingest._args(argv + (["--reuse"] if a.reuse else []))


# ---- the stages (each runs in a child: ``--phase``) ----------------------------------------
def _land(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    import bench_ingest

    ia, man = _ingest_args(a), bench_ingest._manifest(work)
    reused = a.reuse and man.exists() and json.loads(man.read_text())["params"] == bench_ingest._params(ia)
    landing = bench_ingest.write_landing(ia, work)
    return {"seconds": landing["seconds"], "frames": landing["frames"], "bytes": landing["bytes"],
            "batches": len(landing["envelopes"]), "reused": reused}


def _extract(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    import bench_extract

    out = work / "extract-results"
    argv = ["--fleet", a.fleet, "--day", a.day, "--hours", str(a.extract_hours), "--from-hour",
            str(a.extract_from_hour), "--broker", "private", "--results", str(out)]
    bench_extract.main(argv)
    saved = json.loads((out / f"extract_{a.fleet}_{a.extract_hours}h.json").read_text())
    rows = saved["rows"]
    return {"seconds": sum(r["work_s"] for r in rows), "messages": sum(r["messages"] for r in rows),
            "published": sum(r.get("published", 0) for r in rows),
            "publish_s": sum(r.get("publish_s", 0.0) for r in rows), "window": saved["window"],
            "sources": {r["source"]: {"messages": r["messages"], "seconds": r["work_s"],
                                      "msgs_per_s": r["msgs_per_s"]} for r in rows}}


def _ingest(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    import bench_ingest

    return bench_ingest.phase_ours(work, a.hours)


def _ingest_floor(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    import bench_ingest

    return bench_ingest.phase_floor(work, a.hours)


def _gold(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    import bench_gold

    per = bench_gold.ours([a.day])
    return {"seconds": sum(d["seconds"] for d in per.values()),
            "silver_rows": sum(d["silver_rows"] for d in per.values()),
            "gold_rows": sum(d["gold_rows"] for d in per.values()), "domains": per}


def _gold_floor(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    import bench_gold

    per = bench_gold.floor([a.day])
    return {"seconds": sum(d["seconds"] for d in per.values()),
            "hourly_rows": sum(d["hourly_rows"] for d in per.values()), "domains": per}


def _publish(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    from datetime import date

    import bench_publish

    shutil.rmtree(work / "public", ignore_errors=True)
    first = bench_publish.ours(date.fromisoformat(a.as_of))
    first["bytes"] = bench_publish._bytes(work / "public")
    return first


def _publish_floor(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    import bench_publish

    return bench_publish.floor(work)


STAGES: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "land": _land, "extract": _extract, "ingest": _ingest, "ingest_floor": _ingest_floor, "gold": _gold,
    "gold_floor": _gold_floor, "publish": _publish, "publish_floor": _publish_floor}


def _vm_hwm_mb() -> float:
    """This process's own peak RSS (VmHWM: since exec, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_phase(a: argparse.Namespace, work: Path) -> None:
    """In the child: the stage's environment, the stage, its result as JSON in the work dir."""
    import bench_ingest

    bench_ingest._environment(work, a.fleet)
    result = STAGES[a.phase](a, work)
    result["vm_hwm_mb"] = _vm_hwm_mb()
    (work / f"city-{a.phase}.json").write_text(json.dumps(result, default=str))


def _child(phase: str, a: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run one stage in a fresh interpreter; its wall time and peak RSS from ``os.wait4``."""
    out = work / f"city-{phase}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--phase", phase, "--workdir", str(work), "--fleet", a.fleet, "--day", a.day,
           "--as-of", a.as_of, "--extract-hours", str(a.extract_hours), "--extract-from-hour",
           str(a.extract_from_hour), "--workers", str(a.workers)]
    cmd += (["--hours", str(a.hours)] if a.hours else []) + (["--reuse"] if a.reuse else [])
    print(f"\n== {phase} ==", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"stage {phase} failed (exit {proc.returncode})")
    result = json.loads(out.read_text())
    result.update(wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024)  # KiB; with its waited-for children
    out.write_text(json.dumps(result, default=str))
    print(f"== {phase}: {wall:.1f} s wall, peak RSS {result['peak_rss_mb']:,.0f} MB", flush=True)
    return result


# ---- memory: per batch ---------------------------------------------------------------------
def memory_evidence(ingest: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS per batch over the day: first vs last, first half vs whole day, and against the
    batch's size (readings received), per source and in size bands."""
    batches = ingest["batches"]
    if not batches:
        return {}
    half = len(batches) // 2 or 1
    by_source: dict[str, dict[str, Any]] = {}
    for b in batches:
        s = by_source.setdefault(b["source"], {"batches": 0, "first_mb": b["peak_rss_mb"], "max_received": 0,
                                                "peaks": []})
        s["batches"] += 1
        s["last_mb"] = b["peak_rss_mb"]
        s["peaks"].append(b["peak_rss_mb"])
        s["max_received"] = max(s["max_received"], b["received"])
    for s in by_source.values():
        peaks = s.pop("peaks")
        s.update(median_mb=statistics.median(peaks), max_mb=max(peaks))
    bands = []
    for lo, hi in ((0, 10_000), (10_000, 100_000), (100_000, 500_000), (500_000, 10**12)):
        inb = [b for b in batches if lo <= b["received"] < hi]
        if inb:
            bands.append({"received_from": lo, "received_to": hi, "batches": len(inb),
                          "median_mb": statistics.median(b["peak_rss_mb"] for b in inb),
                          "max_mb": max(b["peak_rss_mb"] for b in inb)})
    biggest = max(batches, key=lambda b: b["received"])
    return {"rss_after_setup_mb": ingest["rss_before_mb"], "first_batch": batches[0], "last_batch": batches[-1],
            "peak_first_half_mb": max(b["peak_rss_mb"] for b in batches[:half]),
            "peak_whole_day_mb": max(b["peak_rss_mb"] for b in batches),
            "batches_first_half": half, "batches": len(batches), "largest_batch": biggest,
            "by_source": by_source, "by_size": bands}


# ---- report --------------------------------------------------------------------------------
def _row(stage: str, unit: str, rows: int | None, ours: dict[str, Any] | None, seconds: float | None,
         flo: dict[str, Any] | None, note: str = "") -> dict[str, Any]:
    fs = flo["seconds"] if flo else None
    return {"stage": stage, "unit": unit, "rows": rows, "ours_s": seconds,
            "rows_per_s": rows / seconds if rows and seconds else None,
            "peak_rss_mb": ours and ours["peak_rss_mb"], "floor_s": fs,
            "floor_peak_rss_mb": flo and flo["peak_rss_mb"],
            "ratio": fs / seconds if fs and seconds else None, "note": note}


def _kst(iso: str) -> str:
    from datetime import datetime, timedelta, timezone

    return datetime.fromisoformat(iso).astimezone(timezone(timedelta(hours=9))).strftime("%H:%M")


def table_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage that ran (an interrupted run reports what it has)."""
    land, ext, ing = r.get("land"), r.get("extract"), r.get("ingest")
    rows = []
    if land:
        rows.append(_row("simulate + land (devices' side)", "frames", land["frames"], land, land["seconds"], None,
                         "reused" if land.get("reused") else ""))
    if ext:
        rows.append(_row(f"extract ({_kst(ext['window'][0])}–{_kst(ext['window'][1])} KST slice, broker + gateways)",
                         "messages", ext["messages"], ext, ext["seconds"], None, "slice only; no floor"))
    received = sum(s["received"] for s in ing["sources"].values()) if ing else None
    if ing:
        rows.append(_row("ingest: landing → silver (normalize + quality)", "readings", received, ing,
                         ing["seconds"], r.get("ingest_floor")))
        rows.append({"stage": "  of which the quality step (GX suites, results)", "unit": "readings",
                     "rows": received, "ours_s": ing["quality_s"],
                     "rows_per_s": received / ing["quality_s"] if ing["quality_s"] else None,
                     "peak_rss_mb": None, "floor_s": None, "floor_peak_rss_mb": None, "ratio": None,
                     "note": f"{ing['quality_s'] / ing['seconds']:.0%} of ingest"})
    if r.get("gold"):
        g = r["gold"]
        rows.append(_row("gold: every model, one day", "silver rows", g["silver_rows"], g, g["seconds"],
                         r.get("gold_floor")))
    if r.get("publish"):
        p = r["publish"]
        rows.append(_row("publish: first release", "gold rows", p["rows"], p, p["seconds"], r.get("publish_floor")))
    pipe = [x for x in rows if x["stage"].split(":")[0] in ("ingest", "gold", "publish")]
    if len(pipe) == 3:
        total_o = sum(x["ours_s"] for x in pipe)
        total_f = sum(x["floor_s"] for x in pipe) if all(x["floor_s"] for x in pipe) else None
        rows.append({"stage": "**the day: ingest + gold + publish**", "unit": "readings", "rows": received,
                     "ours_s": total_o, "rows_per_s": received / total_o if total_o else None,
                     "peak_rss_mb": max(x["peak_rss_mb"] for x in pipe), "floor_s": total_f,
                     "floor_peak_rss_mb": None, "ratio": total_f / total_o if total_f else None, "note": ""})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    def num(v: Any, fmt: str) -> str:
        return "–" if v is None else format(v, fmt)

    out = ["| stage | rows | ours s | rows/s | peak RSS MB | floor s | floor peak RSS MB | ratio | |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for x in rows:
        out.append(f"| {x['stage']} | {num(x['rows'], ',d')} {x['unit']} | {num(x['ours_s'], '.1f')} | "
                   f"{num(x['rows_per_s'], ',.0f')} | {num(x['peak_rss_mb'], ',.0f')} | {num(x['floor_s'], '.1f')} | "
                   f"{num(x['floor_peak_rss_mb'], ',.0f')} | {num(x['ratio'], '.2f')} | {x['note']} |")
    return "\n".join(out)


def memory_markdown(m: dict[str, Any]) -> str:
    f, last, big = m["first_batch"], m["last_batch"], m["largest_batch"]
    lines = [f"ingest, peak RSS per batch ({m['batches']} batches; after imports and registry: "
             f"{m['rss_after_setup_mb']:,.0f} MB):",
             f"- first batch ({f['source']} {f['window_start'][11:16]} UTC, {f['received']:,} readings): "
             f"{f['peak_rss_mb']:,.0f} MB; last batch ({last['source']} {last['window_start'][11:16]} UTC, "
             f"{last['received']:,} readings): {last['peak_rss_mb']:,.0f} MB",
             f"- peak over the first {m['batches_first_half']} batches (the first half): "
             f"{m['peak_first_half_mb']:,.0f} MB; over all of them: {m['peak_whole_day_mb']:,.0f} MB",
             f"- largest batch ({big['source']} {big['window_start'][11:16]} UTC, {big['received']:,} readings): "
             f"{big['peak_rss_mb']:,.0f} MB", "",
             "| source | batches | largest batch (readings) | first batch MB | last batch MB | median MB | max MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for sid, s in m["by_source"].items():
        lines.append(f"| {sid} | {s['batches']} | {s['max_received']:,} | {s['first_mb']:,.0f} | {s['last_mb']:,.0f} | "
                     f"{s['median_mb']:,.0f} | {s['max_mb']:,.0f} |")
    lines += ["", "| batch size (readings) | batches | median peak MB | max peak MB |", "|---|---:|---:|---:|"]
    for b in m["by_size"]:
        hi = "" if b["received_to"] >= 10**12 else f"{b['received_to']:,}"
        lines.append(f"| {b['received_from']:,} – {hi} | {b['batches']} | {b['median_mb']:,.0f} | {b['max_mb']:,.0f} |")
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    """Versions, read in a child so that this process stays small."""
    code = ("import json, os, platform, duckdb, pyarrow, deltalake; print(json.dumps({'cores': os.cpu_count(), "
            "'python': platform.python_version(), 'platform': platform.platform(), 'duckdb': duckdb.__version__, "
            "'pyarrow': pyarrow.__version__, 'deltalake': deltalake.__version__}))")
    out = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    out["load_average_at_end"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> None:
    a = _args(argv)
    if a.phase:
        run_phase(a, Path(a.workdir).resolve())
        return
    work = Path(a.workdir or tempfile.mkdtemp(prefix="citylake-city-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    r: dict[str, Any] = {}
    try:
        for phase in PHASES:
            if (phase.endswith("_floor") and a.skip_floor) or (phase == "extract" and not a.extract_hours):
                continue
            if a.report_only:
                done = work / f"city-{phase}.json"
                if done.exists():  # (a stage that had finished: vm_hwm_mb if wait4's figure was not saved)
                    saved = json.loads(done.read_text())
                    saved.setdefault("peak_rss_mb", saved["vm_hwm_mb"])
                    saved.setdefault("wall_s", saved.get("seconds", 0.0))
                    r[phase] = saved
                continue
            r[phase] = _child(phase, a, work)
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if a.report_only:
        started, t_all = "(report only)", time.perf_counter() - sum(v["wall_s"] for v in r.values())
    rows = table_rows(r)
    mem = memory_evidence(r["ingest"]) if "ingest" in r else {}
    wall = time.perf_counter() - t_all
    cut = f", first {a.hours} h" if a.hours else ""
    print(f"\n{a.fleet} fleet, KST day {a.day}{cut}, demo faults, 1 h batches, {os.cpu_count()} cores; "
          f"started {started}, {wall / 60:.1f} min in all\n")
    print(markdown(rows))
    print()
    if mem:
        print(memory_markdown(mem))
    if "extract" in r:
        print(f"\nextraction is measured on a {a.extract_hours} h slice only ({r['extract']['window'][0]} – "
              f"{r['extract']['window'][1]}): the day's ingest reads what the simulator landed")
    ingest = r.get("ingest", {})
    result = {"params": {k: v for k, v in vars(a).items() if k != "phase"}, "started": started, "wall_s": wall,
              "machine": _machine(), "table": rows, "memory": mem,
              "stages": {k: ({kk: vv for kk, vv in v.items() if kk != "batches"} if k == "ingest" else v)
                         for k, v in r.items()},
              "ingest_batches": ingest.get("batches", [])}
    name = f"city_{a.fleet}" + (f"_{a.hours}h" if a.hours else "")
    results_file.save(a.results, name, result)


if __name__ == "__main__":
    main()
