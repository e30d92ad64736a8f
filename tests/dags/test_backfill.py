"""The backfill_lake DAG at small scale, with dag.test(): two simulated days, small fleet.

Lake A is filled the normal way, one day at a time (each source's extract and normalise on
the day's window), then its gold. Lake B starts with only A's landing zone (the archive) and
is rebuilt by one backfill_lake run in one-day chunks; then gold is rebuilt per date for the
partitions aggregate_gold derives from the backfill's silver events. B must equal A, the
mapped task instances must be exactly the planned chunks, and a second backfill that also
re-fetches a gateway's hourly windows must add nothing.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.conftest import clear_caches

DAYS = [date(2026, 11, 23), date(2026, 11, 24)]
AFTER = datetime(2026, 11, 25, 6, tzinfo=timezone.utc)   # 15:00 KST the day after: "today" for the planner
SILVER_COLUMNS = ["domain", "date", "device_id", "metric", "ts", "subject", "value", "unit", "quality_flag"]


@pytest.fixture
def two_days(lake_env: Path, mosquitto: Any, airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Simulated gateways serving two clean days; the clock stopped at the end of the second."""
    from etl.extract import mqtt
    from etl.registry.load import devices
    from etl.settings import get_settings
    from etl.simulate.clock import SimClock
    from etl.simulate.faults import FaultPlan
    from etl.simulate.gateways import Gateways
    from etl.sources import load_sources
    from etl.timeutil import kst_day_bounds
    from tests.e2e.conftest import _city_env

    _city_env(monkeypatch)
    s = get_settings()
    devs = [dataclasses.asdict(d) for d in devices("small")]
    with Gateways(devs, SimClock.frozen(kst_day_bounds(DAYS[-1])[1]), s, FaultPlan.none()) as gw:
        for src in load_sources().values():
            if "topic" in src.options:
                mqtt.ensure_session(s.mqtt_host, s.mqtt_port, src.options["topic"], src.options["client_id"])
        yield gw


def _use_lake(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    monkeypatch.setenv("CITYLAKE_LAKE_URI", f"file://{root}")
    clear_caches()


def _silver() -> pa.Table:
    from etl import tables
    from etl.storage import SILVER, lake

    t = tables.read(lake(), SILVER, columns=SILVER_COLUMNS)
    return t.sort_by([(c, "ascending") for c in SILVER_COLUMNS if c != "value"])


def _gold() -> dict[str, pa.Table]:
    from etl import tables
    from etl.aggregate.runner import MODELS
    from etl.storage import lake

    out = {}
    for m in MODELS:
        t = tables.read(lake(), m.table)
        t = t.select([c for c in t.column_names if not c.endswith(("_at", "built", "version"))])
        out[m.name] = t.sort_by([(c, "ascending") for c in t.column_names
                                 if not pa.types.is_floating(t.schema.field(c).type)
                                 and not pa.types.is_nested(t.schema.field(c).type)])
    return out


def _assert_unique(silver: pa.Table) -> None:
    keys = silver.group_by(["device_id", "metric", "ts", "subject"]).aggregate([("value", "count")])
    assert pc.max(keys["value_count"]).as_py() == 1, "duplicate readings in silver"


def _backfill(dags: dict, conf: dict) -> tuple[Any, dict]:
    from etl import airflow_local

    dr = airflow_local.run(dags["backfill_lake"], AFTER, conf)
    return dr, airflow_local.task_result(dr, "announce")


def _mapped(dr: Any) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for ti in dr.get_task_instances():
        if ti.task_id.startswith("backfill_"):
            out.setdefault(ti.task_id.removeprefix("backfill_"), []).append((ti.rendered_map_index, ti.state))
    return out


@pytest.mark.integration   # Mosquitto
@pytest.mark.slow
def test_backfill_rebuilds_the_lake_like_running_the_days_one_by_one(
        two_days: Any, lake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from etl import airflow_local, backfill, ingest
    from etl.aggregate.plan import partitions_to_rebuild
    from etl.aggregate.runner import MODELS, rebuild
    from etl.sources import load_sources
    from etl.timeutil import kst_day_bounds

    t0 = time.monotonic()
    sources = {s.id: backfill.can_replay(s.kind, s.options) for s in load_sources().values() if s.active}
    domains = sorted({m.domain for m in MODELS})          # the gold domains, summary last
    domains = [d for d in domains if d != "summary"] + ["summary"]

    # A: the days one by one, as each day's ingest runs would have done them (the tasks'
    # functions, without Airflow: tests/e2e covers the ingest DAGs themselves), then gold
    for day in DAYS:
        start, end = kst_day_bounds(day)
        two_days.push(start, end)
        for sid in sources:
            landed = ingest.extract(sid, start, end)
            ingest.normalize_all(sid, landed["envelope"], start)
    for domain in domains:   # after both days (a day's batches also touch the day before), both at once
        rebuild(domain, [d.isoformat() for d in DAYS])
    silver_a, gold_a = _silver(), _gold()
    assert silver_a.num_rows and set(pc.unique(silver_a["date"]).to_pylist()) >= {d.isoformat() for d in DAYS}
    t_a = time.monotonic() - t0

    # B: only the landing zone survives; one backfill run rebuilds silver from it, a day a chunk
    shutil.copytree(lake_env / "lake" / "landing", lake_env / "lake_b" / "landing")
    _use_lake(monkeypatch, lake_env / "lake_b")
    dags = airflow_local.load_dags()
    conf = {"start": DAYS[0].isoformat(), "end": DAYS[-1].isoformat(), "chunk_days": 1}
    dr, announced = _backfill(dags, conf)

    planned = backfill.by_source(backfill.plan(conf["start"], conf["end"], sources, chunk_days=1), sorted(sources))
    mapped = _mapped(dr)
    assert sum(len(v) for v in mapped.values()) == len(sources) * len(DAYS) == 16
    for sid, chunks in planned.items():   # one mapped instance per planned chunk, labelled, all succeeded
        assert sorted(mapped[sid]) == sorted((c["label"], "success") for c in chunks), sid
    assert announced["chunks"] == 16

    # one silver event per domain for the whole range (not one per batch, run or chunk)
    rows = _events(dr.run_id)
    silver_domains = {d for s in load_sources().values() if s.active for d in s.domains}
    assert sorted(n for n, _ in rows) == sorted(f"silver_{d}" for d in silver_domains)
    assert all({d.isoformat() for d in DAYS} <= set(e["dates"]) and e["backfill"] for _, e in rows)
    assert announced["dates"] == sorted({d for _, e in rows for d in e["dates"]})

    # what aggregate_gold's partitions task makes of those events: every date, in one run
    from types import SimpleNamespace as NS

    from etl.assets import silver_asset

    parts = partitions_to_rebuild([d for d in domains if d != "summary"], {},
                                  {silver_asset(n.removeprefix("silver_")): [NS(extra=e)] for n, e in rows})
    assert all({d.isoformat() for d in DAYS} <= set(v) for v in parts.values()) and len(parts) == len(domains) - 1
    for day in DAYS:                        # as rebuild_<domain> does, one mapped instance per date
        for domain in domains:
            rebuild(domain, [day.isoformat()])

    silver_b, gold_b = _silver(), _gold()
    _assert_unique(silver_b)
    assert silver_b.num_rows == silver_a.num_rows
    assert silver_b.equals(silver_a)
    days = pa.array([d.isoformat() for d in DAYS])
    for name, table in gold_a.items():
        _assert_same(gold_b[name].filter(pc.is_in(gold_b[name]["date"], days)),
                     table.filter(pc.is_in(table["date"], days)), name)
    t_b = time.monotonic() - t0 - t_a

    # re-running the backfill, this time re-fetching the hourly windows of a gateway that
    # replays them (new batches, every reading already held): nothing is added
    again_conf = {**conf, "sources": ["weather_http"], "chunk_days": 2, "extract": True}
    dr2, again = _backfill(dags, again_conf)
    assert _mapped(dr2)["weather_http"] == [("weather_http 2026-11-23..2026-11-24", "success")]
    assert {s for sid, v in _mapped(dr2).items() if sid != "weather_http" for _, s in v} == {"skipped"}
    from etl import tables
    from etl.storage import BATCHES, lake

    ledger = tables.read(lake(), BATCHES, columns=["source", "window_start", "window_end", "accepted",
                                                  "duplicates"]).to_pylist()
    hourly = [r for r in ledger if r["source"] == "weather_http" and r["window_end"] - r["window_start"] == timedelta(hours=1)]
    assert len(hourly) > 24 and sum(r["accepted"] for r in hourly) == 0 and all(r["duplicates"] for r in hourly)
    assert _silver().equals(silver_b)
    assert again["domains"] == ["weather"] and set(again["dates"]) >= {d.isoformat() for d in DAYS}
    print(f"\none by one: {t_a:.1f}s; backfill + gold: {t_b:.1f}s; re-run with re-fetch: "
          f"{time.monotonic() - t0 - t_a - t_b:.1f}s")


def _events(run_id: str) -> list[tuple[str, dict]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return (session.query(AssetModel.name, AssetEvent.extra)
                .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetEvent.source_dag_id == "backfill_lake", AssetEvent.source_run_id == run_id).all())


def _assert_same(got: pa.Table, want: pa.Table, name: str) -> None:
    """Equal tables, floats to 1e-9 (sums in another order)."""
    assert got.num_rows == want.num_rows and got.schema == want.schema, name
    if want.num_rows == 0:
        return
    for col in want.column_names:
        a, b = got[col], want[col]
        if pa.types.is_floating(a.type):
            assert pc.all(pc.or_kleene(pc.less_equal(pc.abs(pc.subtract(a, b)), 1e-9 * (1 + (pc.max(pc.abs(b)).as_py() or 0))),
                                       pc.and_(pc.is_null(a), pc.is_null(b)))).as_py(), (name, col)
        else:
            assert a.equals(b), (name, col)


def test_sources_filter_and_bad_params(lake_env: Path, airflow_db: Any) -> None:
    """Only the chosen sources' lanes run (the others are skipped); bad params fail the plan."""
    from etl import airflow_local

    dags = airflow_local.load_dags()
    dr = airflow_local.run(dags["backfill_lake"], AFTER, {"start": "2026-11-20", "end": "2026-11-21",
                                                          "sources": ["water_csv"], "chunk_days": 7})
    states = {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}
    assert states[("backfill_water_csv", 0)] == "success" and ("backfill_water_csv", 1) not in states
    assert {s for (t, _), s in states.items() if t.startswith("backfill_") and t != "backfill_water_csv"} == {"skipped"}
    assert airflow_local.task_result(dr, "announce") == {"chunks": 1, "domains": [], "dates": []}  # empty landing

    bad = dags["backfill_lake"].test(logical_date=AFTER + timedelta(minutes=1),
                                     run_conf={"start": "2026-11-20", "end": "2026-11-25"})   # today, KST
    assert bad.state == "failed"
    assert {ti.task_id: ti.state for ti in bad.get_task_instances()}["plan"] == "failed"


def test_backfill_dag_shape() -> None:
    """One lane per active source, mapped, one chunk at a time; one announce through an alias."""
    from airflow.dag_processing.dagbag import DagBag

    from etl.sources import load_sources
    from tests.conftest import REPO

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["backfill_lake"]
    assert type(dag.timetable).__name__ == "NullTimetable" and dag.max_active_runs == 1 and dag.doc_md
    assert {"citylake", "backfill"} <= set(dag.tags) and {t.owner for t in dag.tasks} == {"citylake-data-eng"}
    assert all(t.execution_timeout is not None for t in dag.tasks)
    for s in load_sources().values():
        if s.active:
            lane = dag.get_task(f"backfill_{s.id}")
            assert lane.__class__.__name__.endswith("MappedOperator") and lane.max_active_tis_per_dag == 1
            assert lane.retries >= 1
    announce = dag.get_task("announce")
    assert [type(o).__name__ for o in announce.outlets] == ["AssetAlias"] and announce.trigger_rule == "none_failed"
