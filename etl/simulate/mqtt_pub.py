"""Publishes gateway messages to an MQTT broker at QoS 1, as device gateways do."""
from __future__ import annotations

import logging
import time
from datetime import datetime

from etl.simulate.faults import FaultPlan

log = logging.getLogger(__name__)


def publish(messages: list[tuple[datetime, str, bytes]], host: str, port: int, client_id: str,
            faults: FaultPlan | None = None, timeout_s: float = 30.0) -> int:
    """Send every message and wait for its PUBACK; ``broker_disconnects`` drops the link mid-way."""
    from etl.extract.mqtt import connect, make_client

    faults = faults or FaultPlan.none()
    client = make_client(client_id)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    connect(client, host, port, durable=False)
    client.loop_start()
    cuts = {len(messages) * (i + 1) // (faults.broker_disconnects + 1) for i in range(faults.broker_disconnects)}
    pending = []
    try:
        for i, (_, topic, payload) in enumerate(messages):
            if i in cuts:
                for info in pending:
                    info.wait_for_publish(timeout_s)
                pending.clear()
                client.disconnect()
                client.loop_stop()
                time.sleep(0.2)
                connect(client, host, port, durable=False)
                client.loop_start()
                log.info("simulated broker disconnect after %d messages", i)
            pending.append(client.publish(topic, payload, qos=1))
            if len(pending) >= 500:
                for info in pending:
                    info.wait_for_publish(timeout_s)
                pending.clear()
        for info in pending:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise TimeoutError(f"broker {host}:{port} did not acknowledge a message within {timeout_s}s")
    finally:
        client.disconnect()
        client.loop_stop()
    return len(messages)
