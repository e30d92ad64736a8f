"""Compaction leaves exactly the same readings in fewer files; vacuum keeps what versions need."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from etl.extract.frames import Frame

T0 = datetime(2026, 11, 24, 3, tzinfo=timezone.utc)


def test_compaction_keeps_every_reading(lake_env: Path) -> None:
    import pyarrow.compute as pc

    from etl import landing, maintenance, normalize, tables
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import SILVER, lake

    reg = load_registry()
    ext = reg.filter(pc.equal(reg["source"], "lights_mqtt"))["external_id"].to_pylist()[0]
    store = lake()
    for hour in range(4):  # four hourly batches: four small files in one partition
        start = T0 + timedelta(hours=hour)
        frames = [Frame(json.dumps({"id": ext, "ts": int((start + timedelta(minutes=m)).timestamp() * 1000), "on": False,
                                    "power_w": 0.4, "dim": 0, "fault": 0}).encode()) for m in range(0, 60, 15)]
        env, _ = landing.land(store, "lights_mqtt", "mqtt", start, start + timedelta(hours=1), frames, start)
        normalize.normalize(store, load_sources()["lights_mqtt"], env, reg)
    before = tables.read(store, SILVER).sort_by([("metric", "ascending"), ("ts", "ascending")])
    files_before = len(tables.open_table(store, SILVER).file_uris())
    out = maintenance.compact("2026-11-24", ["streetlights"])
    assert out["silver"]["streetlights"]["numFilesRemoved"] == files_before
    assert len(tables.open_table(store, SILVER).file_uris()) == 1
    after = tables.read(store, SILVER).sort_by([("metric", "ascending"), ("ts", "ascending")])
    assert after.equals(before)
    removed = maintenance.checkpoint_and_vacuum(retention_hours=0)
    assert removed["silver"] == files_before
    assert tables.read(store, SILVER).num_rows == before.num_rows
