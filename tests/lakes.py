"""A small lake with every gold table, built once per test session from a simulated day.

The day is landed by the bulk simulator (the same frames the gateways serve), normalised and
validated batch by batch as the ingest DAG does, and aggregated by the gold runner; no
Airflow, no sockets. Tests that change the lake copy it first (:func:`copy_lake`).
"""
from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clear_caches

DAY = date(2026, 11, 24)


def lake_environment(mp: pytest.MonkeyPatch, root: Path) -> None:
    mp.setenv("CITYLAKE_LAKE_URI", f"file://{root / 'lake'}")
    mp.setenv("CITYLAKE_PUBLIC_URI", f"file://{root / 'public'}")
    mp.setenv("CITYLAKE_CSV_DROP_DIR", str(root / "drops"))
    mp.setenv("CITYLAKE_FLEET", "small")
    mp.delenv("CITYLAKE_PUBLIC_BASE_URL", raising=False)
    clear_caches()


def build_lake(root: Path, days: tuple[date, ...] = (DAY,)) -> dict[str, Any]:
    """Land, normalise and aggregate ``days`` of the small fleet under ``root/lake``."""
    from etl import normalize
    from etl.aggregate import runner
    from etl.registry.load import load_registry
    from etl.simulate import bulk
    from etl.simulate.faults import FaultPlan
    from etl.sources import load_sources
    from etl.storage import lake

    store, sources, registry = lake(), load_sources(), load_registry()
    touched: set[str] = set()
    for day in days:
        for env in bulk.write_day(store, day, fleet="small", hours_per_batch=6, faults=FaultPlan.demo()):
            r = normalize.normalize(store, sources[env.source], env, registry)
            touched.update(r.dates)
    dates = sorted(touched)
    for domain in sorted({m.domain for m in runner.MODELS} - {"summary"}) + ["summary"]:
        runner.rebuild(domain, dates, store)
    return {"dates": dates}


def copy_lake(src: Path, dst: Path) -> None:
    shutil.copytree(src / "lake", dst / "lake")
