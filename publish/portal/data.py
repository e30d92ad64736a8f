"""What the portal's pages show, read from the live release's published files (never from the
private lake): the latest air quality per station and district, preview rows, alerts."""
from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from typing import Any

from etl.storage import Store
from etl.timeutil import KST
from publish.api import duck
from publish.catalog import Dataset

AIR_STATIONS = "air-quality-station-hourly"
AIR_DISTRICTS = "air-quality-district-hourly"
REGISTRY = "device-registry"
PREVIEW_ROWS = 10


def bulk_parquet(manifest: dict[str, Any], dataset_id: str) -> str | None:
    entry = manifest["datasets"].get(dataset_id)
    if entry is None:
        return None
    return next((f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] is None), None)


def kst(value: datetime | None) -> str:
    return value.astimezone(KST).strftime("%Y-%m-%d %H:%M") if value else ""


def _newest(store: Store, key: str, entity: str) -> tuple[str, list[Any]]:
    """The newest hour per ``entity`` with a measured PM value or a CAI (rolling averages alone
    carry on past the last measurement, so they do not count)."""
    return (f"SELECT * FROM read_parquet(?) QUALIFY row_number() OVER (PARTITION BY {entity} ORDER BY "
            f"(pm10 IS NOT NULL OR pm25 IS NOT NULL OR cai IS NOT NULL) DESC, period_start DESC) = 1",
            [duck.source(store, key)])


def stations_now(store: Store, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per air-quality station: names, place and its newest hour with a value (PM, CAI, grade)."""
    key, registry = bulk_parquet(manifest, AIR_STATIONS), bulk_parquet(manifest, REGISTRY)
    if key is None or registry is None:
        return []
    sql, params = _newest(store, key, "device_id")
    table = duck.query(store, f"""
        SELECT r.device_id, r.name_ko, r.name_en, r.district_ko, r.district_en, r.lat, r.lon, r.kind,
               a.period_start, a.pm10, a.pm25, a.cai, a.cai_grade, a.cai_grade_ko, a.cai_grade_en
        FROM ({sql}) a JOIN read_parquet(?) r USING (device_id)
        ORDER BY r.district_code, r.device_id""", params + [duck.source(store, registry)])
    return [{**row, "time": kst(row.pop("period_start"))} for row in table.to_pylist()]


def districts_now(store: Store, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    key = bulk_parquet(manifest, AIR_DISTRICTS)
    if key is None:
        return []
    sql, params = _newest(store, key, "district_code")
    table = duck.query(store, f"SELECT * FROM ({sql}) ORDER BY district_code", params)
    return [{**row, "time": kst(row["period_start"])} for row in table.to_pylist()]


def preview(store: Store, key: str, n: int = PREVIEW_ROWS) -> tuple[list[str], list[list[str]]]:
    """The first ``n`` rows of a published file as display strings (times in KST)."""
    table = duck.query(store, "SELECT * FROM read_parquet(?) LIMIT ?", [duck.source(store, key), n])
    return table.column_names, [[_cell(v) for v in row.values()] for row in table.to_pylist()]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return kst(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def series_columns(ds: Dataset, types: dict[str, str]) -> tuple[str | None, list[str]]:
    """The entity column and the numeric measured columns a chart can plot, if the dataset is
    a time series (has ``period_start``)."""
    if "period_start" not in types:
        return None, []
    entity = next((k for k in ("device_id", "district_code", "lot_id") if k in ds.primary_key), None)
    numeric = ("DOUBLE", "FLOAT", "INTEGER", "BIGINT")
    metrics = [c.name for c in ds.columns if c.name in types and c.unit and types[c.name].startswith(numeric)]
    return entity, metrics


def alerts(store: Store, lang: str, base_url: str, n: int = 5) -> list[dict[str, Any]]:
    """The newest citizen alerts (not release notices) from the published JSON Feed; links into
    the public tree become paths relative to it (``path``), others stay as they are (``url``)."""
    path = f"feeds/alerts.{lang}.json"
    if not store.exists(path):
        return []
    items = [i for i in json.loads(store.get(path))["items"] if "release" not in i.get("tags", [])][:n]
    base = base_url.rstrip("/") + "/"
    out = []
    for item in items:
        path = item["url"][len(base):] if item.get("url", "").startswith(base) else None
        page = None
        if path and path.startswith("datasets/") and path.count("/") == 2 and path.endswith("/"):
            page, path = f"datasets/{path.split('/')[1]}.html", None     # the dataset's portal page
        out.append({**item, "path": path, "page": page})
    return out


def districts_geojson() -> dict[str, Any]:
    """Goyang's three districts (KOSTAT 2013, simplified), for map outlines that need no tiles."""
    text = resources.files("etl.registry").joinpath("data/goyang_municipalities_geo_simple.json").read_text("utf-8")
    return json.loads(text)

