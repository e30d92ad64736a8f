"""The CKAN Action API subset as a CKAN client sees it: the real ``ckanapi.RemoteCKAN`` against
the API served by uvicorn over a real release of the small fixture lake."""
from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import ckanapi
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import requests

from publish.formats import as_text_values
from tests.lakes import released_lake, serving

AS_OF = date(2026, 11, 29)
AQ = "air-quality-station-hourly"


@pytest.fixture(scope="module")
def ckan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A lake, a release of it, the API with the CKAN router served by uvicorn, and a client."""
    from publish.api.app import create_app

    with released_lake(tmp_path_factory, "ckan-lake", AS_OF) as (root, store):
        app = create_app(store)
        assert any(getattr(r, "path", "").startswith("/api/3") for r in app.routes)
        with serving(app) as base:
            yield {"ck": ckanapi.RemoteCKAN(base), "base": base, "public": root / "public"}


def _live(public: Path) -> dict[str, Any]:
    pointer = json.loads((public / "latest.json").read_text())
    return json.loads((public / pointer["manifest"]).read_text())


def _bulk(public: Path, dataset: str) -> tuple[str, Any]:
    entry = _live(public)["datasets"][dataset]
    path = next(f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] is None)
    return path, pq.read_table(public / path)


def _datastore_id(ck: Any, dataset: str) -> str:
    pkg = ck.action.package_show(id=dataset)
    active = [r for r in pkg["resources"] if r["datastore_active"]]
    assert len(active) == 1 and active[0]["format"] == "Parquet"
    return active[0]["id"]


# ---- packages -------------------------------------------------------------------------------------

def test_package_list_has_every_dataset(ckan: dict[str, Any]) -> None:
    ids = ckan["ck"].action.package_list()
    assert len(ids) == 20 and "device-registry" in ids and AQ in ids
    assert set(ids) == set(_live(ckan["public"])["datasets"])


def test_package_show_fields_and_resources_match_the_manifest(ckan: dict[str, Any]) -> None:
    live = _live(ckan["public"])
    pkg = ckan["ck"].action.package_show(id=AQ)
    entry = live["datasets"][AQ]
    assert (pkg["id"], pkg["name"]) == (AQ, AQ)
    assert pkg["title"] == entry["title_en"] and pkg["title_ko"] == entry["title_ko"]
    assert {"key": "title_ko", "value": entry["title_ko"]} in pkg["extras"]
    assert pkg["notes"] and pkg["license_id"] == "KOGL-1" and pkg["license_title"] and pkg["license_url"]
    assert pkg["version"] == entry["version"]
    assert pkg["metadata_modified"].startswith(live["issued"][:10])
    assert pkg["organization"]["name"] and pkg["organization"]["title"] == "Goyang Special City"
    assert "air quality" in [t["name"] for t in pkg["tags"]] and "대기질" in [t["name"] for t in pkg["tags"]]
    assert pkg["num_resources"] == len(pkg["resources"]) == len(entry["files"])
    by_url = {r["url"]: r for r in pkg["resources"]}
    for f in entry["files"]:
        r = by_url[f"{ckan['base']}/files/{f['path']}"]
        assert r["hash"] == f"sha256:{f['sha256']}" and r["size"] == f["bytes"]
        assert r["mimetype"] == f["media_type"] and r["format"]
        assert r["datastore_active"] == (f["format"] == "parquet" and f["period"] is None)
    assert len({r["id"] for r in pkg["resources"]}) == len(pkg["resources"])
    # ids are stable: the same on a second call
    assert [r["id"] for r in ckan["ck"].action.package_show(id=AQ)["resources"]] == [r["id"] for r in pkg["resources"]]
    # a resource URL serves the published bytes
    bulk = next(r for r in pkg["resources"] if r["datastore_active"])
    assert "sha256:" + hashlib.sha256(requests.get(bulk["url"], timeout=10).content).hexdigest() == bulk["hash"]


def test_package_search_korean_and_english_with_paging(ckan: dict[str, Any]) -> None:
    ck = ckan["ck"]
    ko = ck.action.package_search(q="대기질")
    en = ck.action.package_search(q="air")
    air = {"air-quality-station-hourly", "air-quality-district-hourly", "air-quality-station-daily",
           "air-quality-district-daily"}
    for found in (ko, en):
        names = [p["name"] for p in found["results"]]
        assert air <= set(names) and found["count"] == len(names) < 20
        assert "weather-station-hourly" not in names and "parking-lot-hourly" not in names
    everything = ck.action.package_search(rows=1000)
    assert everything["count"] == 20 and len(everything["results"]) == 20
    assert len(ck.action.package_search()["results"]) == 10        # CKAN's default rows
    n = en["count"]
    assert n > 3
    pages = [ck.action.package_search(q="air", rows=3, start=s) for s in range(0, n, 3)]
    assert [len(p["results"]) for p in pages] == [min(3, n - s) for s in range(0, n, 3)]
    assert all(p["count"] == n for p in pages)
    assert [p["name"] for page in pages for p in page["results"]] == [p["name"] for p in en["results"]]
    assert ck.action.package_search(q="no such thing anywhere")["count"] == 0


def test_get_requests_work_too(ckan: dict[str, Any]) -> None:
    r = requests.get(f"{ckan['base']}/api/3/action/package_show", params={"id": AQ}, timeout=10)
    doc = r.json()
    assert r.status_code == 200 and doc["success"] is True and doc["result"]["name"] == AQ
    assert doc["help"].endswith("/api/3/action/help_show?name=package_show")
    getter = ckanapi.RemoteCKAN(ckan["base"], get_only=True)
    assert len(getter.action.package_search(q="air", rows=2)["results"]) == 2
    status = getter.action.status_show()
    assert status["ckan_version"] == "2.10-compatible subset" and status["site_title"]


# ---- datastore ------------------------------------------------------------------------------------

def test_datastore_search_filters_sort_and_paging(ckan: dict[str, Any]) -> None:
    ck = ckan["ck"]
    rid = _datastore_id(ck, AQ)
    _, table = _bulk(ckan["public"], AQ)
    device = sorted(set(table["device_id"].to_pylist()))[0]
    mine = table.filter(pc.equal(table["device_id"], device)).sort_by([("period_start", "descending")])
    expected = as_text_values(mine).to_pylist()

    first = ck.action.datastore_search(resource_id=rid, filters={"device_id": device},
                                       sort="period_start desc", limit=5)
    assert first["total"] == mine.num_rows and first["limit"] == 5 and first["offset"] == 0
    assert first["records"] == expected[:5]
    assert first["resource_id"] == rid
    assert {"id": "period_start", "type": "timestamp"} in first["fields"]
    assert [f["id"] for f in first["fields"]] == list(first["records"][0])
    second = ck.action.datastore_search(resource_id=rid, filters={"device_id": device},
                                        sort="period_start desc", limit=5, offset=5)
    assert second["records"] == expected[5:10]
    assert "offset=5" in first["_links"]["next"] and first["_links"]["start"].startswith("/api/")

    # a list of values; the dataset id is accepted as a resource id
    two = sorted(set(table["device_id"].to_pylist()))[:2]
    both = ck.action.datastore_search(resource_id=AQ, filters={"device_id": two}, limit=0)
    assert both["records"] == [] and both["total"] == table.filter(pc.is_in(table["device_id"], pa.array(two))).num_rows
    everything = ck.action.datastore_search(resource_id=rid, limit=32000)
    assert everything["total"] == table.num_rows == len(everything["records"])


def test_datastore_search_fields_and_typed_filters(ckan: dict[str, Any]) -> None:
    ck = ckan["ck"]
    _, table = _bulk(ckan["public"], AQ)
    grade = next(g for g in table["cai_grade"].to_pylist() if g is not None)
    got = ck.action.datastore_search(resource_id=AQ, filters={"cai_grade": grade}, fields=["device_id", "cai_grade"],
                                     sort="device_id asc", limit=32000)
    assert got["total"] == table.filter(pc.equal(table["cai_grade"], grade)).num_rows
    assert all(set(r) == {"device_id", "cai_grade"} and r["cai_grade"] == grade for r in got["records"])
    assert [r["device_id"] for r in got["records"]] == sorted(r["device_id"] for r in got["records"])


def test_errors_are_ckan_errors(ckan: dict[str, Any]) -> None:
    ck = ckan["ck"]
    with pytest.raises(ckanapi.NotFound):
        ck.action.package_show(id="no-such-dataset")
    with pytest.raises(ckanapi.NotFound):
        ck.action.datastore_search(resource_id="no-such-resource")
    with pytest.raises(ckanapi.ValidationError) as bad:
        ck.action.datastore_search(resource_id=AQ, filters={"no_such_column": 1})
    assert "no_such_column" in json.dumps(bad.value.error_dict)
    with pytest.raises(ckanapi.ValidationError):
        ck.action.datastore_search(resource_id=AQ, sort="pm25 sideways")
    with pytest.raises(ckanapi.ValidationError):
        ck.action.datastore_search(resource_id=AQ, filters={"pm25": "not a number"})
    with pytest.raises(ckanapi.ValidationError):
        ck.action.package_show()
    with pytest.raises(ckanapi.ValidationError):
        ck.action.package_search(rows="many")
    r = requests.post(f"{ckan['base']}/api/3/action/package_show", json={"id": "nope"}, timeout=10)
    assert r.status_code == 404 and r.json()["success"] is False
    assert r.json()["error"]["__type"] == "Not Found Error"
    r = requests.post(f"{ckan['base']}/api/3/action/datastore_search", json={"resource_id": AQ, "filters": {"x": 1}},
                      timeout=10)
    assert r.status_code == 409 and r.json()["error"]["__type"] == "Validation Error"
    r = requests.get(f"{ckan['base']}/api/3/action/no_such_action", timeout=10)
    assert r.status_code == 400 and r.json()["success"] is False
