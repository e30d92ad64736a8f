"""The ingest DAGs end to end with dag.test(): simulated gateways → landing → silver."""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.e2e.conftest import City

REPO = Path(__file__).resolve().parents[2]
DOMAINS = {"air_quality", "weather", "water_quality", "waste_bins", "parking", "streetlights", "daycare_safety"}


def _silver() -> pa.Table:
    from etl import tables
    from etl.storage import SILVER, lake

    return tables.read(lake(), SILVER)


def _assert_reconciles(results: dict[str, Any]) -> None:
    for sid, r in results.items():
        assert r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"], (sid, r)


def _assert_unique(silver: pa.Table) -> None:
    keys = silver.group_by(["device_id", "metric", "ts", "subject"]).aggregate([("value", "count")])
    assert pc.max(keys["value_count"]).as_py() == 1, "duplicate readings in silver"


def _expected_day(city: City) -> dict[str, int]:
    """Readings of the KST day, computed from the simulator's own signal functions."""
    from etl.registry.load import devices
    from etl.simulate import messages, signals

    devs = [dataclasses.asdict(d) for d in devices("small")]
    n: Counter[str] = Counter()
    for d in devs:
        k = d["kind"]
        if k in ("streetlight", "lowcost_pm", "weather_station", "water_probe", "smart_bin"):
            metrics = len(d["metrics"].split())
            n[d["domain"]] += metrics * sum(1 for _ in messages.ticks(d, city.start, city.end))
        elif k == "reference_station":
            n[d["domain"]] += 24 * 6
        elif k == "parking_space":
            events = messages.parking_events(d, city.start, city.end)
            n[d["domain"]] += sum(2 if port == 2 else 1 for _, port, _ in events)
        elif k == "daycare_gate":
            n[d["domain"]] += len(signals.gate_events(d["device_id"], d["group_id"], int(d["capacity"]), city.day))
    return dict(n)


def test_clean_day_lands_every_reading_exactly_once(clean_city: City) -> None:
    results = clean_city.run_all()
    _assert_reconciles(results)
    silver = _silver()
    _assert_unique(silver)
    day = silver.filter(pc.equal(silver["date"], clean_city.day.isoformat()))
    got = Counter(day["domain"].to_pylist())
    assert set(got) == DOMAINS
    assert dict(got) == _expected_day(clean_city)
    assert sum(r["quarantined"] for r in results.values()) == 0

    # values are the simulator's, converted to canonical units and UTC
    from etl.simulate import signals

    wx = day.filter(pc.and_(pc.equal(day["domain"], "weather"), pc.equal(day["metric"], "temperature"))).to_pylist()
    reg = {r["device_id"]: r for r in __import__("etl.registry.load", fromlist=["x"]).load_registry().to_pylist()}
    for row in wx[:50]:
        assert row["unit"] == "degC"
        assert row["value"] == pytest.approx(signals.weather(row["device_id"], row["ts"])["temperature"])
    assert reg  # registry joined: every device id is known
    assert set(day["device_id"].to_pylist()) <= set(reg)

    # analysts read the same rows through DuckDB's delta_scan
    from etl import duck

    assert duck.connect().sql("select count(*) from silver").fetchone()[0] == silver.num_rows

    # re-running every DAG changes nothing
    again = clean_city.run_all()
    _assert_reconciles(again)
    assert _silver().num_rows == silver.num_rows


def test_faulty_day_reconciles_quarantines_and_emits_assets(city: City) -> None:
    results = city.run_all()
    _assert_reconciles(results)
    silver = _silver()
    _assert_unique(silver)
    assert set(silver["domain"].to_pylist()) == DOMAINS
    assert sum(r["duplicates"] for r in results.values()) > 0
    assert sum(r["quarantined"] for r in results.values()) > 0

    from etl import tables
    from etl.storage import BATCHES, QUARANTINE, lake

    q = tables.read(lake(), QUARANTINE)
    from quality.reasons import REASONS

    assert set(q["reason"].to_pylist()) <= set(REASONS)
    ledger = tables.read(lake(), BATCHES)
    assert pc.all(pc.equal(ledger["received"], pc.add(pc.add(ledger["accepted"], ledger["quarantined"]),
                                                        ledger["duplicates"]))).as_py()

    # asset events carry the touched KST dates
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(AssetModel.name, AssetEvent.extra).join(AssetEvent, AssetEvent.asset_id == AssetModel.id).all()
    extras = {name: extra for name, extra in rows if name.startswith("silver_")}
    assert {n.removeprefix("silver_") for n in extras} == DOMAINS
    assert all(city.day.isoformat() in e["dates"] for e in extras.values())
    assert all({"flagged", "quarantined", "accepted"} <= set(e) for e in extras.values())

    # the quality tables agree with the ledger, per day and source
    from etl import airflow_local
    from etl.storage import QUALITY_DAILY

    dates = sorted({d for r in results.values() for d in r["dates"]})
    airflow_local.run(airflow_local.load_dags()["quality_tables"], city.end, {"dates": dates})
    daily = tables.read(lake(), QUALITY_DAILY).to_pylist()
    assert sum(r["received"] for r in daily) == sum(r["received"] for r in results.values())
    assert sum(r["quarantined"] for r in daily) == sum(r["quarantined"] for r in results.values())
    assert sum(r["flagged"] for r in daily) == sum(r["flagged"] for r in results.values())

    # gold: the aggregate DAG rebuilds every model for the dates touched, one mapped task per date
    from etl.aggregate.runner import MODELS, with_followers

    dr = airflow_local.run(airflow_local.load_dags()["aggregate_gold"], city.end, {"dates": dates})
    tis = dr.get_task_instances()
    for domain in {m.domain for m in MODELS}:
        mapped = [ti for ti in tis if ti.task_id == f"rebuild_{domain}"]
        want = dates if domain == "summary" else with_followers(domain, dates)
        assert sorted(ti.rendered_map_index for ti in mapped) == sorted(want) and all(
            ti.state == "success" for ti in mapped), domain
    for m in MODELS:
        gold = tables.open_table(lake(), m.table)
        assert gold is not None, m.name
        days = set(tables.read(lake(), m.table, columns=["date"])["date"].to_pylist())
        assert days <= set(dates), m.name
    assert city.day.isoformat() in set(tables.read(lake(), "gold/air_quality_district_hourly", columns=["date"])[
        "date"].to_pylist())
    with create_session() as session:
        rows = session.query(AssetModel.name, AssetEvent.extra).join(AssetEvent, AssetEvent.asset_id == AssetModel.id).all()
    gold_events = [(n, e) for n, e in rows if n.startswith("gold_")]
    assert {n for n, _ in gold_events} == {f"gold_{d}" for d in {m.domain for m in MODELS}}
    assert all(len(e["dates"]) == 1 and e["tables"] for _, e in gold_events)

    # publish: a release of every dataset, verified, announced as the open_data_release asset
    from publish.catalog import load_catalogue
    from publish.release import live
    from etl.storage import public

    dr = airflow_local.run(airflow_local.load_dags()["publish_open_data"], city.end, {})
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {"release": "success", "verify": "success"}
    current = live(public())
    assert set(current["datasets"]) == set(load_catalogue().datasets)
    assert current["as_of"] == (city.day + timedelta(days=1)).isoformat()   # the run's logical date, KST
    with create_session() as session:
        rows = session.query(AssetModel.name, AssetEvent.extra).join(AssetEvent, AssetEvent.asset_id == AssetModel.id).all()
    assert ("open_data_release", {"release": current["release"], "changed": True}) in rows

    # nothing personal in the clear: daycare rows carry pseudonyms, never the tag ids
    dc = silver.filter(pc.equal(silver["domain"], "daycare_safety"))
    assert all(s.startswith("p_") for s in dc["subject"].to_pylist())


def test_lake_on_s3_compatible_server(s3_city: City) -> None:
    results = s3_city.run_all()
    _assert_reconciles(results)
    silver = _silver()
    _assert_unique(silver)
    assert set(silver["domain"].to_pylist()) == DOMAINS

    from etl.storage import lake

    store = lake()
    assert store.is_s3
    from etl import duck

    assert duck.connect().sql("select count(*) from silver").fetchone()[0] == silver.num_rows  # DuckDB over S3
    landed = [k for k in store.list("landing/") if k.endswith(".envelope.json")]
    assert len(landed) >= len(results)
    # the same window again: nothing lands twice, nothing new in silver
    again = s3_city.run_all()
    _assert_reconciles(again)
    assert sorted(k for k in store.list("landing/") if k.endswith(".envelope.json")) == sorted(landed) or \
        len(_silver()) == len(silver)
    assert _silver().num_rows == silver.num_rows

    # quality results, tables and Data Docs on S3 too
    from etl import airflow_local
    from quality import report

    dates = sorted({d for r in results.values() for d in r["dates"]})
    dr = airflow_local.run(airflow_local.load_dags()["quality_tables"], s3_city.end, {"dates": dates})
    assert store.exists(airflow_local.task_result(dr, "data_docs")["index"])
    assert any(k.endswith(".json") for k in store.list("quality/validations/"))
    r = report.report(s3_city.day, s3_city.day)
    assert sum(t["accepted"] for t in r["totals"]) > 0

    # gold on S3: DuckDB reads silver over httpfs, the Delta tables are written to the bucket
    airflow_local.run(airflow_local.load_dags()["aggregate_gold"], s3_city.end, {"dates": dates})
    con = duck.analyst_session()
    grades = con.execute("select count(*) from air_quality_district_hourly where date = ? and cai_grade is not null",
                         [s3_city.day.isoformat()]).fetchone()[0]
    assert grades > 0 and any(k.startswith("gold/district_daily_summary/") for k in store.list("gold/"))

    # the release in the public bucket; DuckDB reads a published file anonymously over HTTP
    from etl.storage import public
    from publish.release import live

    dr = airflow_local.run(airflow_local.load_dags()["publish_open_data"], s3_city.end, {})
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {"release": "success", "verify": "success"}
    pub = public()
    assert pub.is_s3 and pub.exists("latest.json") and pub.exists("feeds/alerts.ko.atom")
    entry = live(pub)["datasets"]["air-quality-district-hourly"]
    path = next(f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] is None)
    bucket_prefix = pub.root.removeprefix("s3://")
    bucket = bucket_prefix.split("/")[0]
    # the repo's public-read policy, on the public prefix only (this test's bucket holds the lake too)
    policy = (REPO / "infra/public-bucket-policy.json").read_text().replace("goyang-open-data", bucket_prefix)
    import boto3

    endpoint = os.environ["CITYLAKE_S3_ENDPOINT_URL"]
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").put_bucket_policy(Bucket=bucket, Policy=policy)
    plain = duck.connect()
    n = plain.execute(f"select count(*) from read_parquet('{endpoint}/{bucket_prefix}/{path}')").fetchone()[0]
    assert n == entry["rows"] > 0
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError, match="403"):      # the private lake stays private
        urllib.request.urlopen(f"{endpoint}/{bucket}/{store.table_uri('silver').split('/', 3)[3]}/_delta_log/"
                               "00000000000000000000.json")
