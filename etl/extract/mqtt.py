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

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from etl.extract.frames import DECODED, REJECTS, Frame, Rows, excerpt
from etl.timeutil import from_epoch_ms, parse_iso
from etl import duck

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


class MqttAuthError(ConnectionError):
    """The broker refused the login: wrong or missing CITYLAKE_MQTT_USERNAME / _PASSWORD."""


# CONNACK reason codes that no retry can fix (MQTT v5 0x86, 0x87, 0x8C; v3.1.1 4 and 5)
AUTH_FAILURES = frozenset({"Bad user name or password", "Not authorized", "Bad authentication method"})


def make_client(client_id: str, protocol: str | None = None, durable: bool = False, *,
                username: str | None = None, password: str | None = None) -> Any:
    """A paho client for the configured protocol ("5" or "3.1.1"), with the configured login.

    ``username``/``password`` override the settings (``mqtt_username``/``mqtt_password``);
    without a username the client connects anonymously.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from etl.settings import get_settings

    settings = get_settings()
    protocol = protocol or settings.mqtt_protocol
    if protocol == "5":
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv311, clean_session=not durable)
    if username is None:
        username, password = settings.mqtt_username, settings.mqtt_password
    if username:
        c.username_pw_set(username, password)
    return c


def refused(host: str, port: int, rc: Any, username: str | None) -> ConnectionError:
    """The error for a failed CONNACK: a login problem says which settings to check, never the password."""
    if rc is not None and str(rc) in AUTH_FAILURES:
        who = f"user {username!r}" if username else "an anonymous client (no CITYLAKE_MQTT_USERNAME)"
        return MqttAuthError(f"MQTT broker {host}:{port} refused the login of {who}: {rc}; "
                             "check CITYLAKE_MQTT_USERNAME / CITYLAKE_MQTT_PASSWORD")
    return ConnectionError(f"MQTT broker {host}:{port} refused or timed out the connection ({rc})")


def login_of(c: Any) -> str | None:
    """The username a paho client logs in with (None: anonymous)."""
    name = getattr(c, "_username", None)
    return name.decode() if isinstance(name, bytes) else name


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
    _pending: list[tuple[int, int, int]] = field(default_factory=list)  # (connection, mid, qos)
    _connection: list[int] = field(default_factory=lambda: [0])       # current connection number

    def ack_and_close(self) -> None:
        """Acknowledge everything received (call after the batch is landed).

        Only messages received on the current connection are acknowledged: after a reconnect
        (a broker restart) packet ids start over, so acknowledging an old id could acknowledge
        a message this batch does not hold. The broker redelivers the others, which the next
        batch lands again and silver counts as duplicates.
        """
        current = self._connection[0]
        stale = 0
        for conn, mid, qos in self._pending:
            if conn == current and self.client.is_connected():
                self.client.ack(mid, qos)
            else:
                stale += 1
        if stale:
            log.warning("%d messages not acknowledged (received before a reconnect, or the broker is gone); "
                        "they are redelivered and counted as duplicates", stale)
        self._barrier()
        self.close()

    def _barrier(self, timeout_s: float = 30.0) -> None:
        """Wait until the broker has processed the PUBACKs sent so far.

        A broker handles one connection's packets in order, so the answer to an UNSUBSCRIBE
        sent after the PUBACKs proves they were read. Without it, a busy broker may still hold
        them unread when the next run connects with the same client id and takes the session
        over: the old connection and its unread PUBACKs are dropped, and every message comes back.
        """
        if not self.client.is_connected():
            return
        done = threading.Event()
        self.client.on_unsubscribe = lambda *args: done.set()
        rc, _ = self.client.unsubscribe(f"$citylake-ack-barrier/{self.client._client_id.decode()}")
        if rc != 0 or not done.wait(timeout_s):
            log.warning("the broker did not confirm the acknowledgements within %.0fs; some messages may be "
                        "redelivered (and counted as duplicates)", timeout_s)

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def drain(host: str, port: int, topic: str, client_id: str, *, idle_s: float = 1.5,
          max_messages: int = 1_000_000, connect_timeout_s: float = 10.0) -> Drain:
    """Connect with the persistent session, subscribe, and collect until the queue is idle.

    If the broker goes away mid-drain (a restart), paho reconnects to the same session and the
    drain goes on; idle time counts only while connected. A broker gone longer than
    ``connect_timeout_s`` ends the drain with what was received (not acknowledged: redelivered).
    """
    client = make_client(client_id, durable=True)
    client.manual_ack_set(True)
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    connected = threading.Event()
    lock = threading.Lock()
    state: dict[str, Any] = {"last": time.monotonic(), "rc": None, "down_since": None}
    out = Drain(client)

    def on_connect(c: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        state["rc"] = rc
        if not rc.is_failure:
            with lock:
                if connected.is_set():
                    out._connection[0] += 1
                    log.warning("reconnected to MQTT broker %s:%s (session present: %s)", host, port,
                                getattr(flags, "session_present", "?"))
                state["down_since"], state["last"] = None, time.monotonic()
            c.subscribe(topic, qos=1)
        connected.set()

    def on_disconnect(c: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        with lock:
            if not state.get("closed") and state["down_since"] is None:
                state["down_since"] = time.monotonic()
                log.warning("MQTT broker %s:%s went away mid-drain (%s); reconnecting", host, port, rc)

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        with lock:
            if state.get("closed"):  # after the drain: leave it un-acked, the broker redelivers it
                return
            out.frames.append(Frame(body=msg.payload, meta={"topic": msg.topic, "dup": bool(msg.dup)},
                                    seq=len(out.frames)))
            out._pending.append((out._connection[0], msg.mid, msg.qos))
            state["last"] = time.monotonic()

    client.on_connect, client.on_message, client.on_disconnect = on_connect, on_message, on_disconnect
    try:
        connect(client, host, port, durable=True)
    except OSError as exc:
        raise ConnectionError(f"MQTT broker {host}:{port} unreachable: {exc}") from exc
    client.loop_start()
    if not connected.wait(connect_timeout_s) or state["rc"] is None or state["rc"].is_failure:
        out.close()
        raise refused(host, port, state["rc"], login_of(client))
    state["last"] = time.monotonic()
    while len(out.frames) < max_messages:
        now = time.monotonic()
        with lock:
            down, last = state["down_since"], state["last"]
        if down is not None and now - down > connect_timeout_s:
            log.warning("MQTT broker %s:%s still gone after %.0fs: ending the drain", host, port, now - down)
            break
        if down is None and now - last >= idle_s:
            break
        time.sleep(0.05)
    with lock:
        state["closed"] = True  # only what is in this batch gets acknowledged
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
    return decode_table(frame_table(frames), decoder)


def frame_table(frames: list[Frame]) -> pa.Table:
    """Frames as landed (``seq``, ``body`` as text, or ``body_b64`` when the bytes are not UTF-8)."""
    seq, body, b64 = [], [], []
    for f in frames:
        seq.append(f.seq)
        try:
            body.append(f.body.decode("utf-8")), b64.append(None)
        except UnicodeDecodeError:
            body.append(None), b64.append(base64.b64encode(f.body).decode("ascii"))
    return pa.table({"seq": pa.array(seq, pa.int32()), "body": pa.array(body, pa.string()),
                     "body_b64": pa.array(b64, pa.string())})


def decode_table(frames: pa.Table, decoder: str, *, encoded: bool = False) -> tuple[pa.Table, pa.Table]:
    """:func:`decode` over a frame table, vectorised.

    DuckDB reads every payload that is plainly a flat JSON object with well-typed fields in
    one pass; any other frame (not JSON, a string where a number belongs, a null, a
    duplicate key, an escape sequence, ...) goes through the per-message decoder below, so
    the result is the same as decoding each message in Python, only faster. ``encoded``
    leaves ``ref``, ``metric`` and ``unit`` dictionary-encoded (same values, no copies).
    """
    fast, slow = _decode_fast(frames, decoder, encoded)
    rows, rejects = _decode_python([_frame(r) for r in slow.to_pylist()], decoder)
    if rows.num_rows == 0:
        return fast, rejects
    if encoded:
        rows = pa.table({f.name: pc.dictionary_encode(rows[f.name]) if pa.types.is_dictionary(f.type) else rows[f.name]
                         for f in fast.schema}, schema=fast.schema)
    merged = pa.concat_tables([fast, rows]).unify_dictionaries()
    return merged.take(pc.sort_indices(merged["frame"])), rejects  # stable: fields keep their order


def _frame(row: dict[str, Any]) -> Frame:
    body = row["body"].encode("utf-8") if row["body"] is not None else base64.b64decode(row["body_b64"])
    return Frame(body=body, seq=row["seq"])


# -- the fast path ------------------------------------------------------------------------------
_WS = "[ \\t\\n\\r]*"


def _unusual(decoder: str) -> str:
    """A regex matching the payloads the fast path must leave to Python: JSON that DuckDB accepts
    and Python does not (trailing commas, nan/inf spelled other ways), duplicate keys of ours
    (Python keeps the last), and fields of ours whose type needs Python's rules."""
    id_field, ts_field, _, fields = DECODERS[decoder]
    ours = [id_field, ts_field, "unit", "status", *fields]
    values = "|".join(fields)
    ts_rule = (f'"{ts_field}"{_WS}:{_WS}([^0-9 \\t\\n\\r]|[0-9]+[.eE])' if decoder == "streetlight"
               else f'"{ts_field}"{_WS}:{_WS}[^" \\t\\n\\r]')
    alternatives = [
        f"[:,\\[]{_WS}-?(?i:nan|inf)",                              # non-standard literals
        f",{_WS}[}}\\]]",                                             # trailing commas
        f'"(?:{values})"{_WS}:{_WS}[n"\\[{{]',                         # null, string, array, object values
        f'"{id_field}"{_WS}:{_WS}(?:[^" \\t\\n\\r]|"")',             # device id not a non-empty string
        ts_rule,                                                        # time not in the usual type
        f'"(?:unit|status)"{_WS}:{_WS}[^"n \\t\\n\\r]',             # unit, status neither text nor null
        *[f'"{k}".*"{k}"' for k in ours],                               # a key of ours twice
    ]
    return "|".join(f"(?:{a})" for a in alternatives)


_ISO = ("^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?"
        "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")


def _fast_sql(decoder: str) -> str:
    id_field, ts_field, _, fields = DECODERS[decoder]
    spec = {id_field: "VARCHAR", ts_field: "BIGINT" if decoder == "streetlight" else "VARCHAR",
            "unit": "VARCHAR", "status": "VARCHAR", **{k: "DOUBLE" for k in fields}}
    spec_text = json.dumps(spec, separators=(",", ":"))
    if decoder == "streetlight":  # epoch ms, within the range where ms / 1000.0 keeps every microsecond
        ts = f"CASE WHEN j.{ts_field} BETWEEN 0 AND 4294967295999 THEN j.{ts_field} * 1000 END"
    else:
        t = f"j.{ts_field}"
        ts = (f"CASE WHEN regexp_full_match({t}, '{_ISO}') THEN "
              f"epoch_us(try_strptime({t}[1:19], '%Y-%m-%dT%H:%M:%S'))"
              f" + coalesce(rpad(regexp_extract({t}, '\\.([0-9]+)', 1)[1:6], 6, '0')::BIGINT, 0)"
              f" - CASE WHEN {t}[-1:] = 'Z' THEN 0 ELSE (CASE WHEN {t}[-6:-6] = '-' THEN -1 ELSE 1 END)"
              f" * ({t}[-5:-4]::BIGINT * 60 + {t}[-2:]::BIGINT) * 60000000 END END")
    values = ", ".join(f'j."{k}" AS "v_{k}"' for k in fields)
    return f"""
WITH f AS (
  SELECT pos, body, body IS NOT NULL AND NOT contains(body, '\\') AND json_valid(body)
         AND ltrim(body, ' \t\n\r')[1] = '{{' AND NOT regexp_matches(body, $unusual) AS plain
  FROM frames
),
p AS (SELECT pos, plain, CASE WHEN plain THEN json_transform(body, '{spec_text}') END AS j FROM f),
q AS (SELECT pos, plain, j."{id_field}" AS ref, {ts} AS ts_us, nullif(j.unit, '') AS unit, j.status AS status,
             {values} FROM p)
SELECT * EXCLUDE (plain), plain AND ref IS NOT NULL AND ts_us IS NOT NULL AS ok FROM q
"""




def _decode_fast(frames: pa.Table, decoder: str, encoded: bool) -> tuple[pa.Table, pa.Table]:
    """(DECODED rows of the plain frames, the other frames for the Python decoder)."""
    import numpy as np

    _, _, _, fields = DECODERS[decoder]
    con = duck.process_cursor()
    try:
        con.register("frames", frames.select(["body"]).append_column("pos", pa.array(np.arange(frames.num_rows))))
        out = con.execute(_fast_sql(decoder), {"unusual": _unusual(decoder)}).to_arrow_table()
    finally:
        con.close()
    pos = out["pos"].to_numpy()
    if len(pos) and np.any(pos[1:] < pos[:-1]):  # DuckDB keeps scan order; should it ever not
        out = out.take(pa.array(np.argsort(pos, kind="stable")))
    ok = out["ok"].to_numpy(zero_copy_only=False)
    slow = frames.filter(pa.array(~ok)).select(["seq", "body", "body_b64"])
    good = out.filter(pa.array(ok)).append_column("seq", frames["seq"].filter(pa.array(ok))).combine_chunks()
    n, keys = good.num_rows, list(fields)
    present = np.column_stack([pc.is_valid(good[f"v_{k}"]).to_numpy(zero_copy_only=False) for k in keys]) \
        if n else np.zeros((0, len(keys)), bool)
    flat = np.flatnonzero(present.ravel())
    at, field = pa.array((flat // len(keys)).astype(np.int32)), pa.array((flat % len(keys)).astype(np.int32))
    values = np.column_stack([good[f"v_{k}"].to_numpy(zero_copy_only=False) for k in keys]).ravel()[flat] \
        if n else np.zeros(0)

    def strings(indices: pa.Array, dictionary: pa.Array) -> pa.Array:
        return pa.DictionaryArray.from_arrays(indices, dictionary) if encoded else dictionary.take(indices)

    unit = strings(field, pa.array([fields[k][1] for k in keys]))
    if decoder == "airsensor" and good["unit"].null_count < n:  # a declared unit replaces the table's
        declared = good["unit"].take(at)
        unit = pc.if_else(pc.is_valid(declared), declared, unit.cast(pa.string()))
    status = good["status"]
    decoded = pa.table({
        "ref": strings(at, good["ref"].chunk(0) if n else pa.array([], pa.string())),
        "metric": strings(field, pa.array([fields[k][0] for k in keys])),
        "ts": pc.cast(good["ts_us"].take(at), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "value": pa.array(values, pa.float64()), "unit": unit,
        "src_flag": pa.nulls(len(flat), pa.string()) if status.null_count == n else status.take(at),
        "subject": pa.nulls(len(flat), pa.string()), "frame": good["seq"].take(at).cast(pa.int32()),
    })
    return (decoded if encoded else decoded.cast(DECODED)), slow


# -- the per-message decoder (and the reference for the fast path) ----------------------------
def _decode_python(frames: list[Frame], decoder: str) -> tuple[pa.Table, pa.Table]:
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
        except (KeyError, ValueError, TypeError, OverflowError, OSError) as exc:
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
            rows.add(ref=ref, metric=metric, ts=ts, value=value,
                     unit=_text(unit_override) if unit_override and decoder == "airsensor" else unit,
                     src_flag=_text(obj.get("status")), frame=f.seq)
    return rows.table(), rejects.table()


def _text(value: Any) -> str | None:
    """A payload value for a text column: strings as sent, anything else as its JSON."""
    return value if value is None or isinstance(value, str) else json.dumps(value)
