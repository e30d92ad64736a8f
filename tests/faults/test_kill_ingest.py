"""kill -9 during ingest, several times in a row, then a re-run: every reading received is in
silver exactly once, in quarantine with a reason, or counted as a duplicate.

One source per gateway kind (MQTT, HTTP cursor, LoRaWAN HTTP, CSV drop). Each run is a real
subprocess killed at a failpoint ``name@N`` (exit 137) or by SIGKILL after a random delay;
the choices are seeded (the seed is in every failure message; ``CITYLAKE_KILL_SEED=<seed>``
replays it). The day is ingested in two runs: the first half's run dies with its batch
landed but not normalised, so every run of the second half normalises two batches and a
per-batch failpoint ``@2`` dies between them.
"""
from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import pytest

from tests.e2e.conftest import City, city  # noqa: F401 - the fixture
from tests.faults import figures, kills

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

SEED = kills.seed()


def _hold_back_second_half(source: str) -> Path | None:
    """CSV drops: keep the second half of the day's files out of the folder for now."""
    from etl.settings import get_settings

    if source != "water_csv":
        return None
    drops = Path(get_settings().csv_drop_dir)
    held = drops.parent / "held"
    held.mkdir()
    files = sorted(drops.glob("*.csv"))
    for f in files[len(files) // 2:]:
        shutil.move(f, held / f.name)
    return held


def _arrive(source: str, city: City, held: Path | None) -> None:
    """The second half arrives: the held CSV files; for MQTT, the gateway resends the day
    (a redelivery: every reading of the second batch is a duplicate)."""
    if held is not None:
        from etl.settings import get_settings

        for f in held.iterdir():
            shutil.move(f, Path(get_settings().csv_drop_dir) / f.name)
    if kills.kind_points(source) == kills.MQTT_POINTS:
        from etl.settings import get_settings
        from etl.simulate.mqtt_pub import publish as send

        s = get_settings()
        send(city.gateways.mqtt_traffic(city.start, city.end)[source], s.mqtt_host, s.mqtt_port,
             f"{s.mqtt_client_prefix}-resend-{source}")


# Runs call the ingest DAG's two task functions directly (``kills.ingest_cmd(airflow=False)``):
# ``dag.test()`` costs an Airflow import of a minute or more per process on a busy 2-core box.
# tests/e2e/test_crash_recovery.py kills the real DAG runs.
@pytest.mark.parametrize("source", ["lights_mqtt", "weather_http", "bins_ttn", "water_csv"])
def test_killed_again_and_again_then_rerun_reconciles(city: City, source: str) -> None:
    seed = SEED + zlib.crc32(source.encode())
    mid = city.start + (city.end - city.start) / 2
    held = _hold_back_second_half(source)
    mqtt = kills.kind_points(source) == kills.MQTT_POINTS
    first = kills.run(kills.ingest_cmd(source, city.start, mid, airflow=False),
                      "after_ack@1" if mqtt else "after_cursor@1")
    assert first.killed, f"{source}: first half ran through: {first.tail}"
    figures.record("kills")
    kills.assert_lake_readable(f"{source} first half")
    _arrive(source, city, held)

    plan = kills.KillPlan.make(seed, kills.kind_points(source), failpoints=2, timed=1)
    outcomes = kills.kill_repeatedly(kills.ingest_cmd(source, mid, city.end, airflow=False), plan, label=source)
    ctx = f"{source} seed={seed} ({kills.describe([first, *outcomes])})"
    counts = kills.reconcile(source, ctx)
    assert counts["batches"] >= 2 and counts["silver"] > 0, f"{ctx}: {counts}"
    print(ctx, counts)
