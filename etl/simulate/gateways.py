"""All simulated gateways of the city, started together on 127.0.0.1.

Pull gateways (AirKorea API, the cursor API, the LoRaWAN network server) answer from the
simulated clock; push gateways (MQTT publishers, SCADA CSV drops) are driven with
:meth:`Gateways.push`, which sends a window's messages and files.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from etl.settings import Settings
from etl.simulate.clock import SimClock
from etl.simulate.faults import FaultPlan

log = logging.getLogger(__name__)

# Credentials the simulated gateways accept. The extractors read the same env vars, so the
# demo sets them to these development values; real deployments set real ones.
DEV_SECRETS = {
    "CITYLAKE_AIRKOREA_SERVICE_KEY": "dev-airkorea-service-key",
    "CITYLAKE_WEATHER_TOKEN": "dev-weather-token",
    "CITYLAKE_DAYCARE_TOKEN": "dev-weather-token",
    "CITYLAKE_TTN_API_KEY": "NNSXS.DEV-ONLY-TTN-KEY",
}


def dev_environment() -> dict[str, str]:
    """Environment for running against the simulator (keeps values already set)."""
    return {k: os.environ.get(k, v) for k, v in DEV_SECRETS.items()}


def _secret(name: str) -> str:
    return os.environ.get(name, DEV_SECRETS[name])


@dataclass
class Gateways:
    devices: list[dict[str, Any]]
    clock: SimClock
    settings: Settings
    faults: FaultPlan = field(default_factory=FaultPlan.none)
    servers: list[Any] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.devices if d["kind"] == kind]

    def start(self) -> "Gateways":
        from etl.simulate import signals
        from etl.simulate.airkorea_server import AirKoreaServer
        from etl.simulate.cursor_server import CursorServer
        from etl.simulate.lns_server import LnsServer

        s = self.settings
        stations = [{"stationName": d["external_id"], "sidoName": "경기", "addr": f"경기도 고양시 {d['district_ko']} {d['dong_ko']}",
                     "lat": d["lat"], "lon": d["lon"], "mangName": "도로변대기" if "로" in d["external_id"] else "도시대기",
                     "device_id": d["device_id"]} for d in self.of("reference_station")]
        by_name = {st["stationName"]: st["device_id"] for st in stations}
        self.servers = [
            AirKoreaServer(stations, lambda name, ts: signals.air(by_name[name], ts), self.clock,
                           _secret("CITYLAKE_AIRKOREA_SERVICE_KEY"), self.faults, port=s.airkorea_port),
            CursorServer(self.of("weather_station"), self.of("daycare_gate"), self.clock,
                         _secret("CITYLAKE_WEATHER_TOKEN"), self.faults, port=s.cursor_port),
            LnsServer(self.of("smart_bin"), self.clock, _secret("CITYLAKE_TTN_API_KEY"), self.faults, port=s.lns_port),
        ]
        for server in self.servers:
            server.start()
        log.info("gateways up: airkorea :%s, cursor :%s, lns :%s", s.airkorea_port, s.cursor_port, s.lns_port)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers = []

    def __enter__(self) -> "Gateways":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def mqtt_traffic(self, start: datetime, end: datetime) -> dict[str, list]:
        """The window's MQTT messages per source id (topic routing as the broker would do it)."""
        from etl.simulate import messages

        root = self.settings.mqtt_topic_root
        mq = messages.mqtt_messages(self.devices, start, end, self.faults, root)
        return {
            "lights_mqtt": [m for m in mq if m[1].startswith(f"{root}/streetlights/")],
            "air_mqtt": [m for m in mq if m[1].startswith(f"{root}/air/")],
            "parking_chirpstack": messages.chirpstack_messages(self.devices, start, end, self.faults, root),
        }

    def push(self, start: datetime, end: datetime, mqtt: bool = True) -> dict[str, int]:
        """Publish the window's MQTT messages (unless ``mqtt=False``) and drop its CSV exports."""
        from etl.simulate import csv_drop
        from etl.simulate.mqtt_pub import publish

        s = self.settings
        counts: dict[str, int] = {}
        if mqtt:
            for sid, msgs in self.mqtt_traffic(start, end).items():
                counts[sid] = publish(msgs, s.mqtt_host, s.mqtt_port, f"{s.mqtt_client_prefix}-sim-{sid}", self.faults)
        files = csv_drop.write_drops(self.of("water_probe"), start, end, Path(s.csv_drop_dir), self.faults)
        counts["csv_files"] = len(files)
        return counts
