"""An MQTT broker for machines without one: amqtt, in-process on loopback.

Mosquitto is the real thing (and what durability is proven against); this only lets the demo
run where no broker is installed. amqtt relays QoS 1 but does not keep messages for a
disconnected persistent session, so publish after the extractor has subscribed.
:class:`Mosquitto` runs a private Mosquitto process for tests that kill or reconfigure a broker.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from pathlib import Path
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


class Mosquitto:
    """A private Mosquitto process on a free loopback port, for fault and auth tests.

    ``persistence true`` in its own directory, saved after every change (``save_every_change``),
    so a SIGKILLed broker restarts with its durable sessions and queued messages as far as its
    last save. The system broker on 1883 is never touched.
    """

    BINARY = "/usr/sbin/mosquitto"

    def __init__(self, workdir: Path, *, port: int = 0, extra: tuple[str, ...] = (), save_every_change: bool = True):
        self.workdir, self.port, self.extra = workdir, port or free_port(), extra
        self.save_every_change = save_every_change  # False: a save a minute (faster with deep queues)
        self.proc: Any = None

    def config(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        import getpass

        # run as whoever runs the test (as root, Mosquitto would switch to user "mosquitto",
        # which cannot write a private temporary directory)
        lines = [f"listener {self.port} 127.0.0.1", f"user {getpass.getuser()}", "persistence true", f"persistence_location {data}/",
                 *(["autosave_on_changes true", "autosave_interval 1"] if self.save_every_change else []),
                 "max_queued_messages 0",
                 "max_inflight_messages 0", "persistent_client_expiration 1d", "log_dest stderr",
                 "log_type error", "log_type warning", *self.extra]
        if not any(line.startswith("allow_anonymous") for line in self.extra):
            lines.append("allow_anonymous true")
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout_s: float = 10.0) -> "Mosquitto":
        import subprocess

        self.workdir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([self.BINARY, "-c", str(self.config())], stdout=log_file, stderr=log_file)
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while not reachable("127.0.0.1", self.port, 0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on {self.port}: {self.log()[-2000:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final save of the persistence file."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""
