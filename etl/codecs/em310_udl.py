"""Milesight EM310-UDL ultrasonic fill-level sensor (smart bins).

The uplink is Milesight's channel format: a run of ``channel id, channel type, value``
records, multi-byte values little-endian. Field names follow Milesight's own decoder
(``position``); TTN's Device Repository vector calls the same field ``tilt``. The fPort is
not part of the format (data comes on 85, but ThingsBoard's LORIOT sample uses 207).
"""
from __future__ import annotations

import struct
from typing import Any, Callable

from etl.codecs import CodecError

F_PORT = 85

POSITIONS = {0: "normal", 1: "tilt"}
LORAWAN_CLASSES = {0: "Class A", 1: "Class B", 2: "Class C", 3: "Class CtoB"}
ALARM_CONDITIONS = {0: "disable", 1: "below", 2: "above", 3: "between", 4: "outside"}

Reader = Callable[[bytes], Any]


def _lookup(table: dict[int, str], what: str) -> Reader:
    def read(value: bytes) -> str:
        if value[0] not in table:
            raise CodecError(f"unknown {what} 0x{value[0]:02x}")
        return table[value[0]]
    return read


def _u8(value: bytes) -> int:
    return value[0]


def _u16(value: bytes) -> int:
    return struct.unpack("<H", value)[0]


def _alarm_config(value: bytes) -> dict[str, Any]:
    threshold_min, threshold_max, lock_time, continue_time = struct.unpack("<hhHH", value[1:])
    return {
        "condition": _lookup(ALARM_CONDITIONS, "alarm condition")(bytes([value[0] & 0x07])),
        "alarm_release_enable": "enable" if value[0] & 0x80 else "disable",
        "threshold_min": threshold_min,
        "threshold_max": threshold_max,
        "lock_time": lock_time,
        "continue_time": continue_time,
    }


# (channel id, channel type) -> (field, value length, reader). Reset and power-on events carry
# a placeholder byte: the event is the channel itself, as in Milesight's decoder.
CHANNELS: dict[tuple[int, int], tuple[str, int, Reader]] = {
    (0x01, 0x75): ("battery", 1, _u8),
    (0x03, 0x82): ("distance", 2, _u16),
    (0x04, 0x00): ("position", 1, _lookup(POSITIONS, "position")),
    (0xFF, 0x01): ("ipso_version", 1, lambda v: f"v{v[0] >> 4}.{v[0] & 0x0F}"),
    (0xFF, 0x09): ("hardware_version", 2, lambda v: f"v{v[0]:x}.{v[1] >> 4}"),
    (0xFF, 0x0A): ("firmware_version", 2, lambda v: f"v{v[0]:x}.{v[1]:x}"),
    (0xFF, 0xFF): ("tsl_version", 2, lambda v: f"v{v[0]}.{v[1]}"),
    (0xFF, 0x16): ("sn", 8, lambda v: v.hex()),
    (0xFF, 0x0F): ("lorawan_class", 1, _lookup(LORAWAN_CLASSES, "LoRaWAN class")),
    (0xFF, 0xFE): ("reset_event", 1, lambda v: "reset"),
    (0xFF, 0x0B): ("device_status", 1, lambda v: "on"),
}

# Answers to downlink commands, on channel 0xFE or 0xFF, keyed by channel type.
RESPONSES: dict[int, tuple[str, int, Reader]] = {
    0x10: ("reboot", 1, lambda v: "yes"),
    0x02: ("collection_interval", 2, _u16),
    0x03: ("report_interval", 2, _u16),
    0x06: ("distance_alarm_config", 9, _alarm_config),
}


def _channel(channel_id: int, channel_type: int) -> tuple[str, int, Reader]:
    if (channel_id, channel_type) in CHANNELS:
        return CHANNELS[(channel_id, channel_type)]
    if channel_id in (0xFE, 0xFF) and channel_type in RESPONSES:
        return RESPONSES[channel_type]
    raise CodecError(f"unknown channel 0x{channel_id:02x} 0x{channel_type:02x}")


def decode(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode every channel record; any unknown or truncated record fails the whole uplink."""
    if not payload:
        raise CodecError("empty payload")
    decoded: dict[str, Any] = {}
    i = 0
    while i < len(payload):
        if i + 2 > len(payload):
            raise CodecError(f"truncated channel header at byte {i}")
        field, size, read = _channel(payload[i], payload[i + 1])
        value = payload[i + 2:i + 2 + size]
        if len(value) < size:
            raise CodecError(f"truncated {field} at byte {i}: {len(value)} of {size} bytes")
        decoded[field] = read(value)
        i += 2 + size
    return decoded


def encode(battery: int, distance_mm: int, tilted: bool) -> bytes:
    """The periodic report as the device sends it: battery, distance, position."""
    if not 0 <= battery <= 100:
        raise ValueError(f"battery {battery} % is outside 0..100")
    if not 0 <= distance_mm <= 0xFFFF:
        raise ValueError(f"distance {distance_mm} mm does not fit in uint16")
    return struct.pack("<BBBBBHBBB", 0x01, 0x75, battery, 0x03, 0x82, distance_mm, 0x04, 0x00, int(tilted))
