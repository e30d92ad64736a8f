"""The ingest DAGs against Airflow's PostgreSQL metadata database (not only SQLite)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import City

pytestmark = pytest.mark.integration


def _psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_ingest_dag_on_postgres_metadata(city: City, postgres: str, tmp_path: Path) -> None:
    db = "citylake_af_" + os.urandom(3).hex()
    _psql(f"CREATE DATABASE {db}")
    try:
        env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow"),
                   AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"{postgres}/{db}")
        (tmp_path / "airflow").mkdir()
        mig = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                             text=True, timeout=300)
        assert mig.returncode == 0, mig.stderr[-3000:]
        for source in ("water_csv", "lights_mqtt"):
            run = subprocess.run([sys.executable, "-m", "etl.cli", "run-dag", f"ingest_{source}", "--start",
                                  city.start.isoformat(), "--end", city.end.isoformat()],
                                 env=env, capture_output=True, text=True, timeout=300)
            assert run.returncode == 0, run.stderr[-3000:]
        states = _psql("SELECT dag_id || ':' || state FROM dag_run ORDER BY dag_id", db).splitlines()
        assert states == ["ingest_lights_mqtt:success", "ingest_water_csv:success"]
        events = _psql("SELECT count(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                       "WHERE a.name IN ('silver_water_quality', 'silver_streetlights')", db)
        assert int(events) == 2
    finally:
        _psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
