"""A CKAN Action API subset (2.10 shapes) over the live release, for CKAN clients (ckanapi,
harvesters, portals) that expect ``/api/3/action/<name>``.

Actions: ``package_list``, ``package_show``, ``package_search`` (``q`` substring, ``rows``,
``start``), ``datastore_search`` (``filters``, ``sort``, ``fields``, ``limit``, ``offset``) on the
whole-dataset Parquet file, ``organization_list``, ``license_list`` and ``status_show``. Each
answers GET (query parameters) and POST (a JSON body, as ckanapi sends) inside CKAN's envelope
``{"help", "success", "result"}``; errors are ``{"success": false, "error": {"__type", "message"}}``
with CKAN's statuses (404 Not Found Error, 409 Validation Error, 400 Bad Request).

Datastore queries go through DuckDB with bound parameters; column names come only from the
catalogue columns that are in the file's schema (:func:`publish.api.query.allowed_columns`).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from etl.storage import Store
from publish import licences
from publish.api import duck, rows, schemas
from publish.api.errors import ApiError
from publish.api.live import LiveRelease, Release
from publish.api.query import allowed_columns, quote
from publish.catalog import Dataset, load_catalogue

CKAN_VERSION = "2.10-compatible subset"
ORGANIZATION = "goyang"
SEARCH_ROWS, SEARCH_MAX_ROWS = 10, 1000
DATASTORE_LIMIT, DATASTORE_MAX_LIMIT = 100, 32000
MAX_INT = 2**63 - 1                 # DuckDB's BIGINT: a larger offset is no row, and no query
MAX_FILTER_VALUES = 1000            # each value is type-checked: 20,000 of them cost one request ~30 s of CPU
FORMATS = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSONL", "geojson": "GeoJSON"}
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://data.goyang.example.kr/ckan/resource")


class CkanError(Exception):
    """An error in CKAN's terms: its ``__type``, HTTP status, message and per-field messages."""

    def __init__(self, type_: str, status: int, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.type, self.status, self.message, self.fields = type_, status, message, fields or {}


def not_found(message: str) -> CkanError:
    return CkanError("Not Found Error", 404, message)


def invalid(field: str, message: str) -> CkanError:
    return CkanError("Validation Error", 409, f"{field}: {message}", {field: [message]})


def resource_id(path: str) -> str:
    """A resource's id: a UUID derived from its published path (version paths are immutable)."""
    return str(uuid.uuid5(_NAMESPACE, path))


def _ckan_time(text: str | None) -> str | None:
    """CKAN's timestamps: naive UTC ISO with microseconds."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if dt.tzinfo:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds")


def _int(data: dict[str, Any], name: str, default: int, lo: int = 0, hi: int | None = None) -> int:
    value = data.get(name)
    if value is None or value == "":
        return default
    try:
        n = int(value)
        if isinstance(value, float) and n != value:
            raise ValueError
    except (TypeError, ValueError, OverflowError):     # OverflowError: a JSON 1e999
        raise invalid(name, "Invalid integer")
    if n < lo:
        raise invalid(name, f"Must be a natural number (>= {lo})")
    if hi is not None:
        return min(n, hi)
    if n > MAX_INT:
        raise invalid(name, f"Must be at most {MAX_INT}")
    return n


def _text(data: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise invalid(name, "Missing value")
        return None
    if not isinstance(value, str):
        raise invalid(name, "Must be a string")
    return value


# ---- packages ------------------------------------------------------------------------------------

def _dataset(release: Release, dataset_id: str) -> tuple[Dataset, dict[str, Any]]:
    entry = release.manifest["datasets"].get(dataset_id)
    ds = load_catalogue().datasets.get(dataset_id)
    if entry is None or ds is None:
        raise not_found(f"Dataset {dataset_id!r} was not found")
    return ds, entry


def _resources(base: str, release: Release, ds: Dataset, entry: dict[str, Any]) -> list[dict[str, Any]]:
    bulk = release.bulk_parquet(ds.id)
    out = []
    for i, f in enumerate(entry["files"]):
        fmt = FORMATS.get(f["format"], f["format"].upper())
        period = f.get("period")
        out.append({
            "id": resource_id(f["path"]), "package_id": ds.id, "position": i, "state": "active",
            "name": f"{ds.title_en} ({period or 'all periods'}, {fmt})",
            "name_ko": f"{ds.title_ko} ({period or '전체 기간'}, {fmt})",
            "description": f"{ds.description_en}" if period is None else f"{ds.title_en}, {period}",
            "url": f"{base}/files/{f['path']}", "url_type": None, "format": fmt,
            "mimetype": f.get("media_type"), "size": f.get("bytes"), "hash": f"sha256:{f['sha256']}",
            "period": period, "rows": f.get("rows"),
            "created": _ckan_time(release.manifest.get("issued")),
            "last_modified": _ckan_time(release.manifest.get("issued")),
            "datastore_active": f["path"] == bulk,
        })
    return out


def package(base: str, release: Release, dataset_id: str) -> dict[str, Any]:
    ds, entry = _dataset(release, dataset_id)
    cat = load_catalogue()
    lic = licences.LICENCES.get(entry.get("licence") or ds.licence)
    resources = _resources(base, release, ds, entry)
    tags = list(dict.fromkeys((*ds.keywords_en, *ds.keywords_ko)))
    extras = {"title_ko": ds.title_ko, "notes_ko": ds.description_ko, "frequency": ds.frequency,
              "release": release.id, "rows": str(entry["rows"]), "primary_key": ",".join(ds.primary_key),
              "spatial_name": cat.spatial.get("name_en", ""), "license_title_ko": lic.name_ko if lic else ""}
    modified = _ckan_time(release.manifest.get("issued"))
    return {
        "id": ds.id, "name": ds.id, "type": "dataset", "state": "active", "private": False,
        "title": ds.title_en, "title_ko": ds.title_ko, "notes": ds.description_en, "notes_ko": ds.description_ko,
        "license_id": lic.id if lic else entry.get("licence"), "license_title": lic.name_en if lic else None,
        "license_url": lic.url if lic else None, "isopen": bool(lic and lic.id != "none"),
        "version": entry["version"], "metadata_created": modified, "metadata_modified": modified,
        "author": cat.publisher.get("name_en"), "maintainer": cat.contact.get("name_en"),
        "maintainer_email": cat.contact.get("email"), "url": f"{cat.homepage}/datasets/{ds.id}",
        "organization": {"id": ORGANIZATION, "name": ORGANIZATION, "title": cat.publisher.get("name_en"),
                         "title_ko": cat.publisher.get("name_ko"), "type": "organization",
                         "is_organization": True, "state": "active"},
        "owner_org": ORGANIZATION,
        "tags": [{"name": t, "display_name": t, "state": "active"} for t in tags], "num_tags": len(tags),
        "extras": [{"key": k, "value": v} for k, v in extras.items()],
        "groups": [], "relationships_as_object": [], "relationships_as_subject": [],
        "num_resources": len(resources), "resources": resources,
    }


def _matches(ds: Dataset, terms: list[str]) -> bool:
    text = " ".join((ds.id, ds.title_ko, ds.title_en, ds.description_ko, ds.description_en,
                     *ds.keywords_ko, *ds.keywords_en)).casefold()
    return all(t in text for t in terms)


def package_search(base: str, release: Release, data: dict[str, Any]) -> dict[str, Any]:
    q = _text(data, "q") or ""
    rows_n = _int(data, "rows", SEARCH_ROWS, 0, SEARCH_MAX_ROWS)
    start = _int(data, "start", 0)
    if data.get("fq") not in (None, ""):
        raise invalid("fq", "filter queries are not supported; use q")
    terms = [] if q.strip() in ("", "*:*") else q.casefold().split()
    cat = load_catalogue().datasets
    hits = [d for d in sorted(release.manifest["datasets"]) if d in cat and _matches(cat[d], terms)]
    return {"count": len(hits), "sort": "name asc", "facets": {}, "search_facets": {},
            "results": [package(base, release, d) for d in hits[start:start + rows_n]]}


# ---- datastore -----------------------------------------------------------------------------------

def _field_type(duck_type: str) -> str:
    t = duck_type.upper()
    if t.startswith(("TIMESTAMP",)):
        return "timestamp"
    if t == "DATE":
        return "date"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"):
        return "int"
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return "float8"
    if t.startswith("DECIMAL"):
        return "numeric"
    if t == "BOOLEAN":
        return "bool"
    return "text"


def _datastore_resource(release: Release, rid: str) -> tuple[Dataset, str]:
    """The dataset and bulk Parquet key behind a datastore resource id (or a dataset id)."""
    cat = load_catalogue().datasets
    for did in release.manifest["datasets"]:
        if did not in cat:
            continue
        key = release.bulk_parquet(did)
        if rid in (did, resource_id(key)):
            return cat[did], key
    raise not_found(f'Resource "{rid}" was not found.')


def _filters(data: dict[str, Any], allowed: list[str], types: dict[str, str]) -> tuple[list[str], list[Any]]:
    raw = data.get("filters")
    if raw in (None, ""):
        return [], []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):          # RecursionError: nested too deep
            raise invalid("filters", "Cannot parse JSON")
    if not isinstance(raw, dict):
        raise invalid("filters", "Not a JSON object")
    if sum(len(v) if isinstance(v, list) else 1 for v in raw.values()) > MAX_FILTER_VALUES:
        raise invalid("filters", f"at most {MAX_FILTER_VALUES} values in all")
    conds, params, checks = [], [], []
    for column, value in raw.items():
        if column not in allowed:
            raise invalid("filters", f'field "{column}" not in resource; fields: {", ".join(allowed)}')
        values = value if isinstance(value, list) else [value]
        if not values:
            raise invalid("filters", f'field "{column}": empty list')
        if any(isinstance(v, (dict, list)) for v in values):
            raise invalid("filters", f'field "{column}": values must be scalars')
        parts = []
        if any(v is None for v in values):
            parts.append(f"{quote(column)} IS NULL")
        given = [v for v in values if v is not None]
        if given:
            parts.append(f"{quote(column)} IN ({', '.join(f'CAST(? AS {types[column]})' for _ in given)})")
            params.extend(str(v).lower() if isinstance(v, bool) else str(v) for v in given)
            checks.extend((column, types[column], str(v).lower() if isinstance(v, bool) else str(v)) for v in given)
        conds.append("(" + " OR ".join(parts) + ")")
    try:
        rows.check_values(checks)
    except ApiError as exc:
        raise invalid("filters", str(exc.detail))
    return conds, params


def _sort(data: dict[str, Any], ds: Dataset, allowed: list[str]) -> tuple[list[tuple[str, bool]], str | None]:
    raw = data.get("sort")
    if isinstance(raw, list):
        raw = ",".join(str(s) for s in raw)
    if raw is not None and not isinstance(raw, str):
        raise invalid("sort", "Must be a string")
    keys: list[tuple[str, bool]] = []
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        parts = item.split()
        name = parts[0].strip('"')
        direction = parts[1].lower() if len(parts) > 1 else "asc"
        if len(parts) > 2 or direction not in ("asc", "desc"):
            raise invalid("sort", f"{item.strip()!r} is not '<field> [asc|desc]'")
        if name not in allowed:
            raise invalid("sort", f'field "{name}" not in resource')
        if name not in (k for k, _ in keys):
            keys.append((name, direction == "desc"))
    given = raw if keys else None
    for name in (*ds.sort, *ds.primary_key):     # a total order, so offsets page consistently
        if name in allowed and name not in (k for k, _ in keys):
            keys.append((name, False))
    return keys, given


def _fields(data: dict[str, Any], allowed: list[str]) -> list[str]:
    raw = data.get("fields")
    if raw in (None, "", []):
        return list(allowed)
    names = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(names, list):
        raise invalid("fields", "Must be a list or a comma-separated string")
    out = []
    for name in (str(n).strip() for n in names):
        if name not in allowed:
            raise invalid("fields", f'field "{name}" not in resource')
        if name not in out:
            out.append(name)
    return out


def datastore_search(store: Store, release: Release, data: dict[str, Any], path: str) -> dict[str, Any]:
    rid = _text(data, "resource_id", required=True)
    assert rid is not None
    if data.get("q") not in (None, "", {}):
        raise invalid("q", "full-text search is not supported; use filters")
    if data.get("records_format", "objects") != "objects":
        raise invalid("records_format", "only 'objects' is supported")
    ds, key = _datastore_resource(release, rid)
    types = duck.schema(store, key)
    allowed = allowed_columns(ds, types)
    limit = _int(data, "limit", DATASTORE_LIMIT, 0, DATASTORE_MAX_LIMIT)
    offset = _int(data, "offset", 0)
    conds, params = _filters(data, allowed, types)
    keys, sort_given = _sort(data, ds, allowed)
    fields = _fields(data, allowed)
    source = duck.source(store, key)
    where = " WHERE " + " AND ".join(conds) if conds else ""
    order = " ORDER BY " + ", ".join(f"{quote(k)} {'DESC' if d else 'ASC'} NULLS LAST" for k, d in keys) if keys else ""
    select = ", ".join(quote(f) for f in fields)
    table = rows.run(store, f"SELECT {select} FROM read_parquet(?){where}{order} LIMIT ? OFFSET ?",
                     [source, *params, limit, offset])
    result: dict[str, Any] = {
        "resource_id": resource_id(key), "fields": [{"id": f, "type": _field_type(types[f])} for f in fields],
        "records": rows.json_rows(table), "limit": limit, "offset": offset,
    }
    if str(data.get("include_total", True)).lower() not in ("false", "0"):
        result["total"] = rows.run(store, f"SELECT count(*) AS n FROM read_parquet(?){where}",
                                   [source, *params])["n"][0].as_py()
        result["total_was_estimated"] = False
    if data.get("filters") not in (None, ""):
        result["filters"] = data["filters"] if isinstance(data["filters"], dict) else json.loads(data["filters"])
    if sort_given:
        result["sort"] = sort_given
    link = {"resource_id": rid}
    for name in ("filters", "sort", "fields"):
        value = data.get(name)
        if value in (None, "", []):
            continue
        if isinstance(value, str):
            link[name] = value
        elif name == "filters":
            link[name] = json.dumps(value, ensure_ascii=False)
        else:
            link[name] = ",".join(str(v) for v in value)
    if "limit" in data:
        link["limit"] = str(limit)
    result["_links"] = {"start": f"{path}?{urlencode(link)}",
                        "next": f"{path}?{urlencode({**link, 'offset': str(offset + limit)})}"}
    return result


# ---- the router ----------------------------------------------------------------------------------

def _status(base: str) -> dict[str, Any]:
    cat = load_catalogue()
    return {"site_title": "Goyang open data (citylake)", "site_title_ko": "고양특례시 공공데이터",
            "site_url": base, "site_description": f"Open data of {cat.publisher.get('name_en')}",
            "ckan_version": CKAN_VERSION, "locale_default": "ko", "error_emails_to": None,
            "extensions": ["datastore"], "homepage": cat.homepage}


def _licences() -> list[dict[str, Any]]:
    return [{"id": lic.id, "title": lic.name_en, "title_ko": lic.name_ko, "url": lic.url,
             "od_conformance": "approved" if lic.id in ("KOGL-1", "CC-BY-4.0") else "not reviewed",
             "status": "active"} for lic in licences.LICENCES.values() if lic.id != "none"]


async def _params(request: Request) -> dict[str, Any]:
    """GET: the query parameters (one value each, or a list when repeated); POST: a JSON object
    body, or a form."""
    data: dict[str, Any] = {}
    for k in request.query_params:
        values = request.query_params.getlist(k)
        data[k] = values[0] if len(values) == 1 else values
    if request.method == "POST":
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        if "form" in ctype:
            form = await request.form()
            data.update({k: v for k, v in form.items() if isinstance(v, str)})
        elif body.strip():
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError) as exc:   # RecursionError: nested too deep
                raise CkanError("Bad Request", 400, f"Bad request - JSON Error: {exc}")
            if not isinstance(doc, dict):
                raise CkanError("Bad Request", 400, "Bad request - JSON Error: not a JSON object")
            data.update(doc)
    return data


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.CkanSuccess, "description": "the action's result in CKAN's envelope"},
    400: {"model": schemas.CkanFailure, "description": "Bad Request: an unknown action, or a body that is not JSON"},
    404: {"model": schemas.CkanFailure, "description": "Not Found Error: no such dataset or resource"},
    409: {"model": schemas.CkanFailure, "description": "Validation Error: a parameter is missing or invalid"},
    503: {"model": schemas.CkanFailure, "description": "nothing has been published yet"},
}
_TEXTS = {"type": ["string", "array"], "items": {"type": "string"}}
# The parameters the actions read (each its own), as query parameters (GET) or a JSON body (POST).
PARAMETERS: dict[str, tuple[dict[str, Any], str]] = {
    "id": ({"type": "string"}, "package_show: the dataset name"),
    "q": ({"type": "string"}, "package_search: words that must all occur"),
    "rows": ({"type": "integer", "minimum": 0}, f"package_search: page size (at most {SEARCH_MAX_ROWS})"),
    "start": ({"type": "integer", "minimum": 0}, "package_search: offset"),
    "resource_id": ({"type": "string"}, "datastore_search: a resource id, or the dataset name"),
    "filters": ({"type": "object"}, "datastore_search: field -> value or list of values (GET: as JSON)"),
    "sort": (_TEXTS, "datastore_search: 'field [asc|desc]', comma-separated or a list"),
    "fields": (_TEXTS, "datastore_search: field names, comma-separated or a list"),
    "limit": ({"type": "integer", "minimum": 0}, f"datastore_search: page size (at most {DATASTORE_MAX_LIMIT})"),
    "offset": ({"type": "integer", "minimum": 0}, "datastore_search: offset"),
    "include_total": ({"type": "boolean"}, "datastore_search: count the matching records (default true)"),
}
QUERY = {"parameters": [{"name": name, "in": "query", "required": False, "description": text,
                         "schema": schema if schema["type"] in ("string", "integer", "boolean") else {"type": "string"}}
                        for name, (schema, text) in PARAMETERS.items()]}
BODY = {"requestBody": {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {name: {**schema, "description": text} for name, (schema, text) in PARAMETERS.items()}}}}}}


def router(live: LiveRelease, store: Store) -> APIRouter:
    api = APIRouter(tags=["CKAN compatibility"])

    actions: dict[str, Callable[[Request, str, dict[str, Any]], Any]] = {
        "package_list": lambda r, b, d: sorted(live.current().manifest["datasets"]),
        "package_show": lambda r, b, d: package(b, live.current(), _text(d, "id", required=True) or ""),
        "package_search": lambda r, b, d: package_search(b, live.current(), d),
        "datastore_search": lambda r, b, d: datastore_search(store, live.current(), d, r.url.path),
        "organization_list": lambda r, b, d: [ORGANIZATION],
        "license_list": lambda r, b, d: _licences(),
        "status_show": lambda r, b, d: _status(b),
    }

    action_name = Path(description="the action; another name answers 400", json_schema_extra={"enum": sorted(actions)})

    async def action(request: Request, name: str = action_name) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        help_url = f"{base}/api/3/action/help_show?name={name}"
        try:
            if name not in actions:
                raise CkanError("Bad Request", 400, f"Bad request - Action name not known: {name}")
            data = await _params(request)
            result = await run_in_threadpool(actions[name], request, base, data)
        except CkanError as exc:
            return _error(help_url, exc)
        except ApiError as exc:          # from the live release or DuckDB (e.g. no release yet: 503)
            if exc.status == 404:
                return _error(help_url, not_found(f"{exc.error}: {exc.detail}"))
            if exc.status == 400:
                return _error(help_url, CkanError("Validation Error", 409, f"{exc.error}: {exc.detail}"))
            return _error(help_url, CkanError(exc.error, exc.status, str(exc.detail)))
        return JSONResponse({"help": help_url, "success": True, "result": result},
                            headers={"Cache-Control": "public, max-age=60" if request.method == "GET" else "no-store"})

    for prefix in ("/api/3/action", "/api/action"):        # ckanapi calls /api/action/<name>
        for method, request_doc in (("GET", QUERY), ("POST", BODY)):
            api.add_api_route(prefix + "/{name}", action, methods=[method], response_class=JSONResponse,
                              responses=RESPONSES, openapi_extra=request_doc)
    return api


def _error(help_url: str, exc: CkanError) -> JSONResponse:
    error: dict[str, Any] = {"__type": exc.type, "message": exc.message, **exc.fields}
    return JSONResponse({"help": help_url, "success": False, "error": error}, status_code=exc.status,
                        headers={"Cache-Control": "no-store"})
