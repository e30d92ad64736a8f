"""LoRaWAN adapter: network-server uplinks -> candidate readings of bins and parking sensors.

A frame body is one uplink (a ChirpStack MQTT event, a TTN webhook) or NDJSON of many (The
Things Stack storage integration, one ``{"result": ...}`` per line). The device registry
maps each DevEUI to its codec; whatever cannot become a reading becomes a reject row, so
one bad message never stops the batch.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import pyarrow as pa

from etl.codecs import CODECS, CodecError
from etl.extract.frames import DECODED, REJECTS, Frame, Rows, excerpt
from etl.extract.lorawan_envelope import EnvelopeError, Uplink, parse_uplink

# codec -> decoded field -> (metric, unit)
FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "em310_udl": {
        "battery": ("battery", "%"),
        "distance": ("distance", "mm"),
        "position": ("tilt", "bool"),
    },
    "bosch_pls": {
        "occupied": ("occupied", "bool"),
        "temperature": ("temperature", "degC"),
    },
}
# Derived for bins whose depth the registry knows: how full the bin is.
FILL_LEVEL: tuple[str, str] = ("fill_level", "%")

# Text states the codecs return, as the numbers a "bool" metric carries.
STATES: dict[str, float] = {"normal": 0.0, "tilt": 1.0}


def decode(frames: list[Frame], devices: dict[str, dict[str, Any]]) -> tuple[pa.Table, pa.Table]:
    """Decode every uplink in ``frames``; return the (DECODED, REJECTS) tables."""
    out, rejects = Rows(DECODED), Rows(REJECTS)
    for frame in frames:
        for message, raw in _messages(frame, rejects):
            _decode_message(message, raw, frame.seq, devices, out, rejects)
    return out.table(), rejects.table()


# --- frame -> JSON messages ----------------------------------------------------------


def _loads(line: str) -> tuple[Any, str | None]:
    """(message, None), or (None, the parser's complaint)."""
    try:
        return json.loads(line), None
    except json.JSONDecodeError as exc:
        return None, str(exc)


def _messages(frame: Frame, rejects: Rows) -> Iterator[tuple[Any, str]]:
    """Yield (message, its text); a body that is not JSON is tried as NDJSON."""
    try:
        text = frame.text()
    except UnicodeDecodeError as exc:
        detail = f"not UTF-8: {exc}"
        rejects.add(frame=frame.seq, reason="malformed_json", detail=detail, raw=excerpt(frame.body))
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        yield from _ndjson(text, frame.seq, str(exc), rejects)
        return
    if isinstance(doc, list):
        for item in doc:
            yield item, json.dumps(item, ensure_ascii=False)
    else:
        yield doc, text


def _ndjson(text: str, seq: int, error: str, rejects: Rows) -> Iterator[tuple[Any, str]]:
    """One reject per bad line, unless no line is an object: then the whole body is bad.

    A pretty-printed document that fails to parse would otherwise be one reject per line.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = [_loads(line) for line in lines]
    if not any(isinstance(message, dict) for message, _ in parsed):
        rejects.add(frame=seq, reason="malformed_json", detail=error, raw=excerpt(text))
        return
    for number, (line, (message, problem)) in enumerate(zip(lines, parsed), start=1):
        if problem is None:
            yield message, line
        else:
            detail = f"NDJSON line {number}: {problem}"
            rejects.add(frame=seq, reason="malformed_json", detail=detail, raw=excerpt(line))


# --- message -> readings -------------------------------------------------------------


def _decode_message(
    message: Any, raw: str, seq: int, devices: dict[str, dict[str, Any]], out: Rows, rejects: Rows,
) -> None:
    try:
        up = parse_uplink(message)
    except EnvelopeError as exc:
        rejects.add(frame=seq, reason=exc.reason, detail=exc.detail, raw=excerpt(raw))
        return

    def reject(reason: str, detail: str) -> None:
        rejects.add(frame=seq, reason=reason, detail=detail, ref=up.dev_eui, ts=up.ts, raw=excerpt(raw))

    if up.simulated:
        return reject("simulated_uplink", f"{up.network} console simulation")
    device = devices.get(up.dev_eui)
    if device is None:
        return reject("unknown_device", f"DevEUI {up.dev_eui} is not in the device registry")
    codec = device.get("codec")
    if codec not in CODECS:
        return reject("unknown_device", f"the registry names codec {codec!r}, which does not exist")
    if up.f_port is None:
        return reject("bad_payload", "the uplink carries no fPort")
    try:
        values = CODECS[codec](up.f_port, up.payload)
    except CodecError as exc:
        return reject("bad_payload", f"{codec}: {exc} (fPort {up.f_port}, bytes {up.payload.hex()})")
    _add_readings(up, codec, values, device, seq, out)


def _as_number(value: Any) -> float:
    if isinstance(value, str):
        return STATES[value]
    return float(value)


def _add_readings(
    up: Uplink, codec: str, values: dict[str, Any], device: dict[str, Any], seq: int, out: Rows,
) -> None:
    def add(metric: str, unit: str, value: float) -> None:
        out.add(ref=up.dev_eui, metric=metric, ts=up.ts, value=value, unit=unit, frame=seq)

    for field, (metric, unit) in FIELDS[codec].items():
        if field in values:
            add(metric, unit, _as_number(values[field]))
    depth = device.get("bin_depth_mm")
    if depth and "distance" in values:
        add(*FILL_LEVEL, fill_level(values["distance"], depth))


def fill_level(distance_mm: float, bin_depth_mm: float) -> float:
    """Percent full: the sensor looks down from the lid, so a shorter distance is fuller."""
    percent = (bin_depth_mm - distance_mm) / bin_depth_mm * 100
    return round(min(max(percent, 0.0), 100.0), 1)
