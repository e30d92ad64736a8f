"""Benchmark: the open-data API under load on loopback, next to Datasette over the same rows.

    .venv/bin/python bench/bench_api.py                                   # 8 small-fleet days (~5 min), ~2.5 min of load
    .venv/bin/python bench/bench_api.py --workdir /tmp/bench-api --reuse  # keep the lake and release
    .venv/bin/python bench/bench_api.py --public /tmp/day/public --label goyang   # an existing release

1. **data**: ``--days`` consecutive simulated days of the small fleet (``tests.lakes.build_lake``)
   and a release of them (``publish.release.publish``), so a one-week query is a real one; or
   the public tree given by ``--public``.
2. **peer**: the whole-dataset Parquet file of ``air-quality-station-hourly`` named by the live
   release manifest, exported to SQLite with the values the API answers with
   (``publish.formats.as_text_values``: ISO UTC timestamp text), in the published row order,
   indexed on (device_id, period_start); a canned query with the semantics of
   ``publish.api.query.latest`` (newest row per station that has a value).
3. **servers**: ours (``publish.api.app.create_app`` under ``uvicorn.run``, as ``citylake serve``
   runs it, but with the rate limits raised so that the load is not throttled: the middleware
   still counts every request) and ``datasette serve -i`` (immutable), one worker each, access
   logs on for both (uvicorn ``info``, both CLIs' default), each in its own process.
4. **check**: both answer the same rows for both endpoints (count and keys), printed.
5. **load**: ``wrk`` with the same threads, connections and duration against each endpoint of
   each peer, back to back, ``--rounds`` times (a warm-up of each first); the median round is
   reported. ratio = ours req/s / Datasette req/s.

Results: ``<results>/api_<label>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import results_file  # noqa: E402  (bench/, on the path above)

DATASET = "air-quality-station-hourly"
DB_NAME = "air"
UNLIMITED = 10**9                     # requests per window: the rate limit never answers 429
TIMEOUT_S = 30                        # wrk --timeout: a slow answer is a latency, not a socket error


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/bench-api", help="lake, release, SQLite export and server logs")
    p.add_argument("--reuse", action="store_true", help="keep the lake / release already in --workdir")
    p.add_argument("--public", help="bench this public tree instead of building one (file path)")
    p.add_argument("--first-day", default="2026-11-23", help="first simulated KST day")
    p.add_argument("--days", type=int, default=8, help="consecutive simulated days (at least 8)")
    p.add_argument("--as-of", help="release as-of date (default: the last day + 5, month final)")
    p.add_argument("--station", help="device_id of the week query (default: most rows in the week)")
    p.add_argument("--week-end", help="KST date the week ends before (default: the day after the last data)")
    p.add_argument("--limit", type=int, default=1000, help="page size on both sides (Datasette _size)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t")
    p.add_argument("--connections", type=int, default=16, help="wrk -c")
    p.add_argument("--duration", type=int, default=10, help="wrk -d, seconds per endpoint, peer and round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median round is reported")
    p.add_argument("--warmup", type=int, default=3, help="seconds of load before each measured run")
    p.add_argument("--label", default="small", help="results file api_<label>.json")
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--serve-ours", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---- data ------------------------------------------------------------------------------------

def build(work: Path, first: date, days: int, as_of: date, reuse: bool) -> dict[str, Any]:
    """The small-fleet lake of ``days`` days under ``work/lake`` and its release in ``work/public``."""
    import pytest

    from tests.lakes import build_lake, lake_environment

    mp = pytest.MonkeyPatch()
    lake_environment(mp, work)
    if reuse and (work / "public" / "latest.json").exists():
        return {"reused": True}
    if not (reuse and (work / "lake").exists()):
        shutil.rmtree(work / "lake", ignore_errors=True)
        shutil.rmtree(work / "drops", ignore_errors=True)
        t0 = time.perf_counter()
        build_lake(work, tuple(first + timedelta(days=i) for i in range(days)))
        built = time.perf_counter() - t0
    else:
        built = None
    from publish.release import publish

    shutil.rmtree(work / "public", ignore_errors=True)
    t0 = time.perf_counter()
    release = publish(as_of=as_of)
    return {"reused": False, "build_seconds": built, "publish_seconds": time.perf_counter() - t0,
            "release": release["release"]}


def bulk_parquet(public_root: Path) -> tuple[str, Path]:
    """(release id, path) of the dataset's whole-dataset Parquet file in the live release."""
    from etl.settings import get_settings
    from etl.storage import public
    from publish.api.live import LiveRelease

    os.environ["CITYLAKE_PUBLIC_URI"] = f"file://{public_root}"
    get_settings.cache_clear()
    release = LiveRelease(public()).current()
    return release.id, public_root / release.bulk_parquet(DATASET)


def _sqlite_type(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "INTEGER"
    return "REAL" if pa.types.is_floating(t) else "TEXT"


def export_sqlite(parquet: Path, db: Path, table_name: str) -> dict[str, Any]:
    """The Parquet rows as the API shows them, in file order, indexed on (device_id, period_start)."""
    import pyarrow.parquet as pq

    from etl.duck import identifier as quote
    from publish.formats import as_text_values

    t0 = time.perf_counter()
    text = as_text_values(pq.read_table(parquet))
    db.unlink(missing_ok=True)
    con = sqlite3.connect(db)
    cols = ", ".join(f"{quote(f.name)} {_sqlite_type(f.type)}" for f in text.schema)
    con.execute(f"CREATE TABLE {quote(table_name)} ({cols})")
    insert = f"INSERT INTO {quote(table_name)} VALUES ({', '.join('?' for _ in text.schema)})"
    for batch in text.to_batches(max_chunksize=50_000):
        con.executemany(insert, zip(*(c.to_pylist() for c in batch.columns)))
    con.execute(f"CREATE INDEX {quote(table_name + '_device_time')} ON {quote(table_name)} (device_id, period_start)")
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return {"rows": text.num_rows, "columns": text.num_columns, "seconds": time.perf_counter() - t0,
            "parquet_bytes": parquet.stat().st_size, "sqlite_bytes": db.stat().st_size}


def latest_sql(table_name: str, columns: list[str]) -> str:
    """SQLite for ``publish.api.query.latest``: per entity (primary key without time columns)
    the newest row with a measured value, else the newest row."""
    from etl.duck import identifier as quote
    from publish.api.query import TIME_COLUMNS
    from publish.catalog import load_catalogue

    ds = load_catalogue().datasets[DATASET]
    part = ", ".join(quote(k) for k in ds.primary_key if k not in TIME_COLUMNS)
    measured = [c.name for c in ds.columns if c.unit and c.name in columns]
    has_value = " OR ".join(f"{quote(c)} IS NOT NULL" for c in measured)
    select = ", ".join(quote(c) for c in columns)
    return (f"SELECT {select} FROM (SELECT *, row_number() OVER (PARTITION BY {part} "
            f"ORDER BY ({has_value}) DESC, period_start DESC) AS _n FROM {quote(table_name)}) "
            f"WHERE _n = 1 ORDER BY {part}")


def week_query(db: Path, table_name: str, week_end: str | None, station: str | None) -> dict[str, Any]:
    """The week (KST midnights) and the station for the time-range query."""
    from etl.timeutil import KST

    con = sqlite3.connect(db)
    if week_end:
        end_day = date.fromisoformat(week_end)
    else:
        (last,) = con.execute(f'SELECT max(period_start) FROM "{table_name}"').fetchone()
        end_day = datetime.fromisoformat(last.replace("Z", "+00:00")).astimezone(KST).date() + timedelta(days=1)
    end = datetime.combine(end_day, dtime(), KST)
    start = end - timedelta(days=7)
    utc = [t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, end)]
    if station is None:
        station = con.execute(f'SELECT device_id FROM "{table_name}" WHERE period_start >= ? AND period_start < ? '
                              "GROUP BY device_id ORDER BY count(*) DESC, device_id LIMIT 1", utc).fetchone()[0]
    con.close()
    return {"station": station, "from": start.isoformat(), "to": end.isoformat(), "from_utc": utc[0], "to_utc": utc[1]}


# ---- servers ---------------------------------------------------------------------------------

def serve_ours(port: int) -> int:
    """``citylake serve`` with the rate limits raised (the environment names the public side)."""
    import uvicorn

    from publish.api.app import create_app

    app = create_app(rate_limits={"anonymous": UNLIMITED, "keyed": UNLIMITED})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _get(url: str) -> tuple[Any, int]:
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    return json.loads(body), len(body)


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}); see {log}")
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer from {url} within {seconds:.0f} s; see {log}")


def start_servers(work: Path, public_root: Path, db: Path, metadata: Path, limit: int) -> dict[str, Any]:
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ours_port, peer_port = _free_port(), _free_port()
    env = {**os.environ, "CITYLAKE_PUBLIC_URI": f"file://{public_root}"}
    ours = _start([sys.executable, str(Path(__file__).resolve()), "--serve-ours", str(ours_port)], logs / "ours.log", env)
    datasette = str(Path(sys.executable).with_name("datasette"))
    peer = _start([datasette, "serve", "-i", str(db), "-m", str(metadata), "-h", "127.0.0.1", "-p", str(peer_port),
                   "--setting", "max_returned_rows", str(max(limit, 1000)),
                   "--setting", "sql_time_limit_ms", "10000"], logs / "datasette.log")
    ours_url, peer_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{peer_port}"
    _wait(f"{ours_url}/v1/datasets", ours, logs / "ours.log")
    _wait(f"{peer_url}/-/versions.json", peer, logs / "datasette.log")
    return {"procs": [ours, peer], "ours": ours_url, "datasette": peer_url}


# ---- load ------------------------------------------------------------------------------------

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M)}
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if rps is None or "50" not in pct:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)) if total else None,
            "p50_ms": pct["50"], "p75_ms": pct.get("75"), "p90_ms": pct.get("90"), "p99_ms": pct.get("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups())))
            if errors else None}


def wrk(url: str, threads: int, connections: int, seconds: int) -> dict[str, Any]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={TIMEOUT_S}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def _wrk_version() -> str:
    r = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (r.stdout or r.stderr).splitlines()[0].strip()


# ---- check -----------------------------------------------------------------------------------

def urls(servers: dict[str, Any], week: dict[str, Any], limit: int) -> dict[str, dict[str, str]]:
    ours_week = urllib.parse.urlencode({"device_id": week["station"], "from": week["from"], "to": week["to"],
                                        "limit": limit})
    peer_week = urllib.parse.urlencode({"device_id__exact": week["station"], "period_start__gte": week["from_utc"],
                                        "period_start__lt": week["to_utc"], "_size": limit, "_shape": "array"})
    table = _table_name()
    return {
        "latest": {"ours": f"{servers['ours']}/v1/latest?dataset={DATASET}",
                   "datasette": f"{servers['datasette']}/{DB_NAME}/latest.json?_shape=array"},
        "week": {"ours": f"{servers['ours']}/v1/datasets/{DATASET}/rows?{ours_week}",
                 "datasette": f"{servers['datasette']}/{DB_NAME}/{table}.json?{peer_week}"},
    }


def check(endpoints: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Both peers answer the same rows (count and (device_id, period_start) keys)."""
    result = {}
    for name, pair in endpoints.items():
        ours, ours_bytes = _get(pair["ours"])
        peer, peer_bytes = _get(pair["datasette"])
        keys = [{(r["device_id"], r["period_start"]) for r in rows} for rows in (ours["rows"], peer)]
        same = len(ours["rows"]) == len(peer) and keys[0] == keys[1]
        result[name] = {"ours_rows": len(ours["rows"]), "datasette_rows": len(peer), "same_rows": same,
                        "ours_body_bytes": ours_bytes, "datasette_body_bytes": peer_bytes}
        print(f"check {name:<7} ours {len(ours['rows']):>5} rows ({ours_bytes:,} B), datasette {len(peer):>5} rows "
              f"({peer_bytes:,} B): {'same rows' if same else 'ROWS DIFFER'}")
        if not same:
            raise SystemExit(f"the peers disagree on {name}: {pair}")
    return result


def _table_name() -> str:
    from publish.catalog import load_catalogue

    return load_catalogue().datasets[DATASET].table


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {**{p: version(p) for p in ("duckdb", "datasette", "uvicorn", "fastapi", "starlette", "pyarrow")},
            "sqlite": sqlite3.sqlite_version, "wrk": _wrk_version()}


def load(endpoints: dict[str, dict[str, str]], a: argparse.Namespace) -> list[dict[str, Any]]:
    """``--rounds`` rounds of every endpoint on each peer in turn (ours, then Datasette), a
    warm-up of each before the first; per endpoint and peer the round with the median req/s."""
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in range(a.rounds):
        for name, pair in endpoints.items():
            for peer, url in pair.items():
                if i == 0:
                    wrk(url, a.threads, a.connections, a.warmup)
                run = {"round": i, "load_before": os.getloadavg()[0],
                       **wrk(url, a.threads, a.connections, a.duration)}
                rounds.setdefault((name, peer), []).append(run)
    runs = []
    for (name, peer), rs in rounds.items():
        median = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
        runs.append({"endpoint": name, "peer": peer, "url": endpoints[name][peer], **median,
                     "rps_rounds": [r["rps"] for r in rs], "rounds": rs})
    for ours, peer in zip(runs[::2], runs[1::2]):
        ours["ratio"] = ours["rps"] / peer["rps"] if peer["rps"] else float("nan")
        ours["ratio_rounds"] = [o["rps"] / p["rps"] if p["rps"] else float("nan")
                                for o, p in zip(ours["rounds"], peer["rounds"])]
    return runs


def _table(runs: list[dict[str, Any]]) -> str:
    lines = [f"{'endpoint':<10}{'peer':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>7}"
             "   req/s of each round (ratio of each round)"]
    for r in runs:
        ratio = f"{r['ratio']:>7.2f}" if "ratio" in r else " " * 7
        errors = sum(x["non_2xx"] + sum((x["socket_errors"] or {}).values()) for x in r["rounds"])
        each = ", ".join(f"{x:,.0f}" for x in r["rps_rounds"])
        each += f"  ({', '.join(f'{x:.2f}' for x in r['ratio_rounds'])})" if "ratio" in r else ""
        lines.append(f"{r['endpoint']:<10}{r['peer']:<11}{r['rps']:>9,.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                     f"{errors:>8}{ratio}   {each}")
    return "\n".join(lines)


def main() -> int:
    a = _args()
    if a.serve_ours:
        return serve_ours(a.serve_ours)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (the load generator; no fallback)")
    work = Path(a.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    first = date.fromisoformat(a.first_day)
    as_of = date.fromisoformat(a.as_of) if a.as_of else first + timedelta(days=a.days - 1 + 5)
    result: dict[str, Any] = {"params": vars(a), "versions": _versions(),
                              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    if a.public:
        public_root = Path(a.public).resolve()
    else:
        if a.days < 8:
            raise SystemExit("--days: at least 8, for a whole KST week and the day before it")
        result["build"] = build(work, first, a.days, as_of, a.reuse)
        public_root = work / "public"
    release, parquet = bulk_parquet(public_root)
    peer_dir = work / "peer"
    peer_dir.mkdir(exist_ok=True)
    db, table = peer_dir / f"{DB_NAME}.db", _table_name()
    exported = export_sqlite(parquet, db, table)
    columns = [r[1] for r in sqlite3.connect(db).execute(f'PRAGMA table_info("{table}")')]
    metadata = peer_dir / "metadata.json"
    metadata.write_text(json.dumps({"databases": {DB_NAME: {"queries": {"latest": {
        "title": "latest value per station", "sql": latest_sql(table, columns)}}}}}, indent=1))
    week = week_query(db, table, a.week_end, a.station)
    result["data"] = {"release": release, "parquet": str(parquet), **exported, "week": week}
    print(f"release {release}: {exported['rows']:,} rows of {DATASET}; Parquet {exported['parquet_bytes'] / 1e6:.2f} MB, "
          f"SQLite {exported['sqlite_bytes'] / 1e6:.2f} MB; week {week['from']} .. {week['to']} for {week['station']}")
    servers = start_servers(work, public_root, db, metadata, a.limit)
    try:
        endpoints = urls(servers, week, a.limit)
        result["check"] = check(endpoints)
        print(f"ours: rate limits raised to {UNLIMITED:,} requests per window (the middleware still runs); "
              f"both: one uvicorn worker, access log on; wrk -t{a.threads} -c{a.connections} -d{a.duration}s "
              f"x {a.rounds} rounds, after {a.warmup}s warm-up; load average {os.getloadavg()[0]:.1f}")
        runs = load(endpoints, a)
    finally:
        for proc in servers["procs"]:
            proc.terminate()
        for proc in servers["procs"]:
            proc.wait(timeout=30)
    result["servers"] = {"workers": 1, "access_log": True, "ours_rate_limit": UNLIMITED,
                         "datasette_settings": {"max_returned_rows": max(a.limit, 1000), "sql_time_limit_ms": 10000},
                         "datasette_immutable": True}
    result["runs"] = runs
    print(_table(runs))
    results_file.save(a.results, f"api_{a.label}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
