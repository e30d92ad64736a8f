"""Metadata formats of a dataset version, checked with the real validators over real files.

A tiny dataset (two months, every gold column type, a null, Korean text) is written the way the
release writes it: monthly and all-period CSV (UTF-8 with BOM) and Parquet, plus JSON Lines, and a
manifest with the real sizes and SHA-256. datapackage.json is validated by frictionless (library and
CLI), the DCAT-AP catalogue is parsed by rdflib with the network cut off, and the data-dictionary
page is checked for content and escaping.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import shutil
import socket
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import frictionless
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rdflib
from rdflib.namespace import RDF

from publish.catalog import Catalogue, Column, Dataset
from publish.metadata import DATAPACKAGE, MANIFEST
from publish.metadata.dcat import catalog_jsonld
from publish.metadata.dictionary import dictionary_html
from publish.metadata.frictionless import datapackage

# rdflib's own JSON-LD parser still builds a ConjunctiveGraph
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
Published = tuple[Path, dict[str, dict[str, Any]]]    # the public root, and the manifest of each dataset

UTC = timezone.utc
BASE = "https://data.goyang.example.kr/open"
VERSION = "v-3f2a9c1d7e4b"
RELEASE = {"release": "2026-11-29.3f2a9c1d", "as_of": "2026-11-28", "issued": "2026-11-29T01:00:00+00:00"}
DCAT = rdflib.Namespace("http://www.w3.org/ns/dcat#")     # rdflib's DCAT lacks the DCAT 3 terms
DCTERMS = rdflib.Namespace("http://purl.org/dc/terms/")
XSD = rdflib.Namespace("http://www.w3.org/2001/XMLSchema#")
SPDX = rdflib.Namespace("http://spdx.org/rdf/terms#")
GSP = rdflib.Namespace("http://www.opengis.net/ont/geosparql#")
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "jsonl": "application/jsonl"}

SCHEMA = pa.schema([
    ("device_id", pa.string()), ("period_start", pa.timestamp("us", tz="UTC")), ("date", pa.date32()),
    ("pm25", pa.float64()), ("observed", pa.int64()), ("complete", pa.bool_()), ("note", pa.string()),
])
COLUMNS = (
    Column("device_id", "device identifier", "장치 식별자"),
    Column("period_start", "start of the hour (UTC)", "시작 시각 (UTC)"),
    Column("date", "KST calendar day", "날짜 (한국 시간)"),
    Column("pm25", "mean PM2.5 concentration", "초미세먼지 평균 농도", "µg/m³"),
    Column("observed", "readings in the hour", "관측 수", "count"),
    Column("complete", "enough readings for a valid mean", "유효 평균 여부"),
    Column("note", "operator note", "운영 메모"),
)
AIR = Dataset(
    id="air-quality-station-hourly", table="air_quality_station_hourly", domain="air_quality",
    title_ko="대기질 측정소별 시간 평균", title_en="Air quality per station, hourly",
    description_ko="측정소별 시간 평균 농도.", description_en="Hourly mean concentrations per station.",
    keywords_ko=("대기질", "미세먼지"), keywords_en=("air quality", "PM2.5"),
    primary_key=("device_id", "period_start"), sort=("period_start", "device_id"), geometry="device",
    frequency="hourly", licence="KOGL-1", columns=COLUMNS,
)
DAYCARE = dataclasses.replace(
    AIR, id="daycare-daily", table="daycare_daily", domain="daycare_safety", title_ko="어린이집 일별 등원",
    title_en="Daycare arrivals, daily", frequency="daily", embargo_until="publishable_from",
)
REGISTRY = dataclasses.replace(
    AIR, id="device-registry", table="registry", domain="registry", title_ko="스마트도시 센서·측정소 목록",
    title_en="Smart-city devices and stations", frequency="daily", primary_key=("device_id",),
)
CATALOGUE = Catalogue(
    datasets={d.id: d for d in (AIR, DAYCARE, REGISTRY)},
    publisher={"name_ko": "고양특례시", "name_en": "Goyang Special City", "url": "https://www.goyang.go.kr"},
    contact={"name_ko": "스마트도시과 공공데이터 담당", "name_en": "Open data desk", "email": "opendata@goyang.example.kr"},
    homepage="https://data.goyang.example.kr",
    spatial={"name_ko": "경기도 고양특례시", "name_en": "Goyang, Republic of Korea",
             "bbox": [126.67, 37.57, 126.99, 37.75], "geonames": "https://sws.geonames.org/1842485/"},
    settle_days=3,
)


def _rows() -> pa.Table:
    """Two devices, two hours a day over four days that straddle October and November."""
    rows: list[dict[str, Any]] = []
    for day in (date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)):
        for hour in (0, 12):
            for n, device in enumerate(("aq-ref-0001", "aq-lc-0002")):
                start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=9)
                rows.append({"device_id": device, "period_start": start, "date": day,
                             "pm25": 12.5 + hour + n, "observed": 60 - n, "complete": n == 0,
                             "note": "정상, \"따옴표\"" if n == 0 else "점검 중"})
    rows[3]["pm25"] = None      # a null float
    rows[5]["note"] = None      # a null string
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _cell(value: Any) -> str:
    """The release's CSV conventions: empty is null, ISO 8601 UTC with Z, true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _csv_bytes(table: pa.Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([_cell(v) for v in row.values()])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _jsonl_bytes(table: pa.Table) -> bytes:
    return "".join(json.dumps(row, default=_cell, ensure_ascii=False) + "\n"
                   for row in table.to_pylist()).encode("utf-8")


def _file_entry(version_dir: Path, path: str, data: bytes, fmt: str, period: str | None, rows: int) -> dict[str, Any]:
    target = version_dir / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return {"path": path, "format": fmt, "media_type": MEDIA_TYPES[fmt], "period": period, "rows": rows,
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _write_version(root: Path, ds: Dataset, table: pa.Table) -> dict[str, Any]:
    """Write the files of a version the way the release does and return its manifest."""
    version_dir = root / "datasets" / ds.id / VERSION
    dates = table.column("date").to_pylist()
    months = sorted({d.strftime("%Y-%m") for d in dates}) if ds.partitioned else []
    files, periods = [], []
    for month in months:
        part = table.filter(pa.array([d.strftime("%Y-%m") == month for d in dates]))
        part_dates = part.column("date").to_pylist()
        stem = f"{month}/{ds.id}-{month}"
        files.append(_file_entry(version_dir, f"{stem}.parquet", _parquet_bytes(part), "parquet", month, part.num_rows))
        files.append(_file_entry(version_dir, f"{stem}.csv", _csv_bytes(part), "csv", month, part.num_rows))
        periods.append({"period": month, "status": "final" if month == "2026-10" else "provisional",
                        "rows": part.num_rows, "first_date": min(part_dates).isoformat(),
                        "last_date": max(part_dates).isoformat()})
    for fmt, data in (("parquet", _parquet_bytes(table)), ("csv", _csv_bytes(table)), ("jsonl", _jsonl_bytes(table))):
        files.append(_file_entry(version_dir, f"{ds.id}.{fmt}", data, fmt, None, table.num_rows))
    manifest = {
        "dataset": ds.id, "version": VERSION, "release": RELEASE["release"], "table": f"gold/{ds.table}",
        "rows": table.num_rows, "issued": "2026-11-25T10:00:00+00:00",
        "temporal": {"start": min(dates).isoformat(), "end": max(dates).isoformat()} if ds.partitioned else None,
        "periods": periods, "files": files, "licence": ds.licence,
        "sources": {"airkorea": "KOGL-3", "air_mqtt": "KOGL-1"} if ds.partitioned else {},
        "lake": {f"gold/{ds.table}": 12},
    }
    (version_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    root = tmp_path_factory.mktemp("public")
    table = _rows()
    tables = {REGISTRY.id: table.slice(0, 2)}     # one row per device
    return root, {ds.id: _write_version(root, ds, tables.get(ds.id, table)) for ds in CATALOGUE.datasets.values()}


def _write_datapackage(version_dir: Path, ds: Dataset, manifest: dict[str, Any]) -> Path:
    path = version_dir / DATAPACKAGE
    descriptor = datapackage(ds, SCHEMA, manifest, CATALOGUE, BASE)
    path.write_text(json.dumps(descriptor, sort_keys=False, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def _errors(report: frictionless.Report) -> list[list[Any]]:
    """[resource, row number, field, error type, note] of every error (package-level ones too)."""
    errors = [[None, None, None, e.type, e.note] for e in report.errors]
    for task in report.tasks:
        errors += [[task.name, getattr(e, "row_number", None), getattr(e, "field_name", None), e.type, e.note]
                   for e in task.errors]
    return errors


def _copy(published: Published, tmp_path: Path, ds: Dataset) -> tuple[Path, dict[str, Any]]:
    """A copy of a version directory and its manifest, to plant errors in."""
    root, manifests = published
    version_dir = tmp_path / VERSION
    shutil.copytree(root / "datasets" / ds.id / VERSION, version_dir)
    return version_dir, json.loads(json.dumps(manifests[ds.id]))


# datapackage.json

def test_datapackage_of_every_csv_and_parquet_file_validates(published: Published) -> None:
    root, manifests = published
    for ds in (AIR, REGISTRY):
        path = _write_datapackage(root / "datasets" / ds.id / VERSION, ds, manifests[ds.id])
        report = frictionless.validate(str(path))
        assert report.valid, _errors(report)
        descriptor = json.loads(path.read_text(encoding="utf-8"))
        tabular = [f for f in manifests[ds.id]["files"] if f["format"] in ("csv", "parquet")]
        assert report.stats["tasks"] == len(descriptor["resources"]) == len(tabular)


def test_datapackage_describes_files_licence_and_columns(published: Published) -> None:
    _, manifests = published
    dp = datapackage(AIR, SCHEMA, manifests[AIR.id], CATALOGUE, BASE)
    assert dp["$schema"] == "https://datapackage.org/profiles/2.0/datapackage.json"
    assert (dp["name"], dp["version"], dp["created"]) == (AIR.id, VERSION, "2026-11-25T10:00:00+00:00")
    assert dp["title_ko"] == AIR.title_ko and dp["keywords_ko"] == ["대기질", "미세먼지"]
    assert dp["licenses"] == [{"path": "https://www.kogl.or.kr/info/licenseType1.do",
                               "title": "KOGL Type 1: attribution", "title_ko": "공공누리 제1유형: 출처표시"}]
    assert {s["title"]: s["licenses"][0]["path"][-15:] for s in dp["sources"]} == {
        "air_mqtt": "licenseType1.do", "airkorea": "licenseType3.do"}
    resources = {r["name"]: r for r in dp["resources"]}
    assert sorted(resources) == sorted(f"{AIR.id}-{p}-{fmt}" for p in ("all", "2026-10", "2026-11")
                                       for fmt in ("csv", "parquet"))
    csv_all, parquet_month = resources[f"{AIR.id}-all-csv"], resources[f"{AIR.id}-2026-11-parquet"]
    assert csv_all["path"] == f"{AIR.id}.csv" and csv_all["encoding"] == "utf-8-sig"
    assert csv_all["hash"] == "sha256:" + next(f["sha256"] for f in manifests[AIR.id]["files"]
                                               if f["path"] == f"{AIR.id}.csv")
    assert parquet_month["path"] == f"2026-11/{AIR.id}-2026-11.parquet" and "bytes" not in parquet_month
    assert parquet_month["mediatype"] == "application/vnd.apache.parquet"
    assert (csv_all["rows"], parquet_month["rows"]) == (16, 8)
    assert not any(f["format"] == "jsonl" for f in dp["resources"])
    fields = {f["name"]: f for f in csv_all["schema"]["fields"]}
    assert {n: f["type"] for n, f in fields.items()} == {
        "device_id": "string", "period_start": "datetime", "date": "date", "pm25": "number",
        "observed": "integer", "complete": "boolean", "note": "string"}
    assert fields["pm25"]["unit"] == "µg/m³" and fields["pm25"]["description_ko"] == "초미세먼지 평균 농도"
    assert "unit" not in fields["note"]
    assert csv_all["schema"]["primaryKey"] == ["device_id", "period_start"]
    parquet_types = {f["name"]: f["type"] for f in parquet_month["schema"]["fields"]}
    assert parquet_types["observed"] == "number" and parquet_types["pm25"] == "number"  # pandas: NaN for null


def _plant_string_in_integer_column(version_dir: Path, manifest: dict[str, Any]) -> None:
    entry = next(f for f in manifest["files"] if f["path"].endswith("2026-11.csv"))
    target = version_dir / entry["path"]
    lines = target.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    lines[2] = lines[2].replace(",59,", ",many,")
    data = ("\ufeff" + "".join(lines)).encode("utf-8")
    target.write_bytes(data)
    entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())   # only the type is wrong


def test_frictionless_reports_a_string_in_an_integer_column(published: Published, tmp_path: Path) -> None:
    version_dir, manifest = _copy(published, tmp_path, AIR)
    _plant_string_in_integer_column(version_dir, manifest)
    path = _write_datapackage(version_dir, AIR, manifest)
    report = frictionless.validate(str(path))
    assert not report.valid
    assert [e[:4] for e in _errors(report)] == [[f"{AIR.id}-2026-11-csv", 3, "observed", "type-error"]]


def test_frictionless_reports_a_wrong_checksum(published: Published, tmp_path: Path) -> None:
    version_dir, manifest = _copy(published, tmp_path, AIR)
    entry = next(f for f in manifest["files"] if f["path"] == f"{AIR.id}.csv")
    entry["sha256"] = "0" * 64
    report = frictionless.validate(str(_write_datapackage(version_dir, AIR, manifest)))
    assert not report.valid
    assert [(e[0], e[3]) for e in _errors(report)] == [(f"{AIR.id}-all-csv", "hash-count")]


def test_null_integers_in_parquet_validate_and_row_counts_are_checked(tmp_path: Path) -> None:
    """A null in an integer column of a Parquet file (pandas makes it NaN) passes, because Parquet
    resources declare integer columns as number; the row count of a Parquet file is still checked."""
    suppressed = _rows().set_column(4, "observed", pa.array([None if i % 5 == 0 else 3 for i in range(16)], pa.int64()))
    manifest = _write_version(tmp_path, DAYCARE, suppressed)
    version_dir = tmp_path / "datasets" / DAYCARE.id / VERSION
    path = _write_datapackage(version_dir, DAYCARE, manifest)
    report = frictionless.validate(str(path))
    assert report.valid, _errors(report)
    entry = next(f for f in manifest["files"] if f["path"].endswith("2026-10.parquet"))
    entry["rows"] += 1
    report = frictionless.validate(str(_write_datapackage(version_dir, DAYCARE, manifest)))
    assert [e[0::3] for e in _errors(report)] == [[f"{DAYCARE.id}-2026-10-parquet", "row-count"]]


def test_frictionless_cli_validates_the_package(published: Published, tmp_path: Path) -> None:
    version_dir, manifest = _copy(published, tmp_path, REGISTRY)
    path = _write_datapackage(version_dir, REGISTRY, manifest)
    result = subprocess.run([sys.executable, "-m", "frictionless", "validate", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# DCAT-AP

@pytest.fixture
def graph(published: Published, monkeypatch: pytest.MonkeyPatch) -> rdflib.Graph:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access while parsing the catalogue: {args}")

    _, manifests = published
    doc = catalog_jsonld(CATALOGUE, RELEASE, manifests, {AIR.id: SCHEMA}, BASE)
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return rdflib.Graph().parse(data=text, format="json-ld")


def _one(graph: rdflib.Graph, subject: Any, predicate: Any) -> Any:
    values = list(graph.objects(subject, predicate))
    assert len(values) == 1, (subject, predicate, values)
    return values[0]


def test_dcat_catalogue_lists_datasets_with_licence_and_titles(graph: rdflib.Graph) -> None:
    catalogs = list(graph.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1
    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    # three datasets, and a month dataset for each month of the two partitioned ones
    assert len(datasets) == 3 + 2 + 2
    assert set(graph.objects(catalogs[0], DCAT.dataset)) >= datasets
    for ds in datasets:
        assert (ds, DCTERMS.license, rdflib.URIRef("https://www.kogl.or.kr/info/licenseType1.do")) in graph
        assert {t.language for t in graph.objects(ds, DCTERMS.title)} == {"ko", "en"}
        assert _one(graph, ds, DCTERMS.accessRights) == rdflib.URIRef(
            "http://publications.europa.eu/resource/authority/access-right/PUBLIC")
        assert list(graph.objects(ds, DCAT.distribution))
    air = rdflib.URIRef(f"{BASE}/datasets/{AIR.id}")
    assert rdflib.Literal("대기질", lang="ko") in set(graph.objects(air, DCAT.keyword))
    assert _one(graph, air, DCTERMS.accrualPeriodicity) == rdflib.URIRef(
        "http://publications.europa.eu/resource/authority/frequency/HOURLY")
    assert _one(graph, air, DCAT.temporalResolution) == rdflib.Literal("PT1H", datatype=XSD.duration)
    assert _one(graph, air, DCAT.landingPage) == rdflib.URIRef(f"{BASE}/datasets/{AIR.id}/{VERSION}/dictionary.html")
    email = _one(graph, _one(graph, air, DCAT.contactPoint), rdflib.URIRef("http://www.w3.org/2006/vcard/ns#hasEmail"))
    assert email == rdflib.URIRef("mailto:opendata@goyang.example.kr")
    temporal = _one(graph, air, DCTERMS.temporal)
    assert _one(graph, temporal, DCAT.startDate) == rdflib.Literal("2026-10-30", datatype=XSD.date)
    assert _one(graph, temporal, DCAT.endDate).datatype == XSD.date
    spatial = set(graph.objects(air, DCTERMS.spatial))
    assert rdflib.URIRef("https://sws.geonames.org/1842485/") in spatial
    bbox = next(graph.objects(predicate=DCAT.bbox))
    assert bbox.datatype == GSP.wktLiteral and str(bbox).startswith("POLYGON((126.67 37.57, 126.99 37.57")
    assert len(list(graph.objects(air, rdflib.URIRef("http://schema.org/variableMeasured")))) == len(SCHEMA)


def test_dcat_distributions_carry_urls_sizes_and_checksums(graph: rdflib.Graph, published: Published) -> None:
    _, manifests = published
    air = rdflib.URIRef(f"{BASE}/datasets/{AIR.id}")
    by_url = {}
    for dist in graph.objects(air, DCAT.distribution):
        url = _one(graph, dist, DCAT.downloadURL)
        assert _one(graph, dist, DCAT.accessURL) == url
        checksum = _one(graph, dist, SPDX.checksum)
        assert _one(graph, checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
        size = _one(graph, dist, DCAT.byteSize)
        assert size.datatype == XSD.nonNegativeInteger
        by_url[str(url)] = (int(size), str(_one(graph, checksum, SPDX.checksumValue)))
    expected = {f"{BASE}/datasets/{AIR.id}/{VERSION}/{f['path']}": (f["bytes"], f["sha256"])
                for f in manifests[AIR.id]["files"] if f["period"] is None}
    assert by_url == expected and len(expected) == 3       # parquet, csv and jsonl
    parquet = next(d for d in graph.objects(air, DCAT.distribution)
                   if str(_one(graph, d, DCAT.downloadURL)).endswith(".parquet"))
    assert _one(graph, parquet, DCAT.mediaType) == rdflib.URIRef(
        "http://www.iana.org/assignments/media-types/application/vnd.apache.parquet")
    assert _one(graph, parquet, DCTERMS["format"]) == rdflib.URIRef(
        "http://publications.europa.eu/resource/authority/file-type/PARQUET")


def test_dcat_series_of_monthly_datasets(graph: rdflib.Graph) -> None:
    air = f"{BASE}/datasets/{AIR.id}"
    series = rdflib.URIRef(f"{air}/series")
    october, november = rdflib.URIRef(f"{air}/series/2026-10"), rdflib.URIRef(f"{air}/series/2026-11")
    assert (series, RDF.type, DCAT.DatasetSeries) in graph
    assert {t.language for t in graph.objects(series, DCTERMS.title)} == {"ko", "en"}
    assert set(graph.subjects(DCAT.inSeries, series)) == {october, november}
    assert (_one(graph, series, DCAT.first), _one(graph, series, DCAT.last)) == (october, november)
    assert _one(graph, november, DCAT.prev) == october and not list(graph.objects(october, DCAT.prev))
    temporal = _one(graph, november, DCTERMS.temporal)
    assert _one(graph, temporal, DCAT.startDate) == rdflib.Literal("2026-11-01", datatype=XSD.date)
    statuses = {str(_one(graph, d, rdflib.URIRef("http://www.w3.org/ns/adms#status"))).rsplit("/", 1)[1]
                for d in graph.objects(november, DCAT.distribution)}
    assert statuses == {"DEVELOP"}
    files = {str(_one(graph, d, DCAT.downloadURL)).rsplit("/", 2)[1] for d in graph.objects(october, DCAT.distribution)}
    assert files == {"2026-10"}
    registry = rdflib.URIRef(f"{BASE}/datasets/{REGISTRY.id}")
    assert not list(graph.objects(registry, DCTERMS.temporal))
    assert not (rdflib.URIRef(f"{registry}/series"), None, None) in graph


def test_dcat_privacy_note_only_on_delayed_datasets(graph: rdflib.Graph) -> None:
    noted = {s for s in graph.subjects(DCTERMS.rights, None) if (s, RDF.type, DCAT.Dataset) in graph}
    assert noted and all(str(s).startswith(f"{BASE}/datasets/{DAYCARE.id}") for s in noted)


# Data dictionary

class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_dictionary_page_is_bilingual_self_contained_and_escaped(published: Published) -> None:
    _, manifests = published
    planted = dataclasses.replace(AIR, columns=(*COLUMNS[:-1], Column(
        "note", "operator note <script>alert('x')</script>", "운영 메모 <b>굵게</b>")))
    page = dictionary_html(planted, SCHEMA, manifests[AIR.id], CATALOGUE, BASE)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="ko">' in page and '<meta charset="utf-8">' in page
    assert "<script" not in page and "&lt;script&gt;" in page and "<b>" not in page
    parser = _Text()
    parser.feed(page)
    text = " ".join(parser.text)
    for name in SCHEMA.names:
        assert name in text
    for words in ("대기질 측정소별 시간 평균", "초미세먼지 평균 농도", "공공누리 제1유형: 출처표시", "잠정", "확정",
                  "µg/m³", "opendata@goyang.example.kr", "2026-10-30 – 2026-11-02"):
        assert words in text, words
    assert text.index("대기질 측정소별 시간 평균") < text.index("Air quality per station, hourly")
    hrefs = {attrs.get("href") for tag, attrs in parser.tags if tag == "a"}
    assert {f["path"] for f in manifests[AIR.id]["files"]} <= hrefs
    assert "https://www.kogl.or.kr/info/licenseType1.do" in hrefs
    assert not [attrs for tag, attrs in parser.tags if tag in ("link", "script", "img", "iframe")]
    assert f"read_parquet('{BASE}/datasets/{AIR.id}/{VERSION}/{AIR.id}.parquet')" in text


def test_dictionary_of_the_registry_has_no_periods(published: Published) -> None:
    _, manifests = published
    parser = _Text()
    parser.feed(dictionary_html(REGISTRY, SCHEMA, manifests[REGISTRY.id], CATALOGUE))
    text = " ".join(parser.text)
    assert "Periods" not in text and "Temporal coverage —" in text
    assert f"read_parquet('https://data.goyang.example.kr/datasets/{REGISTRY.id}/{VERSION}/{REGISTRY.id}.parquet')" in text
