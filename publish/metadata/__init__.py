"""Metadata of a published dataset version: datapackage.json, the DCAT-AP catalogue, the data dictionary.

Each format is a pure function of the catalogue entry, the version's Arrow schema and its
manifest (``datasets/<id>/<version>/manifest.json``, written by the release; file paths in it are
relative to that version directory). The release writes what they return next to the files:
:data:`DATAPACKAGE` and :data:`DICTIONARY` in the version directory, the catalogue once per release.

This module holds what the formats share: URLs, file selection, Arrow → Table Schema types and the
privacy wording, so that datapackage.json, DCAT and the HTML page never disagree.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from publish.catalog import Dataset

DATAPACKAGE = "datapackage.json"    # in the version directory, beside the files it describes
DICTIONARY = "dictionary.html"      # the data-dictionary page, also the DCAT landing page
MANIFEST = "manifest.json"          # written by the release; the input of every format here
TABULAR_FORMATS = ("csv", "parquet")   # the formats that are Data Package resources
# A month is provisional until the catalogue's settle_days after its end, then validated (ko, en).
PERIOD_STATUS = {
    "provisional": ("잠정: 확정 전까지 값이 바뀔 수 있음", "provisional: values may change until final"),
    "validated": ("확정", "validated (final)"),
}
FORMAT_LABELS = {"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON Lines", "geojson": "GeoJSON"}
FREQUENCY_LABELS = {"hourly": ("매시간", "hourly"), "daily": ("매일", "daily")}


def version_url(base_url: str, dataset_id: str, version: str) -> str:
    """The public URL of a dataset version directory (no trailing slash)."""
    return f"{base_url.rstrip('/')}/datasets/{dataset_id}/{version}"


def file_url(base_url: str, manifest: dict[str, Any], path: str) -> str:
    return f"{version_url(base_url, manifest['dataset'], manifest['version'])}/{path}"


def dataset_iri(base_url: str, dataset_id: str) -> str:
    """The version-independent IRI of a dataset (DCAT); versions live below it."""
    return f"{base_url.rstrip('/')}/datasets/{dataset_id}"


def all_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The files that hold every period (``period`` null)."""
    return [f for f in manifest["files"] if f.get("period") is None]


def period_files(manifest: dict[str, Any], period: str) -> list[dict[str, Any]]:
    return [f for f in manifest["files"] if f.get("period") == period]


def table_schema_type(arrow_type: pa.DataType) -> str:
    """The Table Schema field type of an Arrow type ("any" when there is no better one)."""
    checks = (
        (pat.is_boolean, "boolean"), (pat.is_integer, "integer"), (pat.is_floating, "number"),
        (pat.is_decimal, "number"), (pat.is_string, "string"), (pat.is_large_string, "string"),
        (pat.is_date, "date"), (pat.is_timestamp, "datetime"), (pat.is_time, "time"),
        (pat.is_list, "array"), (pat.is_large_list, "array"), (pat.is_struct, "object"),
    )
    return next((name for check, name in checks if check(arrow_type)), "any")


def format_label(fmt: str) -> str:
    return FORMAT_LABELS.get(fmt, fmt.upper())


def status_text(status: str) -> tuple[str, str]:
    return PERIOD_STATUS.get(status, (status, status))


def privacy_note(ds: Dataset) -> tuple[str, str] | None:
    """Why some rows or columns of the dataset appear late and some counts are blank (ko, en)."""
    if not ds.embargo_until:
        return None
    if ds.embargo_columns:
        cols = ", ".join(ds.embargo_columns)
        return (f"개인정보 보호: {cols} 열은 일정 기간이 지난 뒤에 공개하며, 소수 인원 값은 비공개(빈 값)입니다.",
                f"Privacy: the columns {cols} are published after a delay, and small counts are "
                f"suppressed (left empty).")
    return ("개인정보 보호: 행은 일정 기간이 지난 뒤에 공개하는 집계이며, 소수 인원 값은 비공개(빈 값)입니다.",
            "Privacy: rows are aggregates published after a delay, and small counts are suppressed "
            "(left empty).")
