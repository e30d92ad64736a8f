"""The messages push gateways send for a time window: MQTT payloads of streetlight
controllers and low-cost air sensors, and LoRaWAN uplinks of bins and parking sensors.

Pure functions of (devices, window, faults): the publisher sends them over the network, the
benchmark writes them straight into landing.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Iterator, Mapping

from etl.simulate import signals
from etl.simulate.faults import FaultPlan, fraction
from etl.timeutil import KST, UTC
from quality.metrics import metric_table

# A spike fault adds twice the metric's max step (quality.metrics): always a spike by definition.
SPIKE_PM10 = 2 * float(metric_table()[("air_quality", "pm10")].max_step)

Device = Mapping[str, Any]


def ticks(device: Device, start: datetime, end: datetime) -> Iterator[datetime]:
    """Reporting times of a device in [start, end): multiples of its interval, with a fixed phase."""
    step = int(device["interval_s"])
    phase = int(fraction("phase", device["device_id"]) * min(step, 60))
    t0 = int(start.timestamp())
    first = t0 - (t0 % step) + phase
    if first < t0:
        first += step
    for t in range(first, int(end.timestamp()), step):
        yield datetime.fromtimestamp(t, UTC)


def _skew(device: Device, ts: datetime, faults: FaultPlan) -> datetime:
    if faults.hit("skewed", device["device_id"]):
        return ts + timedelta(seconds=faults.clock_skew_s)
    return ts


def _iso_ns(ts: datetime) -> str:
    """ISO 8601 with nanoseconds, as many gateways write it."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}" + f"{int(fraction('ns', ts) * 1000):03d}Z"


def streetlight_payload(device: Device, ts: datetime, faults: FaultPlan) -> bytes:
    v = signals.light(device["device_id"], ts)
    sent = _skew(device, ts, faults)
    body: dict[str, Any] = {"id": device["external_id"], "ts": int(sent.timestamp() * 1000), "on": bool(v["lamp_on"]),
                            "dim": int(v["dimming"]), "fault": int(v["fault_code"])}
    if faults.hit("wrong_unit", device["device_id"], ts):
        body["power_kw"] = round(v["power"] / 1000.0, 4)
    else:
        body["power_w"] = v["power"]
    return json.dumps(body, separators=(",", ":")).encode()


def _stuck_since(device: Device, ts: datetime, faults: FaultPlan) -> datetime:
    """A stuck sensor repeats the value it had when it froze (for the rest of the KST day)."""
    day = ts.astimezone(KST).date()
    if not faults.hit("stuck", device["device_id"], day):
        return ts
    frozen = datetime(day.year, day.month, day.day, tzinfo=KST) + timedelta(hours=6 + int(fraction("stuck-at", device["device_id"], day) * 12))
    return min(ts, frozen.astimezone(UTC))


def airsensor_payload(device: Device, ts: datetime, faults: FaultPlan) -> bytes:
    v = signals.air(device["device_id"], _stuck_since(device, ts, faults))
    sent = _skew(device, ts, faults)
    body: dict[str, Any] = {"sensor": device["external_id"], "time": _iso_ns(sent), "pm10": v["pm10"], "pm2_5": v["pm25"]}
    if faults.hit("wrong_unit", device["device_id"], ts):
        body.update(pm10=round(v["pm10"] / 1000.0, 4), pm2_5=round(v["pm25"] / 1000.0, 4), unit="mg/m3")
    if faults.hit("spike", device["device_id"], ts):
        body["pm10"] = round(v["pm10"] + SPIKE_PM10, 1)
    return json.dumps(body, separators=(",", ":")).encode()


def _corrupt(payload: bytes) -> bytes:
    return payload[: max(1, len(payload) // 2)]  # truncated mid-object, as a flaky modem does


def mqtt_messages(devices: list[Device], start: datetime, end: datetime, faults: FaultPlan,
                  root: str = "goyang") -> list[tuple[datetime, str, bytes]]:
    """(send time, topic, payload) of streetlights and air sensors, in send order, with faults."""
    out: list[tuple[datetime, str, bytes]] = []
    for d in devices:
        kind = d["kind"]
        if kind == "streetlight":
            topic, build = f"{root}/streetlights/{d['external_id']}/state", streetlight_payload
        elif kind == "lowcost_pm":
            topic, build = f"{root}/air/{d['external_id']}/pm", airsensor_payload
        else:
            continue
        for ts in ticks(d, start, end):
            if faults.hit("gap", d["device_id"], ts):
                continue
            payload = build(d, ts, faults)
            if faults.hit("malformed", d["device_id"], ts):
                payload = _corrupt(payload)
            send = ts + timedelta(seconds=120) if faults.hit("out_of_order", d["device_id"], ts) else ts
            out.append((send, topic, payload))
            if faults.hit("duplicate", d["device_id"], ts):
                out.append((send + timedelta(seconds=1), topic, payload))
    out.sort(key=lambda m: m[0])
    return out


def parking_events(device: Device, start: datetime, end: datetime, slot_s: int = 900) -> list[tuple[datetime, int, bytes]]:
    """(ts, f_port, payload) of a Bosch parking sensor: a status uplink on every change, a heartbeat hourly."""
    from etl.codecs import bosch_pls

    out: list[tuple[datetime, int, bytes]] = []
    did = device["device_id"]
    t = datetime.fromtimestamp(int(start.timestamp()) // slot_s * slot_s, UTC)
    prev = signals.occupied(did, t - timedelta(seconds=slot_s), slot_s)
    while t < end:
        now = signals.occupied(did, t, slot_s)
        jitter = timedelta(seconds=int(fraction("pk-jitter", did, t) * (slot_s - 1)))
        if t >= start and now != prev:
            port, payload = bosch_pls.encode_status(now)
            out.append((t + jitter, port, payload))
        if t >= start and int(t.timestamp()) % int(device["interval_s"] or 3600) == 0:
            temp = int(round(signals.weather(did, t)["temperature"]))
            port, payload = bosch_pls.encode_heartbeat(now, temp)
            out.append((t + timedelta(seconds=int(fraction("hb", did) * 59)), port, payload))
        prev = now
        t += timedelta(seconds=slot_s)
    return sorted(out, key=lambda e: e[0])


def bin_uplinks(device: Device, start: datetime, end: datetime) -> list[tuple[datetime, int, bytes]]:
    """(ts, f_port, payload) of an EM310-UDL bin sensor at its reporting interval."""
    from etl.codecs import em310_udl

    depth = int(device.get("capacity") or 1200)
    out = []
    for ts in ticks(device, start, end):
        s = signals.bin_state(device["device_id"], ts, depth)
        out.append((ts, 85, em310_udl.encode(int(s["battery"]), int(s["distance"]), bool(s["tilt"]))))
    return out


def chirpstack_messages(devices: list[Device], start: datetime, end: datetime, faults: FaultPlan,
                        root: str = "goyang") -> list[tuple[datetime, str, bytes]]:
    """ChirpStack v4 `event/up` MQTT messages of the parking sensors."""
    from etl.extract.lorawan_envelope import chirpstack_v4_uplink

    out: list[tuple[datetime, str, bytes]] = []
    for d in devices:
        if d["kind"] != "parking_space":
            continue
        for ts, port, payload in parking_events(d, start, end):
            if faults.hit("gap", d["device_id"], ts):
                continue
            if faults.hit("malformed", d["device_id"], ts):
                payload = payload[:1]
            env = chirpstack_v4_uplink(d["external_id"], port, payload, ts, d["device_id"], f"{root}-parking")
            topic = f"application/{root}-parking/device/{d['external_id'].lower()}/event/up"
            body = json.dumps(env, separators=(",", ":")).encode()
            out.append((ts, topic, body))
            if faults.hit("duplicate", d["device_id"], ts):
                out.append((ts + timedelta(seconds=1), topic, body))
    out.sort(key=lambda m: m[0])
    return out
