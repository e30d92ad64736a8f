"""The lake's whole S3 path against a real object store: Ceph radosgw (Debian's Pacific),
one throwaway single-node cluster for the module (tests/radosgw.py, ~5-15 s to start).

What moto cannot tell us: that a real gateway, with enforced SigV4 auth, its own
conditional-write and listing code, and no knowledge of the newest AWS SDK checksum
framing, runs the Store primitives, delta-rs commits (``If-None-Match: *``), a whole lake
day (landing -> silver -> gold -> publish) with lake and public buckets on RGW, and that
pyarrow and DuckDB httpfs read the published Parquet back equal to the same lake built on
local disk.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import clear_caches
from tests.lakes import build_lake, lake_environment
from tests.radosgw import CLIENT_ENV, RadosGW

pytestmark = [pytest.mark.integration, pytest.mark.radosgw, pytest.mark.slow]

AS_OF = date(2026, 11, 29)
LAKE_BUCKET, PUBLIC_BUCKET, SCRATCH_BUCKET = "citylake-lake", "citylake-public", "citylake-scratch"


# ---- the cluster and the environment that points the lake at it ----------------------------
def rgw_environment(mp: pytest.MonkeyPatch, rgw: RadosGW) -> None:
    """As conftest's ``s3_lake`` does for moto: credentials and endpoint through the
    environment (etl.settings reads AWS_* and CITYLAKE_S3_*). Not CLIENT_ENV: the lake's own
    path (boto3, delta-rs, pyarrow reads, DuckDB) needs no RGW setting; only pyarrow's
    multipart writes do (test_pyarrow_multipart_parquet)."""
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        mp.delenv(k, raising=False)
    mp.setenv("AWS_ACCESS_KEY_ID", rgw.access_key)
    mp.setenv("AWS_SECRET_ACCESS_KEY", rgw.secret_key)
    mp.setenv("AWS_REGION", rgw.region)
    mp.setenv("CITYLAKE_S3_ENDPOINT_URL", rgw.endpoint)
    mp.setenv("CITYLAKE_S3_REGION", rgw.region)


@pytest.fixture(scope="module")
def rgw() -> Iterator[RadosGW]:
    t0 = time.perf_counter()
    with RadosGW.started() as gw:
        print(f"\nradosgw up in {time.perf_counter() - t0:.1f} s ({gw.timings})", file=sys.stderr)
        for bucket in (LAKE_BUCKET, PUBLIC_BUCKET, SCRATCH_BUCKET):
            gw.create_bucket(bucket)
        with pytest.MonkeyPatch.context() as mp:
            rgw_environment(mp, gw)
            clear_caches()
            yield gw
        clear_caches()


@pytest.fixture()
def scratch(rgw: RadosGW, request: pytest.FixtureRequest) -> Any:
    """A Store under a fresh prefix of the scratch bucket."""
    from etl.settings import get_settings
    from etl.storage import Store

    return Store(f"s3://{SCRATCH_BUCKET}/{request.node.name}-{os.urandom(3).hex()}", get_settings())


# ---- Store primitives ------------------------------------------------------------------------
def test_store_primitives(scratch: Any, rgw: RadosGW) -> None:
    assert scratch.is_s3
    assert scratch.put_if_absent("a/one.bin", b"first") is True
    assert scratch.put_if_absent("a/one.bin", b"second") is False          # If-None-Match: * -> 412
    assert scratch.get("a/one.bin") == b"first"
    scratch.put("a/one.bin", b"replaced")                                  # plain put overwrites
    assert scratch.get("a/one.bin") == b"replaced"
    data = bytes(range(256)) * 40
    scratch.put("a/b/two.bin", data, "application/vnd.apache.parquet")
    assert scratch.head("a/b/two.bin") == (len(data), hashlib.md5(data).hexdigest())  # noqa: S324 - S3 ETag
    assert scratch.head("a/missing") is None
    assert scratch.exists("a/b/two.bin") and not scratch.exists("a/b")
    assert scratch.get_range("a/b/two.bin", 0, 9) == data[:10]
    assert scratch.get_range("a/b/two.bin", len(data) - 8, len(data) - 1) == data[-8:]
    assert scratch.get_range("a/b/two.bin", 1000, 1000) == data[1000:1001]
    assert scratch.list("a") == ["a/b/two.bin", "a/one.bin"]
    assert scratch.list("a/b") == ["a/b/two.bin"]
    assert scratch.list("nothing") == []
    head = rgw.client().head_object(Bucket=SCRATCH_BUCKET, Key=scratch._bucket_key("a/b/two.bin")[1])
    assert head["ContentType"] == "application/vnd.apache.parquet"
    # a wrong secret is refused (RGW enforces SigV4, unlike moto by default)
    import boto3
    from botocore.exceptions import ClientError

    bad = boto3.client("s3", endpoint_url=rgw.endpoint, region_name=rgw.region, aws_access_key_id=rgw.access_key,
                       aws_secret_access_key="wrong")
    with pytest.raises(ClientError) as err:
        bad.get_object(Bucket=SCRATCH_BUCKET, Key=scratch._bucket_key("a/one.bin")[1])
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_store_put_if_absent_race_has_one_winner(scratch: Any) -> None:
    barrier = threading.Barrier(8)

    def attempt(i: int) -> bool:
        barrier.wait()
        return scratch.put_if_absent("race/key", f"writer {i}".encode())

    with cf.ThreadPoolExecutor(8) as pool:
        won = list(pool.map(attempt, range(8)))
    assert won.count(True) == 1
    assert scratch.get("race/key") == f"writer {won.index(True)}".encode()


def test_store_list_paginates(scratch: Any) -> None:
    keys = [f"many/{i:05d}.json" for i in range(1050)]                    # > 1000: two pages
    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: scratch.put(k, b"{}"), keys))
    assert scratch.list("many") == keys
    assert scratch.list("many/0104") == keys[1040:1050]


def test_pyarrow_multipart_parquet(scratch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Parquet file larger than pyarrow's part size goes up as a multipart upload. Pacific
    RGW answers UploadPart with 411 MissingContentLength to the aws-chunked bodies with
    trailing CRC checksums that pyarrow's AWS SDK sends by default: CLIENT_ENV (documented AWS
    SDK settings) turns them off."""
    import numpy as np

    for k, v in CLIENT_ENV.items():
        monkeypatch.setenv(k, v)

    fs, root = scratch.arrow_filesystem()
    rng = np.random.default_rng(7)
    table = pa.table({"i": np.arange(3_000_000), "x": rng.random(3_000_000)})  # ~36 MB, incompressible
    pq.write_table(table, f"{root}/big/t.parquet", filesystem=fs, compression="none")
    size, etag = scratch.head("big/t.parquet")
    assert size > 20 * 2**20 and "-" in etag                              # multipart ETag "<md5>-<parts>"
    assert pq.read_table(f"{root}/big/t.parquet", filesystem=fs).equals(table)


# ---- Delta tables ------------------------------------------------------------------------------
def _batch_row(batch_id: str) -> pa.Table:
    from etl.tables import BATCHES_SCHEMA

    t = datetime(2026, 11, 24, tzinfo=timezone.utc)
    row: dict[str, Any] = {"batch_id": batch_id, "source": "rgw-test", "window_start": t, "window_end": t,
                           "received_at": t, "normalized_at": t, "frames": 1, "received": 1, "accepted": 1,
                           "quarantined": 0, "duplicates": 0, "flagged": 0, "quality": "ok", "replays": 0,
                           "duplicates_in_batch": 0, "duplicates_in_lake": 0, "domains": ["air"],
                           "dates": ["2026-11-24"], "month": "2026-11"}
    return pa.Table.from_pylist([row], schema=BATCHES_SCHEMA)


def append_batches(root: str, prefix: str, n: int) -> list[bool]:
    """Append ``n`` one-row batches with append_once (module level: runs in a child process)."""
    from etl import tables
    from etl.settings import get_settings
    from etl.storage import BATCHES, Store

    store = Store(root, get_settings())
    return [tables.append_once(store, BATCHES, _batch_row(f"{prefix}-{i}"), f"{prefix}-{i}") for i in range(n)]


def _fresh(store: Any) -> Any:
    """The batches table as a new reader sees it (not through this process's open tables)."""
    from deltalake import DeltaTable

    from etl.storage import BATCHES

    return DeltaTable(store.table_uri(BATCHES), storage_options=store.delta_options())


def test_delta_append_once_is_idempotent(scratch: Any) -> None:
    from etl import tables
    from etl.storage import BATCHES

    assert tables.append_once(scratch, BATCHES, _batch_row("b-1"), "b-1") is True      # creates the table
    assert tables.append_once(scratch, BATCHES, _batch_row("b-1"), "b-1") is False     # same batch: nothing
    assert tables.append_once(scratch, BATCHES, _batch_row("b-2"), "b-2") is True
    tables._OPEN.clear()                                                                 # as a new process would
    assert tables.append_once(scratch, BATCHES, _batch_row("b-2"), "b-2") is False
    assert tables.committed(scratch, BATCHES, "b-1") and not tables.committed(scratch, BATCHES, "b-3")
    dt = _fresh(scratch)
    assert dt.version() == 1
    assert sorted(dt.to_pyarrow_table()["batch_id"].to_pylist()) == ["b-1", "b-2"]
    log = scratch.list("batches/_delta_log")
    assert "batches/_delta_log/00000000000000000000.json" in log and "batches/_delta_log/00000000000000000001.json" in log
    assert tables.read(scratch, BATCHES, filters=[("month", "=", "2026-11")]).num_rows == 2


def test_delta_concurrent_appends_from_threads_and_processes(scratch: Any) -> None:
    """Two threads and two processes append to one table at once: delta-rs commits each
    version with If-None-Match, the losers of a race retry on the next version, every batch
    lands exactly once."""
    from etl import tables
    from etl.storage import BATCHES

    assert tables.append_once(scratch, BATCHES, _batch_row("seed"), "seed")            # the table exists
    n = 6
    spawn = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=spawn) as procs, cf.ThreadPoolExecutor(2) as threads:
        futures = [procs.submit(append_batches, scratch.root, f"proc{i}", n) for i in range(2)]
        futures += [threads.submit(append_batches, scratch.root, f"thread{i}", n) for i in range(2)]
        results = [f.result(timeout=300) for f in futures]
    assert results == [[True] * n] * 4
    dt = _fresh(scratch)
    ids = dt.to_pyarrow_table()["batch_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 1 + 4 * n
    assert dt.version() == 4 * n                              # one commit per batch, none lost or doubled
    versions = {dt.transaction_version(f"{p}{i}-{j}") for p in ("proc", "thread") for i in range(2) for j in range(n)}
    assert versions == {1}


def test_delta_same_batch_raced_lands_once(scratch: Any) -> None:
    """The same batch appended by two writers at once (a retried task racing the original):
    the batch's rows land once; the loser sees the batch committed or a transaction conflict."""
    from deltalake.exceptions import CommitFailedError

    from etl import tables
    from etl.storage import BATCHES

    assert tables.append_once(scratch, BATCHES, _batch_row("seed"), "seed")
    for attempt in range(3):
        batch = f"twice-{attempt}"
        barrier = threading.Barrier(2)

        def write(b: str = batch) -> Any:
            barrier.wait()
            try:
                return append_batches_same(scratch.root, b)
            except CommitFailedError as exc:                 # delta-rs: concurrent transaction
                return exc

        with cf.ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda _: write(), range(2)))
        # exactly one commit carries the batch; the other writer either saw it committed
        # (False), or lost the commit race and found the batch landed (True, append_once looks
        # again after a failed write), or got delta-rs's concurrent-transaction error
        assert True in outcomes and all(o in (True, False) or isinstance(o, CommitFailedError) for o in outcomes), outcomes
        ids = _fresh(scratch).to_pyarrow_table()["batch_id"].to_pylist()
        assert ids.count(batch) == 1


def append_batches_same(root: str, batch_id: str) -> bool:
    from etl import tables
    from etl.settings import get_settings
    from etl.storage import BATCHES, Store

    return tables.append_once(Store(root, get_settings()), BATCHES, _batch_row(batch_id), batch_id)


# ---- a whole lake day on RGW, against the same day on local disk ------------------------------
@pytest.fixture(scope="module")
def local_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The simulated day built and released on local disk (as tests.lakes.released_lake)."""
    from etl.storage import lake, public
    from publish.catalog import load_catalogue
    from publish.release import publish

    root = tmp_path_factory.mktemp("rgw-local-lake")
    with pytest.MonkeyPatch.context() as mp:
        lake_environment(mp, root)
        load_catalogue.cache_clear()
        t0 = time.perf_counter()
        built = build_lake(root)
        release = publish(as_of=AS_OF)
        print(f"\nlocal lake built and released in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        yield {"root": root, "lake": lake(), "public": public(), "built": built, "release": release}
    load_catalogue.cache_clear()
    clear_caches()


@pytest.fixture(scope="module")
def rgw_lake(rgw: RadosGW, local_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[str, Any]]:
    """The same day built and released with the lake and the public side in RGW buckets."""
    from etl.storage import lake, public
    from publish.catalog import load_catalogue
    from publish.release import publish

    root = tmp_path_factory.mktemp("rgw-s3-lake")
    with pytest.MonkeyPatch.context() as mp:
        lake_environment(mp, root)                            # drops folder, fleet, no base URL
        mp.setenv("CITYLAKE_LAKE_URI", f"s3://{LAKE_BUCKET}/lake")
        mp.setenv("CITYLAKE_PUBLIC_URI", f"s3://{PUBLIC_BUCKET}/public")
        clear_caches()
        load_catalogue.cache_clear()
        assert lake().is_s3 and public().is_s3
        t0 = time.perf_counter()
        built = build_lake(root)
        t1 = time.perf_counter()
        release = publish(as_of=AS_OF)
        print(f"\nRGW lake built in {t1 - t0:.1f} s, released in {time.perf_counter() - t1:.1f} s", file=sys.stderr)
        yield {"root": root, "lake": lake(), "public": public(), "built": built, "release": release}
    load_catalogue.cache_clear()
    clear_caches()


def _sorted(table: pa.Table) -> pa.Table:
    keys = [(n, "ascending") for n in table.column_names
            if not pa.types.is_nested(table.schema.field(n).type)]
    return table.sort_by(keys)


# Columns that record when the pipeline ran, not what it computed.
WALL_CLOCK = {"normalized_at", "validated_at", "computed_at", "built_at", "updated_at"}


def test_lake_tables_on_rgw_equal_local(rgw_lake: dict[str, Any], local_lake: dict[str, Any]) -> None:
    from etl import tables
    from etl.aggregate.runner import MODELS
    from etl.storage import BATCHES, CHECKS, QUARANTINE, SILVER

    assert rgw_lake["built"]["dates"] == local_lake["built"]["dates"]
    landed = rgw_lake["lake"].list("landing")
    assert landed and landed == local_lake["lake"].list("landing")
    for key in landed[:: max(1, len(landed) // 10)]:                       # landing bytes too
        assert rgw_lake["lake"].get(key) == local_lake["lake"].get(key)
    names = [SILVER, QUARANTINE, BATCHES, CHECKS, *sorted({m.table for m in MODELS})]
    for name in names:
        s3 = tables.open_table(rgw_lake["lake"], name)
        local = tables.open_table(local_lake["lake"], name)
        assert (s3 is None) == (local is None), name
        if s3 is None:
            continue
        a, b = s3.to_pyarrow_table(), local.to_pyarrow_table()
        assert a.num_rows == b.num_rows, name
        drop = [c for c in a.column_names if c in WALL_CLOCK]
        assert _sorted(a.drop_columns(drop)).equals(_sorted(b.drop_columns(drop))), name


def _manifest(store: Any) -> dict[str, Any]:
    pointer = json.loads(store.get("latest.json"))
    return json.loads(store.get(pointer["manifest"]))


def _files(manifest: dict[str, Any]) -> dict[tuple[str, str, str | None], dict[str, Any]]:
    """Every published data file by (dataset, format, month or None for the whole)."""
    return {(ds_id, f["format"], f["period"]): f for ds_id, ds in manifest["datasets"].items() for f in ds["files"]}


def _shape(key: str, manifest: dict[str, Any]) -> str:
    """A public key with its release and dataset version names taken out: versions hash the
    gold tables' commit times, so the same rows get other version names in another build."""
    key = key.replace(manifest["release"], "<release>")
    for ds_id, ds in manifest["datasets"].items():
        key = key.replace(f"datasets/{ds_id}/{ds['version']}/", f"datasets/{ds_id}/<version>/")
    return key


def test_release_on_rgw_equals_local(rgw_lake: dict[str, Any], local_lake: dict[str, Any]) -> None:
    s3, local = rgw_lake["public"], local_lake["public"]
    m3, ml = _manifest(s3), _manifest(local)
    assert m3["release"] == rgw_lake["release"]["release"] and rgw_lake["release"]["changed"]
    assert rgw_lake["release"]["rows"] == local_lake["release"]["rows"]
    assert {k: v["rows"] for k, v in m3["datasets"].items()} == {k: v["rows"] for k, v in ml["datasets"].items()}
    # the gate's findings and counts; not bytes_scanned: the metadata files it scans carry the
    # public side's address (s3://... here, file:///... there)
    gate3, gatel = (({k: v for k, v in m["privacy_gate"].items() if k != "bytes_scanned"}) for m in (m3, ml))
    assert gate3 == gatel and gate3["passed"]
    assert sorted(_shape(k, m3) for k in s3.list("")) == sorted(_shape(k, ml) for k in local.list(""))
    f3, fl = _files(m3), _files(ml)
    assert f3.keys() == fl.keys() and f3
    for key, f in f3.items():                              # every published data file, byte for byte
        data = s3.get(f["path"])
        assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]
        assert (f["rows"], f["sha256"]) == (fl[key]["rows"], fl[key]["sha256"]), key
        assert s3.head(f["path"])[0] == f["bytes"]


def test_published_parquet_read_by_pyarrow_and_duckdb(rgw_lake: dict[str, Any], local_lake: dict[str, Any]) -> None:
    from etl.duck import load_extension

    import duckdb

    s3, local = rgw_lake["public"], local_lake["public"]
    f3, fl = _files(_manifest(s3)), _files(_manifest(local))
    parquet = sorted((k for k in f3 if k[1] == "parquet"), key=str)
    assert parquet
    fs, root = s3.arrow_filesystem()
    lfs, lroot = local.arrow_filesystem()
    con = duckdb.connect(config={"threads": 2, "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    load_extension(con, "httpfs")
    con.execute(s3.duckdb_secret_sql()[0])
    try:
        for key in parquet:
            path, lpath = f3[key]["path"], f"{lroot}/{fl[key]['path']}"
            expected = pq.read_table(lpath, filesystem=lfs)
            via_arrow = pq.read_table(f"{root}/{path}", filesystem=fs)
            assert via_arrow.equals(expected), key
            via_duck = con.execute("SELECT * FROM read_parquet(?)", [s3.uri(path)]).to_arrow_table()
            local_duck = con.execute("SELECT * FROM read_parquet(?)", [lpath]).to_arrow_table()
            assert via_duck.num_rows == expected.num_rows == f3[key]["rows"], key
            assert via_duck.equals(local_duck), key
        # every month file of one dataset in one query (httpfs globbing lists the bucket)
        months = [k for k in parquet if k[0] == "air-quality-station-hourly" and k[2] is not None]
        assert months
        version_dir = f3[months[0]]["path"].rsplit("/", 2)[0]
        n = con.execute("SELECT count(*) FROM read_parquet(?)", [s3.uri(version_dir, "*", "*.parquet")]).fetchone()[0]
        assert n == sum(f3[k]["rows"] for k in months)
    finally:
        con.close()


def test_lake_delta_tables_read_by_duckdb_on_rgw(rgw_lake: dict[str, Any], local_lake: dict[str, Any]) -> None:
    """DuckDB's delta extension over the lake's Delta tables in RGW (the analysts' views)."""
    from etl import duck

    con3, conl = duck.connect(rgw_lake["lake"]), duck.connect(local_lake["lake"])
    try:
        for view in ("silver", "batches", "quality_checks"):
            q = f"SELECT count(*), count(DISTINCT batch_id) FROM {view}"
            assert con3.execute(q).fetchone() == conl.execute(q).fetchone(), view
        q = "SELECT domain, metric, count(*), round(sum(value), 6) FROM silver GROUP BY ALL ORDER BY ALL"
        assert con3.execute(q).fetchall() == conl.execute(q).fetchall()
    finally:
        con3.close()
        conl.close()


def _summary(listing: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((d["id"], d["rows"], d["licence"], d["title_en"]) for d in listing["datasets"])


def test_api_over_rgw_release_matches_local(rgw_lake: dict[str, Any], local_lake: dict[str, Any]) -> None:
    """The public API reading the release straight from RGW (ranged GETs) answers as locally."""
    from fastapi.testclient import TestClient

    from publish.api.app import create_app

    s3, local = TestClient(create_app(rgw_lake["public"])), TestClient(create_app(local_lake["public"]))
    aq = "air-quality-station-hourly"
    a, b = s3.get(f"/v1/datasets/{aq}/rows?limit=50"), local.get(f"/v1/datasets/{aq}/rows?limit=50")
    assert a.status_code == b.status_code == 200
    assert a.json()["rows"] == b.json()["rows"] and len(a.json()["rows"]) == 50
    a, b = s3.get(f"/v1/datasets/{aq}/rows?limit=500&format=csv"), local.get(f"/v1/datasets/{aq}/rows?limit=500&format=csv")
    assert a.status_code == b.status_code == 200 and a.content == b.content
    a, b = s3.get("/v1/datasets"), local.get("/v1/datasets")
    assert a.status_code == b.status_code == 200
    assert _summary(a.json()) == _summary(b.json())
    assert len(_summary(a.json())) == len(_manifest(rgw_lake["public"])["datasets"])
    f3, fl = _files(_manifest(rgw_lake["public"])), _files(_manifest(local_lake["public"]))
    key = (aq, "parquet", None)
    data = local_lake["public"].get(fl[key]["path"])
    whole = s3.get(f"/files/{f3[key]['path']}")
    assert whole.status_code == 200 and whole.content == data
    part = s3.get(f"/files/{f3[key]['path']}", headers={"Range": "bytes=-8"})
    assert part.status_code == 206 and part.content == data[-8:]
