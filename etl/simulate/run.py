"""``citylake simulate``: the city's gateways on 127.0.0.1, driven by a simulated clock.

Pull gateways answer for any time up to the simulated now; every simulated hour the push
gateways send that hour (MQTT messages to the broker, SCADA CSV files to the drop folder).
At ``--speed 1440`` a day passes in a minute.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from datetime import date, timedelta

log = logging.getLogger(__name__)


def main(day: date, speed: float = 1440.0, fleet: str = "small", faults: str = "demo", until: date | None = None) -> int:
    from etl.extract import mqtt
    from etl.registry.load import devices
    from etl.settings import get_settings
    from etl.simulate.clock import SimClock
    from etl.simulate.faults import FaultPlan
    from etl.simulate.gateways import Gateways
    from etl.sources import load_sources
    from etl.timeutil import kst_day_bounds

    settings = get_settings()
    start, _ = kst_day_bounds(day)
    _, end = kst_day_bounds(until or day)
    plan = FaultPlan.demo() if faults == "demo" else FaultPlan.none()
    clock = SimClock(start, speed=speed)
    devs = [dataclasses.asdict(d) for d in devices(fleet)]
    for s in load_sources().values():  # durable subscriptions before the devices publish
        if "topic" in s.options:
            mqtt.ensure_session(settings.mqtt_host, settings.mqtt_port, s.options["topic"], s.options["client_id"])
    hour = timedelta(hours=1)
    sent_until = start
    with Gateways(devs, clock, settings, plan) as gw:
        print(f"gateways on {settings.gateway_host}: AirKorea :{settings.airkorea_port}, cursor API "
              f":{settings.cursor_port}, TTN storage :{settings.lns_port}; MQTT {settings.mqtt_host}:{settings.mqtt_port}; "
              f"CSV drops {settings.csv_drop_dir}. Simulating {start} .. {end} at {speed:g}x; Ctrl-C stops.")
        try:
            while sent_until < end:
                now = clock.now()
                while sent_until + hour <= min(now, end):
                    counts = gw.push(sent_until, sent_until + hour)
                    print(f"{sent_until + hour:%Y-%m-%d %H:%M} UTC  {counts}", flush=True)
                    sent_until += hour
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("stopped")
    return 0
