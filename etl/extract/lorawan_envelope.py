"""Network-server uplink envelopes -> one :class:`Uplink`, whichever server sent it.

The same device bytes reach us wrapped by The Things Stack (TTN v3, also inside the
storage integration's ``{"result": ...}``), TTN v2, ChirpStack v4, ChirpStack v3 (which
the embedded network server of Milesight gateways speaks over HTTP), LORIOT and Helium.
Each envelope is recognised by keys only it has. ``ts`` is when the network server
received the uplink, the closest thing to the measurement time a LoRaWAN message carries.

The builders at the end produce envelopes shaped like the real samples, for the simulator.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from etl.timeutil import from_epoch_ms, parse_iso, utc
from quality.reasons import check

NETWORKS = ("ttn_v3", "chirpstack_v4", "chirpstack_v3", "ttn_v2", "loriot", "helium", "milesight_http")

_HEX_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")
_LORIOT_UPLINKS = {"rx", "gw"}


@dataclass(frozen=True)
class Uplink:
    """What every envelope boils down to: which device sent which bytes, and when."""

    dev_eui: str          # upper-case hex, 16 chars
    f_port: int | None
    payload: bytes
    ts: datetime          # UTC; the network server's received time
    network: str          # one of NETWORKS
    simulated: bool


class EnvelopeError(ValueError):
    """The message is not a usable uplink; ``reason`` is a quarantine code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = check(reason)
        self.detail = detail


# --- field readers -------------------------------------------------------------------


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _required(value: Any, field: str) -> Any:
    if value is None:
        raise EnvelopeError("bad_envelope", f"{field} is missing")
    return value


def _dev_eui(value: Any, field: str) -> str:
    """Hex as most servers send it, or base64 as ChirpStack v3's JSON marshaler does."""
    text = _required(value, field)
    if isinstance(text, str):
        compact = text.strip().replace("-", "").replace(":", "")
        if _HEX_EUI.match(compact):
            return compact.upper()
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 8:
            return raw.hex().upper()
    raise EnvelopeError("bad_envelope", f"{field} {value!r} is not a 64-bit EUI")


def _base64(value: Any, field: str) -> bytes:
    text = _required(value, field)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise EnvelopeError("bad_envelope", f"{field} is not base64: {exc}") from exc


def _hex(value: Any, field: str) -> bytes:
    text = _required(value, field)
    try:
        return bytes.fromhex(text)
    except (ValueError, TypeError) as exc:
        raise EnvelopeError("bad_envelope", f"{field} is not hex: {exc}") from exc


def _port(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise EnvelopeError("bad_envelope", f"{field} {value!r} is not a port 0..255")
    return value


def _iso_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise EnvelopeError("bad_timestamp", f"{field} is missing or empty")
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise EnvelopeError("bad_timestamp", f"{field} {value!r}: {exc}") from exc


def _epoch_ms_time(value: Any, field: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EnvelopeError("bad_timestamp", f"{field} {value!r} is not epoch milliseconds")
    try:
        return from_epoch_ms(value)
    except (OverflowError, OSError, ValueError) as exc:
        raise EnvelopeError("bad_timestamp", f"{field} {value!r}: {exc}") from exc


def _first_rx_time(rx_info: Any, *keys: str) -> Any:
    for rx in rx_info if isinstance(rx_info, list) else []:
        for key in keys:
            if _dig(rx, key):
                return rx[key]
    return None


# --- one parser per network server ---------------------------------------------------


def _ttn_v3(obj: dict[str, Any]) -> Uplink:
    up = obj.get("uplink_message")
    if not isinstance(up, dict):
        kinds = sorted(set(obj) - {"end_device_ids", "correlation_ids", "received_at"})
        raise EnvelopeError("bad_envelope", f"not an uplink message (has {kinds})")
    correlation = obj.get("correlation_ids") or []
    simulated = obj.get("simulated") is True or any("SimulateUplink" in str(c) for c in correlation)
    return Uplink(
        dev_eui=_dev_eui(_dig(obj, "end_device_ids", "dev_eui"), "end_device_ids.dev_eui"),
        f_port=_port(up.get("f_port"), "uplink_message.f_port"),
        payload=_base64(up.get("frm_payload"), "uplink_message.frm_payload"),
        ts=_iso_time(up.get("received_at") or obj.get("received_at"), "uplink_message.received_at"),
        network="ttn_v3",
        simulated=simulated,
    )


def _chirpstack_v4(obj: dict[str, Any]) -> Uplink:
    when = obj.get("time") or _first_rx_time(obj.get("rxInfo"), "nsTime", "time")
    return Uplink(
        dev_eui=_dev_eui(_dig(obj, "deviceInfo", "devEui"), "deviceInfo.devEui"),
        f_port=_port(obj.get("fPort"), "fPort"),
        payload=_base64(obj.get("data"), "data"),
        ts=_iso_time(when, "time"),
        network="chirpstack_v4",
        simulated=False,
    )


def _chirpstack_v3(obj: dict[str, Any]) -> Uplink:
    """ChirpStack v3 event; Milesight gateways' embedded server sends the same shape."""
    rx_info = obj.get("rxInfo")
    gateways = rx_info if isinstance(rx_info, list) else []
    milesight = any(isinstance(rx, dict) and "mac" in rx for rx in gateways)
    return Uplink(
        dev_eui=_dev_eui(obj.get("devEUI"), "devEUI"),
        f_port=_port(obj.get("fPort"), "fPort"),
        payload=_base64(obj.get("data"), "data"),
        ts=_iso_time(obj.get("time") or _first_rx_time(rx_info, "time"), "time"),
        network="milesight_http" if milesight else "chirpstack_v3",
        simulated=False,
    )


def _ttn_v2(obj: dict[str, Any]) -> Uplink:
    return Uplink(
        dev_eui=_dev_eui(obj.get("hardware_serial"), "hardware_serial"),
        f_port=_port(obj.get("port"), "port"),
        payload=_base64(obj.get("payload_raw"), "payload_raw"),
        ts=_iso_time(_dig(obj, "metadata", "time"), "metadata.time"),
        network="ttn_v2",
        simulated=False,
    )


def _loriot(obj: dict[str, Any]) -> Uplink:
    if obj.get("cmd") not in _LORIOT_UPLINKS:
        raise EnvelopeError("bad_envelope", f"LORIOT cmd {obj.get('cmd')!r} is not an uplink")
    if "data" not in obj and "encdata" in obj:
        raise EnvelopeError("bad_envelope", "LORIOT payload is encrypted (encdata): no application key")
    return Uplink(
        dev_eui=_dev_eui(obj.get("EUI"), "EUI"),
        f_port=_port(obj.get("port"), "port"),
        payload=_hex(obj.get("data"), "data"),
        ts=_epoch_ms_time(obj.get("ts"), "ts"),
        network="loriot",
        simulated=False,
    )


def _helium(obj: dict[str, Any]) -> Uplink:
    return Uplink(
        dev_eui=_dev_eui(obj.get("dev_eui"), "dev_eui"),
        f_port=_port(obj.get("port"), "port"),
        payload=_base64(obj.get("payload"), "payload"),
        ts=_epoch_ms_time(obj.get("reported_at"), "reported_at"),
        network="helium",
        simulated=False,
    )


Parser = Callable[[dict[str, Any]], Uplink]


def _detect(obj: dict[str, Any]) -> Parser:
    if "end_device_ids" in obj:
        return _ttn_v3
    if "deviceInfo" in obj:
        return _chirpstack_v4
    if "hardware_serial" in obj or "payload_raw" in obj:
        return _ttn_v2
    if "cmd" in obj and "EUI" in obj:
        return _loriot
    if "hotspots" in obj or ("dev_eui" in obj and "reported_at" in obj):
        return _helium
    if "devEUI" in obj:
        return _chirpstack_v3
    raise EnvelopeError("bad_envelope", f"not a known uplink envelope (keys {sorted(obj)[:12]})")


def _unwrap(obj: Any) -> dict[str, Any]:
    """The storage integration streams ``{"result": uplink}`` or ``{"error": ...}`` lines."""
    if not isinstance(obj, dict):
        raise EnvelopeError("bad_envelope", f"expected a JSON object, got {type(obj).__name__}")
    if set(obj) == {"error"}:
        raise EnvelopeError("api_error", f"network server error: {obj['error']!r}"[:500])
    if set(obj) == {"result"} and isinstance(obj["result"], dict):
        return obj["result"]
    return obj


def parse_uplink(obj: Any) -> Uplink:
    """Recognise the envelope and read device, port, bytes and time; raise EnvelopeError."""
    message = _unwrap(obj)
    return _detect(message)(message)


# --- builders for the simulator ------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KR920_CHANNELS_HZ = (922_100_000, 922_300_000, 922_500_000)


def _seed(*parts: Any) -> bytes:
    """Deterministic noise, so the simulator writes the same bytes on every re-run."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


def _ulid(ts: datetime, seed: bytes) -> str:
    value = (int(ts.timestamp() * 1000) << 80) | int.from_bytes(seed[:10], "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _iso_ns(ts: datetime, seed: bytes, suffix: str = "Z") -> str:
    """RFC 3339 with nanoseconds as the servers write them; the extra digits are noise."""
    nanos = int.from_bytes(seed[:2], "big") % 1000
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond:06d}{nanos:03d}{suffix}"


def _airtime_s(payload_len: int, spreading_factor: int = 7, bandwidth_hz: int = 125_000) -> float:
    """LoRa time on air (Semtech AN1200.13), 13 bytes of LoRaWAN framing, CR 4/5, CRC on."""
    symbol_s = (2 ** spreading_factor) / bandwidth_hz
    low_rate = 1 if spreading_factor >= 11 else 0
    bits = 8 * (payload_len + 13) - 4 * spreading_factor + 28 + 16
    symbols = 8 + max(math.ceil(bits / (4 * (spreading_factor - 2 * low_rate))) * 5, 0)
    return (12.25 + symbols) * symbol_s


def _radio(seed: bytes) -> dict[str, Any]:
    return {
        "rssi": -40 - seed[3] % 80,
        "snr": round(-7.5 + (seed[4] % 80) / 4, 2),
        "channel": seed[5] % len(KR920_CHANNELS_HZ),
        "counter": int.from_bytes(seed[6:10], "big"),
        "gateway_eui": seed[10:18].hex(),
    }


def ttn_v3_uplink(
    dev_eui: str, f_port: int, payload: bytes, ts: datetime, device_id: str, application_id: str,
    *, f_cnt: int = 0,
) -> dict[str, Any]:
    """A The Things Stack uplink as its webhook / storage integration delivers it."""
    ts = utc(ts)
    seed = _seed("ttn", dev_eui, f_port, payload.hex(), ts.isoformat())
    radio = _radio(seed)
    gateway_time = ts - timedelta(microseconds=15_000 + seed[20] * 100)
    app_time = ts + timedelta(microseconds=150_000 + seed[21] * 500)
    gateway_eui = radio["gateway_eui"].upper()
    frequency = str(KR920_CHANNELS_HZ[radio["channel"]])
    settings = {
        "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7, "coding_rate": "4/5"}},
        "frequency": frequency,
        "timestamp": radio["counter"],
        "time": _iso_ns(gateway_time, seed[22:], "Z"),
    }
    return {
        "end_device_ids": {
            "device_id": device_id,
            "application_ids": {"application_id": application_id},
            "dev_eui": dev_eui.upper(),
            "join_eui": "70B3D57ED0000000",
            "dev_addr": seed[24:28].hex().upper(),
        },
        "correlation_ids": [
            f"as:up:{_ulid(app_time, seed[1:])}",
            f"gs:uplink:{_ulid(gateway_time, seed[2:])}",
            f"ns:uplink:{_ulid(ts, seed[3:])}",
            f"rpc:/ttn.lorawan.v3.GsNs/HandleUplink:{_ulid(ts, seed[4:])}",
            f"rpc:/ttn.lorawan.v3.NsAs/HandleUplink:{_ulid(app_time, seed[5:])}",
        ],
        "received_at": _iso_ns(app_time, seed[6:]),
        "uplink_message": {
            "session_key_id": base64.b64encode(seed[:16]).decode(),
            "f_port": f_port,
            "f_cnt": f_cnt,
            "frm_payload": base64.b64encode(payload).decode(),
            "rx_metadata": [{
                "gateway_ids": {"gateway_id": f"eui-{gateway_eui.lower()}", "eui": gateway_eui},
                "time": settings["time"],
                "timestamp": radio["counter"],
                "rssi": radio["rssi"],
                "channel_rssi": radio["rssi"],
                "snr": radio["snr"],
                "uplink_token": base64.b64encode(seed[8:40]).decode(),
                "channel_index": radio["channel"],
                "received_at": _iso_ns(gateway_time + timedelta(milliseconds=2), seed[7:]),
            }],
            "settings": settings,
            "received_at": _iso_ns(ts, seed[9:]),
            "consumed_airtime": f"{_airtime_s(len(payload)):.6f}s",
            "network_ids": {"net_id": "000013", "tenant_id": "ttn", "cluster_id": "au1",
                            "cluster_address": "au1.cloud.thethings.network"},
        },
    }


def chirpstack_v4_uplink(
    dev_eui: str, f_port: int, payload: bytes, ts: datetime, device_name: str, application_id: str,
    *, f_cnt: int = 0,
) -> dict[str, Any]:
    """A ChirpStack v4 ``event/up`` message as published on MQTT (JSON encoding)."""
    ts = utc(ts)
    seed = _seed("chirpstack", dev_eui, f_port, payload.hex(), ts.isoformat())
    radio = _radio(seed)
    time = _iso_ns(ts, seed[12:], "+00:00")
    return {
        "deduplicationId": str(uuid.UUID(bytes=seed[:16], version=4)),
        "time": time,
        "deviceInfo": {
            "tenantId": str(uuid.UUID(bytes=_seed("tenant", application_id)[:16], version=4)),
            "tenantName": "ChirpStack",
            "applicationId": application_id,
            "applicationName": application_id,
            "deviceProfileId": str(uuid.UUID(bytes=_seed("profile", application_id)[:16], version=4)),
            "deviceProfileName": f"{application_id} devices",
            "deviceName": device_name,
            "devEui": dev_eui.lower(),
            "tags": {},
        },
        "devAddr": seed[24:28].hex(),
        "adr": True,
        "dr": 5,
        "fCnt": f_cnt,
        "fPort": f_port,
        "confirmed": False,
        "data": base64.b64encode(payload).decode(),
        "rxInfo": [{
            "gatewayId": radio["gateway_eui"],
            "uplinkId": radio["counter"] & 0xFFFF,
            "time": time,
            "rssi": radio["rssi"],
            "snr": radio["snr"],
            "channel": radio["channel"],
            "rfChain": radio["channel"] % 2,
            "location": {},
            "context": base64.b64encode(seed[28:32]).decode(),
            "metadata": {"region_common_name": "KR920", "region_config_id": "kr920"},
            "crcStatus": "CRC_OK",
        }],
        "txInfo": {
            "frequency": KR920_CHANNELS_HZ[radio["channel"]],
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}},
        },
    }
