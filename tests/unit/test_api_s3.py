"""The API over a public side on S3 (the moto server on loopback): the same answers as over
local files, with files streamed by ranged GETs, not read whole."""
from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from fastapi.testclient import TestClient

from tests.lakes import released_lake

AQ = "air-quality-station-hourly"


@pytest.fixture(scope="module")
def local_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with released_lake(tmp_path_factory, "s3-api-lake", date(2026, 11, 29)) as (root, _):
        yield root / "public"


@pytest.fixture()
def apps(local_release: Path, s3_lake: str, moto_s3: str) -> dict[str, Any]:
    """The API over the local release and over a copy of it in the S3 bucket."""
    from etl.storage import Store, public
    from etl.settings import get_settings
    from publish.api.app import create_app

    bucket = s3_lake[len("s3://"):].split("/")[0]
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    for path in local_release.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"public/{path.relative_to(local_release).as_posix()}", Body=path.read_bytes())
    store = public()
    assert store.is_s3
    local = Store("file://" + str(local_release), get_settings())
    return {"s3": TestClient(create_app(store)), "local": TestClient(create_app(local)), "s3_client": s3,
            "bucket": bucket, "public": local_release}


def _bulk(public: Path) -> str:
    pointer = json.loads((public / "latest.json").read_text())
    manifest = json.loads((public / pointer["manifest"]).read_text())
    return next(f["path"] for f in manifest["datasets"][AQ]["files"] if f["format"] == "parquet" and f["period"] is None)


def test_files_on_s3_are_served_by_ranged_gets(apps: dict[str, Any]) -> None:
    key = _bulk(apps["public"])
    data = (apps["public"] / key).read_bytes()
    client = apps["s3"]
    whole = client.get(f"/files/{key}")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    part = client.get(f"/{key}", headers={"Range": "bytes=-8"})      # the footer, as a Parquet reader asks
    assert part.status_code == 206 and part.content == data[-8:]
    assert part.headers["content-range"] == f"bytes {len(data) - 8}-{len(data) - 1}/{len(data)}"
    head = client.head(f"/files/{key}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
    assert client.get(f"/files/{key}", headers={"If-None-Match": whole.headers["etag"]}).status_code == 304
    assert client.get("/files/datasets/nope.parquet").status_code == 404


def test_queries_and_portal_over_s3_match_local(apps: dict[str, Any]) -> None:
    for path in ("/v1/latest", f"/v1/datasets/{AQ}/rows?limit=50", "/v1/datasets"):
        s3, local = apps["s3"].get(path), apps["local"].get(path)
        assert s3.status_code == local.status_code == 200 and s3.json() == local.json()
    page = apps["s3"].get("/portal/index.html")
    assert page.status_code == 200 and page.content == (apps["public"] / "portal/index.html").read_bytes()
    # a mutable file (the portal page) gets a new ETag when its bytes change
    etag = page.headers["etag"]
    apps["s3_client"].put_object(Bucket=apps["bucket"], Key="public/portal/index.html", Body=b"<html>new</html>")
    again = apps["s3"].get("/portal/index.html", headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.content == b"<html>new</html>"
