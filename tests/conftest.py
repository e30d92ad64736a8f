"""Shared fixtures. Airflow reads its environment at import, so it is set here first."""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("CITYLAKE_REAL_DATA", REPO.parent / "shared" / "data" / "real"))

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="citylake-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("CITYLAKE_PSEUDONYM_KEY", "test-pseudonym-key")


def real_data() -> Path:
    """The shared real samples; their absence is an error, not a skip."""
    if not (REAL / "PROVENANCE.md").is_file():
        raise FileNotFoundError(f"real samples not found at {REAL}: CI needs ../shared beside the checkout")
    return REAL


@pytest.fixture
def real() -> Path:
    return real_data()


def clear_caches() -> None:
    from etl.registry.load import clear_cache
    from etl.settings import get_settings
    from etl.sources import load_sources

    get_settings.cache_clear()
    load_sources.cache_clear()
    clear_cache()


@pytest.fixture
def lake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh file:// lake, drop folder and dev gateway credentials for one test."""
    from etl.simulate.gateways import dev_environment

    monkeypatch.setenv("CITYLAKE_LAKE_URI", f"file://{tmp_path / 'lake'}")
    monkeypatch.setenv("CITYLAKE_PUBLIC_URI", f"file://{tmp_path / 'public'}")
    monkeypatch.setenv("CITYLAKE_CSV_DROP_DIR", str(tmp_path / "drops"))
    monkeypatch.setenv("CITYLAKE_FLEET", "small")
    for k, v in dev_environment().items():
        monkeypatch.setenv(k, v)
    clear_caches()
    yield tmp_path
    clear_caches()


def _port_open(port: int) -> bool:
    from etl.simulate.broker import reachable

    return reachable("127.0.0.1", port)


@pytest.fixture(scope="session")
def mosquitto() -> tuple[str, int]:
    """The machine's Mosquitto on 127.0.0.1:1883, started if it is not running."""
    if not _port_open(1883):
        subprocess.run(["mosquitto", "-d", "-c", "/etc/mosquitto/mosquitto.conf"], check=False)
        for _ in range(50):
            if _port_open(1883):
                break
            time.sleep(0.1)
    if not _port_open(1883):
        raise RuntimeError("Mosquitto is not running on 127.0.0.1:1883 and could not be started")
    return "127.0.0.1", 1883


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A real S3-compatible server (moto) on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    from etl.simulate.broker import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_lake(moto_s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A lake in a fresh bucket on the moto server."""
    import boto3

    from etl.simulate.gateways import dev_environment

    bucket = "lake-" + os.urandom(4).hex()
    boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("CITYLAKE_S3_ENDPOINT_URL", moto_s3)
    monkeypatch.setenv("CITYLAKE_S3_REGION", "us-east-1")
    monkeypatch.setenv("CITYLAKE_LAKE_URI", f"s3://{bucket}/lake")
    monkeypatch.setenv("CITYLAKE_PUBLIC_URI", f"s3://{bucket}/public")
    monkeypatch.setenv("CITYLAKE_CSV_DROP_DIR", str(tmp_path / "drops"))
    monkeypatch.setenv("CITYLAKE_FLEET", "small")
    for k, v in dev_environment().items():
        monkeypatch.setenv(k, v)
    clear_caches()
    yield f"s3://{bucket}/lake"
    clear_caches()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in a temporary AIRFLOW_HOME."""
    from airflow.utils import db

    db.resetdb()
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def postgres() -> str:
    """The machine's PostgreSQL on 127.0.0.1:5432 (trust auth), started if not running."""
    if not _port_open(5432):
        clusters = os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []
        for version in clusters:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
        for _ in range(100):
            if _port_open(5432):
                break
            time.sleep(0.1)
    if not _port_open(5432):
        raise RuntimeError("PostgreSQL is not running on 127.0.0.1:5432 and could not be started")
    return "postgresql+psycopg2://postgres@127.0.0.1:5432"
