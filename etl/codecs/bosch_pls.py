"""Bosch Parking Lot Sensor (TPS110): parking status, heartbeat and start-up uplinks.

Follows the decoder in TTN's Device Repository (``vendor/bosch/tpl110-0292.js``), whose
keys it keeps. ThingsBoard's converter reads the same start-up bytes differently: it
prints the firmware version in reverse byte order and names reset causes its own way.
"""
from __future__ import annotations

import struct
from typing import Any

from etl.codecs import CodecError

PORT_STATUS = 1
PORT_HEARTBEAT = 2
PORT_STARTUP = 3
PORT_DEBUG = 6
STARTUP_LENGTH = 17

RESET_CAUSES = {1: "watchdog", 2: "power on", 3: "system request", 4: "other"}

# Service messages without a measurement: only their type and bytes are kept.
SERVICE_PORTS = {4: "device information", 5: "device usage"}


def _occupied(byte: int) -> bool:
    return byte & 0x01 == 0x01


def _expect_length(payload: bytes, allowed: tuple[int, ...], what: str) -> None:
    if len(payload) not in allowed:
        raise CodecError(f"{what} has {len(payload)} bytes, expected {' or '.join(map(str, allowed))}")


def _status(payload: bytes) -> dict[str, Any]:
    _expect_length(payload, (1,), "parking status")
    return {"type": "parking status", "occupied": _occupied(payload[0])}


def _heartbeat(payload: bytes) -> dict[str, Any]:
    _expect_length(payload, (1, 2), "heartbeat")
    decoded: dict[str, Any] = {"type": "heartbeat", "occupied": _occupied(payload[0])}
    if len(payload) == 2:
        decoded["temperature"] = struct.unpack("<b", payload[1:2])[0]
    return decoded


def _startup(payload: bytes) -> dict[str, Any]:
    _expect_length(payload, (STARTUP_LENGTH,), "start-up message")
    codes = [((payload[i + 1] & 0x0F) << 8) | payload[i] for i in (0, 4, 8)]
    return {
        "type": "startup",
        "debugCodes": [code for code in codes if code],
        "firmwareVersion": f"{payload[12]}.{payload[13]}.{payload[14]}",
        "resetCause": RESET_CAUSES.get(payload[15], "unknown"),
        "occupied": _occupied(payload[16]),
    }


def _debug(payload: bytes) -> dict[str, Any]:
    if len(payload) < 10:
        raise CodecError(f"debug message has {len(payload)} bytes, expected at least 10")
    timestamp, code, sequence = struct.unpack("<IH2xH", payload[:10])
    return {"type": "debug", "timestamp": timestamp, "debugCode": code & 0x0FFF, "sequenceNumber": sequence}


def decode(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode by fPort: 1 status, 2 heartbeat, 3 start-up, 4-5 service info, 6 debug."""
    if f_port == PORT_STATUS:
        return _status(payload)
    if f_port == PORT_HEARTBEAT:
        return _heartbeat(payload)
    if f_port == PORT_STARTUP:
        return _startup(payload)
    if f_port in SERVICE_PORTS:
        return {"type": SERVICE_PORTS[f_port], "raw": payload.hex()}
    if f_port == PORT_DEBUG:
        return _debug(payload)
    raise CodecError(f"fPort {f_port} is not a Bosch parking sensor port")


def encode_status(occupied: bool) -> tuple[int, bytes]:
    return PORT_STATUS, bytes([int(occupied)])


def encode_heartbeat(occupied: bool, temperature_c: int) -> tuple[int, bytes]:
    if not -128 <= temperature_c <= 127:
        raise ValueError(f"temperature {temperature_c} °C does not fit in int8")
    return PORT_HEARTBEAT, bytes([int(occupied)]) + struct.pack("<b", temperature_c)
