"""The API's wiring: routes, error handlers, compression. Each route reads the live release
(:mod:`publish.api.live`) and hands the work to :mod:`query`, :mod:`rows` or :mod:`files`."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Query, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Receive, Scope, Send

from etl.storage import Store, public
from publish.api import ckan, datagokr, duck, errors, files, limits, query, rows, schemas, sta
from publish.api.errors import ApiError
from publish.api.http import etagged, json_response
from publish.api.live import LiveRelease, Release
from publish.catalog import Dataset, load_catalogue
from publish.release import POINTER

MAX_LIMIT = 10_000
ROWS_CACHE = "public, max-age=60"
COMPRESSED = ("/v1/", "/api/", "/sta/", "/openapi.json", "/docs", "/redoc")


class _GZipExceptFiles(GZipMiddleware):
    """Compress the API's JSON and CSV, never a public file (``/files/…`` or the public tree at
    the root): a range must count the file's own bytes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(COMPRESSED):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _dataset(release: Release, dataset_id: str) -> tuple[Dataset, dict[str, Any]]:
    entry = release.entry(dataset_id)
    ds = load_catalogue().datasets.get(dataset_id)
    if ds is None:
        raise ApiError(404, "unknown dataset", f"{dataset_id!r} is not in the catalogue")
    return ds, entry


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _summary(request: Request, dataset_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    base = f"{_base(request)}/v1/datasets/{dataset_id}"
    return {"id": dataset_id, "title_ko": entry["title_ko"], "title_en": entry["title_en"],
            "licence": entry["licence"], "rows": entry["rows"], "version": entry["version"],
            "links": {"self": base, "rows": f"{base}/rows",
                      "files": f"{_base(request)}/files/{entry['path']}"}}


def _detail(request: Request, release: Release, ds: Dataset, entry: dict[str, Any], store: Store) -> dict[str, Any]:
    manifest = release.dataset_manifest(ds.id)
    types = duck.schema(store, release.bulk_parquet(ds.id))
    return {
        **_summary(request, ds.id, entry), "release": release.id,
        "description_ko": ds.description_ko, "description_en": ds.description_en,
        "primary_key": list(ds.primary_key), "sort": list(ds.sort), "frequency": ds.frequency,
        "columns": [{"name": c.name, "type": types.get(c.name), "unit": c.unit or None,
                     "description_ko": c.description_ko, "description_en": c.description_en}
                    for c in ds.columns if c.name in types],
        "temporal": manifest.get("temporal"), "periods": manifest.get("periods", []),
        "sources": manifest.get("sources"),
        "files": [{**f, "url": f"{_base(request)}/files/{f['path']}"} for f in entry["files"]],
        "metadata": {name: f"{_base(request)}/files/{entry['path'].rstrip('/')}/{name}"
                     for name in ("manifest.json", "datapackage.json", "dictionary.html")},
    }


def _rows_response(request: Request, ds: Dataset, table: Any, cursor: str | None, fmt: str) -> Response:
    next_url = str(request.url.include_query_params(cursor=cursor)) if cursor else None
    link = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
    if fmt == "csv":
        return StreamingResponse(rows.csv_chunks(table), media_type="text/csv; charset=utf-8",
                                 headers={"Cache-Control": ROWS_CACHE, **link})
    if fmt == "parquet":
        return etagged(request, rows.parquet_bytes(ds, table), "application/vnd.apache.parquet", ROWS_CACHE, link)
    if fmt == "geojson":
        return etagged(request, rows.geojson_bytes(ds, table), "application/geo+json", ROWS_CACHE, link)
    return json_response(request, {"dataset": ds.id, "count": table.num_rows, "rows": rows.json_rows(table),
                                   "next": next_url}, ROWS_CACHE)


def create_app(public_store: Store | None = None, rate_limits: dict[str, Any] | None = None) -> FastAPI:
    """The API over ``public_store`` (default: the configured public side); ``rate_limits``:
    keyword arguments of :class:`publish.api.limits.RateLimit`."""
    store = public_store or public()
    live = LiveRelease(store)
    app = FastAPI(title="Goyang open data API", version="1", docs_url=None, redoc_url=None)
    app.add_middleware(_GZipExceptFiles, minimum_size=1024)
    app.add_middleware(limits.RateLimit, **(rate_limits or {}))
    errors.install(app)
    schemas.install(app)

    @app.get("/v1/datasets", responses={
        **schemas.json_ok(schemas.DatasetList, "every dataset of the live release"),
        **schemas.NOT_MODIFIED, **schemas.errors(503)}, openapi_extra=schemas.CONDITIONAL)
    def list_datasets(request: Request) -> Response:
        release = live.current()
        return json_response(request, {"release": release.id, "datasets": [
            _summary(request, d, e) for d, e in release.manifest["datasets"].items()]})

    @app.get("/v1/datasets/{dataset_id}", responses={
        **schemas.json_ok(schemas.DatasetDetail, "the dataset: columns, periods, files, sources"),
        **schemas.NOT_MODIFIED, **schemas.errors(404, 503)}, openapi_extra=schemas.CONDITIONAL)
    def dataset_detail(request: Request, dataset_id: str) -> Response:
        release = live.current()
        ds, entry = _dataset(release, dataset_id)
        return json_response(request, _detail(request, release, ds, entry, store))

    @app.get("/v1/datasets/{dataset_id}/rows", responses={
        **schemas.json_ok(schemas.RowsPage, "a page of rows, as format= asks",
                          {"text/csv": schemas.TEXT, "application/vnd.apache.parquet": schemas.BINARY,
                           "application/geo+json": {"schema": schemas.ref(schemas.FeatureCollection)}},
                          schemas.NEXT_LINK),
        **schemas.NOT_MODIFIED, **schemas.errors(400, 404, 503)}, openapi_extra=schemas.CONDITIONAL)
    def dataset_rows(request: Request, dataset_id: str,
                     start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
                     device_id: list[str] = Query([]), district_code: list[str] = Query([]),
                     where: list[str] = Query([]), order: str | None = None,
                     limit: int = Query(100, ge=1, le=MAX_LIMIT), cursor: str | None = None,
                     format: Literal["json", "csv", "parquet", "geojson"] = "json") -> Response:
        release = live.current()
        ds, _ = _dataset(release, dataset_id)
        key = release.bulk_parquet(ds.id)
        req = query.RowRequest(start, end, tuple(device_id), tuple(district_code), tuple(where), order, limit, cursor)
        q = query.build(ds, duck.schema(store, key), req, duck.source(store, key))
        table, next_cursor = rows.page(store, q, limit)
        return _rows_response(request, ds, table, next_cursor, format)

    @app.get("/v1/series", responses={
        **schemas.json_ok(schemas.Series, "time buckets (KST) of one numeric column per station or district"),
        **schemas.NOT_MODIFIED, **schemas.errors(400, 404, 503)}, openapi_extra=schemas.CONDITIONAL)
    def series(request: Request, metric: str, dataset: str = "air-quality-station-hourly",
               bucket: Literal["hour", "day", "week", "month"] = "day",
               agg: Literal["avg", "min", "max", "sum"] = "avg",
               start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
               device_id: list[str] = Query([]), district_code: list[str] = Query([]),
               where: list[str] = Query([])) -> Response:
        release = live.current()
        ds, _ = _dataset(release, dataset)
        key = release.bulk_parquet(ds.id)
        req = query.RowRequest(start, end, tuple(device_id), tuple(district_code), tuple(where))
        types = duck.schema(store, key)
        sql, params = query.series(ds, types, req, metric, bucket, agg, duck.source(store, key))
        rows.check_values([(c, types[c], v) for c, _, v in (w.split(":", 2) for w in where)])
        table = rows.run(store, sql, params)
        if table.num_rows > query.MAX_SERIES_ROWS:
            raise ApiError(400, "too many buckets", f"more than {query.MAX_SERIES_ROWS}: narrow from/to or "
                                                    "pick a larger bucket")
        return json_response(request, {"dataset": ds.id, "release": release.id, "metric": metric,
                                       "bucket": bucket, "agg": agg, "time_zone": "Asia/Seoul",
                                       "count": table.num_rows, "rows": rows.json_rows(table)}, ROWS_CACHE)

    @app.get("/v1/latest", responses={
        **schemas.json_ok(schemas.Latest, "the newest row with a value per station or district"),
        **schemas.NOT_MODIFIED, **schemas.errors(400, 404, 503)}, openapi_extra=schemas.CONDITIONAL)
    def latest(request: Request, dataset: str = "air-quality-station-hourly") -> Response:
        release = live.current()
        ds, _ = _dataset(release, dataset)
        key = release.bulk_parquet(ds.id)

        def compute() -> list[dict[str, Any]]:
            sql, params = query.latest(ds, duck.schema(store, key), duck.source(store, key))
            return rows.json_rows(rows.run(store, sql, params))

        found = release.memo(("latest", ds.id), compute)     # the same for the whole release
        return json_response(request, {"dataset": ds.id, "release": release.id, "count": len(found),
                                       "rows": found})

    def serve_public(request: Request, path: str) -> Response:
        key = files.safe_key(path)
        sha = live.current().sha256_of(key) if store.exists(POINTER) else None
        return files.serve(request, store, files.stat(store, key, sha))

    @app.get("/files/{path:path}", response_class=Response, responses=schemas.FILE_RESPONSES,
             openapi_extra=schemas.FILE_REQUEST)
    @app.head("/files/{path:path}", response_class=Response, responses=schemas.FILE_RESPONSES,
              openapi_extra=schemas.FILE_REQUEST)
    def public_file(request: Request, path: str) -> Response:
        return serve_public(request, path)

    for layer in (ckan, datagokr, sta):  # compatibility layers: CKAN Action API, data.go.kr/AirKorea, SensorThings
        app.include_router(layer.router(live, store))

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:       # Swagger UI from the portal's vendored copy: no CDN
        vendor = "/portal/assets/vendor/swagger-ui-dist"
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} · docs",
                                   swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{vendor}/swagger-ui.css", swagger_favicon_url="data:,")

    @app.get("/", include_in_schema=False)
    def portal_home() -> Response:
        return RedirectResponse("portal/index.html")

    # The public tree at the root, as an S3 website of the public bucket serves it: the portal's
    # relative links (``portal/…`` to ``datasets/…``) work the same here and there. Last, so
    # every API route above wins.
    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    def public_tree(request: Request, path: str) -> Response:
        if path and "." not in path.rsplit("/", 1)[-1] and not path.endswith("/"):
            files.safe_key(path)        # 404 first: "//host/x" would redirect a browser to another host
            return RedirectResponse(f"/{path}/")      # a folder: its index.html, relative links intact
        return serve_public(request, path + "index.html" if path.endswith("/") else path)
    return app
