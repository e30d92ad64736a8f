"""An MQTT broker for machines without one: amqtt, in-process on loopback.

Mosquitto is the real thing (and what durability is proven against); this only lets the demo
run where no broker is installed. amqtt relays QoS 1 but does not keep messages for a
disconnected persistent session, so publish after the extractor has subscribed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


def reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, port: int = 0):
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)

    def start(self) -> "EmbeddedBroker":
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "sys_interval": 0,
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        self._thread.start()

        async def boot() -> Any:
            broker = Broker(config)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout=15)
        log.info("embedded amqtt broker on 127.0.0.1:%d", self.port)
        return self

    def subscribed(self, client_id: str) -> bool:
        """Whether ``client_id`` is connected and has a subscription (amqtt internals)."""
        entry = self._broker._sessions.get(client_id) if self._broker else None
        if entry is None or entry[0].transitions.state != "connected":
            return False
        return any(sess is entry[0] for subs in self._broker._subscriptions.values() for sess, _ in subs)

    def publish_when_subscribed(self, client_id: str, messages: list, timeout_s: float = 300.0) -> threading.Thread:
        """Publish once ``client_id`` listens: amqtt drops messages for absent sessions."""
        from etl.simulate.mqtt_pub import publish

        def run() -> None:
            deadline = time.monotonic() + timeout_s
            while not self.subscribed(client_id) and time.monotonic() < deadline:
                time.sleep(0.05)
            publish(messages, "127.0.0.1", self.port, f"{client_id}-sim")

        thread = threading.Thread(target=run, name=f"publish-{client_id}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
