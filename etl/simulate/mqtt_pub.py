"""Publishes gateway messages to an MQTT broker at QoS 1, as device gateways do.

A message counts as sent only once the broker acknowledged it (PUBACK). When the broker goes
away (a restart), paho reconnects by itself and sends again every message it holds no PUBACK
for, with DUP set; so a message the broker did take but whose PUBACK was lost arrives twice,
and the ingest counts the second copy as a duplicate. Nothing unacknowledged is dropped.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any, Callable

from etl.simulate.faults import FaultPlan

log = logging.getLogger(__name__)

BATCH = 500  # messages in flight before waiting for their PUBACKs (well below the 65535 packet ids)


class _Acks:
    """PUBACKs received, by packet id, and the last CONNACK (paho callbacks)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.mids: set[int] = set()
        self.at: dict[int, float] = {}  # packet id -> time.monotonic() of its PUBACK
        self.rc: Any = None  # the last CONNACK's reason code

    def on_publish(self, c: Any, userdata: Any, mid: int, rc: Any = None, props: Any = None) -> None:
        with self.cond:
            self.mids.add(mid)
            self.at[mid] = time.monotonic()
            self.cond.notify_all()

    def on_connect(self, c: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        with self.cond:
            self.rc = rc
            self.cond.notify_all()


def publish(messages: list[tuple[datetime, str, bytes]], host: str, port: int, client_id: str,
            faults: FaultPlan | None = None, timeout_s: float = 30.0,
            on_ack: Callable[[int, float], None] | None = None) -> int:
    """Send every message and wait for its PUBACK; ``broker_disconnects`` drops the link mid-way.

    TimeoutError when some message is still unacknowledged ``timeout_s`` after the last progress
    (the broker stayed away); MqttAuthError when the broker refuses the login. ``on_ack`` is
    told (message index, time.monotonic() of its PUBACK) for every message, batch by batch.
    """
    from etl.extract.mqtt import connect, login_of, make_client, refused

    faults = faults or FaultPlan.none()
    client = make_client(client_id)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    acks = _Acks()
    client.on_publish, client.on_connect = acks.on_publish, acks.on_connect
    _connect(client, host, port, timeout_s, connect)
    client.loop_start()
    cuts = {len(messages) * (i + 1) // (faults.broker_disconnects + 1) for i in range(faults.broker_disconnects)}
    pending: list[tuple[int, int]] = []  # (packet id, message index)
    try:
        _wait_connack(client, host, port, acks, timeout_s, refused, login_of)
        for i, (_, topic, payload) in enumerate(messages):
            if i in cuts:
                _wait_acked(pending, acks, host, port, timeout_s, on_ack)
                client.disconnect()
                client.loop_stop()
                time.sleep(0.2)
                with acks.cond:
                    acks.rc = None
                connect(client, host, port, durable=False)
                client.loop_start()
                _wait_connack(client, host, port, acks, timeout_s, refused, login_of)
                log.info("simulated broker disconnect after %d messages", i)
            pending.append((client.publish(topic, payload, qos=1).mid, i))  # paho queues it while disconnected
            if len(pending) >= BATCH:
                _wait_acked(pending, acks, host, port, timeout_s, on_ack)
        _wait_acked(pending, acks, host, port, timeout_s, on_ack)
    finally:
        client.disconnect()
        client.loop_stop()
    return len(messages)


def _connect(client: Any, host: str, port: int, timeout_s: float, connect: Any) -> None:
    """The first connection, retried while the broker is not listening yet (a restart)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connect(client, host, port, durable=False)
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ConnectionError(f"MQTT broker {host}:{port} unreachable: {exc}") from exc
            time.sleep(0.5)


def _wait_connack(client: Any, host: str, port: int, acks: _Acks, timeout_s: float, refused: Any,
                  login_of: Any) -> None:
    with acks.cond:
        acks.cond.wait_for(lambda: acks.rc is not None, timeout_s)
        rc = acks.rc
    if rc is None or rc.is_failure:
        raise refused(host, port, rc, login_of(client))


def _wait_acked(pending: list[tuple[int, int]], acks: _Acks, host: str, port: int, timeout_s: float,
                on_ack: Callable[[int, float], None] | None) -> None:
    """Block until every packet id in ``pending`` is acknowledged, then forget them."""
    want = {mid for mid, _ in pending}
    with acks.cond:
        last, progress = len(want - acks.mids), time.monotonic()
        while want - acks.mids:
            if acks.rc is not None and acks.rc.is_failure:
                raise ConnectionError(f"MQTT broker {host}:{port} refused the reconnection ({acks.rc})")
            acks.cond.wait(0.2)
            left = len(want - acks.mids)
            if left < last:
                last, progress = left, time.monotonic()
            elif time.monotonic() - progress > timeout_s:
                raise TimeoutError(f"broker {host}:{port} did not acknowledge {left} messages within {timeout_s}s")
        acks.mids -= want
        at = {mid: acks.at.pop(mid) for mid in want}
    if on_ack is not None:
        for mid, index in pending:
            on_ack(index, at[mid])
    pending.clear()
