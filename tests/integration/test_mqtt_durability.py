"""Against the real Mosquitto: messages published while no extractor runs are kept by the
durable session, and messages not acknowledged (a crash before landing) are redelivered."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from etl.extract import mqtt
from etl.simulate.faults import FaultPlan
from etl.simulate.mqtt_pub import publish

pytestmark = pytest.mark.integration


def _messages(topic_root: str, n: int) -> list[tuple[datetime, str, bytes]]:
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    return [(now, f"{topic_root}/streetlights/SL-GY-{i:05d}/state", b'{"n":%d}' % i) for i in range(n)]


@pytest.fixture
def names(mosquitto: tuple[str, int]) -> tuple[str, str, str]:
    tag = os.urandom(3).hex()
    return f"dur{tag}", f"dur{tag}/streetlights/+/state", f"dur{tag}-extractor"


def test_messages_published_while_no_task_runs_are_kept(mosquitto: tuple[str, int], names: tuple[str, str, str]) -> None:
    host, port = mosquitto
    root, topic, client = names
    mqtt.ensure_session(host, port, topic, client)          # deploy time: the subscription exists
    publish(_messages(root, 300), host, port, f"{root}-gw")  # no extractor connected
    drained = mqtt.drain(host, port, topic, client, idle_s=1.0)
    try:
        assert sorted(f.body for f in drained.frames) == sorted(m[2] for m in _messages(root, 300))
    finally:
        drained.ack_and_close()
    empty = mqtt.drain(host, port, topic, client, idle_s=0.5)
    empty.ack_and_close()
    assert empty.frames == []


def test_unacknowledged_messages_are_redelivered(mosquitto: tuple[str, int], names: tuple[str, str, str]) -> None:
    host, port = mosquitto
    root, topic, client = names
    mqtt.ensure_session(host, port, topic, client)
    publish(_messages(root, 120), host, port, f"{root}-gw", FaultPlan(broker_disconnects=2))
    crashed = mqtt.drain(host, port, topic, client, idle_s=1.0)
    assert len(crashed.frames) == 120
    crashed.close()                                           # died before landing: no PUBACKs sent
    retry = mqtt.drain(host, port, topic, client, idle_s=1.0)
    retry.ack_and_close()
    assert sorted(f.body for f in retry.frames) == sorted(f.body for f in crashed.frames)
