"""Benchmark: an open-data release of every dataset next to the floor.

    .venv/bin/python bench/bench_ingest.py --fleet goyang --workdir /tmp/day     # first: a day of silver
    .venv/bin/python bench/bench_gold.py --workdir /tmp/day                        # then: its gold tables
    .venv/bin/python bench/bench_publish.py --workdir /tmp/day                     # the release

1. **first release**: ``publish.release.publish`` into an empty public side (``W/public``):
   read every gold table at its Delta version, embargo and lifecycle, revisions, monthly and
   whole-dataset files in four formats, datapackage.json, DCAT, the data dictionary, the
   privacy gate over every file, the release manifest and the pointer, the feeds.
2. **unchanged**: the same release again (nothing changed: every dataset version is reused).
3. **after a rebuild**: the day's weather gold is rebuilt (a new Delta version, the same rows)
   and a release made: one dataset's files are written again, revisions compared.

The floor is DuckDB writing the same rows in the same row order as Parquet (zstd), CSV and
JSON Lines, one file per dataset and month plus one per dataset, with ``COPY`` straight from
the Delta tables (no GeoJSON, metadata, revisions, scans or checksums).
ratio = floor seconds / ours seconds. Results: ``<results>/publish_<fleet>.json``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import results_file  # noqa: E402  (bench/, on the path above)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="bench_ingest's --workdir, with gold tables (bench_gold)")
    p.add_argument("--fleet", default="goyang")
    p.add_argument("--day", default="2026-11-24", help="the KST day in the lake")
    p.add_argument("--as-of", default="2026-12-05", help="the release's as-of date (November final)")
    p.add_argument("--results", default=str(HERE / "results"))
    return p.parse_args()


def _env(work: Path, fleet: str) -> None:
    os.environ["CITYLAKE_LAKE_URI"] = f"file://{work / 'lake'}"
    os.environ["CITYLAKE_PUBLIC_URI"] = f"file://{work / 'public'}"
    os.environ["CITYLAKE_FLEET"] = fleet
    from tests.conftest import clear_caches

    clear_caches()


def ours(as_of: date) -> dict[str, Any]:
    from publish.release import publish

    t0 = time.perf_counter()
    r = publish(as_of=as_of)
    return {"seconds": time.perf_counter() - t0, "release": r["release"], "changed": r["changed"],
            "new_versions": len(r.get("new_versions", [])), "rows": sum((r.get("rows") or {}).values()),
            "privacy_gate": r.get("privacy_gate")}


def floor(work: Path) -> dict[str, Any]:
    """DuckDB COPY of the same rows per dataset and month, in three formats."""
    import duckdb

    from etl import duck
    from etl.storage import lake
    from publish.catalog import REGISTRY, load_catalogue

    store = lake()
    out = Path(tempfile.mkdtemp(prefix="floor-", dir=work))
    con = duckdb.connect()
    duck.load_extension(con, "delta")
    t0 = time.perf_counter()
    rows = 0
    for ds in load_catalogue().datasets.values():
        if ds.table == REGISTRY:
            continue
        uri = store.table_uri(f"gold/{ds.table}")
        if not Path(uri).exists():
            continue
        order = ", ".join(ds.sort)
        con.execute(f"CREATE OR REPLACE TEMP TABLE t AS SELECT * FROM delta_scan('{uri}') ORDER BY {order}")
        months = [m for (m,) in con.execute("SELECT DISTINCT substr(date, 1, 7) FROM t ORDER BY 1").fetchall()]
        rows += con.execute("SELECT count(*) FROM t").fetchone()[0]
        for month in months + [None]:
            where = f"WHERE substr(date, 1, 7) = '{month}'" if month else ""
            stem = out / f"{ds.id}-{month or 'all'}"
            for fmt, opts in (("parquet", "FORMAT parquet, COMPRESSION zstd"), ("csv", "FORMAT csv, HEADER"),
                              ("jsonl", "FORMAT json")):
                con.execute(f"COPY (SELECT * FROM t {where}) TO '{stem}.{fmt}' ({opts})")
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.iterdir())
    shutil.rmtree(out)
    return {"seconds": seconds, "rows": rows, "bytes": size}


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    a = _args()
    work = Path(a.workdir)
    shutil.rmtree(work / "public", ignore_errors=True)
    _env(work, a.fleet)
    as_of = date.fromisoformat(a.as_of)
    result: dict[str, Any] = {"params": vars(a), "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    first = ours(as_of)
    first["bytes"] = _bytes(work / "public")
    fl = floor(work)
    unchanged = ours(as_of)
    from etl.aggregate import runner

    runner.rebuild("weather", [a.day])
    rebuilt = ours(as_of)
    result.update(first=first, floor=fl, unchanged=unchanged, after_rebuild=rebuilt)
    lines = [
        f"open-data release of a {a.fleet} day as of {a.as_of} (20 datasets)",
        f"{'':<24}{'rows':>12}{'MB written':>12}{'seconds':>10}{'rows/s':>10}{'ratio':>7}",
        f"{'ours: first release':<24}{first['rows']:>12,}{first['bytes'] / 1e6:>12.1f}{first['seconds']:>10.1f}"
        f"{first['rows'] / first['seconds']:>10,.0f}{fl['seconds'] / first['seconds']:>7.2f}",
        f"{'floor: DuckDB COPY':<24}{fl['rows']:>12,}{fl['bytes'] / 1e6:>12.1f}{fl['seconds']:>10.1f}"
        f"{fl['rows'] / fl['seconds']:>10,.0f}",
        f"{'ours: nothing changed':<24}{'':>12}{'':>12}{unchanged['seconds']:>10.1f}",
        f"{'ours: weather rebuilt':<24}{'':>12}{'':>12}{rebuilt['seconds']:>10.1f}"
        f"   ({rebuilt['new_versions']} new dataset versions)",
    ]
    print("\n".join(lines))
    results_file.save(a.results, f"publish_{a.fleet}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
