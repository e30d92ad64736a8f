"""A simulated city for end-to-end tests: gateways on free ports, a private MQTT namespace
on the real Mosquitto, a day of traffic pushed, and helpers to run the real DAGs."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterator

import pytest

from tests.conftest import clear_caches

DAY = date(2026, 11, 24)


@dataclass
class City:
    day: date
    start: datetime
    end: datetime
    gateways: Any
    results: dict[str, Any] = field(default_factory=dict)

    def conf(self) -> dict[str, str]:
        return {"window_start": self.start.isoformat(), "window_end": self.end.isoformat()}

    def run_all(self) -> dict[str, Any]:
        from etl import airflow_local
        from etl.sources import load_sources

        dags = airflow_local.load_dags()
        out = {}
        for sid in load_sources():
            dr = airflow_local.run(dags[f"ingest_{sid}"], self.start, self.conf())
            out[sid] = airflow_local.task_result(dr, "normalize")
        return out


def _city_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from etl.simulate.broker import free_port

    tag = os.urandom(3).hex()
    for key in ("AIRKOREA_PORT", "CURSOR_PORT", "LNS_PORT"):
        monkeypatch.setenv(f"CITYLAKE_{key}", str(free_port()))
    monkeypatch.setenv("CITYLAKE_MQTT_TOPIC_ROOT", f"test{tag}")
    monkeypatch.setenv("CITYLAKE_MQTT_CLIENT_PREFIX", f"test{tag}")
    clear_caches()


def start_city(faults: str = "demo", day: date = DAY, clock_after_end: timedelta = timedelta(hours=2)) -> Iterator[City]:
    from etl.extract import mqtt
    from etl.registry.load import devices
    from etl.settings import get_settings
    from etl.simulate.clock import SimClock
    from etl.simulate.faults import FaultPlan
    from etl.simulate.gateways import Gateways
    from etl.sources import load_sources
    from etl.timeutil import kst_day_bounds

    start, end = kst_day_bounds(day)
    s = get_settings()
    plan = FaultPlan.demo() if faults == "demo" else FaultPlan.none()
    devs = [dataclasses.asdict(d) for d in devices("small")]
    with Gateways(devs, SimClock.frozen(end + clock_after_end), s, plan) as gw:
        for src in load_sources().values():
            if "topic" in src.options:
                mqtt.ensure_session(s.mqtt_host, s.mqtt_port, src.options["topic"], src.options["client_id"])
        gw.push(start, end)
        yield City(day, start, end, gw)


@pytest.fixture
def city(lake_env: Any, mosquitto: Any, airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[City]:
    _city_env(monkeypatch)
    yield from start_city()


@pytest.fixture
def s3_city(s3_lake: Any, mosquitto: Any, airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[City]:
    _city_env(monkeypatch)
    yield from start_city()


@pytest.fixture
def clean_city(lake_env: Any, mosquitto: Any, airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[City]:
    """No faults, clock stopped at the end of the day: every reading is predictable."""
    _city_env(monkeypatch)
    yield from start_city(faults="none", clock_after_end=timedelta(0))
