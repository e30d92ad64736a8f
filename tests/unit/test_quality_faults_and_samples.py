"""Where each fault and each real-data quirk ends up: silver with a quality flag, quarantine with
a reason, or the ledger's duplicates.

1. Simulator faults (etl.simulate): MQTT messages of the small fleet with one fault switched on,
   landed and normalised as the ingest path does, each caught by the expectation meant for it.
2. Real samples (../shared/data/real, see PROVENANCE.md) through decode + normalisation, counted
   against an independent reading of the files.
3. The custom expectations' masks (quality.expectations) on tiny frames, at their boundaries.

Every normalised batch is reconciled: received = accepted + quarantined + duplicates in the
ledger, and the ledger's counts are the rows silver and quarantine actually hold for the batch.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from etl.extract.frames import Frame
from etl.simulate.faults import FaultPlan
from quality.metrics import metric_table
from tests.conftest import clear_caches, real_data

REAL = real_data()
UTC = timezone.utc
HOUR = timedelta(hours=1)
AIR = metric_table()["air_quality", "pm10"]


# ---- helpers -------------------------------------------------------------------------------
def _devices(kind: str) -> list[dict[str, Any]]:
    from etl.registry.load import devices

    return [dataclasses.asdict(d) for d in devices("small") if d.kind == kind]


def _mqtt_frames(msgs: list[tuple[datetime, str, bytes]]) -> list[Frame]:
    """Messages as etl.extract.mqtt.drain lands them: meta topic and dup flag, seq in arrival order."""
    return [Frame(body=payload, meta={"topic": topic, "dup": False}, seq=i)
            for i, (_, topic, payload) in enumerate(msgs)]


def _land(source_id: str, kind: str, start: datetime, end: datetime, frames: list[Frame],
          received_at: datetime | None = None):  # noqa: ANN202
    from etl import landing
    from etl.storage import lake

    env, wrote = landing.land(lake(), source_id, kind, start, end, frames, received_at or end)
    assert wrote
    return env


def _normalize(env, source=None, registry: pa.Table | None = None):  # noqa: ANN001, ANN202
    from etl import normalize
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import lake

    source = source or load_sources()[env.source]
    return normalize.normalize(lake(), source, env, load_registry() if registry is None else registry)


@dataclasses.dataclass
class Hour:
    start: datetime
    msgs: list[tuple[datetime, str, bytes]]
    result: Any


def _mqtt_hours(source_id: str, devs: list[dict], start: datetime, hours: int, plan: FaultPlan,
                span: timedelta = HOUR) -> list[Hour]:
    """One landed and normalised batch per ``span`` (an hour, as the ingest DAGs run)."""
    from etl.simulate.messages import mqtt_messages

    out = []
    for h in range(hours):
        s = start + h * span
        msgs = mqtt_messages(devs, s, s + span, plan)
        env = _land(source_id, "mqtt", s, s + span, _mqtt_frames(msgs))
        out.append(Hour(s, msgs, _normalize(env)))
    return out


def _silver() -> pa.Table:
    from etl import tables
    from etl.storage import SILVER, lake

    return tables.read(lake(), SILVER)


def _quarantine() -> pa.Table:
    from etl import tables
    from etl.storage import QUARANTINE, lake

    return tables.read(lake(), QUARANTINE)


def _ledger() -> dict[str, dict[str, Any]]:
    from etl import tables
    from etl.storage import BATCHES, lake

    return {r["batch_id"]: r for r in tables.read(lake(), BATCHES).to_pylist()}


def _assert_reconciled(results: list[Any], silver: pa.Table | None = None,
                       quarantine: pa.Table | None = None) -> dict[str, dict[str, Any]]:
    """Each batch's ledger row adds up and matches the result and the rows in silver/quarantine
    (pass the tables when already read: a Delta read costs a few tenths of a second)."""
    ledger = _ledger()
    silver = _silver() if silver is None else silver
    quarantine = _quarantine() if quarantine is None else quarantine
    assert set(ledger) == {r.batch_id for r in results}
    for r in results:
        row = ledger[r.batch_id]
        assert row["received"] == row["accepted"] + row["quarantined"] + row["duplicates"], row
        assert row["duplicates"] == row["duplicates_in_batch"] + row["duplicates_in_lake"]
        assert (row["received"], row["accepted"], row["quarantined"], row["duplicates"], row["flagged"]) == (
            r.received, r.accepted, r.quarantined, r.duplicates, r.flagged)
        mine = silver.filter(pc.equal(silver["batch_id"], r.batch_id))
        assert mine.num_rows == row["accepted"]
        assert (pc.sum(pc.is_valid(mine["quality_flag"])).as_py() or 0) == row["flagged"]
        assert (pc.sum(pc.equal(quarantine["batch_id"], r.batch_id)).as_py() or 0) == row["quarantined"]
    return ledger


def _rows(table: pa.Table, batch_id: str | None = None) -> list[dict[str, Any]]:
    if batch_id is not None:
        table = table.filter(pc.equal(table["batch_id"], batch_id))
    return table.to_pylist()


def _flags(row: dict[str, Any]) -> set[str]:
    return set((row["quality_flag"] or "").split(";")) - {""}


def _registry_with(template_id: str, source: str, refs: list[str], **overrides: Any) -> pa.Table:
    """The small fleet plus one device per ``ref`` of ``source``, copied from a registered device
    (so it sits inside Goyang), installed in 2000."""
    from etl.registry.load import SCHEMA, load_registry

    reg = load_registry()
    tmpl = reg.filter(pc.equal(reg["device_id"], template_id)).to_pylist()[0]
    rows = [{**tmpl, "device_id": f"{source}-{i:03d}", "source": source, "external_id": ref,
             "install_date": date(2000, 1, 1), **overrides} for i, ref in enumerate(refs)]
    return pa.concat_tables([reg, pa.Table.from_pylist(rows, schema=SCHEMA)])


def _allow_any_quarantine_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole third-party files carry readings citylake does not keep (other stations, metrics it has
    no use for): raise the batch-level quarantine-rate limit so the row-level placement can be read."""
    monkeypatch.setenv("CITYLAKE_QUALITY_MAX_QUARANTINE_RATE", "1.0")
    clear_caches()


def _csv_source(source_id: str, folder: Path, profile: str, domain: str):  # noqa: ANN202
    from etl.sources import Source

    return Source(id=source_id, kind="csv_drop", title=f"test drop {profile}", domains=(domain,),
                  schedule="@hourly", endpoint=str(folder), options={"profile": profile})


# ================================================================================================
# 1. simulator faults
# ================================================================================================
STUCK_DAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)   # 18:00 KST: every stuck sensor froze by 17:00 KST
SPIKE_DAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)   # an evening with PM10 above 50 µg/m³ everywhere


def _air_reading_ts(payload: bytes) -> datetime:
    from etl.timeutil import parse_iso

    return parse_iso(json.loads(payload)["time"])


def test_stuck_sensor_is_flagged_once_its_run_reaches_stuck_run(lake_env: Path) -> None:
    """stuck_run (12) readings at the low-cost sensors' 600 s interval span 2 h, so these batches
    are 2 h long: the suites see only one batch's new rows, and an hourly batch holds 6 per sensor."""
    from etl.timeutil import KST

    air = _devices("lowcost_pm")
    assert {d["interval_s"] for d in air} == {600} and AIR.stuck_run == 12
    run_window = AIR.stuck_run * 600 * timedelta(seconds=1)
    plan = FaultPlan(seed=1, stuck=0.5)                                 # some sensors freeze, others live
    frozen = {d["device_id"] for d in air if plan.hit("stuck", d["device_id"], STUCK_DAY.astimezone(KST).date())}
    assert 0 < len(frozen) < len(air)
    full, = _mqtt_hours("air_mqtt", air, STUCK_DAY, 1, plan, span=run_window)
    short, = _mqtt_hours("air_mqtt", air, STUCK_DAY + run_window, 1, plan, span=run_window - timedelta(minutes=10))

    # the fault really froze those sensors (one value pair all window), and only those
    ext = {d["external_id"]: d["device_id"] for d in air}
    for batch, per_device in ((full, AIR.stuck_run), (short, AIR.stuck_run - 1)):
        bodies = [json.loads(p) for _, _, p in batch.msgs]
        assert Counter(b["sensor"] for b in bodies) == {d["external_id"]: per_device for d in air}
        pairs = Counter(ext[b["sensor"]] for b in {(b["sensor"], b["pm10"], b["pm2_5"]): b for b in bodies}.values())
        assert {dev for dev, n in pairs.items() if n == 1} == frozen

    silver = _silver()
    full_rows = _rows(silver, full.result.batch_id)
    assert len(full_rows) == len(air) * 2 * AIR.stuck_run
    for r in full_rows:                                                 # exactly stuck_run equal readings
        assert r["quality_flag"] == ("stuck" if r["device_id"] in frozen else None), r
    short_rows = _rows(silver, short.result.batch_id)
    assert len(short_rows) == len(air) * 2 * (AIR.stuck_run - 1)
    # on its own one reading short of a run, but the run carries on from the batch before
    # (quality.context reads the series' end in silver): frozen sensors stay flagged
    for r in short_rows:
        assert r["quality_flag"] == ("stuck" if r["device_id"] in frozen else None), r
    quarantine = _quarantine()
    ledger = _assert_reconciled([full.result, short.result], silver, quarantine)
    assert ledger[full.result.batch_id]["flagged"] == len(frozen) * 2 * AIR.stuck_run
    assert quarantine.num_rows == 0


def test_isolated_spike_is_flagged_but_not_at_the_open_end(lake_env: Path) -> None:
    """A spike needs both neighbours: the previous one may be in silver already (the batch
    before), the next one not yet, so the last reading of a batch is not judged."""
    air = _devices("lowcost_pm")
    plan = FaultPlan(seed=23, spike=0.2)
    hours = _mqtt_hours("air_mqtt", air, SPIKE_DAY, 2, plan)
    silver = _silver()
    by_key = {(r["device_id"], r["metric"], r["ts"]): r for r in silver.to_pylist()}
    expect_flag, edge, hits = set(), set(), set()
    for n, hour in enumerate(hours):
        for d in air:
            ts = sorted(_air_reading_ts(p) for _, t, p in hour.msgs if f"/{d['external_id']}/" in t)
            hit = [plan.hit("spike", d["device_id"], t) for t in ts]
            assert not any(a and b for a, b in zip(hit, hit[1:])), "scenario: no two spikes in a row"
            assert not any(a and not b and c for a, b, c in zip(hit, hit[1:], hit[2:])), "scenario: no dips"
            for i, t in enumerate(ts):
                if hit[i]:
                    hits.add((d["device_id"], t))
                    judged = (0 < i or n > 0) and i < len(ts) - 1
                    (expect_flag if judged else edge).add((d["device_id"], t))
    assert len(expect_flag) >= 3 and len(edge) >= 2                   # the scenario shows both cases

    flagged = {(dev, ts) for (dev, metric, ts), r in by_key.items() if "spike" in _flags(r)}
    assert flagged == expect_flag
    for dev, ts in hits:
        pm10, pm25 = by_key[dev, "pm10", ts], by_key[dev, "pm25", ts]
        assert pm10["value"] > 10 * pm25["value"]                      # the spiked value is in silver, kept
        assert "spike" not in _flags(pm25)                             # only the spiked metric is flagged
    for dev, ts in edge:                                               # no neighbour on one side
        assert "spike" not in _flags(by_key[dev, "pm10", ts])
    assert all("spike" not in _flags(r) for (dev, metric, ts), r in by_key.items() if (dev, ts) not in hits)
    quarantine = _quarantine()
    assert quarantine.num_rows == 0
    _assert_reconciled([h.result for h in hours], silver, quarantine)


def test_malformed_payloads_are_quarantined_as_malformed_json(lake_env: Path) -> None:
    from etl.simulate.messages import mqtt_messages

    lights = _devices("streetlight")
    plan = FaultPlan(malformed=0.3)
    hours = _mqtt_hours("lights_mqtt", lights, SPIKE_DAY, 2, plan)
    silver, quarantine = _silver(), _quarantine()
    for hour in hours:
        clean = mqtt_messages(lights, hour.start, hour.start + HOUR, FaultPlan.none())
        assert [t for _, t, _ in clean] == [t for _, t, _ in hour.msgs]     # same messages, same order
        bad = {seq: p for seq, ((_, _, p), (_, _, c)) in enumerate(zip(hour.msgs, clean)) if p != c}
        assert 0 < len(bad) < len(clean)
        q = _rows(quarantine, hour.result.batch_id)
        assert sorted(r["frame"] for r in q) == sorted(bad)
        assert all(r["reason"] == "malformed_json" and r["raw"] == bad[r["frame"]].decode() for r in q)
        good_readings = {(json.loads(c)["id"], json.loads(c)["ts"]) for seq, (_, _, c) in enumerate(clean)
                         if seq not in bad}
        ext = {d["device_id"]: d["external_id"] for d in lights}
        rows = _rows(silver, hour.result.batch_id)
        assert len(rows) == 4 * len(good_readings)                     # on, dim, fault, power of each
        assert {(ext[r["device_id"]], int(r["ts"].timestamp() * 1000)) for r in rows} == good_readings
    _assert_reconciled([h.result for h in hours], silver, quarantine)


def test_duplicated_messages_are_counted_once_as_duplicates(lake_env: Path) -> None:
    lights = _devices("streetlight")
    hours = _mqtt_hours("lights_mqtt", lights, SPIKE_DAY, 2, FaultPlan(duplicate=1.0))
    silver = _silver()
    ledger = _assert_reconciled([h.result for h in hours], silver)
    for hour in hours:
        payloads = Counter(p for _, _, p in hour.msgs)
        assert set(payloads.values()) == {2}                            # every message sent twice
        row = ledger[hour.result.batch_id]
        assert row["received"] == 4 * len(hour.msgs)
        assert row["duplicates"] == row["duplicates_in_batch"] == 4 * len(payloads)
        assert row["accepted"] == 4 * len(payloads) and row["quarantined"] == 0
        assert row["quality"] == "warn"                                 # duplicate rate 0.5 > 0.2
        assert any("duplicate_rate" in w for w in hour.result.warnings)
    keys = Counter(zip(*(silver[c].to_pylist() for c in ("device_id", "metric", "ts"))))
    assert len(keys) == silver.num_rows and set(keys.values()) == {1}  # no reading twice in silver


@pytest.mark.parametrize("source, kind, field, unit", [("air_mqtt", "lowcost_pm", "pm10", "ug/m3"),
                                                       ("lights_mqtt", "streetlight", "power", "W")])
def test_wrong_but_declared_units_are_converted_and_accepted(lake_env: Path, source: str, kind: str, field: str,
                                                              unit: str) -> None:
    from etl.simulate.messages import mqtt_messages

    devs = _devices(kind)
    hour, = _mqtt_hours(source, devs, SPIKE_DAY, 1, FaultPlan(wrong_unit=0.5))
    clean = mqtt_messages(devs, SPIKE_DAY, SPIKE_DAY + HOUR, FaultPlan.none())
    ext = {d["device_id"]: d["external_id"] for d in devs}
    expected, converted = {}, 0
    for (_, _, p), (_, _, c) in zip(hour.msgs, clean):
        sent, truth = json.loads(p), json.loads(c)
        if kind == "lowcost_pm":
            converted += sent.get("unit") == "mg/m3"
            expected[truth["sensor"], truth["time"][:19]] = truth["pm10"]
        else:
            converted += "power_kw" in sent
            expected[truth["id"], datetime.fromtimestamp(truth["ts"] / 1000, UTC).isoformat()[:19]] = truth["power_w"]
    assert 0 < converted < len(clean)                                   # both spellings in the batch
    silver, quarantine = _silver(), _quarantine()
    rows = [r for r in _rows(silver, hour.result.batch_id) if r["metric"] == field]
    got = {(ext[r["device_id"]], r["ts"].strftime("%Y-%m-%dT%H:%M:%S")): r["value"] for r in rows}
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(v, rel=1e-9) for k, v in expected.items())
    assert {r["unit"] for r in rows} == {unit}
    assert quarantine.num_rows == 0
    _assert_reconciled([hour.result], silver, quarantine)


def test_clock_skew_past_receipt_plus_tolerance_is_future_timestamp(lake_env: Path) -> None:
    from etl.simulate.messages import mqtt_messages
    from quality.validate import limits_from_settings

    lights = _devices("streetlight")
    skew = 600
    plan = FaultPlan(skewed=1.0, clock_skew_s=skew)
    msgs = mqtt_messages(lights, SPIKE_DAY, SPIKE_DAY + HOUR, plan)
    sent = sorted({json.loads(p)["ts"] for _, _, p in msgs})
    assert sent[0] >= (SPIKE_DAY.timestamp() + skew) * 1000                 # every clock runs 10 min ahead
    tolerance = limits_from_settings().future_tolerance_s
    boundary = datetime.fromtimestamp(sent[len(sent) * 3 // 4] / 1000, UTC)   # a reading exactly at the limit
    received = boundary - timedelta(seconds=tolerance)                        # before the readings' clock time
    env = _land("lights_mqtt", "mqtt", SPIKE_DAY, SPIKE_DAY + HOUR, _mqtt_frames(msgs), received)
    result = _normalize(env)
    silver, quarantine = _silver(), _quarantine()
    rows = _rows(silver) + _rows(quarantine)
    assert len(rows) == 4 * len(msgs)
    latest = received + timedelta(seconds=tolerance)
    future = [r for r in rows if r["ts"] > latest]
    assert future and len(future) < len(rows) / 2
    assert all(r.get("reason") == "future_timestamp" for r in future)
    assert all(r.get("reason") is None for r in rows if r["ts"] <= latest)
    assert sum(r["ts"] == latest for r in rows if r.get("reason") is None) >= 4   # the boundary is kept
    assert result.quarantined == len(future)
    _assert_reconciled([result], silver, quarantine)


# ================================================================================================
# 2. real samples
# ================================================================================================
AIRKOREA = REAL / "airkorea-openapi"
REALTIME = AIRKOREA / "getCtprvnRltmMesureDnsty_sidoName-all_2024-02-18T20.json"
SERIES = AIRKOREA / "getMsrstnAcctoRltmMesureDnsty_2024-02-18.json"
CHICAGO = REAL / "chicago-beach-water"
CHICAGO_PART2 = "Beach_Water_Quality_-_Automated_Sensors_rows30001-31400.csv"
SEOUL = REAL / "seoul-daily-air-cp949"
SEOUL_FILE = "seoul_daily_air_2019.csv"
KMA = REAL / "kma-apihub-asos"
KMA_PM10 = "kma_2020_seoul_finedust.csv"
UPLINKS = REAL / "lorawan-uplinks"
VENDORS = REAL / "thingsboard-lns-payloads" / "VENDORS"


def _items(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_bytes())["response"]["body"]["items"]


def test_airkorea_realtime_file_end_to_end(lake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The nationwide real-time response: '-' with 통신장애 -> source_missing, all-null stations ->
    bad_timestamp, stations outside the registry -> unknown_device, Goyang stations -> silver."""
    from etl.extract.airkorea import FIELDS
    from etl.registry.load import load_registry
    from quality.validate import QualityError

    items = _items(REALTIME)
    goyang = {r["external_id"]: r["device_id"] for r in
              load_registry().filter(pc.equal(load_registry()["source"], "airkorea")).to_pylist()}
    timed = [i for i in items if i["dataTime"] is not None]
    flagged_missing = sum(1 for i in timed for f, (_, _, flag) in FIELDS.items()
                          if i[f] == "-" and i[flag] == "통신장애")
    missing = sum(1 for i in timed for f in FIELDS if i[f] == "-")
    values = {(i["stationName"], m): float(i[f]) for i in timed for f, (m, _, _) in FIELDS.items() if i[f] != "-"}
    in_goyang = {k: v for k, v in values.items() if k[0] in goyang}
    assert missing == flagged_missing == 108 and len(in_goyang) == 29          # PROVENANCE / decoder tests

    start = datetime(2024, 2, 18, 10, 0, tzinfo=UTC)                          # the 20:00 KST hour
    env = _land("airkorea", "airkorea", start, start + HOUR, [Frame(REALTIME.read_bytes(),
                {"op": "getCtprvnRltmMesureDnsty"})], start + HOUR + timedelta(minutes=5))
    # by default a batch that is mostly other provinces' stations is refused whole
    with pytest.raises(QualityError, match="quarantine_rate"):
        _normalize(env)
    assert _silver().num_rows == _quarantine().num_rows == 0 and not _ledger()

    _allow_any_quarantine_rate(monkeypatch)
    result = _normalize(env)
    q = _quarantine()
    assert Counter(q["reason"].to_pylist()) == {"source_missing": 108, "bad_timestamp": 6 * 6,
                                                "unknown_device": len(values) - len(in_goyang)}
    assert result.received == 656 * 6 and result.duplicates == 0
    assert all("통신장애" in r["detail"] for r in _rows(q) if r["reason"] == "source_missing")
    sinwon = [r for r in _rows(q) if r["ref"] == "신원동"]
    assert [(r["reason"], r["metric"], r["device_id"]) for r in sinwon] == [("source_missing", "pm25", goyang["신원동"])]
    silver = _silver()
    station = {v: k for k, v in goyang.items()}
    assert {(station[r["device_id"]], r["metric"]): r["value"] for r in _rows(silver)} == in_goyang
    _assert_reconciled([result], silver, q)


def test_airkorea_overlapping_daily_responses_are_duplicates_in_the_lake(lake_env: Path) -> None:
    """The DAILY data term returns the last hours again every hour: the second batch adds nothing."""
    frame = Frame(SERIES.read_bytes(), {"op": "getMsrstnAcctoRltmMesureDnsty", "stationName": "행신동"})
    start = datetime(2024, 2, 18, 9, 0, tzinfo=UTC)
    first = _normalize(_land("airkorea", "airkorea", start, start + HOUR, [frame]))
    again = _normalize(_land("airkorea", "airkorea", start + HOUR, start + 2 * HOUR, [frame]))
    assert (first.received, first.accepted, first.duplicates) == (60, 60, 0)
    assert (again.received, again.accepted, again.duplicates) == (60, 0, 60)
    silver = _silver()
    ledger = _assert_reconciled([first, again], silver)
    assert ledger[again.batch_id]["duplicates_in_lake"] == 60
    assert silver.num_rows == 60


def test_chicago_sentinels_end_in_quarantine_as_sentinel(lake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from etl.extract import csv_drop

    _allow_any_quarantine_rate(monkeypatch)
    with open(CHICAGO / CHICAGO_PART2, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = {"Water Temperature": "water_temp", "Turbidity": "turbidity", "Transducer Depth": "depth",
               "Wave Height": "wave_height", "Wave Period": "wave_period", "Battery Life": "battery_v"}
    kept = {"water_temp", "turbidity"}                                     # water_quality metrics
    expected: Counter = Counter()
    for row in rows:
        for column, metric in columns.items():
            cell = row[column]
            if not row["Measurement Timestamp"]:
                expected["bad_timestamp"] += 1
            elif cell == "":
                expected["source_missing"] += 1
            elif cell in ("-99999.992", "-100000"):
                expected["sentinel"] += 1
            elif metric not in kept:
                expected["unknown_metric"] += 1
            else:
                expected["accepted"] += 1
    assert expected["sentinel"] == 2 * 17                                 # PROVENANCE: 17 rows in part 2

    beaches = sorted({r["Beach Name"] for r in rows if r["Measurement Timestamp"]})
    registry = _registry_with("wq-0001", "chicago_csv", beaches, interval_s=3600)
    source = _csv_source("chicago_csv", CHICAGO, "chicago_beach", "water_quality")
    at = datetime(2017, 8, 1, 0, 0, tzinfo=UTC)
    env = _land("chicago_csv", "csv_drop", at, at + HOUR, csv_drop.fetch(str(CHICAGO), [CHICAGO_PART2]))
    result = _normalize(env, source, registry)

    q = _quarantine()
    got = Counter(q["reason"].to_pylist())
    assert got == {k: v for k, v in expected.items() if k != "accepted"}
    assert (result.received, result.accepted, result.duplicates) == (len(rows) * 6, expected["accepted"], 0)
    sentinels = [r for r in _rows(q) if r["reason"] == "sentinel"]
    assert Counter(r["metric"] for r in sentinels) == {"wave_height": 17, "wave_period": 17}
    assert all(r["device_id"] and r["device_id"].startswith("chicago_csv-") for r in sentinels)
    silver = _silver()
    assert pc.sum(pc.less(silver["value"], 0)).as_py() == 0                  # no sentinel reached silver
    _assert_reconciled([result], silver, q)


def test_seoul_daily_cp949_file_end_to_end(lake_env: Path) -> None:
    """cp949 header with ㎍/㎥: PM lands in ug/m3 with the value as sent; empty cells -> source_missing."""
    from etl.extract import csv_drop

    text = (SEOUL / SEOUL_FILE).read_bytes().decode("cp949")
    header, *rows = list(csv.reader(io.StringIO(text)))
    metrics = ["no2", "o3", "co", "so2", "pm10", "pm25"]
    empty = sum(cell == "" for r in rows for cell in r[2:])
    stations = sorted({r[1] for r in rows})
    assert len(stations) == 50 and header[6] == "미세먼지농도(㎍/㎥)"

    registry = _registry_with("aq-ref-0001", "seoul_csv", stations)
    source = _csv_source("seoul_csv", SEOUL, "seoul_daily_air", "air_quality")
    at = datetime(2020, 1, 1, 0, 0, tzinfo=UTC)
    env = _land("seoul_csv", "csv_drop", at, at + HOUR, csv_drop.fetch(str(SEOUL), [SEOUL_FILE]))
    result = _normalize(env, source, registry)
    assert (result.received, result.accepted, result.quarantined, result.duplicates) == (
        len(rows) * 6, len(rows) * 6 - empty, empty, 0)
    q = _quarantine()
    assert set(q["reason"].to_pylist()) == {"source_missing"}
    silver = _silver()
    units = dict(zip(silver["metric"].to_pylist(), silver["unit"].to_pylist()))
    assert units == {"no2": "ppm", "o3": "ppm", "co": "ppm", "so2": "ppm", "pm10": "ug/m3", "pm25": "ug/m3"}
    device = {r["external_id"]: r["device_id"] for r in registry.to_pylist() if r["source"] == "seoul_csv"}
    first = silver.filter(pc.and_(pc.equal(silver["device_id"], device[rows[0][1]]),
                                  pc.equal(silver["ts"], pa.scalar(datetime(2018, 12, 31, 15, tzinfo=UTC),
                                                                   pa.timestamp("us", tz="UTC")))))
    assert dict(zip(first["metric"].to_pylist(), first["value"].to_pylist())) == {
        m: float(v) for m, v in zip(metrics, rows[0][2:])}
    zeros = sum(1 for r in rows if r[3] != "" and float(r[3]) == 0.0)
    o3 = silver.filter(pc.equal(silver["metric"], "o3"))
    assert zeros > 0 and pc.sum(pc.equal(o3["value"], 0.0)).as_py() == zeros  # a true 0 is a reading
    _assert_reconciled([result], silver, q)


def test_kma_month_boundary_rows_are_duplicates(lake_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The KMA collector repeated each month's first hour: one reading kept, the other a duplicate.
    (KMA PM10 CSV has no packaged profile; one is declared here as profile data.)"""
    from etl.extract import csv_drop

    monkeypatch.setitem(csv_drop.PROFILES, "kma_pm10", csv_drop.Profile(
        name="kma_pm10", encodings=("utf-8",), time_columns=("TM",), time_format="%Y%m%d%H%M", tz="Asia/Seoul",
        ref_column="STN_ID", columns={"PM10": csv_drop.Column("pm10", "ug/m3")}))
    with open(KMA / KMA_PM10, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    repeated = Counter(r["TM"] for r in rows)
    dups = sum(n - 1 for n in repeated.values())
    over = sum(float(r["PM10"]) > AIR.physical[1] for r in rows)
    assert len(rows) == 7896 and dups == 10 and over == 2                 # PROVENANCE: 10 boundary rows, max 2169
    assert all(tm.endswith("010000") for tm, n in repeated.items() if n > 1)

    registry = _registry_with("aq-ref-0001", "kma_csv", ["108.0"])
    source = _csv_source("kma_csv", KMA, "kma_pm10", "air_quality")
    at = datetime(2021, 1, 1, 0, 0, tzinfo=UTC)
    env = _land("kma_csv", "csv_drop", at, at + HOUR, csv_drop.fetch(str(KMA), [KMA_PM10]))
    result = _normalize(env, source, registry)
    assert (result.received, result.duplicates, result.quarantined, result.accepted) == (
        len(rows), dups, over, len(rows) - dups - over)
    silver, quarantine = _silver(), _quarantine()
    assert Counter(quarantine["reason"].to_pylist()) == {"out_of_physical_range": over}
    ledger = _assert_reconciled([result], silver, quarantine)
    assert ledger[result.batch_id]["duplicates_in_batch"] == dups
    assert len(set(silver["ts"].to_pylist())) == silver.num_rows          # each hour once
    boundary = datetime(2020, 2, 1, 0, 0, tzinfo=UTC) - timedelta(hours=9)  # 2020-02-01 00:00 KST
    assert [r["value"] for r in _rows(silver) if r["ts"] == boundary] == [69.0]


def test_simulated_lorawan_uplink_is_quarantined_even_for_a_registered_device(lake_env: Path) -> None:
    sim = json.loads((UPLINKS / "kschmott_ttn_simulated_uplink.json").read_bytes())
    sim_eui = sim["end_device_ids"]["dev_eui"]
    registry = _registry_with("bin-00001", "bins_ttn", [sim_eui, "1000000000000001"], capacity=2500)
    frames = [Frame((UPLINKS / "kschmott_ttn_simulated_uplink.json").read_bytes(), {"page": 0}, seq=0),
              Frame((VENDORS / "Milesight/EM310-UDL/ThingsStackCommunity/uplink/payload.json").read_bytes(),
                    {"page": 1}, seq=1)]
    at = datetime(2024, 11, 1, 0, 0, tzinfo=UTC)
    result = _normalize(_land("bins_ttn", "lorawan", at, at + HOUR, frames), registry=registry)
    silver_t, quarantine = _silver(), _quarantine()
    q = _rows(quarantine)
    assert [(r["reason"], r["frame"], r["ref"], r["device_id"]) for r in q] == [
        ("simulated_uplink", 0, sim_eui, "bins_ttn-000")]
    silver = {r["metric"]: (r["device_id"], r["value"]) for r in _rows(silver_t)}
    assert silver == {"battery": ("bins_ttn-001", 92.0), "distance": ("bins_ttn-001", 2116.0),
                      "tilt": ("bins_ttn-001", 1.0), "fill_level": ("bins_ttn-001", 15.4)}
    assert (result.received, result.accepted, result.quarantined) == (5, 4, 1)
    _assert_reconciled([result], silver_t, quarantine)


def test_swapped_latitude_longitude_is_outside_goyang(lake_env: Path) -> None:
    from etl.registry.load import SCHEMA, load_registry
    from quality.validate import validate_readings

    payload = json.loads((UPLINKS / "bertrik_json_payload.json").read_bytes())
    lat, lon = payload["latitude"], payload["longitude"]
    assert (lat, lon) == (5.8603, 51.6919)                                # the Netherlands, swapped

    reg = load_registry().to_pylist()
    by_id = {r["device_id"]: r for r in reg}
    goyang_lat, goyang_lon = by_id["aq-lc-0002"]["lat"], by_id["aq-lc-0002"]["lon"]
    by_id["aq-lc-0001"].update(lat=lat, lon=lon)                         # as the payload reports it
    by_id["aq-lc-0002"].update(lat=goyang_lon, lon=goyang_lat)           # a Goyang device, swapped
    registry = pa.Table.from_pylist(reg, schema=SCHEMA)

    ids = ["aq-lc-0001", "aq-lc-0002", "aq-lc-0003", "aq-lc-0004", "aq-lc-0001"]
    ts = [datetime(2026, 11, 24, 3, 0, tzinfo=UTC)] * 4 + [datetime(2026, 11, 24, 3, 10, tzinfo=UTC)]
    n = len(ids)
    candidates = pa.table({
        "device_id": ids, "domain": ["air_quality"] * n, "metric": ["pm10"] * n,
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "value": [20.0, 21.0, 22.0, 23.0, 24.0],
        "unit": ["ug/m3"] * n, "subject": pa.nulls(n, pa.string()),
    })
    out = validate_readings(candidates, pa.nulls(n, pa.string()), registry, datetime(2026, 11, 24, 4, tzinfo=UTC))
    assert out.reason.tolist() == ["outside_goyang", "outside_goyang", None, None, "outside_goyang"]
    assert out.failures == []
    # the registry loader refuses such a row outright, naming the likely cause
    from etl.registry.generate import Device
    from etl.registry.load import RegistryError, csv_bytes, parse_registry

    swapped = {**by_id["aq-lc-0002"]}
    with pytest.raises(RegistryError, match="swapped"):
        parse_registry(csv_bytes([Device(**swapped)]))


# ================================================================================================
# 3. the custom expectations' masks
# ================================================================================================
T = pd.Timestamp("2026-11-24 00:00", tz="UTC")


def _series(values: list[float | None], device: str = "d1", metric: str = "pm10", step_min: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"device_id": device, "metric": metric,
                         "ts": [T + pd.Timedelta(minutes=step_min * i) for i in range(len(values))],
                         "value": pd.array(values, dtype="Float64").astype(float)})


def _with_series_pos(df: pd.DataFrame) -> pd.DataFrame:
    """As quality.validate.frame builds it: categoricals and a precomputed series position."""
    from quality.expectations import series_positions

    out = df.copy()
    out["device_id"] = out["device_id"].astype("category")
    out["metric"] = out["metric"].astype("category")
    out["series_pos"] = series_positions(out["device_id"].cat.codes.to_numpy(), out["metric"].cat.codes.to_numpy(),
                                         out["ts"].astype("int64").to_numpy())
    return out


both_paths = pytest.mark.parametrize("prep", [lambda df: df, _with_series_pos], ids=["sorting", "series_pos"])


@both_paths
def test_stuck_mask_boundary(prep) -> None:  # noqa: ANN001
    from quality.expectations import stuck_mask

    runs = {"pm10": 4}
    assert stuck_mask(prep(_series([5, 5, 5, 5])), runs).tolist() == [True] * 4          # exactly the run
    assert stuck_mask(prep(_series([5, 5, 5, 6])), runs).tolist() == [False] * 4         # one shorter
    assert stuck_mask(prep(_series([1, 5, 5, 5, 5, 2])), runs).tolist() == [False, True, True, True, True, False]
    assert stuck_mask(prep(_series([None] * 5)), runs).tolist() == [False] * 5           # missing is not stuck
    assert stuck_mask(prep(_series([5] * 6, metric="rain")), runs).tolist() == [False] * 6  # no stuck_run


@both_paths
def test_stuck_mask_runs_are_per_device_metric_in_time_order(prep) -> None:  # noqa: ANN001
    from quality.expectations import stuck_mask

    a, b = _series([7, 7, 7]), _series([7, 7, 7], device="d2")
    b["ts"] = a["ts"] + pd.Timedelta(minutes=30)                       # d2 continues d1's time line
    df = pd.concat([a, b], ignore_index=True).iloc[[3, 0, 4, 1, 5, 2]].reset_index(drop=True)
    assert stuck_mask(prep(df), {"pm10": 4}).tolist() == [False] * 6   # two runs of 3, not one of 6
    shuffled = _series([7, 7, 7, 7]).iloc[[2, 0, 3, 1]].reset_index(drop=True)
    assert stuck_mask(prep(shuffled), {"pm10": 4}).tolist() == [True] * 4
    assert stuck_mask(prep(_series([])), {"pm10": 4}).tolist() == []


@both_paths
def test_spike_mask_isolated_spikes_only(prep) -> None:  # noqa: ANN001
    from quality.expectations import spike_mask

    steps = {"pm10": 100.0}
    assert spike_mask(prep(_series([10, 10, 500, 10, 10])), steps).tolist() == [False, False, True, False, False]
    # an oscillation: every interior point is away from both neighbours, the dips as much as the peaks
    assert spike_mask(prep(_series([500, 10, 500, 10, 500])), steps).tolist() == [False, True, True, True, False]
    assert spike_mask(prep(_series([10, 10, 500, 500, 500])), steps).tolist() == [False] * 5   # a step change
    assert spike_mask(prep(_series([500, 10, 10, 10, 500])), steps).tolist() == [False] * 5    # first/last
    assert spike_mask(prep(_series([10, 110, 10])), steps).tolist() == [False] * 3             # exactly max_step
    assert spike_mask(prep(_series([10, 110.5, 10])), steps).tolist() == [False, True, False]
    assert spike_mask(prep(_series([0, 200, 400])), steps).tolist() == [False] * 3             # a ramp
    assert spike_mask(prep(_series([10, 500])), steps).tolist() == [False] * 2
    assert spike_mask(prep(_series([10, None, 10])), steps).tolist() == [False] * 3
    assert spike_mask(prep(_series([10, 500, 10], metric="rain")), steps).tolist() == [False] * 3


@both_paths
def test_spike_mask_does_not_look_across_series(prep) -> None:  # noqa: ANN001
    from quality.expectations import spike_mask

    df = pd.concat([_series([10, 10]), _series([500, 10, 10], device="d2")], ignore_index=True)
    assert spike_mask(prep(df), {"pm10": 100.0}).tolist() == [False] * 5


def test_pm_ratio_mask_limit_passes() -> None:
    from quality.expectations import pm_ratio_mask

    df = pd.DataFrame({
        "device_id": ["a", "a", "a", "a", "b", "b", "c"],
        "metric": ["pm10", "pm25", "pm10", "pm25", "pm10", "pm25", "pm25"],
        "ts": [T, T, T + pd.Timedelta(hours=1), T + pd.Timedelta(hours=1), T, T + pd.Timedelta(hours=1), T],
        "value": [40.0, 45.0, 40.0, 45.5, 10.0, 90.0, 90.0],
    }, index=[10, 11, 12, 13, 14, 15, 16])
    # a: exactly pm10 + 5 passes, above fails; b: pm2.5 without a pm10 at that time; c: no pm10 at all
    assert pm_ratio_mask(df, 1.0, 5.0).tolist() == [False, False, False, True, False, False, False]
    assert pm_ratio_mask(df[df["metric"] == "pm25"], 1.0, 5.0).tolist() == [False] * 4


def test_outside_goyang_mask_small_and_large_frames() -> None:
    from etl.registry.load import load_registry
    from quality.expectations import outside_goyang_mask

    reg = load_registry()
    inside = list(zip(reg["lat"].to_pylist(), reg["lon"].to_pylist()))
    lat0, lon0 = inside[0]
    cases = [(lat0, lon0, False), (lon0, lat0, True), (5.8603, 51.6919, True), (51.6919, 5.8603, True),
             (float("nan"), lon0, True), (37.5665, 126.9780, True)]            # ... and Seoul City Hall
    small = pd.DataFrame({"lat": [c[0] for c in cases], "lon": [c[1] for c in cases]})
    assert outside_goyang_mask(small).tolist() == [c[2] for c in cases]
    big = pd.DataFrame({"lat": [a for a, _ in inside] + small["lat"].tolist() * 5,
                        "lon": [b for _, b in inside] + small["lon"].tolist() * 5})
    assert len(big) >= 64                                                       # the other code path
    assert outside_goyang_mask(big).tolist() == [False] * len(inside) + [c[2] for c in cases] * 5
    assert outside_goyang_mask(small.iloc[:0]).tolist() == []


def test_range_mask_bounds_are_inclusive() -> None:
    from quality.expectations import range_mask

    df = pd.DataFrame({"metric": ["pm10"] * 5 + ["rain", "ph"],
                       "value": [0.0, 2000.0, -0.001, 2000.001, np.nan, 1e6, 7.0]})
    ranges = {"pm10": [0, 2000], "ph": [0, 14]}
    assert range_mask(df, ranges).tolist() == [False, False, True, True, False, False, False]


def test_set_mask_only_checks_categorical_metrics() -> None:
    from quality.expectations import set_mask

    df = pd.DataFrame({"metric": pd.Categorical(["lamp_on", "lamp_on", "lamp_on", "power", "arrival", "arrival"]),
                       "value": [0.0, 1.0, 0.5, 0.5, 1.0, 0.0]})
    assert set_mask(df, {"lamp_on": [0, 1], "arrival": [1]}).tolist() == [False, False, True, False, False, True]
