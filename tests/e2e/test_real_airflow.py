"""The DAG chain under a real Airflow: scheduler, dag-processor and api-server as processes
(``etl.airflow_run``, the code behind ``citylake airflow``), with LocalExecutor and with
CeleryExecutor (a ``celery worker`` on Redis), a fresh PostgreSQL metadata database, the lake and
the public side on the moto S3 server.

Nothing is run with ``dag.test()``: the hourly schedule creates the AirKorea ingest run, its
silver asset event triggers ``quality_tables`` and ``aggregate_gold``, their gold asset events
trigger ``publish_open_data``. Then ``backfill_lake`` is triggered for the two days before
today: its weather lane maps one task instance per day, and its one silver event runs the
chain once more. Everything is checked through the REST API (token from
``POST /auth/token``), the citylake plugin and the public bucket.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import pytest

from etl.airflow_run import Airflow, Api, Setup, create_database, drop_database, ensure_login, migrate
from tests.conftest import clear_caches
from tests.e2e.conftest import _city_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INGEST = "ingest_airkorea"     # the cheapest source that yields air-quality gold: 5 stations, one HTTP call each
DOWNSTREAM = ("quality_tables", "aggregate_gold", "publish_open_data")
CHAIN = (INGEST, *DOWNSTREAM)
BACKFILL = "backfill_lake"
DONE = {"success", "failed"}

# A quick scheduler for a short test: the DAG files are parsed once (they do not change here),
# heartbeats are short.
QUICK = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
}


def _free_ports(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports."""
    from etl.simulate.broker import free_port, reachable

    while True:
        first = free_port()
        if all(not reachable("127.0.0.1", first + i) for i in range(1, n)):
            return first


@dataclasses.dataclass
class Running:
    api: Api
    airflow: Airflow
    started: float


@pytest.fixture(scope="session")
def redis() -> str:
    """The machine's Redis on 127.0.0.1:6379 (the Celery broker), started if it is not running."""
    from etl.simulate.broker import reachable

    if not reachable("127.0.0.1", 6379):
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                        "--save", ""], check=False)
        for _ in range(50):
            if reachable("127.0.0.1", 6379):
                break
            time.sleep(0.1)
    if not reachable("127.0.0.1", 6379):
        raise RuntimeError("Redis is not running on 127.0.0.1:6379 and could not be started")
    return "redis://127.0.0.1:6379/0"


def _executor(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Setup arguments of the executor under test (Celery: a worker on this test's own queue)."""
    if request.param == "LocalExecutor":
        return {"executor": "LocalExecutor", "components": ("api-server", "scheduler", "dag-processor")}
    return {"executor": "CeleryExecutor", "broker": request.getfixturevalue("redis"),
            "queue": "citylake_" + os.urandom(3).hex(),
            "components": ("api-server", "scheduler", "dag-processor", "celery-worker")}


@pytest.fixture(params=["LocalExecutor", "CeleryExecutor"])
def airflow_on_s3(request: pytest.FixtureRequest, s3_lake: str, postgres: str, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    """AirKorea's simulated gateway at the top of the current hour, and Airflow over the S3 lake."""
    from etl.registry.load import devices
    from etl.settings import get_settings
    from etl.simulate.clock import SimClock
    from etl.simulate.faults import FaultPlan
    from etl.simulate.gateways import Gateways

    t0 = time.monotonic()
    _city_env(monkeypatch)                     # gateway ports of this test
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    devs = [dataclasses.asdict(d) for d in devices("small")]
    db = "citylake_af_" + os.urandom(3).hex()
    setup = Setup(home=tmp_path / "airflow", db=f"{postgres}/{db}", port=_free_ports(1),
                  log_server_port=_free_ports(2), extra=QUICK, **_executor(request))
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}   # not pytest's own Airflow
    env = setup.environment(base)
    with Gateways(devs, SimClock.frozen(hour), get_settings(), FaultPlan.none()):
        assert create_database(setup.db_url)
        airflow = Airflow(setup, env)
        try:
            migrate(env)
            password = ensure_login(setup, os.urandom(8).hex())
            airflow.start()
            airflow.wait_ready(timeout=120)
            yield Running(Api(setup.url, setup.user, password), airflow, t0)
        finally:
            for child in airflow.children:       # shown by pytest only when the test fails
                print(f"---- {child.name} (exit {child.process.poll()}) log ends:\n{airflow.tail(child.name, 4000)}")
            airflow.stop()
            drop_database(setup.db_url)
            if setup.executor == "CeleryExecutor":
                _forget_queue(setup.broker, setup.queue)
            clear_caches()


def _forget_queue(broker: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(broker)
    keys = list(client.scan_iter(match=f"*{queue}*"))
    if keys:
        client.delete(*keys)


def _wait(what: str, check: Any, timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def _parsed(api: Api) -> dict[str, dict[str, Any]] | None:
    dags = {d["dag_id"]: d for d in api.get("/api/v2/dags", limit=100)["dags"] if d["dag_id"] in CHAIN}
    return dags if len(dags) == len(CHAIN) else None


def _runs(api: Api) -> dict[str, list[dict[str, Any]]]:
    return {dag_id: api.dag_runs(dag_id) for dag_id in DOWNSTREAM}


def _settled(api: Api) -> dict[str, list[dict[str, Any]]] | None:
    """The downstream runs once each DAG has run and nothing is running or queued any more.

    (Ingest is paused by then: a run the next hour's schedule may have created stays queued.)
    """
    runs = _runs(api)
    if any(not rs or any(r["state"] not in DONE for r in rs) for rs in runs.values()):
        return None
    if any(api.get(f"/api/v2/dags/{d}/assets/queuedEvents")["total_entries"] for d in DOWNSTREAM):
        return None
    return runs


def _quiet(api: Api, gap_s: float = 8.0) -> dict[str, list[dict[str, Any]]] | None:
    """Settled, and still settled with the same runs ``gap_s`` later: a task's last asset event
    can trigger one more run a moment after every run looked finished."""
    first = _settled(api)
    if first is None:
        return None
    time.sleep(gap_s)
    again = _settled(api)
    if again is None or {d: len(rs) for d, rs in again.items()} != {d: len(rs) for d, rs in first.items()}:
        return None
    return again


def _failures(api: Api, runs: dict[str, list[dict[str, Any]]]) -> str:
    """Failed task instances with the end of their logs (the test's failure message)."""
    lines = []
    for dag_id, rs in runs.items():
        for r in rs:
            if r["state"] == "success":
                continue
            tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(r['dag_run_id'], safe='')}/taskInstances")
            for ti in tis["task_instances"]:
                if ti["state"] not in ("success", "skipped"):
                    log = api.task_log(dag_id, r["dag_run_id"], ti["task_id"], max(ti["try_number"], 1),
                                       ti["map_index"]) if ti["try_number"] else ""
                    lines.append(f"{dag_id} {r['dag_run_id']} {ti['task_id']}[{ti['map_index']}] {ti['state']}\n"
                                 f"{log[-2500:]}")
    return "\n".join(lines)


def test_chain_runs_from_schedule_and_asset_events(airflow_on_s3: Running) -> None:
    api = airflow_on_s3.api
    ready = time.monotonic() - airflow_on_s3.started

    # the dag-processor has parsed the folder; DAGs start paused
    dags = _wait("the DAGs to be parsed", lambda: _parsed(api), 90)
    assert all(d["is_paused"] for d in dags.values())
    for dag_id in (*DOWNSTREAM, INGEST):        # consumers first, so no asset event finds them paused
        api.unpause(dag_id)

    # the hourly schedule creates the run for the last complete hour (catchup=False)
    first = _wait("the scheduled ingest run", lambda: next(
        (r for r in api.dag_runs(INGEST) if r["state"] in DONE), None), 180)
    api.pause(INGEST)                           # one hour of data is enough; no next hour's run
    assert first["run_type"] == "scheduled"
    assert first["state"] == "success", _failures(api, {INGEST: [first]})
    assert first["data_interval_end"] > first["data_interval_start"]   # an interval, not a point in time
    ingested = time.monotonic() - airflow_on_s3.started

    # silver -> quality_tables and aggregate_gold; gold -> publish_open_data
    try:
        runs = _wait("the asset-triggered runs to finish", lambda: _quiet(api), 300, every=3)
    except TimeoutError:
        now = _runs(api)
        states = {dag_id: [(r["run_type"], r["state"]) for r in rs] for dag_id, rs in now.items()}
        raise AssertionError(f"the chain did not settle: {states}\n{_failures(api, now)}") from None
    assert all(r["state"] == "success" for rs in runs.values() for r in rs), _failures(api, runs)
    for dag_id in DOWNSTREAM:
        assert {r["run_type"] for r in runs[dag_id]} == {"asset_triggered"}, dag_id
    settled = time.monotonic() - airflow_on_s3.started

    # the asset events carry the dates and counts; the release event names the live release
    def events(dag_id: str) -> list[dict[str, Any]]:
        return api.get("/api/v2/assets/events", source_dag_id=dag_id, limit=100)["asset_events"]

    silver = [e for e in events(INGEST) if e["source_run_id"] == first["dag_run_id"]]
    assert len(silver) == 1 and silver[0]["extra"]["accepted"] > 0 and silver[0]["extra"]["dates"]
    dates = set(silver[0]["extra"]["dates"])
    assert set(events("quality_tables")[-1]["extra"]["dates"]) == dates
    gold = events("aggregate_gold")
    assert {e["extra"]["dates"][0] for e in gold if e["source_task_id"] == "rebuild_air_quality"} >= dates
    assert {e["extra"]["dates"][0] for e in gold if e["source_task_id"] == "rebuild_summary"} >= dates
    latest_release = max(events("publish_open_data"), key=lambda e: e["timestamp"])

    # the quality summary is at the end of normalize's log, and in the plugin's Quality report
    log = api.task_log(INGEST, first["dag_run_id"], "normalize")
    assert "quality airkorea-" in log and "checks" in log, log[-3000:]
    report = api.get(f"/citylake/quality/{INGEST}/{quote(first['dag_run_id'], safe='')}.json")
    assert report["totals"]["accepted"] == silver[0]["extra"]["accepted"] and report["batches"]

    # the public side on S3: latest.json -> the release manifest -> the datasets' files
    from etl.storage import public
    from publish.release import live

    clear_caches()
    pub = public()
    assert pub.is_s3 and pub.exists("latest.json")
    current = live(pub)
    assert current["release"] == latest_release["extra"]["release"]
    air = current["datasets"]["air-quality-district-hourly"]
    assert air["rows"] > 0 and all(pub.exists(f["path"]) for f in air["files"])
    assert {"air-quality-station-hourly", "district-daily-summary"} <= set(current["datasets"])
    print(f"\nreal Airflow: healthy after {ready:.0f}s, ingest done at {ingested:.0f}s, chain settled at "
          f"{settled:.0f}s; asset-triggered runs: { {d: len(rs) for d, rs in runs.items()} }")
    _backfill_two_days(api, {d: len(rs) for d, rs in runs.items()})


def _backfill_two_days(api: Api, before: dict[str, int]) -> None:
    """``backfill_lake`` under the same scheduler and executor: the two KST days before today
    re-fetched from the weather API, one mapped task instance per day (dynamic task mapping),
    then one silver event for both days, which runs the downstream chain once more."""
    from etl.timeutil import kst_date

    today = kst_date(datetime.now(timezone.utc))
    days = [(today - timedelta(days=n)).isoformat() for n in (2, 1)]
    api.unpause(BACKFILL)
    run = api.trigger(BACKFILL, {"start": days[0], "end": days[1], "sources": ["weather_http"], "chunk_days": 1,
                                 "extract": True})
    path = f"/api/v2/dags/{BACKFILL}/dagRuns/{quote(run['dag_run_id'], safe='')}"

    def finished() -> dict[str, Any] | None:
        now = api.get(path)
        return now if now["state"] in DONE else None

    done = _wait("the backfill run", finished, 300)
    assert done["run_type"] == "manual" and done["state"] == "success", _failures(api, {BACKFILL: [done]})

    tis = api.get(f"{path}/taskInstances", limit=200)["task_instances"]
    lane = sorted((t for t in tis if t["task_id"] == "backfill_weather_http"), key=lambda t: t["map_index"])
    assert [t["map_index"] for t in lane] == [0, 1] and all(t["state"] == "success" for t in lane), lane
    assert [t["rendered_map_index"] for t in lane] == [f"weather_http {d}" for d in days]   # as in the grid
    idle = [t for t in tis if t["task_id"].startswith("backfill_") and t["task_id"] != "backfill_weather_http"]
    assert all(t["map_index"] == -1 and t["state"] == "skipped" for t in idle)   # zero-length maps
    announced = [e for e in api.get("/api/v2/assets/events", source_dag_id=BACKFILL, limit=100)["asset_events"]
                 if e["source_run_id"] == done["dag_run_id"]]
    assert len(announced) == 1 and announced[0]["extra"]["accepted"] > 0
    assert set(days) <= set(announced[0]["extra"]["dates"])   # (a batch may also touch the day before)

    def rerun(runs: dict[str, list[dict[str, Any]]] | None) -> dict[str, list[dict[str, Any]]] | None:
        return runs if runs and len(runs["aggregate_gold"]) > before["aggregate_gold"] else None

    runs = _wait("the chain after the backfill", lambda: rerun(_quiet(api)), 300, every=3)
    assert all(r["state"] == "success" for rs in runs.values() for r in rs), _failures(api, runs)
    assert len(runs["quality_tables"]) == before["quality_tables"] + 1       # once for both days
    assert len(runs["aggregate_gold"]) == before["aggregate_gold"] + 1
