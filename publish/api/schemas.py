"""The shapes of the API's answers, for its OpenAPI document.

The routes build their bodies by hand and return ``Response`` objects (the bytes carry an
ETag), so these models never serialise anything: they document what the routes send and let
schemathesis check it (``tests/unit/test_api_schemathesis.py``). ``extra="forbid"`` makes a
field the code adds but the model lacks a test failure, not silent drift.
"""
from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from publish import formats


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- /v1 -----------------------------------------------------------------------------------------

class Error(_Doc):
    """Every 4xx/5xx of the API (:mod:`publish.api.errors`, and the rate limit's 429)."""
    error: str = Field(description="short, stable text: 'unknown dataset', 'invalid request', ...")
    detail: str | list[str] | None = Field(description="what was wrong; one line per invalid parameter for 400")


class DatasetLinks(_Doc):
    self: str
    rows: str = Field(description="the rows endpoint")
    files: str = Field(description="the folder of the live version's files")


class DatasetSummary(_Doc):
    id: str
    title_ko: str
    title_en: str
    licence: str = Field(description="licence id, e.g. KOGL-1")
    rows: int
    version: str = Field(description="content-addressed version of the dataset")
    links: DatasetLinks


class DatasetList(_Doc):
    release: str
    datasets: list[DatasetSummary]


class ColumnDoc(_Doc):
    name: str
    type: str = Field(description="DuckDB type in the published Parquet file")
    unit: str | None
    description_ko: str
    description_en: str


class Temporal(_Doc):
    start: str = Field(description="first KST date")
    end: str = Field(description="last KST date")


class PeriodDoc(_Doc):
    period: str = Field(description="month, YYYY-MM")
    status: str | None = Field(description="provisional or final")
    rows: int
    first_date: str
    last_date: str


class FileDoc(_Doc):
    path: str
    format: str
    media_type: str
    period: str | None = Field(description="the month, or null for the whole-dataset file")
    rows: int
    bytes: int
    sha256: str
    url: str


class DatasetDetail(DatasetSummary):
    release: str
    description_ko: str
    description_en: str
    primary_key: list[str]
    sort: list[str]
    frequency: str
    columns: list[ColumnDoc]
    temporal: Temporal | None = Field(description="null for a dataset without dates")
    periods: list[PeriodDoc]
    sources: dict[str, str] | None = Field(description="source id -> its licence")
    files: list[FileDoc]
    metadata: dict[str, str] = Field(description="manifest.json, datapackage.json and dictionary.html -> URL")


Row = dict[str, Any]


class RowsPage(_Doc):
    dataset: str
    count: int
    rows: list[Row] = Field(description="the rows, values as in the published CSV (ISO UTC timestamps)")
    next: str | None = Field(description="URL of the next page, also in the Link header; null on the last")


class SeriesRow(BaseModel):
    """One bucket; also the entity column (``device_id``, ``district_code``, ...) where the dataset has one."""
    model_config = ConfigDict(extra="allow")
    bucket_start: str = Field(description="start of the bucket, KST ISO datetime")
    value: float | None = Field(description="the aggregate; null when the bucket has no value")
    n: int = Field(description="number of values in the bucket")


class Series(_Doc):
    dataset: str
    release: str
    metric: str
    bucket: Literal["hour", "day", "week", "month"]
    agg: Literal["avg", "min", "max", "sum"]
    time_zone: Literal["Asia/Seoul"]
    count: int
    rows: list[SeriesRow]


class Latest(_Doc):
    dataset: str
    release: str
    count: int
    rows: list[Row]


class Feature(_Doc):
    type: Literal["Feature"]
    geometry: dict[str, Any] | None
    properties: Row


class FeatureCollection(_Doc):
    type: Literal["FeatureCollection"]
    features: list[Feature]


# ---- compatibility layers ------------------------------------------------------------------------

class CkanSuccess(_Doc):
    help: str
    success: Literal[True]
    result: Any = Field(description="the action's result, in CKAN 2.10's shape")


class CkanErrorDetail(BaseModel):
    """``__type`` and ``message``, and for a Validation Error the messages per field."""
    model_config = ConfigDict(extra="allow")
    type: str = Field(alias="__type", description="Not Found Error, Validation Error, Bad Request, ...")
    message: str


class CkanFailure(_Doc):
    help: str
    success: Literal[False]
    error: CkanErrorDetail


class DataGoKrHeader(_Doc):
    resultCode: str = Field(description="00 normal, 10 invalid request parameter")
    resultMsg: str


class DataGoKrBody(_Doc):
    totalCount: int
    items: list[dict[str, str | None]] = Field(description="AirKorea items: every value a string, null when absent")
    pageNo: int
    numOfRows: int


class DataGoKrInner(_Doc):
    header: DataGoKrHeader
    body: DataGoKrBody | None = Field(None, description="absent on an error")


class DataGoKrResponse(_Doc):
    response: DataGoKrInner


# ---- responses= of the routes --------------------------------------------------------------------

REF = "#/components/schemas/{model}"
ERRORS = {
    400: "invalid parameters, or a value that does not fit its column",
    404: "no such dataset or file",
    416: "the Range is malformed, several ranges or outside the file (Content-Range: bytes */size)",
    503: "nothing has been published yet",
}
NOT_MODIFIED = {304: {"description": "If-None-Match matched the ETag: no body"}}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "ETags of earlier answers (or *): 304 while one of them is still current"}
RANGE = {"name": "Range", "in": "header", "required": False,
         "schema": {"type": "string", "pattern": r"^bytes=[0-9]*-[0-9]*$"},
         "description": "one range, bytes=first-last or bytes=-suffix: 206; one that selects nothing: 416"}
CONDITIONAL = {"parameters": [IF_NONE_MATCH]}
NEXT_LINK = {"Link": {"description": '<URL of the next page>; rel="next", unless this is the last page',
                      "required": False, "schema": {"type": "string"}}}
TEXT = {"schema": {"type": "string"}}
BINARY = {"schema": {"type": "string", "format": "binary"}}


def ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to a model that :func:`install` puts in the components (no route returns it
    as application/json, so FastAPI would not)."""
    return {"$ref": REF.format(model=model.__name__)}


def errors(*statuses: int, model: type[BaseModel] = Error) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": model, "description": ERRORS[s]} for s in statuses}


def json_ok(model: type[BaseModel], description: str, content: dict[str, Any] | None = None,
            headers: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """A 200 of ``model`` as application/json, and the media types of ``content`` (name -> media type object)."""
    return {200: {"model": model, "description": description, **({"content": content} if content else {}),
                  **({"headers": headers} if headers else {})}}


def file_media_types() -> list[str]:
    """What ``/files/`` answers: :func:`publish.formats.content_type` of every extension it names."""
    exts = ("json", "jsonld", "html", *formats.MEDIA_TYPES, "other")
    return sorted({formats.content_type(f"f.{ext}").split(";")[0] for ext in exts})


FILE_REQUEST = {"parameters": [IF_NONE_MATCH, RANGE]}
_ANY_FILE: dict[str, Any] = {t: {} for t in file_media_types()}       # bytes: no schema to check
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file (a HEAD: its headers); Content-Type by its extension", "content": _ANY_FILE},
    206: {"description": "the bytes of the Range, with Content-Range", "content": _ANY_FILE},
    **NOT_MODIFIED, **errors(404, 416),
}

_RATE_HEADERS = {
    "X-RateLimit-Limit": "requests allowed per window",
    "X-RateLimit-Remaining": "requests left in this window",
    "X-RateLimit-Reset": "seconds to the next window",
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "integer", "minimum": 0}}


def install(app: FastAPI) -> None:
    """Document what :class:`publish.api.limits.RateLimit` adds to every operation (its headers
    and the 429), add the models referenced with :func:`ref`, and drop FastAPI's 422: this API
    answers invalid parameters with 400."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = build()
            for item in doc["paths"].values():
                for operation in item.values():
                    responses = operation["responses"]
                    responses.pop("422", None)
                    responses["429"] = {
                        "description": "rate limit exceeded: retry after Retry-After seconds, or send an X-API-Key",
                        "content": {"application/json": {"schema": ref(Error)}},
                        "headers": {"Retry-After": _header("seconds to wait")}}
                    for response in responses.values():
                        response.setdefault("headers", {}).update(
                            {name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_HEADERS})
            doc["components"]["headers"] = {name: _header(text) for name, text in _RATE_HEADERS.items()}
            components = doc["components"]["schemas"]
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            _, defs = models_json_schema([(m, "serialization") for m in (Error, FeatureCollection)], ref_template=REF)
            for name, schema in defs.get("$defs", {}).items():
                components.setdefault(name, schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
