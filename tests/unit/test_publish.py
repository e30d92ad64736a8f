"""Open-data releases over a real (small) lake: versions, idempotency, crash safety, the
licence rule, the privacy gate, revisions and the changes feed, and the published files as
their users read them (frictionless, rdflib, feedparser, DuckDB over HTTP)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.conftest import clear_caches
from tests.lakes import build_lake, copy_lake, lake_environment

AS_OF = date(2026, 11, 29)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gold_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("gold-lake")
    with pytest.MonkeyPatch.context() as mp:
        lake_environment(mp, root)
        built = build_lake(root, late="weather_http")
    clear_caches()
    yield {"root": root, **built}
    clear_caches()


@pytest.fixture
def env(gold_lake: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared lake (read only) and a fresh public side."""
    monkeypatch.setenv("CITYLAKE_LAKE_URI", f"file://{gold_lake['root'] / 'lake'}")
    monkeypatch.setenv("CITYLAKE_PUBLIC_URI", f"file://{tmp_path / 'public'}")
    monkeypatch.setenv("CITYLAKE_FLEET", "small")
    clear_caches()
    _reset_catalogue()
    yield tmp_path / "public"
    _reset_catalogue()


@pytest.fixture
def own_lake(gold_lake: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the lake a test may change, and a fresh public side."""
    copy_lake(gold_lake["root"], tmp_path)
    lake_environment(monkeypatch, tmp_path)
    _reset_catalogue()
    yield tmp_path
    _reset_catalogue()


def _reset_catalogue() -> None:
    from publish.catalog import load_catalogue

    load_catalogue.cache_clear()


def _publish(as_of: date = AS_OF, **kw: Any) -> dict[str, Any]:
    from publish.release import publish

    return publish(as_of=as_of, **kw)


def _live(public: Path) -> dict[str, Any]:
    pointer = json.loads((public / "latest.json").read_text())
    return json.loads((public / pointer["manifest"]).read_text())


def _files(public: Path) -> dict[str, str]:
    return {str(p.relative_to(public)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(public.rglob("*")) if p.is_file()}


# ---- the catalogue and licences ----------------------------------------------------------------

def test_catalogue_covers_every_gold_table_and_the_registry_in_both_languages() -> None:
    from etl.aggregate.runner import MODELS
    from publish.catalog import load_catalogue

    cat = load_catalogue()
    assert {m.name for m in MODELS} <= {d.table for d in cat.datasets.values()}
    assert "registry" in {d.table for d in cat.datasets.values()}
    for ds in cat.datasets.values():
        assert ds.title_ko and ds.title_en and ds.description_ko and ds.description_en, ds.id
        for col in ds.columns:
            assert col.description_en and col.description_ko, (ds.id, col.name)
    daycare = cat.datasets["daycare-daily"]
    assert "5" in daycare.description_ko and "7" in daycare.description_ko   # k and the delay in force


def test_licence_rule_blocks_a_derivative_of_a_no_derivatives_source() -> None:
    from publish import licences

    with pytest.raises(licences.LicenceError, match=r"airkorea \(KOGL Type 3.*forbids derivatives.*"
                                                     r"derivatives_permitted"):
        licences.check_derivatives("air-quality-station-hourly", {"airkorea": "KOGL-3", "air_mqtt": "KOGL-1"}, {})
    licences.check_derivatives("x", {"airkorea": "KOGL-3"}, {"airkorea": "agreement no. 1"})
    licences.check_derivatives("x", {"weather_http": "KOGL-1"}, {})


def test_release_fails_on_the_licence_rule_and_keeps_the_live_release(env: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from publish import catalog, licences

    first = _publish()
    before = _files(env)
    cat = catalog.load_catalogue()
    stripped = {k: dataclasses.replace(d, derivatives_permitted={}) for k, d in cat.datasets.items()}
    monkeypatch.setattr("publish.release.load_catalogue", lambda: dataclasses.replace(cat, datasets=stripped))
    with pytest.raises(licences.LicenceError, match="air-quality-station-hourly is derived from airkorea"):
        _publish(date(2026, 12, 5))
    assert _files(env) == before and _live(env)["release"] == first["release"]


# ---- releases ------------------------------------------------------------------------------------

def test_a_release_publishes_every_domain_with_manifest_checksums(env: Path) -> None:
    from publish.catalog import load_catalogue

    result = _publish()
    live = _live(env)
    assert live["release"] == result["release"] and live["as_of"] == "2026-11-29"
    assert set(live["datasets"]) == set(load_catalogue().datasets)
    for ds_id, entry in live["datasets"].items():
        for f in entry["files"]:
            data = (env / f["path"]).read_bytes()
            assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]
        assert {f["format"] for f in entry["files"]} == {"parquet", "csv", "jsonl", "geojson"}, ds_id
    station = live["datasets"]["air-quality-station-hourly"]
    assert station["rows"] > 0
    periods = {f["period"] for f in station["files"]}
    assert periods == {"2026-11", None}                    # the month, and "everything"
    assert live["lake"]["gold/air_quality_station_hourly"]["version"] >= 0
    csv = (env / next(f["path"] for f in station["files"] if f["format"] == "csv")).read_bytes()
    assert csv.startswith(b"\xef\xbb\xbf") and "덕양구".encode() in csv
    assert live["privacy_gate"]["passed"] and live["privacy_gate"]["files_scanned"] > 100
    assert (env / live["quality_reports"]).is_file()        # Data Docs alongside


def test_current_month_is_provisional_and_a_closed_month_validated(env: Path) -> None:
    import pyarrow.parquet as pq

    _publish()
    entry = _live(env)["datasets"]["weather-station-daily"]
    path = next(f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] is None)
    assert set(pq.read_table(env / path)["status"].to_pylist()) == {"provisional"}
    _publish(date(2026, 12, 3))                              # November closed + 3 settle days
    entry = _live(env)["datasets"]["weather-station-daily"]
    path = next(f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] is None)
    table = pq.read_table(env / path)
    assert set(table["status"].to_pylist()) == {"validated"} and set(table["revision"].to_pylist()) == {1}


def test_release_is_idempotent_and_rebuilds_byte_for_byte(env: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYLAKE_PUBLIC_BASE_URL", "https://data.goyang.example.kr")
    clear_caches()
    first = _publish()
    files = _files(env)
    again = _publish()
    assert again["release"] == first["release"] and again["changed"] is False
    assert _files(env) == files                              # nothing rewritten or added
    monkeypatch.setenv("CITYLAKE_PUBLIC_URI", f"file://{tmp_path / 'elsewhere'}")
    clear_caches()
    other = _publish()
    assert other["release"] == first["release"]
    assert _files(tmp_path / "elsewhere") == files           # same inputs, same bytes


def test_crash_mid_release_leaves_the_previous_release_live_and_complete(env: Path) -> None:
    from publish.release import verify

    first = _publish()
    for point in ("publish.file", "publish.switch"):
        code = ("from datetime import date; from publish.release import publish; "
                "publish(as_of=date(2026, 12, 3))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "CITYLAKE_FAILPOINT": point})
        assert proc.returncode == 137, proc.stderr[-2000:]
        assert _live(env)["release"] == first["release"]
        assert verify()["ok"]
    done = _publish(date(2026, 12, 3))                      # the next run finishes the job
    assert done["release"] != first["release"] and _live(env)["release"] == done["release"]
    assert verify()["ok"]


# ---- privacy -------------------------------------------------------------------------------------

def _plant(lake_root: Path, table: str, column: str, value: str) -> None:
    from etl import tables
    from etl.storage import lake

    store = lake()
    rows = tables.read(store, f"gold/{table}")
    i = rows.schema.get_field_index(column)
    rows = rows.set_column(i, column, pa.array([value] * rows.num_rows, rows.schema.field(column).type))
    dates = sorted(set(rows["date"].to_pylist()))
    tables.replace_partitions(store, f"gold/{table}", rows, "date", dates)


def _a_subject() -> str:
    from etl import tables
    from etl.storage import SILVER, lake

    rows = tables.read(lake(), SILVER, filters=[("domain", "=", "daycare_safety")], columns=["subject"])
    return next(s for s in rows["subject"].to_pylist() if s)


@pytest.mark.parametrize("planted", ["subject", "mac", "gate"])
def test_privacy_gate_blocks_a_release_with_a_planted_identifier(own_lake: Path, planted: str) -> None:
    from publish.privacy import PrivacyError

    first = _publish()
    public = own_lake / "public"
    before = _files(public)
    value = {"subject": _a_subject(), "mac": "a4:c1:38:0f:22:9e", "gate": "GATE-5991"}[planted]
    _plant(own_lake, "weather_station_hourly", "district_en", f"note {value}")
    with pytest.raises(PrivacyError, match="release is blocked"):
        _publish()
    assert _files(public) == before                         # nothing of the blocked release written
    assert _live(public)["release"] == first["release"]


def test_daycare_rows_wait_for_their_embargo_and_small_counts_stay_suppressed(env: Path) -> None:
    import pyarrow.parquet as pq

    _publish()                                               # 2026-11-29: the 24th is not 7 days old
    entry = _live(env)["datasets"]["daycare-daily"]
    assert entry["rows"] == 0
    summary = _all_rows(env, "district-daily-summary")
    assert summary["daycare_arrivals"].null_count == summary.num_rows
    _publish(date(2026, 12, 2))                              # 2026-11-24 + 7 days has come
    daycare = _all_rows(env, "daycare-daily")
    assert daycare.num_rows > 0
    assert pc.all(pc.less_equal(daycare["publishable_from"], pa.scalar(date(2026, 12, 2)))).as_py()
    for name in ("arrivals", "departures", "children"):
        shown = [v for v in daycare[name].to_pylist() if v is not None]
        assert all(v == 0 or v >= 5 for v in shown)
    names = set(daycare.column_names)
    assert not names & {"subject", "tag", "device_id", "gate"}
    registry = pq.read_table(env / next(f["path"] for f in _live(env)["datasets"]["device-registry"]["files"]
                                        if f["format"] == "parquet"))
    assert "daycare_safety" not in set(registry["domain"].to_pylist())


def test_privacy_gate_rule_catches_daycare_rows_before_their_embargo() -> None:
    from publish.privacy import check_rows

    rows = pa.table({"date": pa.array([date(2026, 11, 24)]), "publishable_from": pa.array([date(2026, 12, 1)]),
                     "arrivals": pa.array([3]), "departures": pa.array([None], pa.int64()),
                     "children": pa.array([None], pa.int64())})
    problems = check_rows("daycare-daily", "daycare_safety", rows, AS_OF, 5, "publishable_from")
    assert any("before publishable_from" in p for p in problems)
    assert any("arrivals below k=5" in p for p in problems)


def _all_rows(public: Path, ds_id: str) -> pa.Table:
    import pyarrow.parquet as pq

    entry = _live(public)["datasets"][ds_id]
    return pq.read_table(public / next(f["path"] for f in entry["files"]
                                       if f["format"] == "parquet" and f["period"] is None))


# ---- corrections -----------------------------------------------------------------------------------

def test_late_batch_gives_revisions_and_a_changes_feed_entry(own_lake: Path, gold_lake: dict[str, Any]) -> None:
    from etl import normalize
    from etl.aggregate import runner
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import lake
    from etl.storage import public as public_store
    from publish import changes

    first = _publish()
    public = own_lake / "public"
    hourly_before = _all_rows(public, "weather-station-hourly").num_rows
    env = gold_lake["late"][0]
    r = normalize.normalize(lake(), load_sources()[env.source], env, load_registry())
    assert r.accepted > 0
    for domain in ("weather", "summary"):
        runner.rebuild(domain, runner.with_followers(domain, list(r.dates)))
    second = _publish()
    assert second["release"] != first["release"]
    entry = _live(public)["datasets"]["weather-station-hourly"]
    assert entry["changes"]["2026-11"]["changed"] > 0       # the evening hours, no longer missing
    hourly = _all_rows(public, "weather-station-hourly")
    assert hourly.num_rows == hourly_before + entry["changes"]["2026-11"]["added"]
    assert 2 in set(hourly["revision"].to_pylist())
    daily = _all_rows(public, "weather-station-daily")
    assert 2 in set(daily["revision"].to_pylist())          # the day's means were revised
    feed = json.loads((public / "changes.json").read_text())
    mine = [e for e in feed["entries"] if e["release"] == second["release"]]
    assert {e["dataset"] for e in mine} >= {"weather-station-hourly", "weather-station-daily"}
    assert all(e["period"] == "2026-11" and e["files"] for e in mine)
    history = changes.history(public_store())
    since_first = changes.since(history, datetime.fromisoformat(history[0]["issued"]))
    assert {e["release"] for e in since_first} == {second["release"]}


# ---- the files as users read them -----------------------------------------------------------------

def test_every_datapackage_passes_the_frictionless_validator(env: Path) -> None:
    _publish()
    live = _live(env)
    for ds_id, entry in live["datasets"].items():
        path = env / entry["path"] / "datapackage.json"
        proc = subprocess.run([str(Path(sys.executable).parent / "frictionless"), "validate", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, (ds_id, proc.stdout[-3000:], proc.stderr[-2000:])


def test_dcat_catalogue_parses_with_rdflib(env: Path) -> None:
    import rdflib
    from rdflib.namespace import DCAT, DCTERMS, RDF

    _publish()
    g = rdflib.Graph().parse(data=(env / "catalog.jsonld").read_text(), format="json-ld")
    assert len(list(g.subjects(RDF.type, DCAT.Catalog))) == 1
    datasets = set(g.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) >= 20
    assert set(g.subjects(RDF.type, rdflib.URIRef(str(DCAT) + "DatasetSeries")))   # DCAT 3 (rdflib knows DCAT 2)
    for ds in g.objects(next(g.subjects(RDF.type, DCAT.Catalog)), DCAT.dataset):
        assert (ds, DCTERMS.license, None) in g
        assert {t.language for t in g.objects(ds, DCTERMS.title)} >= {"ko", "en"}


def test_alerts_feeds_parse_and_keep_their_ids(env: Path) -> None:
    import feedparser

    _publish()
    atom = feedparser.parse((env / "feeds/alerts.ko.atom").read_bytes())
    assert atom.bozo == 0 and atom.feed.language == "ko"
    assert any("release" in e.id for e in atom.entries)
    kept = {e.id for e in atom.entries if "release" in e.id or e.updated >= "2026-11-24"}
    _publish(date(2026, 11, 30))                       # a day later: the window moved by a day
    again = feedparser.parse((env / "feeds/alerts.ko.atom").read_bytes())
    assert kept <= {e.id for e in again.entries}        # the same alerts keep their ids
    assert len({e.id for e in again.entries}) == len(again.entries)
    doc = json.loads((env / "feeds/alerts.en.json").read_text())
    assert doc["version"] == "https://jsonfeed.org/version/1.1" and doc["items"]


def test_duckdb_reads_published_parquet_over_http_range_requests(env: Path) -> None:
    import duckdb

    from etl import duck
    from tests.http_files import FileServer

    _publish()
    entry = _live(env)["datasets"]["air-quality-station-hourly"]
    path = next(f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] == "2026-11")
    with FileServer(env) as server:
        con = duckdb.connect()
        duck.load_extension(con, "httpfs")
        n, grades = con.execute(f"SELECT count(*), count(cai_grade) FROM read_parquet('{server.url}/{path}') "
                                "WHERE district_code = '31101'").fetchone()
        con.close()
    assert n > 0 and grades >= 0
    assert server.ranges and all(r.startswith("bytes=") for r in server.ranges)


def test_an_older_release_rebuilds_byte_for_byte_from_its_lake_versions(own_lake: Path,
                                                                        gold_lake: dict[str, Any]) -> None:
    from etl import normalize
    from etl.aggregate import runner
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import lake
    from publish.release import rebuild, verify

    first = _publish()
    env = gold_lake["late"][0]                       # the lake moves on after the release
    r = normalize.normalize(lake(), load_sources()[env.source], env, load_registry())
    runner.rebuild("weather", list(r.dates))
    second = _publish()
    for release in (first["release"], second["release"]):
        result = rebuild(release)
        assert result["identical"], result["differing"][:5]
        assert result["files_compared"] > 100
    public = own_lake / "public"
    entry = _live(public)["datasets"]["weather-station-hourly"]
    victim = public / next(f["path"] for f in entry["files"] if f["format"] == "csv")
    victim.write_bytes(victim.read_bytes() + b"\n")    # a damaged copy on the public side:
    assert not verify()["ok"]                          # verify finds it, and the rebuilt bytes
    assert rebuild(second["release"])["identical"]     # still match the manifest (restore from them)


def test_privacy_gate_blocks_the_location_of_a_private_device(own_lake: Path) -> None:
    from etl import tables
    from etl.registry.load import load_registry
    from etl.storage import lake
    from publish.privacy import PrivacyError

    first = _publish()
    gate = next(r for r in load_registry().to_pylist() if r["domain"] == "daycare_safety")
    store = lake()
    rows = tables.read(store, "gold/waste_bins_to_empty")
    assert rows.num_rows
    for name in ("lat", "lon"):
        rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array([gate[name]] * rows.num_rows))
    tables.replace_partitions(store, "gold/waste_bins_to_empty", rows, "date", sorted(set(rows["date"].to_pylist())))
    with pytest.raises(PrivacyError, match="coordinates of a private device"):
        _publish()
    assert _live(own_lake / "public")["release"] == first["release"]
