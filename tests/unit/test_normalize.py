"""Normalisation of a landed batch: registry join, units, ranges, duplicates, quarantine,
and the per-batch reconciliation, on crafted MQTT batches of the small fleet."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.compute as pc
import pytest

from etl.extract.frames import Frame

UTC = timezone.utc
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def _light(ext: str, ts: datetime, **fields: object) -> Frame:
    body = {"id": ext, "ts": int(ts.timestamp() * 1000), "on": True, "dim": 100, "fault": 0, **fields}
    return Frame(json.dumps(body).encode(), {"topic": f"goyang/streetlights/{ext}/state"})


def _land(frames: list[Frame], hour: int = 0):  # noqa: ANN202
    from etl import landing
    from etl.storage import lake

    start = T0 + timedelta(hours=hour)
    env, _ = landing.land(lake(), "lights_mqtt", "mqtt", start, start + timedelta(hours=1), frames, start + timedelta(hours=1))
    return env


def _normalize(env):  # noqa: ANN001, ANN202
    from etl import normalize
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import lake

    return normalize.normalize(lake(), load_sources()["lights_mqtt"], env, load_registry())


def _lights() -> list[str]:
    from etl.registry.load import load_registry

    reg = load_registry()
    return reg.filter(pc.equal(reg["source"], "lights_mqtt"))["external_id"].to_pylist()


def test_batch_reconciles_and_quarantines_with_reasons(lake_env: Path) -> None:
    from etl import tables
    from etl.storage import QUARANTINE, SILVER, lake

    a, b = _lights()[:2]
    frames = [
        _light(a, T0, power_w=98.5),                         # 4 readings
        _light(a, T0, power_w=98.5),                         # same again: 4 duplicates
        _light(b, T0, power_kw=0.1),                         # wrong unit, converted: 100 W
        _light("SL-GY-NOPE", T0, power_w=1.0),               # 4 x unknown_device
        Frame(b'{"id": "' + a.encode() + b'", "ts": 17'),    # truncated: 1 x malformed_json
        _light(a, T0 + timedelta(minutes=5), power_w=900.0), # 900 W: out of physical range
        _light(b, T0 + timedelta(minutes=5), power_w="high"),  # bad_value
    ]
    result = _normalize(_land(frames))
    assert result.received == 4 + 4 + 4 + 4 + 1 + 4 + 4
    assert result.received == result.accepted + result.quarantined + result.duplicates
    assert result.duplicates == 4
    silver = tables.read(lake(), SILVER)
    power = {r["device_id"]: r["value"] for r in silver.filter(pc.equal(silver["metric"], "power")).to_pylist()}
    assert sorted(power.values()) == [98.5, 100.0]
    assert set(silver["unit"].to_pylist()) >= {"W", "bool", "%", "code"}
    q = tables.read(lake(), QUARANTINE)
    reasons = sorted(q["reason"].to_pylist())
    assert reasons.count("unknown_device") == 4
    assert reasons.count("malformed_json") == 1
    assert reasons.count("out_of_physical_range") == 1
    assert reasons.count("bad_value") == 1
    assert result.quarantined == len(reasons)
    assert "SL-GY-NOPE" in q["ref"].to_pylist()


def test_rerun_and_overlapping_batches_never_duplicate(lake_env: Path) -> None:
    from etl import tables
    from etl.storage import BATCHES, SILVER, lake

    a = _lights()[0]
    first = _land([_light(a, T0 + timedelta(minutes=m), power_w=50.0) for m in (0, 5, 10)])
    r1 = _normalize(first)
    assert (r1.accepted, r1.duplicates, r1.written) == (12, 0, True)
    again = _normalize(first)                               # re-run of the same batch: a no-op
    assert (again.accepted, again.written) == (12, False)
    overlap = _land([_light(a, T0 + timedelta(minutes=m), power_w=50.0) for m in (10, 15)], hour=1)
    r2 = _normalize(overlap)                                # a redelivered reading is a duplicate
    assert (r2.accepted, r2.duplicates) == (4, 4)
    silver = tables.read(lake(), SILVER)
    assert silver.num_rows == 16
    assert tables.read(lake(), BATCHES).num_rows == 2
    assert set(silver["date"].to_pylist()) == {"2026-11-24"}


def test_reconciliation_failure_writes_nothing(lake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If counts do not add up (a bug that lost rows), the batch is refused, not half-written."""
    from etl import normalize, tables
    from etl.storage import SILVER, lake

    real = normalize._drop_existing

    def lossy(store, silver, resuming=None):  # noqa: ANN001, ANN202
        fresh, held = real(store, silver, resuming)
        return fresh.slice(1), held

    monkeypatch.setattr(normalize, "_drop_existing", lossy)
    env = _land([_light(_lights()[0], T0, power_w=10.0)])
    with pytest.raises(normalize.ReconciliationError, match="received 4"):
        _normalize(env)
    assert tables.read(lake(), SILVER).num_rows == 0
