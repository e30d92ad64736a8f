"""The S3 server failing, through a fault-injecting proxy in front of moto (tests/faults/s3proxy.py).

Every engine reaches the lake through the proxy: boto3 (etl.storage.Store), delta-rs
(object_store), pyarrow (AWS SDK C++) and DuckDB (httpfs and delta_scan). The stages are the
real ones on a small simulated day: land, normalise into silver, rebuild gold, publish.

* transient faults (5xx bursts, slow answers, dropped connections, lost commit answers, cut GET
  bodies) are retried: the lake and the release equal a fault-free run's;
* a persistent outage fails the stage with a clear error, leaves nothing half-written (no
  partial commit, the previous release live), and a re-run after it heals completes the same.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.conftest import clear_caches
from tests.faults import figures
from tests.faults.s3proxy import S3Proxy

pytestmark = [pytest.mark.faults, pytest.mark.integration]

DAY = date(2026, 11, 24)
AS_OF = date(2026, 11, 29)
SOURCES = ["air_mqtt", "weather_http"]      # one pushed (MQTT) and one pulled (HTTP cursor) source
DOMAINS = ["air_quality"]                   # gold models rebuilt (DuckDB), kept few: a busy 2-core box
AQ = "air-quality-station-hourly"
DATASETS = [AQ, "air-quality-station-daily"]  # published
SILVER_KEY = ["device_id", "metric", "ts", "subject"]
log = logging.getLogger(__name__)
OUTAGE = re.compile(r"503|SlowDown|Service Unavailable|reduce your request rate", re.I)


@pytest.fixture(scope="module")
def proxy(moto_s3: str) -> Iterator[S3Proxy]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # moto's access log, a line a request
    with S3Proxy(moto_s3) as p:
        yield p


@contextmanager
def lake_through(proxy: S3Proxy, moto: str, root: Path) -> Iterator[tuple[Any, Any]]:
    """A fresh bucket, with every engine configured to reach it through the proxy: (lake, public)."""
    import boto3

    from etl import tables
    from etl.simulate.gateways import dev_environment
    from etl.storage import lake, public
    from publish.catalog import load_catalogue

    bucket = "faults-" + os.urandom(4).hex()
    boto3.client("s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=bucket)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                     "CITYLAKE_S3_ENDPOINT_URL": proxy.endpoint, "CITYLAKE_S3_REGION": "us-east-1",
                     "CITYLAKE_LAKE_URI": f"s3://{bucket}/lake", "CITYLAKE_PUBLIC_URI": f"s3://{bucket}/public",
                     "CITYLAKE_CSV_DROP_DIR": str(root / "drops"), "CITYLAKE_FLEET": "small",
                     **dev_environment()}.items():
            mp.setenv(k, v)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.delenv("CITYLAKE_PUBLIC_BASE_URL", raising=False)
        clear_caches()
        load_catalogue.cache_clear()
        tables._OPEN.clear()
        try:
            yield lake(), public()
        finally:
            tables._OPEN.clear()
            load_catalogue.cache_clear()
            clear_caches()


# ---- the stages ------------------------------------------------------------------------------------
def land(store: Any) -> list[Any]:
    from etl.simulate import bulk
    from etl.simulate.faults import FaultPlan

    return bulk.write_day(store, DAY, fleet="small", hours_per_batch=12, faults=FaultPlan.demo(), sources=SOURCES)


def normalize(store: Any, envs: list[Any]) -> list[str]:
    from etl import normalize as norm
    from etl.registry.load import load_registry
    from etl.sources import load_sources

    sources, registry = load_sources(), load_registry()
    dates: set[str] = set()
    for env in envs:
        dates.update(norm.normalize(store, sources[env.source], env, registry).dates)
    return sorted(dates)


def gold(store: Any, dates: list[str]) -> None:
    from etl.aggregate import runner

    for domain in DOMAINS:
        runner.rebuild(domain, dates, store)


def release() -> dict[str, Any]:
    from publish.release import publish

    return publish(as_of=AS_OF, datasets=DATASETS)


def run_all(store: Any) -> None:
    gold(store, normalize(store, land(store)))
    release()


# ---- what a run leaves behind ----------------------------------------------------------------------
def outcome(store: Any, public: Any) -> dict[str, Any]:
    """Silver, the batch ledger, gold and the live release, in comparable form. Checks on the way
    that silver holds each reading once and that every batch reconciles."""
    import pyarrow.parquet as pq

    from etl import tables
    from etl.aggregate import runner
    from etl.storage import BATCHES, SILVER
    from publish.release import live

    silver = tables.read(store, SILVER).sort_by([(c, "ascending") for c in [*SILVER_KEY, "batch_id"]])
    keys = silver.select(SILVER_KEY).group_by(SILVER_KEY).aggregate([]).num_rows
    assert keys == silver.num_rows, f"{silver.num_rows - keys} readings in silver twice"
    ledger = tables.read(store, BATCHES).drop_columns(["normalized_at"]).sort_by("batch_id")
    for row in ledger.to_pylist():
        assert row["received"] == row["accepted"] + row["quarantined"] + row["duplicates"], row
    committed = pc.value_counts(silver["batch_id"]).to_pylist()
    accepted = {r["batch_id"]: r["accepted"] for r in ledger.to_pylist()}
    assert {c["values"]: c["counts"] for c in committed} == {b: n for b, n in accepted.items() if n}
    out: dict[str, Any] = {"silver": silver.drop_columns(["received_at"]), "ledger": ledger}
    for m in (m for d in DOMAINS for m in runner.models_for(d)):
        out[m.table] = _rounded(tables.read(store, m.table))
    manifest = live(public)
    assert manifest is not None, "no release is live"
    out["release"] = {d: e["rows"] for d, e in manifest["datasets"].items()}
    path = next(f["path"] for f in manifest["datasets"][AQ]["files"] if f["format"] == "parquet" and f["period"] is None)
    fs, root = public.arrow_filesystem()                      # pyarrow (AWS SDK C++) through the proxy
    aq = pq.read_table(f"{root}/{path}", filesystem=fs)
    out["aq_file"] = _rounded(aq.drop_columns(["revision"]))  # (a release after an earlier one revises rows)
    return out


def _rounded(t: pa.Table) -> pa.Table:
    """Sorted, floats to 9 digits (DuckDB's parallel sums may differ in the last bit)."""
    t = pa.table({c: pc.round(t[c], 9) if pa.types.is_floating(t[c].type) else t[c] for c in t.column_names})
    return t.sort_by([(c, "ascending") for c in t.column_names if not pa.types.is_nested(t[c].type)])


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        if isinstance(want[name], pa.Table):
            assert got[name].equals(want[name]), f"{name} differs from the fault-free run"
        else:
            assert got[name] == want[name], name


def reconcile(result: dict[str, Any]) -> None:
    figures.record("readings", sum(result["ledger"]["received"].to_pylist()))
    figures.record("lost", 0)
    figures.record("duplicated", 0)


@pytest.fixture(scope="module")
def fault_free(proxy: S3Proxy, moto_s3: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stages through the proxy with no fault: what every faulty run must end with."""
    proxy.clear()
    with lake_through(proxy, moto_s3, tmp_path_factory.mktemp("fault-free")) as (store, public):
        run_all(store)
        return outcome(store, public)


def injected_by_engine(proxy: S3Proxy, since: int) -> dict[str, int]:
    engines = {"botocore": "boto3", "aws-sdk-cpp": "pyarrow", "object_store": "delta-rs", "duckdb": "duckdb"}
    out = {name: 0 for name in engines.values()}
    for r in proxy.log[since:]:
        if not r.outcome.startswith("ok"):
            for tag, name in engines.items():
                if tag in r.agent:
                    out[name] += 1
    return out


# ---- the tests ---------------------------------------------------------------------------------------
def test_transient_faults_are_retried_and_change_nothing(proxy: S3Proxy, moto_s3: str, fault_free: dict[str, Any],
                                                         tmp_path: Path) -> None:
    proxy.clear()
    start, before = len(proxy.log), proxy.injected()
    # engine-specific rules first (the first matching rule takes a request)
    proxy.add("error", "GET", ".parquet", times=2, status=503, agent="duckdb")          # httpfs
    proxy.add("cut", "GET", ".parquet", times=1, agent="duckdb")
    proxy.add("cut", "GET", "datasets/", times=1, agent="aws-sdk-cpp")                 # pyarrow
    proxy.add("error", "GET", "datasets/", times=2, status=500, agent="aws-sdk-cpp")
    proxy.add("error", "PUT", ".parquet", times=2, status=503, agent="object_store")   # delta-rs data files
    proxy.add("cut", "GET", ".parquet", times=2, agent="object_store")
    proxy.add("drop", "PUT", "silver/_delta_log/", times=1, agent="object_store", forward=True)  # commit answer lost
    proxy.add("error", "GET", "_delta_log", times=3, status=500, agent="object_store")
    proxy.add("error", "PUT", "landing/", times=2, status=503)                          # boto3 landing
    proxy.add("cut", "GET", "landing/", times=2)                                       # cut bodies
    proxy.add("drop", "HEAD", "landing/", times=2)                                     # dropped before answer
    proxy.add("error", "GET", "list-type=2", times=2, status=503)                      # listings (any engine)
    proxy.add("drop", "GET", "list-type=2", times=1)
    proxy.add("delay", "GET", None, times=3, seconds=1.0)                              # slow answers
    proxy.add("error", "PUT", "public/", times=2, status=503)                          # publish
    proxy.add("delay", "PUT", "public/latest.json", times=1, seconds=1.5)
    rules = list(proxy.rules)
    with lake_through(proxy, moto_s3, tmp_path) as (store, public):
        run_all(store)
        got = outcome(store, public)
    proxy.clear()
    unused = [r for r in rules if r.kind != "delay" and r.hits < (r.times or 0)]
    by_engine = injected_by_engine(proxy, start)
    assert all(by_engine.values()), f"an engine saw no fault: {by_engine}"
    assert_same(got, fault_free)
    figures.record("s3_faults", proxy.injected() - before)
    reconcile(got)
    assert not unused, f"rules that never matched (the path they aim at is not exercised): {unused}"
    assert sum(r.hits for r in rules if r.kind == "delay"), "no slow answer"


def test_outage_fails_cleanly_and_a_rerun_completes(proxy: S3Proxy, moto_s3: str, fault_free: dict[str, Any],
                                                    tmp_path: Path) -> None:
    from etl import tables
    from etl.storage import BATCHES, SILVER
    from publish.release import POINTER, live

    proxy.clear()
    before = proxy.injected()
    with lake_through(proxy, moto_s3, tmp_path) as (store, public):
        envs = land(store)
        held = envs[-1]                                   # landed, normalised only after the outage
        gold(store, normalize(store, envs[:-1]))
        release()
        first = live(public)["release"]
        pointer = public.get(POINTER)
        silver_version = tables.open_table(store, SILVER).version()
        gold_versions = {m: tables.open_table(store, m).version() for m in _gold_tables()}

        def outage(stage: Any, *args: Any, agent: str | None = None) -> None:
            """``stage`` with every request (of ``agent``) failing: it raises a clear error and
            changes nothing. (The versions compared are read when it is called.)"""
            proxy.add("error", None, None, times=None, status=503, agent=agent)   # until healed
            try:
                with pytest.raises(Exception) as failed:
                    stage(*args)
            finally:
                proxy.clear()
            log.info("outage in %s: %s", stage.__name__, str(failed.value).splitlines()[0])
            assert OUTAGE.search(str(failed.value)), f"unclear error: {failed.value!r}"
            tables._OPEN.clear()                           # read the lake afresh
            assert tables.open_table(store, SILVER).version() == silver_version
            assert {m: tables.open_table(store, m).version() for m in _gold_tables()} == gold_versions
            assert public.get(POINTER) == pointer and live(public)["release"] == first

        outage(normalize, store, [held])                    # boto3 and delta-rs fail
        assert not tables.committed(store, SILVER, held.batch_id)
        assert not tables.committed(store, BATCHES, held.batch_id)
        dates = normalize(store, [held])                    # healed: the re-run completes
        silver_version = tables.open_table(store, SILVER).version()
        outage(gold, store, dates, agent="duckdb")          # DuckDB's reads fail (httpfs)
        gold(store, dates)
        gold_versions = {m: tables.open_table(store, m).version() for m in _gold_tables()}
        outage(release)                                     # boto3 fails while publishing
        release()
        got = outcome(store, public)
    assert got["release"] == fault_free["release"]
    assert_same(got, fault_free)
    figures.record("s3_faults", proxy.injected() - before)
    reconcile(got)


def _gold_tables() -> list[str]:
    from etl.aggregate import runner

    return [m.table for d in DOMAINS for m in runner.models_for(d)]


def test_a_lost_commit_answer_is_neither_an_error_nor_a_second_append(proxy: S3Proxy, moto_s3: str,
                                                                       tmp_path: Path) -> None:
    """The commit PUT reaches S3 but its answer is lost: object_store retries the conditional PUT,
    gets 412 and delta-rs reports a concurrent transaction. append_once looks again and finds its
    own commit: written once, no error, and a re-run writes nothing."""
    from etl import tables
    from etl.storage import BATCHES

    def record(batch_id: str) -> pa.Table:
        return pa.Table.from_pylist([{"batch_id": batch_id, "source": "s", "month": "2026-11", "received": 1}],
                                    schema=tables.BATCHES_SCHEMA)

    proxy.clear()
    with lake_through(proxy, moto_s3, tmp_path) as (store, _):
        assert tables.append_once(store, BATCHES, record("b1"), "b1")
        lost = proxy.add("drop", "PUT", "batches/_delta_log/0", times=1, forward=True)
        assert tables.append_once(store, BATCHES, record("b2"), "b2")
        proxy.clear()
        assert lost.hits == 1
        assert not tables.append_once(store, BATCHES, record("b2"), "b2")
        tables._OPEN.clear()
        assert sorted(tables.read(store, BATCHES)["batch_id"].to_pylist()) == ["b1", "b2"]
    figures.record("s3_faults", 1)
