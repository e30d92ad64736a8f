"""A small lake with every gold table, built once per test session from a simulated day.

The day is landed by the bulk simulator (the same frames the gateways serve), normalised and
validated batch by batch as the ingest DAG does, and aggregated by the gold runner; no
Airflow, no sockets. Tests that change the lake copy it first (:func:`copy_lake`).
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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


def build_lake(root: Path, days: tuple[date, ...] = (DAY,), late: str = "") -> dict[str, Any]:
    """Land, normalise and aggregate ``days`` of the small fleet under ``root/lake``. The last
    batch of source ``late`` is landed but not normalised: ``result["late"]`` holds its
    envelope, for a test to bring it in late."""
    from etl import normalize
    from etl.aggregate import runner
    from etl.registry.load import load_registry
    from etl.simulate import bulk
    from etl.simulate.faults import FaultPlan
    from etl.sources import load_sources
    from etl.storage import lake

    store, sources, registry = lake(), load_sources(), load_registry()
    touched: set[str] = set()
    held = []
    for day in days:
        envs = bulk.write_day(store, day, fleet="small", hours_per_batch=6, faults=FaultPlan.demo())
        if late:
            held.append(max((e for e in envs if e.source == late), key=lambda e: e.window_start))
        for env in envs:
            if env in held:
                continue
            r = normalize.normalize(store, sources[env.source], env, registry)
            touched.update(r.dates)
    dates = sorted(touched)
    from quality import daily, docs

    daily.rebuild(dates, store)
    docs.render_pending(store, dates)
    docs.build_index(store)
    for domain in sorted({m.domain for m in runner.MODELS} - {"summary"}) + ["summary"]:
        runner.rebuild(domain, dates, store)
    return {"dates": dates, "late": held}


def copy_lake(src: Path, dst: Path) -> None:
    shutil.copytree(src / "lake", dst / "lake")


@contextmanager
def released_lake(tmp_path_factory: pytest.TempPathFactory, name: str,
                  as_of: date = date(2026, 11, 29)) -> Iterator[tuple[Path, Any]]:
    """A lake built from the simulated day and a release of it as of ``as_of``: (root, public
    store). The environment points at them while the context is open."""
    from etl.storage import public
    from publish.catalog import load_catalogue
    from publish.release import publish

    root = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        lake_environment(mp, root)
        load_catalogue.cache_clear()
        build_lake(root)
        publish(as_of=as_of)
        yield root, public()
    load_catalogue.cache_clear()
    clear_caches()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
