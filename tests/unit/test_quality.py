"""Quality step of normalisation: the split into silver / flagged / quarantine, batch-level
severities (an error keeps the batch out of silver until the fix), results kept in the lake,
the daily quality tables, and replay of quarantined batches after a fix."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tests.conftest import clear_caches
from tests.unit.test_normalize import T0, _land, _light, _lights, _normalize

UTC = timezone.utc
NEW_LIGHT = "SL-GY-00NEW"


def _registry_with_new_light(tmp_path: Path) -> Path:
    """The small fleet plus one streetlight that the gateway already sends (the 'fix')."""
    from etl.registry.load import resolve_fleet

    src = Path(resolve_fleet("small")).read_text(encoding="utf-8").splitlines()
    row = next(r for r in src if r.startswith("sl-00001,")).split(",")
    row[0], row[4] = "sl-09999", NEW_LIGHT
    path = tmp_path / "fleet-fixed.csv"
    path.write_text("\n".join([*src, ",".join(row)]) + "\n", encoding="utf-8")
    return path


def _read(name: str):  # noqa: ANN202
    from etl import tables
    from etl.storage import lake

    return tables.read(lake(), name)


def test_row_level_split_quarantines_and_flags(lake_env: Path) -> None:
    from etl.storage import QUARANTINE, SILVER

    a, b = _lights()[:2]
    frames = [
        _light(a, T0, power_w=98.5),
        _light(a, T0 + timedelta(minutes=5), power_w=600.0),                 # > 500 W physical: quarantined
        _light(b, T0, power_w=300.0),                                        # > 250 W plausible: kept, flagged
        _light(b, T0 + timedelta(minutes=5), power_w=90.0, fault=3),          # fault code 3: implausible (0 expected)
        _light(a, T0 + timedelta(hours=5), power_w=90.0),                    # after receipt + 5 min: future
    ]
    # lamp_on sent as 2: not a switch value
    frames.append(_light(b, T0 + timedelta(minutes=10), on=2, power_w=80.0))
    result = _normalize(_land(frames))
    q = _read(QUARANTINE)
    reasons = sorted(q["reason"].to_pylist())
    assert reasons.count("out_of_physical_range") == 1
    assert reasons.count("future_timestamp") == 4          # all four metrics of that report
    assert reasons.count("bad_category") == 1
    silver = _read(SILVER)
    flagged = silver.filter(pc.is_valid(silver["quality_flag"]))
    assert sorted(zip(flagged["metric"].to_pylist(), flagged["quality_flag"].to_pylist())) == [
        ("fault_code", "implausible"), ("power", "implausible")]
    assert result.flagged == 2
    assert result.received == result.accepted + result.quarantined + result.duplicates == 24
    detail = q.filter(pc.equal(q["reason"], "out_of_physical_range"))["detail"][0].as_py()
    assert "600" in detail and "out_of_physical_range" in detail


def test_results_are_kept_as_json_checks_and_data_docs(lake_env: Path) -> None:
    from etl.storage import CHECKS, lake
    from quality.check import validation_key

    env = _land([_light(x, T0, power_w=50.0) for x in _lights()])
    result = _normalize(env)
    store = lake()
    doc = json.loads(store.get(validation_key("lights_mqtt", result.window_date, env.batch_id)))
    assert doc["counts"]["accepted"] == result.accepted and doc["errors"] == []
    suites = {r["meta"]["active_batch_definition"]["data_asset_name"] if "meta" in r else None for r in doc["gx_results"]}
    assert suites  # GX's own result documents are kept
    assert {c["suite"] for c in doc["checks"]} == {"citylake.streetlights", "citylake.batch"}
    checks = _read(CHECKS)
    assert set(checks["batch_id"].to_pylist()) == {env.batch_id}
    assert all(checks["success"].to_pylist()) or doc["warnings"]
    page = store.get(f"quality/docs/validations/source=lights_mqtt/date={result.window_date}/{env.batch_id}.html")
    assert b"citylake.streetlights" in page and env.batch_id.encode() in page
    from quality import docs

    gx_key = (f"quality/docs/validations/source=lights_mqtt/date={result.window_date}/"
              f"{env.batch_id}.citylake.streetlights.html")
    assert not store.exists(gx_key)                      # ingest writes the summary page only
    assert docs.render_pending(store, [result.window_date]) == 1
    assert docs.render_pending(store, [result.window_date]) == 0   # idempotent
    gx_page = store.get(f"quality/docs/validations/source=lights_mqtt/date={result.window_date}/"
                        f"{env.batch_id}.citylake.streetlights.html")
    assert b"<html" in gx_page.lower() and b"expect" in gx_page.lower()  # rendered by GX
    index = store.get(docs.build_index(store))
    assert env.batch_id.encode() in index


def test_error_level_failure_keeps_batch_out_of_silver_until_fixed(lake_env: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway sends a whole batch from a light the registry does not know yet: 100 % of
    the batch would be quarantined, which is an error, not routine. After the registry is
    fixed, the same landed batch is normalised and every reading is accepted."""
    from etl import ingest, tables
    from etl.storage import BATCHES, SILVER, lake
    from quality.validate import QualityError

    known = _land([_light(_lights()[0], T0, power_w=40.0)], hour=0)
    _normalize(known)
    before = _read(SILVER).num_rows
    frames = [_light(NEW_LIGHT, T0 + timedelta(minutes=5 * i), power_w=40.0 + i) for i in range(8)]
    env = _land(frames, hour=1)
    with pytest.raises(QualityError) as err:
        _normalize(env)
    message = str(err.value)
    assert "quarantine_rate" in message and env.batch_id in message and "re-run" in message
    assert _read(SILVER).num_rows == before                     # silver unchanged
    assert not tables.committed(lake(), BATCHES, env.batch_id)  # not in the ledger: still pending
    assert env.key.rsplit("/", 1)[0]  # landed batch kept
    assert ingest.pending_batches("lights_mqtt") == [env.key[: -len(".jsonl")] + ".envelope.json"]
    # the failed validation is on record
    failed = json.loads(lake().get(f"quality/validations/source=lights_mqtt/date=2026-11-24/{env.batch_id}.json"))
    assert failed["errors"]

    monkeypatch.setenv("CITYLAKE_FLEET", str(_registry_with_new_light(tmp_path)))
    clear_caches()
    result = _normalize(env)
    assert result.accepted == 32 and result.quarantined == 0
    assert result.received == result.accepted + result.quarantined + result.duplicates
    assert _read(SILVER).num_rows == before + 32
    assert ingest.pending_batches("lights_mqtt") == []


def test_quality_tables_rebuild_per_date_and_are_idempotent(lake_env: Path) -> None:
    from etl.storage import DEVICE_HEALTH, QUALITY_DAILY
    from quality import daily, report

    lights = _lights()
    for hour in range(3):
        start = T0 + timedelta(hours=hour)
        frames = [_light(x, start + timedelta(minutes=m), power_w=50.0 + m) for x in lights[:-1] for m in (0, 15, 30, 45)]
        frames.append(_light(lights[0], start, power_w=50.0))   # a duplicate
        _normalize(_land(frames, hour=hour))
    first = daily.rebuild(["2026-11-24"])
    again = daily.rebuild(["2026-11-24"])
    assert first == again
    q = _read(QUALITY_DAILY).to_pylist()
    assert len(q) == 1
    row = q[0]
    assert (row["domain"], row["source"], row["date"]) == ("streetlights", "lights_mqtt", "2026-11-24")
    assert row["accepted"] == 3 * 4 * 4 * (len(lights) - 1) and row["duplicates"] == 3 * 4 and row["batches"] == 3
    assert row["received"] == row["accepted"] + row["quarantined"] + row["duplicates"]
    assert all(c["pass_rate"] is not None for c in row["checks"])
    health = {h["device_id"]: h for h in _read(DEVICE_HEALTH).to_pylist()}
    silent = next(d for d, h in health.items() if h["reports"] == 0)
    assert health[silent]["status"] == "offline"
    busy = [h for h in health.values() if h["reports"]]
    assert {h["status"] for h in busy} == {"ok"} and all(h["completeness"] == 1.0 for h in busy)
    text = report.render(report.report(datetime(2026, 11, 24).date(), datetime(2026, 11, 24).date()))
    assert "lights_mqtt" in text and silent in text and "offline" in text


def test_replay_releases_fixed_rows_once(lake_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from etl import replay
    from etl.storage import BATCHES, QUARANTINE, SILVER

    lights = _lights()
    frames = [_light(x, T0 + timedelta(minutes=m), power_w=60.0) for x in lights for m in (0, 15, 30)]
    frames += [_light(NEW_LIGHT, T0 + timedelta(minutes=m), power_w=61.0) for m in (0, 15)]
    env = _land(frames)
    first = _normalize(env)
    assert first.quarantined == 8  # 2 reports x 4 metrics: unknown_device
    assert set(_read(QUARANTINE)["reason"].to_pylist()) == {"unknown_device"}
    silver_before = _read(SILVER).num_rows

    monkeypatch.setenv("CITYLAKE_FLEET", str(_registry_with_new_light(tmp_path)))
    clear_caches()
    assert replay.candidates(__import__("etl.storage", fromlist=["lake"]).lake(), reason="unknown_device") == [env.batch_id]
    done = replay.replay([env.batch_id])
    assert [(r.released, r.still_quarantined) for r in done] == [(8, 0)]
    assert _read(SILVER).num_rows == silver_before + 8
    assert _read(QUARANTINE).num_rows == 0
    ledger = _read(BATCHES).to_pylist()
    assert len(ledger) == 1 and ledger[0]["replays"] == 1
    r = ledger[0]
    assert (r["received"], r["accepted"], r["quarantined"]) == (first.received, first.accepted + 8, 0)
    assert r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"]
    # a second replay finds nothing left to release and writes no duplicate
    again = replay.replay([env.batch_id])
    assert [(x.released, x.still_quarantined) for x in again] == [(0, 0)]
    silver = _read(SILVER)
    assert silver.num_rows == silver_before + 8
    keys = silver.select(["device_id", "metric", "ts"]).to_pylist()
    assert len({tuple(k.values()) for k in keys}) == len(keys)


def test_batch_suite_severities() -> None:
    from quality.suites import Limits
    from quality.validate import validate_batch

    counts = {"received": 100, "accepted": 40, "quarantined": 60, "duplicates": 0, "duplicates_in_batch": 0}
    out = validate_batch(counts, lag_s=60.0, device_hours=10, incomplete_share=0.0, limits=Limits())
    assert len(out.errors) == 1 and "quarantine_rate" in out.errors[0] and not out.warnings
    counts = {"received": 100, "accepted": 70, "quarantined": 0, "duplicates": 30, "duplicates_in_batch": 30}
    out = validate_batch(counts, lag_s=5 * 3600.0, device_hours=10, incomplete_share=0.5, limits=Limits())
    assert not out.errors
    assert sorted(w.split(" ")[0] for w in out.warnings) == ["duplicate_rate", "incomplete_share", "lag_s"]
    lossy = {"received": 100, "accepted": 70, "quarantined": 0, "duplicates": 20, "duplicates_in_batch": 0}
    out = validate_batch(lossy, lag_s=0.0, device_hours=0, incomplete_share=None, limits=Limits())
    assert any("accepted,quarantined,duplicates,minus_received" in e for e in out.errors)
    tiny = {"received": 3, "accepted": 0, "quarantined": 3, "duplicates": 0, "duplicates_in_batch": 0}
    assert validate_batch(tiny, None, 0, None, Limits()).errors == []  # rates of 3 rows say nothing


def test_completeness_counts_device_hours(lake_env: Path) -> None:
    import pyarrow as pa

    from etl.registry.load import load_registry
    from quality.suites import Limits
    from quality.validate import completeness

    reg = load_registry()
    lights = reg.filter(pc.equal(reg["source"], "lights_mqtt"))
    ids = lights["device_id"].to_pylist()
    # interval 900 s: 4 reports an hour expected; device 0 sends 4 (x 4 metrics), device 1 sends 1
    rows = [(ids[0], T0 + timedelta(minutes=15 * i)) for i in range(4) for _ in range(4)] + [(ids[1], T0)]
    good = pa.table({"device_id": [r[0] for r in rows],
                     "ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC"))})
    hours, share = completeness(good, reg, "lights_mqtt", T0, T0 + timedelta(hours=1), Limits(min_completeness=0.5))
    assert hours == len(ids)
    assert share == pytest.approx((len(ids) - 1) / len(ids))


def test_quality_doc_tables_are_generated_from_the_code() -> None:
    from quality import reference
    from tests.conftest import REPO

    text = (REPO / "docs" / "QUALITY.md").read_text(encoding="utf-8")
    assert reference.render(text) == text, "docs/QUALITY.md is stale: run python -m quality.reference"
    assert "`pm25`" in text and "`outside_goyang`" in text and "`stuck`" in text


def test_runs_and_spikes_continue_from_the_batch_before() -> None:
    import numpy as np
    import pandas as pd

    from quality.expectations import spike_mask, stuck_mask

    ts = pd.date_range("2026-11-24 03:00", periods=4, freq="10min", tz="UTC")
    df = pd.DataFrame({"device_id": ["a"] * 4, "metric": ["pm10"] * 4, "ts": ts, "value": [20.0] * 4,
                       "prev_value": [20.0] * 4, "prev_run": [8] * 4})
    assert stuck_mask(df, {"pm10": 12}).all()                    # 8 in silver + 4 here = 12
    assert not stuck_mask(df.assign(prev_run=7), {"pm10": 12}).any()
    assert not stuck_mask(df.assign(prev_value=21.0), {"pm10": 12}).any()
    df = df.assign(value=[900.0, 20.0, 21.0, 22.0])
    assert list(spike_mask(df, {"pm10": 300.0})) == [True, False, False, False]   # silver holds its left neighbour
    assert not spike_mask(df.assign(prev_value=np.nan), {"pm10": 300.0}).any()


def test_series_context_reads_the_series_end_from_silver(lake_env: Path) -> None:
    import pyarrow as pa

    from etl import landing, normalize
    from etl.extract.frames import Frame
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import lake
    from quality.context import series_context

    reg = load_registry()
    sensors = reg.filter(pc.equal(reg["source"], "air_mqtt"))
    ext, device = sensors["external_id"][0].as_py(), sensors["device_id"][0].as_py()
    values = [30.0, 41.0, 41.0, 41.0]
    frames = [Frame(json.dumps({"sensor": ext, "time": (T0 + timedelta(minutes=10 * i)).isoformat(),
                                "pm10": v, "pm2_5": 10.0}).encode(), {"topic": f"goyang/air/{ext}"})
              for i, v in enumerate(values)]
    env, _ = landing.land(lake(), "air_mqtt", "mqtt", T0, T0 + timedelta(hours=1), frames, T0 + timedelta(hours=1))
    normalize.normalize(lake(), load_sources()["air_mqtt"], env, reg)
    fresh = pa.table({"device_id": [device, device], "domain": ["air_quality"] * 2, "metric": ["pm10", "pm25"],
                      "ts": pa.array([T0 + timedelta(hours=1)] * 2, pa.timestamp("us", tz="UTC"))})
    ctx = {r["metric"]: r for r in series_context(lake(), fresh, reg, exclude_batch=None).to_pylist()}
    assert (ctx["pm10"]["prev_value"], ctx["pm10"]["prev_run"]) == (41.0, 3)
    assert (ctx["pm25"]["prev_value"], ctx["pm25"]["prev_run"]) == (10.0, 4)
    assert series_context(lake(), fresh, reg, exclude_batch=env.batch_id).num_rows == 0  # its own rows: none


def test_analysts_get_commented_views_and_a_duckdb_file(lake_env: Path, tmp_path: Path) -> None:
    import duckdb

    from etl import cli, duck

    _normalize(_land([_light(x, T0, power_w=50.0) for x in _lights()]))
    con = duck.analyst_session()
    for view in ("silver", "quarantine", "batches", "quality_checks"):
        cols = con.sql(f"SELECT column_name, comment FROM duckdb_columns() WHERE table_name = '{view}'").fetchall()
        if view in ("silver", "quarantine", "batches"):
            assert all(c for _, c in cols), (view, [n for n, c in cols if not c])
    assert con.sql("SELECT comment FROM duckdb_views() WHERE view_name = 'silver'").fetchone()[0]
    assert con.sql("SELECT count(*) FROM devices").fetchone()[0] == len(__import__(
        "etl.registry.load", fromlist=["x"]).load_registry())
    n = con.sql("SELECT count(*) FROM silver").fetchone()[0]
    path = str(tmp_path / "city.duckdb")
    assert cli.main(["duckdb-file", path]) == 0
    other = duckdb.connect(path, read_only=True)
    duck.load_extension(other, "delta")
    assert other.sql("SELECT count(*) FROM silver").fetchone()[0] == n
    assert other.sql("SELECT comment FROM duckdb_views() WHERE view_name = 'batches'").fetchone()[0]
    # a writer appends while the file's reader is open: the reader is not locked out
    _normalize(_land([_light(x, T0 + timedelta(minutes=5), power_w=51.0) for x in _lights()], hour=0))
    assert other.sql("SELECT count(*) FROM silver").fetchone()[0] > n
    assert cli.main(["sql", "-c", "SELECT count(*) FROM quality_checks; SELECT 1"]) == 0


def test_profiles_map_failures_back_to_every_reading() -> None:
    """GX sees distinct (metric, value, flag), device and (ts, install) profiles plus whole series
    rows; a failing profile quarantines or flags every reading that has it, and only those."""
    import numpy as np
    import pyarrow as pa

    from etl.registry.load import load_registry
    from quality.profile import profile
    from quality.validate import validate_readings

    registry = load_registry("small")
    light = registry.filter(pc.equal(registry["domain"], "streetlights"))["device_id"][0].as_py()
    t0 = datetime(2026, 11, 24, 3, tzinfo=timezone.utc)
    rows = [(light, "power", t0 + timedelta(minutes=5 * i), v) for i, v in enumerate([80.0, 80.0, 999.0, 80.0, 999.0])]
    rows += [(light, "fault_code", t0 + timedelta(minutes=5 * i), 0.0) for i in range(5)]
    rows += [("nope-1", "power", t0, 80.0), (light, "lamp_on", t0 + timedelta(days=2), 1.0)]
    n = len(rows)
    cand = pa.table({"device_id": [r[0] for r in rows], "domain": ["streetlights"] * n, "metric": [r[1] for r in rows],
                     "ts": pa.array([r[2] for r in rows], pa.timestamp("us", tz="UTC")), "value": [r[3] for r in rows],
                     "subject": pa.nulls(n, pa.string())})
    flags = pa.array([None] * n, pa.string())
    received = t0 + timedelta(hours=1)
    prof = profile(cand, flags, registry, received, 300)
    frame = prof.frame
    assert (frame["part"] == "value").sum() == 4          # (power, 80), (power, 999), (fault_code, 0), (lamp_on, 1)
    assert frame.loc[frame["part"] == "value", "rows"].sum() == n
    assert (frame["part"] == "series").sum() == 0         # no stuck/spike rule for lights
    assert int(frame.loc[frame["part"] == "keys", "duplicate_keys"].iloc[0]) == 0
    out = validate_readings(cand, flags, registry, received)
    assert list(np.flatnonzero(out.reason == "out_of_physical_range")) == [2, 4]
    assert out.reason[10] == "unknown_device" and out.reason[11] == "future_timestamp"
    assert sum(r is not None for r in out.reason) == 4
    physical = next(c for c in out.checks if c.code == "out_of_physical_range")
    assert (physical.evaluated, physical.failed) == (n, 2)   # counted in readings, not profiles
