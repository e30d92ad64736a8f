"""The open-data API as its users see it: an in-process HTTP client (and one real uvicorn
server for DuckDB over HTTP) over a real release of the small fixture lake."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from publish.formats import as_text_values
from tests.lakes import lake_environment, released_lake, serving

AS_OF = date(2026, 11, 29)
AQ = "air-quality-station-hourly"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A lake, a release of it, and a client on the API over its public side."""
    from publish.api.app import create_app

    with released_lake(tmp_path_factory, "api-lake", AS_OF) as (root, store):
        app = create_app(store)
        with TestClient(app) as client:
            yield {"client": client, "public": root / "public", "store": store, "app": app}


def _live(public: Path) -> dict[str, Any]:
    pointer = json.loads((public / "latest.json").read_text())
    return json.loads((public / pointer["manifest"]).read_text())


def _bulk(public: Path, dataset: str) -> tuple[str, Any]:
    entry = _live(public)["datasets"][dataset]
    path = next(f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] is None)
    return path, pq.read_table(public / path)


def _rows(client: TestClient, dataset: str, **params: Any) -> Any:
    return client.get(f"/v1/datasets/{dataset}/rows", params=params)


# ---- catalogue ------------------------------------------------------------------------------------

def test_lists_every_dataset_with_licence_rows_and_version(api: dict[str, Any]) -> None:
    r = api["client"].get("/v1/datasets")
    assert r.status_code == 200
    listed = {d["id"]: d for d in r.json()["datasets"]}
    live = _live(api["public"])
    assert len(listed) == 20 and "device-registry" in listed
    for did, d in listed.items():
        assert d["licence"] and d["title_ko"] and d["title_en"]
        assert (d["rows"], d["version"]) == (live["datasets"][did]["rows"], live["datasets"][did]["version"])
        assert d["links"]["rows"].endswith(f"/v1/datasets/{did}/rows")


def test_dataset_detail_has_columns_types_periods_and_file_urls(api: dict[str, Any]) -> None:
    client = api["client"]
    r = client.get(f"/v1/datasets/{AQ}")
    assert r.status_code == 200
    d = r.json()
    names = [c["name"] for c in d["columns"]]
    assert {"device_id", "period_start", "pm25", "cai_grade", "status", "revision"} <= set(names)
    by_name = {c["name"]: c for c in d["columns"]}
    assert by_name["period_start"]["type"] == "TIMESTAMP WITH TIME ZONE"
    assert by_name["pm25"]["unit"] and by_name["pm25"]["description_ko"] and by_name["pm25"]["description_en"]
    assert d["primary_key"] == ["device_id", "period_start"]
    assert d["release"] == _live(api["public"])["release"] and d["licence"] == "KOGL-1"
    assert [p for p in d["periods"]] and d["temporal"]
    bulk = [f for f in d["files"] if f["period"] is None and f["format"] == "parquet"]
    assert bulk and bulk[0]["url"] == f"http://testserver/files/{bulk[0]['path']}"
    got = client.get(bulk[0]["url"])
    assert hashlib.sha256(got.content).hexdigest() == bulk[0]["sha256"]


def test_dataset_detail_etag_and_304(api: dict[str, Any]) -> None:
    client = api["client"]
    r = client.get(f"/v1/datasets/{AQ}")
    assert r.headers["etag"] and "max-age" in r.headers["cache-control"]
    again = client.get(f"/v1/datasets/{AQ}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get(f"/v1/datasets/{AQ}", headers={"If-None-Match": '"other"'}).status_code == 200


def test_unknown_dataset_is_a_json_404(api: dict[str, Any]) -> None:
    for url in ("/v1/datasets/no-such", "/v1/datasets/no-such/rows", "/v1/latest?dataset=no-such"):
        r = api["client"].get(url)
        assert r.status_code == 404, url
        assert r.json()["error"] == "unknown dataset" and AQ in r.json()["detail"]
    r = api["client"].get("/v2/nothing")
    assert r.status_code == 404 and set(r.json()) == {"error", "detail"}


# ---- rows ----------------------------------------------------------------------------------------

def test_rows_filter_by_district(api: dict[str, Any]) -> None:
    _, table = _bulk(api["public"], AQ)
    code = table["district_code"][0].as_py()
    r = _rows(api["client"], AQ, district_code=code, limit=10000)
    assert r.status_code == 200
    got = r.json()["rows"]
    assert got and {row["district_code"] for row in got} == {code}
    assert len(got) == pc.sum(pc.equal(table["district_code"], code)).as_py()
    assert r.json()["next"] is None


def test_rows_filter_by_date_and_datetime(api: dict[str, Any]) -> None:
    _, table = _bulk(api["public"], AQ)
    day = table["date"][len(table) - 1].as_py()
    r = _rows(api["client"], AQ, **{"from": day.isoformat(), "to": day.isoformat()}, limit=10000)
    assert r.status_code == 200
    assert {row["date"] for row in r.json()["rows"]} == {day.isoformat()}
    assert len(r.json()["rows"]) == pc.sum(pc.equal(table["date"], day)).as_py()
    # datetimes are on period_start: from inclusive, to exclusive; no offset means KST
    r = _rows(api["client"], AQ, **{"from": "2026-11-24T10:00:00+09:00", "to": "2026-11-24T12:00"}, limit=10000)
    starts = {row["period_start"] for row in r.json()["rows"]}
    assert starts == {"2026-11-24T01:00:00Z", "2026-11-24T02:00:00Z"}


def test_rows_generic_where(api: dict[str, Any]) -> None:
    _, table = _bulk(api["public"], AQ)
    r = _rows(api["client"], AQ, where=["pm25:ge:20", "kind:eq:reference_station"], limit=10000)
    assert r.status_code == 200
    got = r.json()["rows"]
    expected = table.filter(pc.and_(pc.greater_equal(table["pm25"], 20), pc.equal(table["kind"], "reference_station")))
    assert got and len(got) == expected.num_rows
    assert all(row["pm25"] >= 20 and row["kind"] == "reference_station" for row in got)


def test_rows_bad_input_is_a_400_that_says_what_is_wrong(api: dict[str, Any]) -> None:
    client = api["client"]
    r = _rows(client, AQ, where="pm99:eq:1")
    assert r.status_code == 400 and "pm99" in r.json()["detail"] and "pm25" in r.json()["detail"]
    assert "device_id" in r.json()["detail"]                  # names the allowed columns
    r = _rows(client, AQ, where="pm25:like:1")
    assert r.status_code == 400 and "eq" in r.json()["detail"]
    for params in ({"where": "pm25"}, {"where": "pm25:gt:many"}, {"order": "nope"}, {"limit": 0},
                   {"limit": 10001}, {"limit": "ten"}, {"cursor": "not-a-cursor"}, {"from": "yesterday"},
                   {"format": "xlsx"}, {"device_id": "x", "where": "date:eq:2026-13-45"}):
        r = _rows(client, AQ, **params)
        assert r.status_code == 400, params
        assert r.json()["error"] and r.json()["detail"], params
    r = _rows(client, "device-registry", **{"from": "2026-11-24"})
    assert r.status_code == 400 and "date" in r.json()["detail"]
    assert _rows(client, AQ, limit=10000).status_code == 200


def test_no_input_makes_a_500(api: dict[str, Any]) -> None:
    client = api["client"]
    odd = ["'; DROP TABLE x; --", "\x00", "%", "pm25:eq:'", "\"period_start\":gt:0", "a" * 5000, "-", ",", "ö"]
    for value in odd:
        for params in ({"where": value}, {"order": value}, {"cursor": value}, {"from": value},
                       {"district_code": value}, {"where": f"pm25:eq:{value}"}):
            assert _rows(client, AQ, **params).status_code < 500, (params, value)
    assert client.get("/v1/latest", params={"dataset": "device-registry"}).status_code == 400


def _walk(client: TestClient, dataset: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    rows, pages = [], 0
    r = _rows(client, dataset, **params)
    while True:
        assert r.status_code == 200, r.text
        rows += r.json()["rows"]
        pages += 1
        if r.json()["next"] is None:
            return rows, pages
        r = client.get(r.json()["next"])


@pytest.mark.parametrize("dataset", [AQ, "device-registry", "waste-bins-hourly"])
def test_keyset_pagination_returns_every_row_once_in_order(api: dict[str, Any], dataset: str) -> None:
    from publish.catalog import load_catalogue

    ds = load_catalogue().datasets[dataset]
    _, table = _bulk(api["public"], dataset)
    keys = list(ds.sort) + [k for k in ds.primary_key if k not in ds.sort]
    got, pages = _walk(api["client"], dataset, limit=7)
    assert table.num_rows > 7 and pages == -(-table.num_rows // 7)
    as_text = [tuple(r[k] for k in ds.primary_key) for r in got]
    assert len(as_text) == len(set(as_text)) == table.num_rows
    text = as_text_values(table.sort_by([(k, "ascending") for k in keys]).select(list(ds.primary_key)))
    assert as_text == [tuple(r[k] for k in ds.primary_key) for r in text.to_pylist()]


def test_keyset_pagination_with_a_nullable_descending_order_and_a_filter(api: dict[str, Any]) -> None:
    _, table = _bulk(api["public"], AQ)
    assert table["pm25"].null_count > 0                       # the nulls must come last, each once
    got, _ = _walk(api["client"], AQ, order="-pm25", limit=13, where="hour:ge:3")
    expected = table.filter(pc.greater_equal(table["hour"], 3))
    assert len(got) == expected.num_rows
    assert len({(r["device_id"], r["period_start"]) for r in got}) == len(got)
    values = [r["pm25"] for r in got]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=True) and values == present + [None] * (len(values) - len(present))


def test_a_cursor_is_opaque_but_tied_to_its_order(api: dict[str, Any]) -> None:
    r = _rows(api["client"], AQ, limit=5)
    token = r.json()["next"].split("cursor=")[1]
    doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert doc["o"] == "period_start,device_id"
    assert _rows(api["client"], AQ, limit=5, cursor=token, order="device_id").status_code == 400


def test_csv_is_streamed_with_a_bom_and_parses(api: dict[str, Any]) -> None:
    _, table = _bulk(api["public"], AQ)
    r = _rows(api["client"], AQ, format="csv", limit=50)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    parsed = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(parsed) == 50 and list(parsed[0]) == table.column_names
    assert 'rel="next"' in r.headers["link"]
    everything = _rows(api["client"], AQ, format="csv", limit=10000).content.decode("utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(everything)))) == table.num_rows


def test_rows_as_parquet_and_geojson(api: dict[str, Any]) -> None:
    r = _rows(api["client"], AQ, format="parquet", limit=20, device_id="aq-ref-0001")
    page = pq.read_table(io.BytesIO(r.content))
    assert page.num_rows == 20 and set(page["device_id"].to_pylist()) == {"aq-ref-0001"}
    g = _rows(api["client"], AQ, format="geojson", limit=3).json()
    assert g["type"] == "FeatureCollection" and len(g["features"]) == 3
    assert g["features"][0]["geometry"]["type"] == "Point"


def test_latest_gives_one_row_per_station(api: dict[str, Any]) -> None:
    """The newest row with a measured value per station (offline hours are not news)."""
    _, table = _bulk(api["public"], AQ)
    r = api["client"].get("/v1/latest")
    assert r.status_code == 200
    got = r.json()["rows"]
    devices = set(table["device_id"].to_pylist())
    assert sorted(row["device_id"] for row in got) == sorted(devices)
    measured = ["pm10", "pm25", "o3", "no2", "co", "so2", "pm10_24h", "pm25_24h", "pm25_nowcast", "pm10_nowcast",
                "o3_8h", "co_8h"]
    import pyarrow.compute as pc

    has_value = pc.or_(*[pc.is_valid(table[c]) for c in measured[:2]])
    for c in measured[2:]:
        has_value = pc.or_(has_value, pc.is_valid(table[c]))
    newest = table.filter(has_value).group_by("device_id").aggregate([("period_start", "max")]).to_pylist()
    newest = {n["device_id"]: n["period_start_max"].strftime("%Y-%m-%dT%H:%M:%SZ") for n in newest}
    assert all(row["period_start"] == newest[row["device_id"]] for row in got)
    assert all("cai_grade" in row and "pm25" in row for row in got)
    district = api["client"].get("/v1/latest", params={"dataset": "air-quality-district-hourly"}).json()
    assert len(district["rows"]) == len({row["district_code"] for row in district["rows"]}) > 0


# ---- files ---------------------------------------------------------------------------------------

def test_files_range_etag_and_cache(api: dict[str, Any]) -> None:
    client = api["client"]
    path, _ = _bulk(api["public"], AQ)
    data = (api["public"] / path).read_bytes()
    sha = next(f["sha256"] for f in _live(api["public"])["datasets"][AQ]["files"] if f["path"] == path)
    full = client.get(f"/files/{path}")
    assert full.status_code == 200 and full.content == data
    assert full.headers["etag"] == f'"{sha}"' and full.headers["accept-ranges"] == "bytes"
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    part = client.get(f"/files/{path}", headers={"Range": "bytes=4-99"})
    assert part.status_code == 206 and part.content == data[4:100]
    assert part.headers["content-range"] == f"bytes 4-99/{len(data)}"
    tail = client.get(f"/files/{path}", headers={"Range": "bytes=-8"})
    assert tail.status_code == 206 and tail.content == data[-8:] and tail.content.endswith(b"PAR1")
    for bad in (f"bytes={len(data)}-", "bytes=9-3", "bytes=0-1,5-6", "lines=1-2"):
        r = client.get(f"/files/{path}", headers={"Range": bad})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}", bad
    assert client.get(f"/files/{path}", headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    head = client.head(f"/files/{path}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    latest = client.get("/files/latest.json")
    assert latest.status_code == 200 and "immutable" not in latest.headers["cache-control"]
    assert client.get("/files/latest.json", headers={"If-None-Match": latest.headers["etag"]}).status_code == 304


def test_files_refuse_path_escapes(api: dict[str, Any]) -> None:
    client = api["client"]
    for url in ("/files/%2e%2e/lake/_delta_log", "/files/datasets/..%2F..%2Flake", "/files/..%2f..%2fetc%2fpasswd",
                "/files/datasets/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/files//etc/passwd", "/files/.hidden",
                "/files/no/such/file.parquet", "/files/datasets/..\\..\\x"):
        r = client.get(url)
        assert r.status_code == 404 and r.json()["error"] == "not found", url


def test_duckdb_reads_a_parquet_file_over_http_from_a_real_server(api: dict[str, Any]) -> None:
    import duckdb

    from etl.duck import load_extension

    with serving(api["app"]) as base:
        path, table = _bulk(api["public"], AQ)
        con = duckdb.connect()
        load_extension(con, "httpfs")
        n, devices = con.execute("SELECT count(*), count(DISTINCT device_id) FROM read_parquet(?)",
                                 [f"{base}/files/{path}"]).fetchone()
        con.close()
    assert (n, devices) == (table.num_rows, len(set(table["device_id"].to_pylist())))


def test_a_new_release_is_served_without_restart(api: dict[str, Any]) -> None:
    """Last: it changes the shared public side."""
    from publish.release import publish

    before = api["client"].get("/v1/datasets").json()["release"]
    with pytest.MonkeyPatch.context() as mp:
        lake_environment(mp, api["public"].parent)
        result = publish(as_of=date(2026, 12, 10))
    assert result["changed"] and result["release"] != before
    assert api["client"].get("/v1/datasets").json()["release"] == result["release"]
    detail = api["client"].get(f"/v1/datasets/{AQ}").json()
    assert detail["release"] == result["release"]
    assert _rows(api["client"], AQ, limit=1).json()["rows"][0]["status"] == "validated"


def test_series_buckets_by_kst_day_per_station(api: dict[str, Any]) -> None:
    import pyarrow.compute as pc

    _, table = _bulk(api["public"], AQ)
    device = sorted(set(table["device_id"].to_pylist()))[0]
    r = api["client"].get("/v1/series", params={"metric": "pm25", "bucket": "day", "device_id": device})
    assert r.status_code == 200, r.text
    got = {row["bucket_start"][:10]: (row["value"], row["n"]) for row in r.json()["rows"]}
    mine = table.filter(pc.equal(table["device_id"], device))
    for day in sorted(set(mine["date"].to_pylist())):
        values = [v for d, v in zip(mine["date"].to_pylist(), mine["pm25"].to_pylist()) if d == day and v is not None]
        value, n = got[day.isoformat()]
        assert n == len(values) and (value is None if not values else abs(value - sum(values) / len(values)) < 1e-9)
    assert all(row["bucket_start"].endswith("+09:00") for row in r.json()["rows"])
    for bad in ({"metric": "district_ko"}, {"metric": "nope"}, {"metric": "pm25", "bucket": "year"},
                {"metric": "pm25", "where": "pm25:gt:abc"}, {"metric": "pm25", "where": "broken"}):
        resp = api["client"].get("/v1/series", params=bad)
        assert resp.status_code == 400 and resp.json()["error"], bad


def test_rate_limit_headers_on_every_response_and_on_429(api: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from publish.api.app import create_app

    now = [1000.0]
    monkeypatch.setenv("CITYLAKE_API_KEYS", "city-partner-1")
    app = create_app(api["store"], rate_limits={"anonymous": 3, "keyed": 5, "window_s": 60, "clock": lambda: now[0]})
    with TestClient(app) as client:
        seen = [client.get("/v1/datasets") for _ in range(3)]
        assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0"]
        assert all(r.headers["x-ratelimit-limit"] == "3" for r in seen)
        blocked = client.get("/v1/datasets/nope")
        assert blocked.status_code == 429 and blocked.json()["error"] == "rate limit exceeded"
        assert blocked.headers["x-ratelimit-remaining"] == "0" and int(blocked.headers["retry-after"]) > 0
        keyed = client.get("/v1/datasets", headers={"X-API-Key": "city-partner-1"})
        assert keyed.status_code == 200 and keyed.headers["x-ratelimit-limit"] == "5"
        wrong_key = client.get("/v1/datasets", headers={"X-API-Key": "guess"})
        assert wrong_key.status_code == 429                     # an unknown key counts as anonymous
        now[0] += 60                                            # the next window
        assert client.get("/v1/datasets").status_code == 200
