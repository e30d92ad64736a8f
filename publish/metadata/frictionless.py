"""datapackage.json of a dataset version: a Frictionless Data Package v2 over its CSV and Parquet files.

Korean text goes in ``*_ko`` custom properties beside the English standard ones (v2 allows custom
properties anywhere). JSON Lines and GeoJSON files are not resources: the manifest and DCAT list them.

What frictionless 5.21 (on pandas 3) can check shapes the resources:

* Parquet resources carry ``hash`` but no ``bytes``. Frictionless reads Parquet through pyarrow, not
  its byte stream, so it never measures a Parquet file and reports any declared ``bytes`` as wrong;
  a ``hash`` it cannot compute is skipped. CSV resources carry both and both are checked.
* Every resource carries ``rows`` (a frictionless property, custom in v2): frictionless counts the
  rows of CSV and Parquet alike, the one check that reaches into a Parquet file's content.
* Frictionless reads Parquet rows through pandas, which turns a null integer into NaN, so a correct
  Parquet file with a null in an integer column fails a declared integer type. The Parquet
  resources' schema therefore declares integer columns as number (the files themselves keep
  their integer types); the CSV resources (the same rows) carry the exact schema and are checked
  cell by cell. ``frictionless validate datapackage.json`` then passes as published.

A licence gets ``name`` only when it has an Open Definition id (v2 requires one there); the KOGL
types have none, so they are given by ``path`` and ``title``.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from publish import licences
from publish.catalog import Catalogue, Dataset
from publish.metadata import DICTIONARY, TABULAR_FORMATS, format_label, table_schema_type, version_url

PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
OPEN_DEFINITION_IDS = frozenset({"CC-BY-4.0"})
CSV_ENCODING = "utf-8-sig"   # the release writes CSV with a BOM (Excel opens Korean text correctly)


def datapackage(ds: Dataset, schema: pa.Schema, manifest: dict[str, Any], catalogue: Catalogue,
                base_url: str) -> dict[str, Any]:
    """The descriptor for ``datasets/<id>/<version>/datapackage.json`` (paths relative to it)."""
    table_schema = _table_schema(ds, schema)
    files = [f for f in manifest["files"] if f["format"] in TABULAR_FORMATS]
    files.sort(key=lambda f: (f.get("period") is not None, f.get("period") or "", f["format"]))
    return {
        "$schema": PROFILE,
        "name": ds.id,
        "title": ds.title_en,
        "title_ko": ds.title_ko,
        "description": ds.description_en,
        "description_ko": ds.description_ko,
        "version": manifest["version"],
        **({"release": manifest["release"]} if manifest.get("release") else {}),
        "created": manifest["issued"],
        "homepage": f"{version_url(base_url, ds.id, manifest['version'])}/{DICTIONARY}",
        "keywords": list(ds.keywords_en),
        "keywords_ko": list(ds.keywords_ko),
        "licenses": [_licence(manifest["licence"])],
        "contributors": _contributors(catalogue),
        "sources": [{"title": sid, "licenses": [_licence(lic)]} for sid, lic in sorted(manifest["sources"].items())],
        **({"temporal": manifest["temporal"]} if manifest.get("temporal") else {}),
        "periods": manifest.get("periods") or [],
        "resources": [_resource(ds, f, table_schema) for f in files],
    }


def resource_name(dataset_id: str, file: dict[str, Any]) -> str:
    """``<id>-<period>-<format>`` (``all`` for the files of every period): unique and lowercase."""
    return f"{dataset_id}-{file.get('period') or 'all'}-{file['format']}".lower()


def _resource(ds: Dataset, file: dict[str, Any], table_schema: dict[str, Any]) -> dict[str, Any]:
    fmt = file["format"]
    period = file.get("period")
    resource: dict[str, Any] = {
        "name": resource_name(ds.id, file),
        "type": "table",
        "path": file["path"],
        "title": f"{ds.title_en}, {period or 'all periods'} ({format_label(fmt)})",
        "title_ko": f"{ds.title_ko}, {period or '전체 기간'} ({format_label(fmt)})",
        "format": fmt,
        "mediatype": file["media_type"],
    }
    if fmt == "csv":
        resource["encoding"] = CSV_ENCODING
        resource["bytes"] = file["bytes"]
    resource["hash"] = f"sha256:{file['sha256']}"
    resource["rows"] = file["rows"]
    if period:
        resource["period"] = period
    resource["schema"] = table_schema if fmt == "csv" else _as_read_from_parquet(table_schema)
    return resource


def _as_read_from_parquet(table_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of a Parquet resource as frictionless reads it (through pandas): integer
    columns may hold NaN for null, so they are declared number there (see the module docstring)."""
    fields = [{**f, "type": "number"} if f["type"] == "integer" else f for f in table_schema["fields"]]
    return {**table_schema, "fields": fields}


def _table_schema(ds: Dataset, schema: pa.Schema) -> dict[str, Any]:
    described = {c.name: c for c in ds.columns}
    fields = []
    for arrow_field in schema:
        field: dict[str, Any] = {"name": arrow_field.name, "type": table_schema_type(arrow_field.type)}
        column = described.get(arrow_field.name)
        if column is not None:
            extra = {"description": column.description_en, "description_ko": column.description_ko,
                     "unit": column.unit}
            field.update({k: v for k, v in extra.items() if v})
        fields.append(field)
    return {"fields": fields, "missingValues": [""], "primaryKey": list(ds.primary_key)}


def _licence(licence_id: str) -> dict[str, str]:
    lic = licences.licence(licence_id)
    entry = {"name": lic.id} if lic.id in OPEN_DEFINITION_IDS else {}
    if lic.url:
        entry["path"] = lic.url
    return {**entry, "title": lic.name_en, "title_ko": lic.name_ko}


def _contributors(catalogue: Catalogue) -> list[dict[str, Any]]:
    publisher, contact = catalogue.publisher, catalogue.contact
    return [
        {"title": publisher["name_en"], "title_ko": publisher["name_ko"], "path": publisher["url"],
         "roles": ["publisher", "rightsHolder"]},
        {"title": contact["name_en"], "title_ko": contact["name_ko"], "email": contact["email"],
         "organization": publisher["name_en"], "roles": ["contact"]},
    ]
