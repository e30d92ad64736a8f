"""Benchmark: extraction throughput over each gateway protocol, at a small scale (messages/s).

    .venv/bin/python bench/bench_extract.py                      # the small fleet, one KST day
    .venv/bin/python bench/bench_extract.py --hours 6 --faults demo

The simulated gateways (AirKorea Open API, cursor-paged vendor API, The Things Stack storage
integration) run in a child process on 127.0.0.1 with the clock frozen at the end of the
window, so they do not share this process's interpreter; MQTT goes through the real broker
(Mosquitto on 127.0.0.1:1883, started like the test suite does if it is not running).

Every source is extracted the way its DAG does it, with ``etl.ingest.extract`` (fetch, land,
save the cursor / acknowledge), and timed. MQTT sources are first published at QoS 1 into their
durable sessions (timed separately: that is the devices' side), then drained; the drain's
end-of-queue wait (``idle_s``) and the PUBACK flush are reported but not counted as work.
Topics and client ids get a per-run prefix, and the sessions are discarded afterwards, so
the benchmark leaves nothing on a shared broker.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PROTOCOLS = {
    "airkorea": "AirKorea Open API (HTTP, JSON pages)",
    "weather_http": "cursor-paged HTTP API",
    "daycare_http": "cursor-paged HTTP API",
    "lights_mqtt": "MQTT v5, durable session",
    "air_mqtt": "MQTT v5, durable session",
    "parking_chirpstack": "ChirpStack v4 uplinks over MQTT",
    "bins_ttn": "TTN storage integration (HTTP NDJSON)",
    "water_csv": "SCADA CSV file drop",
}
ACK_FLUSH_S = 0.2  # mqtt.Drain.ack_and_close waits this long for the PUBACKs to leave
RECEIVE_MAXIMUM = 65535  # etl.extract.mqtt.RECEIVE_MAXIMUM


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fleet", default="small")
    p.add_argument("--day", default="2026-11-24")
    p.add_argument("--hours", type=int, default=24, help="window length")
    p.add_argument("--from-hour", type=int, default=0, help="window start, KST hour of --day")
    p.add_argument("--faults", choices=("none", "demo"), default="none")
    p.add_argument("--broker", default="127.0.0.1:1883",
                   help="HOST:PORT of the MQTT broker, or 'private': a Mosquitto of our own on a free port whose "
                        "queue per client holds a city hour (the system broker's default holds 1000 messages)")
    p.add_argument("--results", default=str(HERE / "results"))
    return p.parse_args(argv)


def _environment(workdir: Path, fleet: str, broker: tuple[str, int]) -> None:
    from etl.simulate.broker import free_port
    from etl.simulate.gateways import dev_environment

    tag = f"citylake-bench-{os.getpid()}"
    os.environ.update({
        "CITYLAKE_MQTT_HOST": broker[0], "CITYLAKE_MQTT_PORT": str(broker[1]),
        "CITYLAKE_LAKE_URI": f"file://{workdir / 'lake'}", "CITYLAKE_PUBLIC_URI": f"file://{workdir / 'public'}",
        "CITYLAKE_CSV_DROP_DIR": str(workdir / "drops"), "CITYLAKE_FLEET": fleet,
        "CITYLAKE_AIRKOREA_PORT": str(free_port()), "CITYLAKE_CURSOR_PORT": str(free_port()),
        "CITYLAKE_LNS_PORT": str(free_port()), "CITYLAKE_MQTT_TOPIC_ROOT": tag, "CITYLAKE_MQTT_CLIENT_PREFIX": tag,
        "CITYLAKE_MQTT_PROTOCOL": "5",
    })
    os.environ.update(dev_environment())


PRIVATE_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 2000000
max_queued_bytes 0
max_inflight_messages 0
"""


def _private_broker(workdir: Path) -> tuple[subprocess.Popen, int]:
    """A Mosquitto of our own (infra/mosquitto.conf's queue limits, no password, no persistence)."""
    from etl.simulate.broker import free_port, reachable

    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(PRIVATE_CONF.format(port=port))
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if reachable("127.0.0.1", port):
            return proc, port
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the private Mosquitto did not start")


def _broker(host: str, port: int) -> None:
    from etl.simulate.broker import reachable

    if not reachable(host, port):
        subprocess.run(["mosquitto", "-d", "-c", "/etc/mosquitto/mosquitto.conf"], check=False)
        for _ in range(50):
            if reachable(host, port):
                return
            time.sleep(0.1)
        raise SystemExit(f"no MQTT broker on {host}:{port} (start Mosquitto first)")


def _serve(env: dict[str, str], fleet: str, at: datetime, faults: str, ready: Any, stop: Any) -> None:
    """Child process: the pull gateways on a frozen clock until told to stop."""
    os.environ.update(env)
    from etl.registry.load import devices
    from etl.settings import get_settings
    from etl.simulate.clock import SimClock
    from etl.simulate.faults import FaultPlan
    from etl.simulate.gateways import Gateways

    plan = FaultPlan.demo() if faults == "demo" else FaultPlan.none()
    devs = [dataclasses.asdict(d) for d in devices(fleet)]
    with Gateways(devs, SimClock.frozen(at), get_settings(), plan):
        ready.set()
        stop.wait()


def _messages(store: Any, result: dict[str, Any], kind: str, seen: set[bytes]) -> int:
    """Messages in a landed batch: MQTT messages (new ones: ``seen`` collects the payloads),
    API items, uplinks, CSV rows."""
    from etl import landing
    from etl.extract.frames import decode_frames

    if not result.get("envelope"):
        return 0
    frames = decode_frames(landing.read_data(store, landing.read_envelope(store, result["envelope"])))
    if kind in ("mqtt", "chirpstack"):
        before = len(seen)
        seen.update(f.body for f in frames)
        return len(seen) - before
    if kind == "http_cursor":
        return sum(len(json.loads(f.body)["data"]) for f in frames)
    if kind == "airkorea":
        return sum(len(json.loads(f.body)["response"]["body"]["items"]) for f in frames)
    if kind == "ttn":
        return sum(len([ln for ln in f.body.splitlines() if ln.strip()]) for f in frames)
    return sum(max(0, len(f.body.splitlines()) - 1) for f in frames)  # CSV: rows after the header


def run(a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from etl import ingest
    from etl.extract import mqtt
    from etl.registry.load import devices
    from etl.settings import get_settings
    from etl.simulate.clock import SimClock
    from etl.simulate.faults import FaultPlan
    from etl.simulate.gateways import Gateways
    from etl.simulate.mqtt_pub import publish
    from etl.sources import load_sources
    from etl.storage import lake
    from etl.timeutil import kst_day_bounds

    settings, sources, store = get_settings(), load_sources(), lake()
    start = kst_day_bounds(date.fromisoformat(a.day))[0] + timedelta(hours=a.from_hour)
    end = start + timedelta(hours=a.hours)
    plan = FaultPlan.demo() if a.faults == "demo" else FaultPlan.none()
    _broker(settings.mqtt_host, settings.mqtt_port)
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    env = {k: v for k, v in os.environ.items() if k.startswith("CITYLAKE_")}
    server = ctx.Process(target=_serve, args=(env, a.fleet, end + timedelta(hours=2), a.faults, ready, stop), daemon=True)
    server.start()
    if not ready.wait(60):
        raise SystemExit("the simulated gateways did not start")
    devs = [dataclasses.asdict(d) for d in devices(a.fleet)]
    local = Gateways(devs, SimClock.frozen(end), settings, plan)  # its push side only: MQTT messages, CSV files
    rows: list[dict[str, Any]] = []
    mqtt_ids = [s for s in sources.values() if "topic" in s.options]
    try:
        for s in mqtt_ids:  # durable subscriptions first, as at deploy time
            mqtt.ensure_session(settings.mqtt_host, settings.mqtt_port, s.options["topic"], s.options["client_id"])
        traffic = local.mqtt_traffic(start, end)
        local.push(start, end, mqtt=False)  # the CSV exports land in the drop folder
        for sid, source in sources.items():
            row: dict[str, Any] = {"source": sid, "protocol": PROTOCOLS.get(sid, source.kind)}
            kind = ("chirpstack" if source.options.get("transport") == "mqtt" else "ttn") if source.kind == "lorawan" \
                else source.kind
            idle = 0.0
            if sid in traffic:
                t0 = time.perf_counter()
                row["published"] = publish(traffic[sid], settings.mqtt_host, settings.mqtt_port,
                                           f"{settings.mqtt_client_prefix}-pub-{sid}", plan)
                row["publish_s"] = time.perf_counter() - t0
                idle = float(source.options.get("idle_s", 1.5)) + ACK_FLUSH_S
            row.update(runs=0, extract_s=0.0, frames=0, messages=0)
            seen: set[bytes] = set()
            if sid in traffic:
                row["unique_published"] = len({p for _, _, p in traffic[sid]})
            while True:  # a run may not take the whole queue: later runs (as the schedule would) take the rest
                t0 = time.perf_counter()
                result = ingest.extract(sid, start, end, store)
                row["extract_s"] += time.perf_counter() - t0
                row["runs"] += 1
                row["frames"] += result["frames"]
                new = _messages(store, result, kind, seen)
                row["messages"] += new
                if sid not in traffic or len(seen) >= row["unique_published"] or not new or row["runs"] >= 20:
                    break
            row["waits_s"] = idle * row["runs"]
            row["work_s"] = max(row["extract_s"] - row["waits_s"], 1e-9)
            rows.append(row)
            print(f"  {sid:<20}{row['messages']:>8} messages in {row['extract_s']:.2f} s", flush=True)
    finally:
        for s in mqtt_ids:
            mqtt.reset_session(settings.mqtt_host, settings.mqtt_port, s.options["client_id"])
        stop.set()
        server.join(10)
    return {"rows": rows, "window": [start.isoformat(), end.isoformat()]}


def report(a: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    print(f"\nextraction, {a.fleet} fleet, {a.hours} h from {a.day} {a.from_hour:02d}:00 KST, faults {a.faults}")
    head = (f"{'source':<20}{'protocol':<40}{'messages':>9}{'frames':>8}{'runs':>5}{'seconds':>9}{'msgs/s':>10}"
            f"{'publish/s':>11}")
    print(head + "\n" + "-" * len(head))
    for r in out["rows"]:
        r["msgs_per_s"] = r["messages"] / r["work_s"] if r["messages"] else 0.0
        r["publish_per_s"] = r["published"] / r["publish_s"] if r.get("publish_s") else None
        pub = f"{r['publish_per_s']:,.0f}" if r["publish_per_s"] else "-"
        print(f"{r['source']:<20}{r['protocol']:<40}{r['messages']:>9,}{r['frames']:>8,}{r['runs']:>5}{r['work_s']:>9.2f}"
              f"{r['msgs_per_s']:>10,.0f}{pub:>11}")
        if r["runs"] > 1:
            print(f"  ! {r['source']}: {r['runs']} extraction runs to drain {r['published']:,} messages "
                  f"({r['frames'] - r['messages']:,} landed twice: redelivered because their PUBACKs had not left)")
        if r.get("unique_published") and r["messages"] < r["unique_published"]:
            print(f"  ! {r['source']}: {r['unique_published'] - r['messages']:,} of {r['unique_published']:,} published "
                  "messages never landed (acknowledged without being landed: see the report)")
    print("seconds = the extraction's own work (for pull sources including the simulated gateway's answer time); "
          f"each MQTT run also waited {ACK_FLUSH_S + 1.5:.1f} s (end-of-queue timeout, PUBACK flush), not counted")
    import duckdb
    import pyarrow

    return {"params": vars(a), "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                                           "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__},
            **out}


def main(argv: list[str] | None = None) -> None:
    a = _args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="citylake-bench-extract-"))
    private = None
    try:
        if a.broker == "private":
            private, port = _private_broker(workdir)
            broker = ("127.0.0.1", port)
        else:
            host, _, port = a.broker.rpartition(":")
            broker = (host, int(port))
        _environment(workdir, a.fleet, broker)
        result = report(a, run(a, workdir))
        out = Path(a.results)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"extract_{Path(a.fleet).stem}_{a.hours}h.json"
        path.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"results: {path}")
    finally:
        if private is not None:
            private.terminate()
            private.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
