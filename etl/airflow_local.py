"""Run the project's real DAGs locally with ``dag.test()`` on a SQLite metadata database.

This is the same orchestration path as production (the DAG files in ``dags/``), minus the
scheduler: the demo and the end-to-end tests use it. Environment variables must be set
before Airflow is imported, so :func:`configure` runs first.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"

log = logging.getLogger(__name__)


def configure(airflow_home: Path, sql_alchemy_conn: str | None = None) -> None:
    """Point Airflow at a private home and the project's dags folder (before importing it)."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    if sql_alchemy_conn:
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sql_alchemy_conn


def migrate() -> None:
    from airflow.utils import db

    db.initdb()


def load_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags


def run(dag: Any, logical_date: datetime, conf: dict[str, Any] | None = None) -> Any:
    """Run a DAG once; raise with the failed tasks if it does not succeed."""
    dr = dag.test(logical_date=logical_date, run_conf=conf)
    if dr.state != "success":
        failed = [ti.task_id for ti in dr.get_task_instances() if ti.state != "success"]
        raise RuntimeError(f"{dag.dag_id} run {dr.run_id} ended {dr.state}; not successful: {failed}")
    return dr


def task_result(dr: Any, task_id: str) -> Any:
    """The XCom return value of a task of a finished run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id,
                                                 key="return_value").one_or_none()
        return None if row is None else XComModel.deserialize_value(row)
