"""The bulk day writer lands what the extractors would have landed, and normalises cleanly."""
from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from etl.simulate.faults import FaultPlan

DAY = date(2026, 11, 24)
# Demo faults without the transient HTTP ones (the extractors retry those; the bytes are the same).
FAULTS = dataclasses.replace(FaultPlan.demo(), http_5xx=0.0)
HEAVY = FaultPlan(seed=3, gap=0.1, duplicate=0.1, malformed=0.1, out_of_order=0.1, wrong_unit=0.2, spike=0.2,
                  stuck=0.3, skewed=0.3, clock_skew_s=12.5)


def _devices(fleet: str = "small") -> list[dict]:
    from etl.registry.load import devices

    return [dataclasses.asdict(d) for d in devices(fleet)]


@pytest.mark.parametrize("plan", [FaultPlan.none(), FAULTS, HEAVY], ids=["none", "demo", "heavy"])
def test_fast_mqtt_payloads_are_the_simulators_bytes(plan: FaultPlan) -> None:
    from etl.simulate import bulk, messages
    from etl.timeutil import kst_day_bounds

    devs = [d for d in _devices("goyang") if d["kind"] in ("streetlight", "lowcost_pm")][::400]
    start, end = kst_day_bounds(DAY)
    for ws, we in ((start, end), (start + timedelta(hours=13), start + timedelta(hours=14))):
        want = messages.mqtt_messages(devs, ws, we, plan)
        got = bulk.mqtt_window(devs, ws, we, plan)
        assert [(t, topic, body.encode()) for t, topic, body in got] == want


def _landed(store, envs, source: str) -> list:  # noqa: ANN001
    from etl import landing
    from etl.extract.frames import decode_frames

    return [f for e in envs if e.source == source for f in decode_frames(landing.read_data(store, e))]


def _reference_frames(tmp_path: Path) -> dict[str, list[bytes]]:
    """What each extractor receives from the simulated gateways for the day (pull sources over HTTP)."""
    from etl.extract import airkorea, csv_drop as extract_csv, http_cursor
    from etl.ingest import LOOKBACK
    from etl.simulate import csv_drop, messages, signals
    from etl.simulate.airkorea_server import AirKoreaServer
    from etl.simulate.clock import SimClock
    from etl.simulate.cursor_server import CursorServer
    from etl.simulate.lns_server import LnsServer
    from etl.timeutil import kst_day_bounds

    devs = _devices()
    of = lambda kind: [d for d in devs if d["kind"] == kind]  # noqa: E731
    start, end = kst_day_bounds(DAY)
    clock = SimClock.frozen(end)
    mq = messages.mqtt_messages(devs, start, end, FAULTS)
    out = {"lights_mqtt": [p for _, t, p in mq if "/streetlights/" in t], "air_mqtt": [p for _, t, p in mq if "/air/" in t],
           "parking_chirpstack": [p for _, _, p in messages.chirpstack_messages(devs, start, end, FAULTS)]}
    with CursorServer(of("weather_station"), of("daycare_gate"), clock, "t", FAULTS) as srv:
        for sid, path in (("weather_http", "/v1/observations"), ("daycare_http", "/v1/gate-events")):
            frames = http_cursor.fetch(srv.url, path, "t", start - LOOKBACK, end, limit=500)
            out[sid] = [f.body for f in frames]
    stations = [{"stationName": d["external_id"], "sidoName": "경기", "lat": d["lat"], "lon": d["lon"]}
                for d in of("reference_station")]
    ids = {d["external_id"]: d["device_id"] for d in of("reference_station")}
    with AirKoreaServer(stations, lambda name, ts: signals.air(ids[name], ts), clock, "k", FAULTS) as srv:
        out["airkorea"] = [f.body for f in airkorea.fetch(srv.url, "k", list(ids), backoff_s=0.01)]
    lns = LnsServer(of("smart_bin"), clock, "k", FAULTS)
    out["bins_ttn"] = [json.dumps({"result": u}, separators=(",", ":")).encode()
                       for u in lns.uplinks(start - LOOKBACK, end)]
    lns._server.server_close()
    paths = csv_drop.write_drops(of("water_probe"), start, end, tmp_path / "drops", FAULTS)
    out["water_csv"] = [f.body for f in extract_csv.fetch(str(tmp_path / "drops"), [p.name for p in paths])]
    return out


def test_small_day_lands_the_gateways_bytes_and_reconciles(lake_env: Path) -> None:
    from etl import normalize
    from etl.extract.frames import Frame
    from etl.registry.load import load_registry
    from etl.simulate import bulk
    from etl.sources import load_sources
    from etl.storage import lake

    store, sources, registry = lake(), load_sources(), load_registry()
    envs = bulk.write_day(store, DAY, "small", hours_per_batch=24, faults=FAULTS)
    assert sorted(e.source for e in envs) == sorted(sources)
    assert bulk.write_day(store, DAY, "small", hours_per_batch=24, faults=FAULTS) == envs  # same bytes, same batches
    reference = _reference_frames(lake_env)
    for sid in sources:
        landed = [f.body for f in _landed(store, envs, sid)]
        if sid == "bins_ttn":  # storage-integration pages: NDJSON, one uplink per line
            landed = [line for body in landed for line in body.splitlines()]
        assert landed == reference[sid], sid
    for env in envs:
        source = sources[env.source]
        got = normalize.normalize(store, source, env, registry)
        assert got.received == got.accepted + got.quarantined + got.duplicates
        assert got.accepted > 0, env.source
        frames = [Frame(body=b, seq=i) for i, b in enumerate(reference[env.source])] if env.source != "bins_ttn" \
            else [Frame(body=b"\n".join(reference["bins_ttn"]) + b"\n")]
        decoded, rejects = normalize.decode(source, frames, registry)
        assert got.received == decoded.num_rows + rejects.num_rows, env.source


def test_hourly_batches_cover_the_day_once(lake_env: Path) -> None:
    from etl import landing
    from etl.simulate import bulk
    from etl.storage import lake

    store = lake()
    envs = bulk.write_day(store, DAY, "small", hours_per_batch=6, faults=FAULTS, sources=["lights_mqtt", "water_csv"])
    assert [(e.source, e.window_start[11:16]) for e in envs] == [
        (s, h) for s in ("lights_mqtt", "water_csv") for h in ("15:00", "21:00", "03:00", "09:00")]
    daily = bulk.write_day(store, DAY, "small", hours_per_batch=24, faults=FAULTS, sources=["lights_mqtt", "water_csv"])
    for sid in ("lights_mqtt", "water_csv"):
        hourly = sorted(f.body for f in _landed(store, envs, sid))
        assert hourly == sorted(f.body for f in _landed(store, daily, sid))
    assert all(landing.read_envelope(store, e.key[:-len(".jsonl")] + ".envelope.json") == e for e in envs)
