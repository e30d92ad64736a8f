"""MQTT gateway adapter: streetlight controllers and low-cost air sensors.

How no message is lost while no task runs: the extractor is an MQTT v5 client with a fixed
client id, ``clean_start=False`` and a session expiry of a week, subscribed at QoS 1. The
broker keeps its subscription and queues messages between runs. A run drains the queue,
lands the batch, and only then acknowledges (manual PUBACK). A crash before the landing
commit leaves the messages un-acked, so the broker redelivers them to the next run; a crash
after landing but before the acks makes the broker redeliver messages that silver then
counts as duplicates. The broker must queue enough for the gap between runs (Mosquitto:
``max_queued_messages``, default 1000 per client; infra/mosquitto.conf raises it).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

from etl.extract.frames import DECODED, REJECTS, Frame, Rows, excerpt
from etl.timeutil import from_epoch_ms, parse_iso

log = logging.getLogger(__name__)

# payload field -> (metric, unit as sent)
STREETLIGHT_FIELDS: dict[str, tuple[str, str]] = {
    "on": ("lamp_on", "bool"),
    "power_w": ("power", "W"),
    "power_kw": ("power", "kW"),
    "dim": ("dimming", "%"),
    "fault": ("fault_code", "code"),
}
AIRSENSOR_FIELDS: dict[str, tuple[str, str]] = {
    "pm10": ("pm10", "ug/m3"),
    "pm2_5": ("pm25", "ug/m3"),
}
# decoder name -> (device-id field, time field, time parser, field table)
DECODERS: dict[str, tuple[str, str, Callable[[Any], Any], dict[str, tuple[str, str]]]] = {
    "streetlight": ("id", "ts", lambda v: from_epoch_ms(int(v)), STREETLIGHT_FIELDS),
    "airsensor": ("sensor", "time", lambda v: parse_iso(str(v)), AIRSENSOR_FIELDS),
}

SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 65535


def make_client(client_id: str, protocol: str | None = None, durable: bool = False) -> Any:
    """A paho client for the configured protocol ("5" or "3.1.1")."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from etl.settings import get_settings

    protocol = protocol or get_settings().mqtt_protocol
    if protocol == "5":
        return mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    return mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=mqtt.MQTTv311, clean_session=not durable)


def connect(c: Any, host: str, port: int, durable: bool) -> None:
    """Connect; a durable MQTT v5 session survives a week without the client."""
    if c._protocol == 5:
        c.connect(host, port, clean_start=not durable, properties=_connect_props() if durable else None)
    else:
        c.connect(host, port)


def _connect_props() -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


@dataclass
class Drain:
    """Messages received in one run, not yet acknowledged."""
    client: Any
    frames: list[Frame] = field(default_factory=list)
    _pending: list[tuple[int, int]] = field(default_factory=list)

    def ack_and_close(self) -> None:
        """Acknowledge everything received (call after the batch is landed)."""
        for mid, qos in self._pending:
            self.client.ack(mid, qos)
        time.sleep(0.2)  # let the network loop flush the PUBACKs
        self.close()

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def drain(host: str, port: int, topic: str, client_id: str, *, idle_s: float = 1.5,
          max_messages: int = 1_000_000, connect_timeout_s: float = 10.0) -> Drain:
    """Connect with the persistent session, subscribe, and collect until the queue is idle."""
    client = make_client(client_id, durable=True)
    client.manual_ack_set(True)
    connected = threading.Event()
    lock = threading.Lock()
    state = {"last": time.monotonic(), "rc": None}
    out = Drain(client)

    def on_connect(c: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        state["rc"] = rc
        if not rc.is_failure:
            c.subscribe(topic, qos=1)
        connected.set()

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        with lock:
            out.frames.append(Frame(body=msg.payload, meta={"topic": msg.topic, "dup": bool(msg.dup)},
                                    seq=len(out.frames)))
            out._pending.append((msg.mid, msg.qos))
            state["last"] = time.monotonic()

    client.on_connect, client.on_message = on_connect, on_message
    try:
        connect(client, host, port, durable=True)
    except OSError as exc:
        raise ConnectionError(f"MQTT broker {host}:{port} unreachable: {exc}") from exc
    client.loop_start()
    if not connected.wait(connect_timeout_s) or state["rc"] is None or state["rc"].is_failure:
        out.close()
        raise ConnectionError(f"MQTT broker {host}:{port} refused or timed out the connection ({state['rc']})")
    state["last"] = time.monotonic()
    while time.monotonic() - state["last"] < idle_s and len(out.frames) < max_messages:
        time.sleep(0.05)
    with lock:
        log.info("drained %d messages from %s as %s", len(out.frames), topic, client_id)
        out.frames.sort(key=lambda f: f.seq)
    return out


def reset_session(host: str, port: int, client_id: str) -> None:
    """Discard a durable session and its queue (demo resets only; never in production)."""
    c = make_client(client_id)
    done = threading.Event()
    c.on_connect = lambda *a, **k: done.set()
    if c._protocol == 5:
        c.connect(host, port, clean_start=True)
    else:
        c.connect(host, port)
    c.loop_start()
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def ensure_session(host: str, port: int, topic: str, client_id: str) -> None:
    """Register the durable subscription (done once at deploy; harmless to repeat)."""
    d = drain(host, port, topic, client_id, idle_s=0.2, max_messages=0)
    d.close()  # un-acked messages stay queued for the next real run


def decode(frames: list[Frame], decoder: str) -> tuple[pa.Table, pa.Table]:
    """Each payload field in the table becomes one reading; bad payloads become rejects."""
    id_field, ts_field, parse_ts, fields = DECODERS[decoder]
    rows, rejects = Rows(DECODED), Rows(REJECTS)
    for f in frames:
        try:
            obj = json.loads(f.body)
            if not isinstance(obj, dict):
                raise ValueError("payload is not a JSON object")
        except ValueError as exc:
            rejects.add(frame=f.seq, reason="malformed_json", detail=str(exc)[:200], raw=excerpt(f.body))
            continue
        ref = obj.get(id_field)
        if not isinstance(ref, str) or not ref:
            rejects.add(frame=f.seq, reason="bad_envelope", detail=f"no {id_field!r} in payload", raw=excerpt(f.body))
            continue
        try:
            ts = parse_ts(obj[ts_field])
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            present = [m for k, (m, _) in fields.items() if k in obj] or [None]
            for metric in present:
                rejects.add(frame=f.seq, reason="bad_timestamp", detail=f"{ts_field}: {exc}", ref=ref, metric=metric,
                            raw=excerpt(f.body))
            continue
        unit_override = obj.get("unit")
        for key, (metric, unit) in fields.items():
            if key not in obj:
                continue
            raw = obj[key]
            if isinstance(raw, bool):
                raw = float(raw)
            if raw is None:
                rows.add(ref=ref, metric=metric, ts=ts, value=None, unit=unit, frame=f.seq)
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                rejects.add(frame=f.seq, reason="bad_value", detail=f"{key}={raw!r}", ref=ref, metric=metric, ts=ts,
                            raw=excerpt(f.body))
                continue
            rows.add(ref=ref, metric=metric, ts=ts, value=value, unit=unit_override if unit_override and decoder == "airsensor" else unit,
                     src_flag=obj.get("status"), frame=f.seq)
    return rows.table(), rejects.table()
