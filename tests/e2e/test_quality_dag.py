"""Quality in the DAGs: an error-level failure fails the ingest run (no retries, a readable
log, silver unchanged, nothing lost); the same run after the fix succeeds; the quality
tables DAG then rebuilds the day's tables and the Data Docs."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clear_caches

UTC = timezone.utc
START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)   # 2026-11-24 00:00 KST
END = START + timedelta(hours=6)


def _silver_rows() -> int:
    from etl import tables
    from etl.storage import SILVER, lake

    return tables.read(lake(), SILVER).num_rows


def _ti(dr: Any, task_id: str) -> Any:
    return next(ti for ti in dr.get_task_instances() if ti.task_id == task_id)


def test_error_level_failure_fails_the_run_and_the_rerun_after_the_fix_succeeds(
        lake_env: Path, airflow_db: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    from etl import airflow_local, ingest, tables
    from etl.registry.load import devices, resolve_fleet
    from etl.simulate.csv_drop import write_drops
    from etl.simulate.faults import FaultPlan
    from etl.storage import BATCHES, QUALITY_DAILY, lake

    # The SCADA exports name two probes the registry does not have yet (installed last week,
    # registered late): every reading of the batch would be quarantined -> error level.
    probes = [dataclasses.asdict(d) for d in devices("small") if d.domain == "water_quality"]
    write_drops(probes, START, END, lake_env / "drops", FaultPlan.none())
    full = Path(resolve_fleet("small")).read_text(encoding="utf-8").splitlines()
    without = [line for line in full if ",water_quality," not in line]
    (lake_env / "fleet-without-water.csv").write_text("\n".join(without) + "\n", encoding="utf-8")
    monkeypatch.setenv("CITYLAKE_FLEET", str(lake_env / "fleet-without-water.csv"))
    clear_caches()

    dag = airflow_local.load_dags()["ingest_water_csv"]
    conf = {"window_start": START.isoformat(), "window_end": END.isoformat()}
    before = _silver_rows()
    dr = dag.test(logical_date=END, run_conf=conf)
    assert dr.state == "failed"
    log = "".join(capfd.readouterr())                           # the task log, as dag.test prints it
    ti = _ti(dr, "normalize")
    assert ti.state == "failed" and ti.try_number == 1          # a quality error is not retried
    assert "failed quality checks at error level" in log and "quarantine_rate" in log
    assert _silver_rows() == before                              # silver unchanged
    pending = ingest.pending_batches("water_csv")
    assert len(pending) == 1                                     # landed, kept, not in the ledger

    # the fix: the registry gets the probes; the same run again
    monkeypatch.setenv("CITYLAKE_FLEET", "small")
    clear_caches()
    dr = dag.test(logical_date=END + timedelta(seconds=1), run_conf=conf)
    assert dr.state == "success"
    summary = airflow_local.task_result(dr, "normalize")
    assert summary["accepted"] > 0 and summary["quarantined"] == 0
    assert summary["received"] == summary["accepted"] + summary["quarantined"] + summary["duplicates"]
    assert ingest.pending_batches("water_csv") == []
    ledger = tables.read(lake(), BATCHES).to_pylist()
    assert len(ledger) == 1 and ledger[0]["accepted"] == _silver_rows() - before

    # the quality tables DAG picks the day up (here with the dates the asset event names)
    dr = airflow_local.run(airflow_local.load_dags()["quality_tables"], END + timedelta(minutes=1),
                           {"dates": summary["dates"]})
    daily = tables.read(lake(), QUALITY_DAILY).to_pylist()
    assert {(r["domain"], r["source"]) for r in daily} == {("water_quality", "water_csv")}
    assert sum(r["accepted"] for r in daily) == summary["accepted"]
    docs = airflow_local.task_result(dr, "data_docs")
    assert docs["rendered_batches"] == 1 and lake().exists(docs["index"])
    report = lake().get(ingest.run_report_key("ingest_water_csv", _ti_run_id(dag)))
    assert b'"accepted"' in report


def _ti_run_id(dag: Any) -> str:
    """The run id of the DAG's latest successful run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id, DagRun.state == "success").all()
        return max(runs, key=lambda r: r.logical_date).run_id
