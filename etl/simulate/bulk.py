"""A simulated day written straight into landing, as each extractor would have landed it.

The benchmark and load tests need a city-scale day in the lake without waiting on sockets:
30 million readings through MQTT and HTTP take far longer than normalising them. This module
asks the same simulator code the gateways use (``messages``, the servers' ``page``/``respond``/
``uplinks``, ``csv_drop.write_drops``) for each batch window and writes the frames each
extractor would have written: MQTT messages with ``meta.topic``, ChirpStack uplinks, TTN
storage-integration NDJSON pages, cursor-API pages, AirKorea JSON pages and SCADA CSV files.

Streetlights are 90 % of the city's messages, so their payloads are built by a fast path that
gives byte-for-byte what :func:`etl.simulate.messages.mqtt_messages` gives (tests pin this):
fault and noise hashes are computed once per key instead of once per call, and per-device
constants once per device. Pull sources re-read the previous hour (``etl.ingest.LOOKBACK``)
as the extractors do, so their batches overlap and normalisation sees duplicates, as it would.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

from etl import landing
from etl.extract.frames import Frame, encode_frames
from etl.landing import Envelope
from etl.simulate import messages, signals
from etl.simulate.clock import SimClock
from etl.simulate.faults import FaultPlan, fraction
from etl.storage import Store
from etl.timeutil import KST, UTC, kst_day_bounds, utc

Device = dict[str, Any]
TTN_PAGE = 1000  # the storage integration's page size the extractor asks for


def write_day(store: Store, day: date, fleet: str = "goyang", hours_per_batch: int = 1,
              faults: FaultPlan | None = None, workers: int = 1,
              sources: Iterable[str] | None = None) -> list[Envelope]:
    """Land one simulated KST day of every source (or of ``sources``): one batch per source per
    ``hours_per_batch`` hours. Returns the envelopes in (source, window) order.

    ``workers`` > 1 builds batches in that many processes (the builders are pure Python).
    """
    if hours_per_batch < 1 or 24 % hours_per_batch:
        raise ValueError("hours_per_batch must divide 24")
    from etl.sources import load_sources

    wanted = set(sources) if sources is not None else None
    ids = [sid for sid in load_sources() if wanted is None or sid in wanted]
    start, _ = kst_day_bounds(day)
    step = timedelta(hours=hours_per_batch)
    windows = [(start + i * step, start + (i + 1) * step) for i in range(24 // hours_per_batch)]
    # The CSV exports of the whole day are written once (duplicates spill into the next file).
    jobs = [(sid, [w]) for sid in ids if sid != "water_csv" for w in windows]
    jobs += [("water_csv", windows)] if "water_csv" in ids else []
    plan = faults or FaultPlan.none()
    plan_fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(plan) if not f.name.startswith("_")}
    args = [(store, fleet, sid, ws, plan_fields) for sid, ws in jobs]
    if workers <= 1:
        done = [_job(*a) for a in args]
    else:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(pool.map(_job, *zip(*args)))
    order = {sid: i for i, sid in enumerate(ids)}
    envs = [env for batch in done for env in batch]
    return sorted(envs, key=lambda e: (order[e.source], e.window_start))


def _job(store: Store, fleet: str, source_id: str, windows: list[tuple[datetime, datetime]],
         plan_fields: dict[str, Any]) -> list[Envelope]:
    """Build and land one source's batches (a process-pool task: the plan travels as its fields)."""
    from etl.sources import load_sources

    plan = FaultPlan.from_dict(plan_fields)

    source = load_sources()[source_id]
    devs = _fleet(fleet, source_id)
    return [_land(store, source.id, source.kind, ws, we, frames)
            for ws, we, frames in BUILDERS[_builder(source)](source, devs, windows, plan)]


@lru_cache(maxsize=4)
def _registry_dicts(fleet: str) -> tuple[Device, ...]:
    from etl.registry.load import devices

    return tuple(dataclasses.asdict(d) for d in devices(fleet))


def _fleet(fleet: str, source_id: str) -> list[Device]:
    return [d for d in _registry_dicts(fleet) if d["source"] == source_id]


def _builder(source: Any) -> str:
    if source.kind == "lorawan":
        return "chirpstack" if source.options.get("transport") == "mqtt" else "ttn"
    if source.kind == "mqtt":
        return "mqtt"
    return source.kind


# ---- landing ------------------------------------------------------------------------------
def _land(store: Store, source: str, kind: str, ws: datetime, we: datetime,
          frames: list[Frame] | tuple[bytes, int]) -> Envelope:
    """:func:`etl.landing.land`, for frames given as objects or already encoded (bytes, count)."""
    if isinstance(frames, tuple):
        return _land_encoded(store, source, kind, ws, we, *frames)
    return landing.land(store, source, kind, ws, we, frames, we)[0]  # received when the window closed


def _land_encoded(store: Store, source: str, kind: str, ws: datetime, we: datetime, data: bytes,
                  count: int) -> Envelope:
    """The same objects ``landing.land`` writes, for bytes already in the frame format."""
    digest = hashlib.sha256(data).hexdigest()
    batch_id, key = landing.batch_key(source, ws, we, digest)
    env_key = key[: -len(".jsonl")] + ".envelope.json"
    if store.exists(env_key):
        return landing.read_envelope(store, env_key)
    store.put_if_absent(key, data, "application/x-ndjson")
    env = Envelope(batch_id=batch_id, source=source, kind=kind, window_start=utc(ws).isoformat(),
                   window_end=utc(we).isoformat(), received_at=utc(we).isoformat(), frames=count,
                   bytes=len(data), sha256=digest, key=key)
    body = json.dumps(dataclasses.asdict(env), ensure_ascii=False, indent=1).encode()
    if not store.put_if_absent(env_key, body, "application/json"):
        return landing.read_envelope(store, env_key)
    return env


Windows = list[tuple[datetime, datetime]]
Built = Iterable[tuple[datetime, datetime, "list[Frame] | tuple[bytes, int]"]]


# ---- MQTT: streetlights and low-cost air sensors ------------------------------------------
def _mqtt(source: Any, devs: list[Device], windows: Windows, plan: FaultPlan) -> Built:
    root = _topic_root()
    for ws, we in windows:
        msgs = mqtt_window(devs, ws, we, plan, root)
        yield ws, we, (encode_mqtt(msgs), len(msgs))


def _topic_root() -> str:
    from etl.settings import get_settings

    return getattr(get_settings(), "mqtt_topic_root", "goyang")


def encode_mqtt(msgs: list[tuple[Any, str, str]]) -> bytes:
    """``encode_frames`` of drained MQTT messages (meta topic, dup false), for ASCII payloads."""
    dumps = json.dumps
    lines = [f'{{"seq":{i},"meta":{{"topic":{dumps(topic, ensure_ascii=False)},"dup":false}},'
             f'"body":{dumps(body, ensure_ascii=False)}}}' for i, (_, topic, body) in enumerate(msgs)]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def _threshold(rate: float) -> bytes:
    """8 big-endian bytes T with ``digest < T`` exactly when ``fraction`` of the digest < rate."""
    lo, hi = 0, 2**64  # the least n whose n / 2**64 (rounded as Python does) is >= rate
    while lo < hi:
        mid = (lo + hi) // 2
        if mid / 2**64 < rate:
            lo = mid + 1
        else:
            hi = mid
    return b"\xff" * 9 if lo >= 2**64 else lo.to_bytes(8, "big")


class _Keys:
    """``FaultPlan.hit`` and ``faults.fraction`` over key texts built directly (same bytes as
    ``repr`` of the key tuple), hashing each key once."""

    def __init__(self, plan: FaultPlan):
        self.plan = plan
        self.blake = hashlib.blake2b

    def hit(self, text: str, threshold: bytes) -> bool:
        return self.blake(text.encode(), digest_size=8).digest() < threshold

    def fraction(self, text: str) -> float:
        return int.from_bytes(self.blake(text.encode(), digest_size=8).digest(), "big") / 2**64

    def prefixes(self, did: str, kinds: Iterable[str]) -> dict[str, tuple[str, bytes] | None]:
        """kind -> (key text up to the time stamp, threshold), or None where the rate is 0."""
        return {k: (f"({self.plan.seed!r}, {k!r}, {did!r}, ", _threshold(getattr(self.plan, k)))
                if getattr(self.plan, k) > 0 else None for k in kinds}


MESSAGE_FAULTS = ("gap", "malformed", "out_of_order", "duplicate", "wrong_unit", "spike")


def mqtt_window(devs: list[Device], start: datetime, end: datetime, plan: FaultPlan,
                root: str = "goyang") -> list[tuple[datetime, str, str]]:
    """(send time, topic, payload text) exactly as ``messages.mqtt_messages``, faster."""
    keys = _Keys(plan)
    out: list[tuple[datetime, str, str]] = []
    late, again = timedelta(seconds=120), timedelta(seconds=1)
    ns: dict[float, str] = {}
    for d in devs:
        did = d["device_id"]
        if d["kind"] == "streetlight":
            topic, build = f"{root}/streetlights/{d['external_id']}/state", _Light(d, keys)
        elif d["kind"] == "lowcost_pm":
            topic, build = f"{root}/air/{d['external_id']}/pm", _Air(d, keys, ns)
        else:
            continue
        pre = keys.prefixes(did, MESSAGE_FAULTS)
        gap, bad, ooo, dup = pre["gap"], pre["malformed"], pre["out_of_order"], pre["duplicate"]
        skew = timedelta(seconds=plan.clock_skew_s) if plan.hit("skewed", did) else None
        hit = keys.hit
        for ts in messages.ticks(d, start, end):
            tr = f"{ts.timestamp()!r})"
            if gap and hit(gap[0] + tr, gap[1]):
                continue
            payload = build.payload(ts, tr, ts + skew if skew else ts, pre)
            if bad and hit(bad[0] + tr, bad[1]):
                payload = payload[: max(1, len(payload) // 2)]
            send = ts + late if ooo and hit(ooo[0] + tr, ooo[1]) else ts
            out.append((send, topic, payload))
            if dup and hit(dup[0] + tr, dup[1]):
                out.append((send + again, topic, payload))
    out.sort(key=lambda m: m[0])
    return out


Prefixes = dict[str, "tuple[str, bytes] | None"]


class _Light:
    """``messages.streetlight_payload`` of one device: ``signals.light`` with its per-device and
    per-day hashes computed once."""

    def __init__(self, d: Device, keys: _Keys):
        self.did, self.keys = d["device_id"], keys
        self.head = f'{{"id":{json.dumps(d["external_id"])},"ts":'
        self.rated = 60 + 40 * int(fraction("lamp-w", self.did) * 3)
        self.noise = f"('noise', {self.did!r}, "
        self.days: dict[date, tuple[float, float, int]] = {}

    def _day(self, day: date) -> tuple[float, float, int]:
        if day not in self.days:
            rise, set_ = signals.sun_times(day)
            fault = 3 if fraction("lamp-fault", self.did, day) < 0.003 else 0
            self.days[day] = (rise, set_, fault)
        return self.days[day]

    def payload(self, ts: datetime, tr: str, sent: datetime, pre: Prefixes) -> str:
        local = ts.astimezone(KST)
        rise, set_, fault = self._day(local.date())
        hours = local.hour + local.minute / 60.0 + local.second / 3600.0
        night = hours < rise or hours >= set_
        on = night and fault == 0
        dimming = 0.0 if not on else (50.0 if night and 1.0 <= hours < 5.0 else 100.0)
        if on:
            noise = self.keys.fraction(self.noise + tr) * 2.0 - 1.0
            power = round(self.rated * dimming / 100.0 * (1 + 0.02 * noise), 1)
        else:
            power = 0.4
        wrong = pre["wrong_unit"]
        if wrong and self.keys.hit(wrong[0] + tr, wrong[1]):
            tail = f'"power_kw":{round(power / 1000.0, 4)!r}}}'
        else:
            tail = f'"power_w":{power!r}}}'
        return (f'{self.head}{int(sent.timestamp() * 1000)},"on":{"true" if on else "false"},'
                f'"dim":{int(dimming)},"fault":{fault},{tail}')


class _Air:
    """``messages.airsensor_payload`` of one device: the PM part of ``signals.air`` with its
    per-device hashes computed once."""

    def __init__(self, d: Device, keys: _Keys, ns: dict[float, str]):
        did = self.did = d["device_id"]
        self.device, self.keys, self.ns = d, keys, ns
        self.head = f'{{"sensor":{json.dumps(d["external_id"])},"time":"'
        self.site = 1.0 + 0.15 * (fraction("noise", "site", did) * 2.0 - 1.0)
        self.ratio = 0.45 + 0.1 * (fraction("noise", "ratio", did) * 2.0 - 1.0)
        self.pm10, self.pm25 = f"('noise', {did!r}, 'pm10', ", f"('noise', {did!r}, 'pm25', "

    def payload(self, ts: datetime, tr: str, sent: datetime, pre: Prefixes) -> str:
        at, at_r = ts, tr  # the time the signal is read at: earlier for a stuck sensor
        if self.keys.plan.stuck > 0:
            at = messages._stuck_since(self.device, ts, self.keys.plan)
            at_r = tr if at == ts else f"{at.timestamp()!r})"
        days = at.timestamp() / 86400.0
        city = 1.0 + 0.6 * math.sin(days / 3.1 * 2 * math.pi) + 0.3 * math.sin(days / 1.7 * 2 * math.pi + 1.0)
        e = max(0.2, city) * self.site
        local = at.astimezone(KST)
        hours = local.hour + local.minute / 60.0 + local.second / 3600.0
        phase = lambda peak: math.cos((hours - peak) / 24.0 * 2.0 * math.pi)  # noqa: E731
        rush = max(phase(8.5), phase(19.0), 0.0)
        pm10 = 38.0 * e * (0.85 + 0.3 * rush) * (1.0 + 0.08 * (self.keys.fraction(self.pm10 + at_r) * 2.0 - 1.0))
        pm25 = pm10 * self.ratio * (1.0 + 0.08 * (self.keys.fraction(self.pm25 + at_r) * 2.0 - 1.0))
        v10, v25 = round(pm10, 1), round(pm25, 1)
        unit = ""
        wrong, spike = pre["wrong_unit"], pre["spike"]
        if wrong and self.keys.hit(wrong[0] + tr, wrong[1]):
            v10, v25, unit = round(v10 / 1000.0, 4), round(v25 / 1000.0, 4), ',"unit":"mg/m3"'
        if spike and self.keys.hit(spike[0] + tr, spike[1]):
            v10 = round(round(pm10, 1) + messages.SPIKE_PM10, 1)
        return f'{self.head}{self._iso_ns(sent)}","pm10":{v10!r},"pm2_5":{v25!r}{unit}}}'

    def _iso_ns(self, ts: datetime) -> str:
        """``messages._iso_ns``: the nanosecond digits are a hash of the instant, shared by all sensors."""
        t = ts.timestamp()
        if t not in self.ns:
            self.ns[t] = (ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}"
                          + f"{int(fraction('ns', ts) * 1000):03d}Z")
        return self.ns[t]


# ---- LoRaWAN: ChirpStack over MQTT (parking), TTN storage integration (bins) ---------------
def _chirpstack(source: Any, devs: list[Device], windows: Windows, plan: FaultPlan) -> Built:
    takes_root = "root" in inspect.signature(messages.chirpstack_messages).parameters
    root = {"root": _topic_root()} if takes_root else {}
    for ws, we in windows:
        msgs = messages.chirpstack_messages(devs, ws, we, plan, **root)
        yield ws, we, [Frame(body=body, meta={"topic": topic, "dup": False}, seq=i)
                       for i, (_, topic, body) in enumerate(msgs)]


def _ttn(source: Any, devs: list[Device], windows: Windows, plan: FaultPlan) -> Built:
    from etl.ingest import LOOKBACK
    from etl.simulate.lns_server import LnsServer

    for ws, we in windows:
        server = LnsServer(devs, SimClock.frozen(we), "bulk", plan)
        try:
            uplinks = server.uplinks(ws - LOOKBACK, we)
        finally:
            server._server.server_close()
        before, after = _z(we), _z(ws - LOOKBACK)
        frames = []
        for page, i in enumerate(range(0, len(uplinks), TTN_PAGE)):
            chunk = uplinks[i:i + TTN_PAGE]
            body = b"".join(json.dumps({"result": u}, separators=(",", ":")).encode() + b"\n" for u in chunk)
            frames.append(Frame(body=body, meta={"after": after, "before": before, "page": page}, seq=page))
            after = chunk[-1]["received_at"]
        yield ws, we, frames


def _z(ts: datetime) -> str:
    return utc(ts).isoformat().replace("+00:00", "Z")


# ---- HTTP cursor API: weather stations, daycare gates ------------------------------------
def _http_cursor(source: Any, devs: list[Device], windows: Windows, plan: FaultPlan) -> Built:
    from etl.ingest import LOOKBACK
    from etl.simulate.cursor_server import CursorServer, Query, decode_cursor

    path, limit = source.options["path"], int(source.options.get("limit", 500))
    stations = devs if source.options["decoder"] == "weather" else []
    gates = devs if source.options["decoder"] == "gate" else []
    for ws, we in windows:
        server = CursorServer(stations, gates, SimClock.frozen(we), "bulk", _steady(plan))
        records, render = server.routes[path]
        server.routes[path] = (lru_cache(maxsize=2)(records), render)  # every page asks for the same window
        since, until = ws - LOOKBACK, we
        frames, cursor = [], None
        while True:
            page = server.page(path, Query(since, until, limit, cursor))
            body = json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            frames.append(Frame(body=body, seq=len(frames),
                                meta={"path": path, "since": _z(since), "until": _z(until), "page": len(frames)}))
            if not page["next_cursor"]:
                break
            cursor = decode_cursor(page["next_cursor"])
        yield ws, we, frames


def _steady(plan: FaultPlan) -> FaultPlan:
    """The plan without transient HTTP faults: the extractors retry those, landing the same bytes."""
    return dataclasses.replace(plan, http_5xx=0.0, http_timeout=0.0)


# ---- AirKorea Open API --------------------------------------------------------------------
def _airkorea(source: Any, devs: list[Device], windows: Windows, plan: FaultPlan) -> Built:
    from etl.extract.airkorea import STATION_SERIES, VERSION, op_url
    from etl.simulate.airkorea_server import AirKoreaServer

    stations = [{"stationName": d["external_id"], "sidoName": "경기", "lat": d["lat"], "lon": d["lon"],
                 "device_id": d["device_id"]} for d in devs]
    by_name = {s["stationName"]: s["device_id"] for s in stations}
    url = op_url(source.endpoint, STATION_SERIES)
    path = "/" + url.split("://", 1)[-1].split("/", 1)[-1]
    o = source.options
    for ws, we in windows:
        server = AirKoreaServer(stations, lambda name, ts: signals.air(by_name[name], ts), SimClock.frozen(we),
                                "bulk", _steady(plan))
        frames = []
        for name in by_name:
            page = 1
            while True:
                params = {"returnType": o.get("return_type", "json"), "numOfRows": int(o.get("num_of_rows", 100)),
                          "pageNo": page, "stationName": name, "dataTerm": o.get("data_term", "DAILY"),
                          "ver": VERSION}
                _, _, body = server.respond(path, urlencode({**params, "serviceKey": "bulk"}))
                frames.append(Frame(body=body, seq=len(frames), meta={
                    "op": STATION_SERIES, "stationName": name, "pageNo": page,
                    "returnType": params["returnType"], "url": f"{url}?{urlencode(params)}"}))
                total = json.loads(body)["response"].get("body", {}).get("totalCount", 0)
                if page * params["numOfRows"] >= total:
                    break
                page += 1
        yield ws, we, frames


# ---- SCADA CSV drops ----------------------------------------------------------------------
def _csv_drop(source: Any, devs: list[Device], windows: Windows, plan: FaultPlan) -> Built:
    from etl.extract import csv_drop as extract_csv
    from etl.simulate import csv_drop

    with tempfile.TemporaryDirectory(prefix="citylake-bulk-csv-") as tmp:
        paths = csv_drop.write_drops(devs, windows[0][0], windows[-1][1], Path(tmp), plan)
        for p in paths:  # exported when its hour ended: the landed bytes (meta.mtime) do not depend on today
            done = (_csv_window(p.name) + timedelta(hours=1)).timestamp()
            os.utime(p, (done, done))
        for ws, we in windows:
            names = [p.name for p in paths if ws <= _csv_window(p.name) < we]
            yield ws, we, extract_csv.fetch(tmp, names)


def _csv_window(name: str) -> datetime:
    stamp = name.split("_")[1] + name.split("_")[2][:4]  # GYWQ_YYYYMMDD_HHMM-HHMM.csv
    return datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=KST).astimezone(UTC)


BUILDERS: dict[str, Callable[[Any, list[Device], Windows, FaultPlan], Built]] = {
    "mqtt": _mqtt, "chirpstack": _chirpstack, "ttn": _ttn, "http_cursor": _http_cursor,
    "airkorea": _airkorea, "csv_drop": _csv_drop,
}
