"""The bulk-file formats of a release: Parquet, CSV (UTF-8 with BOM), JSON Lines, GeoJSON.

Every writer takes an Arrow table already in its published row order and returns the file's
bytes; the same table always gives the same bytes (no timestamps, no random ids), so a
release can be rebuilt byte for byte and its checksums compared.

- Parquet: zstd, row groups of ``ROW_GROUP_ROWS`` with min/max statistics and the page
  index, and the sort order recorded (``sorting_columns``), so DuckDB and other readers skip
  row groups, also over HTTP range requests.
- CSV: UTF-8 with a byte-order mark (Excel then opens Korean text correctly), a header row,
  empty fields for nulls, timestamps ISO 8601 in UTC (``2026-11-24T01:00:00Z``).
- JSON Lines: one object per row, the same text values as the CSV.
- GeoJSON: a FeatureCollection (RFC 7946, WGS84 lon/lat); the geometry of each row is given
  by the caller (:func:`geojson` takes one GeoJSON geometry text or null per row).
"""
from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BOM = "\ufeff".encode("utf-8")
ROW_GROUP_ROWS = 100_000
MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "jsonl": "application/jsonl",
    "geojson": "application/geo+json",
}


def parquet(table: pa.Table, sort: tuple[str, ...] = ()) -> bytes:
    sink = io.BytesIO()
    sorting = [pq.SortingColumn(table.schema.get_field_index(c)) for c in sort]
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True,
                   write_page_index=True, sorting_columns=sorting or None)
    return sink.getvalue()


def as_text_values(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 UTC strings (whole seconds unless the column has fractions), dates
    as ISO dates, NaN as null: the values CSV, JSON Lines and GeoJSON share."""
    columns = []
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_timestamp(col.type):
            col = _iso(col)
        elif pa.types.is_date(col.type):
            col = pc.strftime(col, format="%Y-%m-%d")
        elif pa.types.is_floating(col.type):       # NaN is neither JSON nor a CSV number: null
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
        columns.append(col)
    return pa.table(columns, names=table.column_names)


def _iso(col: pa.ChunkedArray) -> pa.ChunkedArray:
    utc = col.cast(pa.timestamp("us", tz="UTC"))
    seconds = pc.cast(utc, pa.timestamp("s", tz="UTC"), safe=False)
    whole = pc.all(pc.equal(pc.cast(seconds, pa.timestamp("us", tz="UTC")), utc)).as_py() is not False
    if whole:
        return pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
    return pc.strftime(pc.cast(utc, pa.timestamp("ms", tz="UTC"), safe=False), format="%Y-%m-%dT%H:%M:%SZ")


def csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    sink.write(BOM)
    text = as_text_values(table)
    pacsv.write_csv(text, sink, pacsv.WriteOptions(include_header=True, quoting_style="needed"))
    return sink.getvalue()


def jsonl(table: pa.Table) -> bytes:
    rows = _json_rows(table)
    return ("\n".join(rows) + "\n").encode("utf-8") if rows else b""


def geojson(table: pa.Table, geometries: list[str | None]) -> bytes:
    """A FeatureCollection: one Feature per row, ``geometries[i]`` the GeoJSON geometry text
    of row i (or None), the row's values as properties."""
    body = ",\n".join(f'{{"type":"Feature","geometry":{geometry or "null"},"properties":{props}}}'
                       for props, geometry in zip(_json_rows(table), geometries))
    return ('{"type":"FeatureCollection","features":[\n' + body + "\n]}\n").encode("utf-8")


def _json_rows(table: pa.Table) -> list[str]:
    """Each row as a JSON object text (DuckDB's to_json: UTF-8 as is, NaN as null)."""
    import duckdb

    text = as_text_values(table)
    con = duckdb.connect(config={"threads": 1})
    try:
        con.register("t", text)
        return [r for (r,) in con.execute("SELECT CAST(to_json(t) AS VARCHAR) FROM t").fetchall()]
    finally:
        con.close()


def point(lon: float | None, lat: float | None) -> str | None:
    if lon is None or lat is None:
        return None
    return f'{{"type":"Point","coordinates":[{lon:.6f},{lat:.6f}]}}'


def polygon(polygons: tuple) -> str:
    """A (Multi)Polygon geometry text from ((ring, ...), ...) polygons of (lon, lat) points."""
    coords = [[[[round(x, 6), round(y, 6)] for x, y in ring] for ring in poly] for poly in polygons]
    if len(coords) == 1:
        return json.dumps({"type": "Polygon", "coordinates": coords[0]}, separators=(",", ":"))
    return json.dumps({"type": "MultiPolygon", "coordinates": coords}, separators=(",", ":"))


def content_type(path: str) -> str:
    """The Content-Type of a published file, by its extension."""
    ext = path.rsplit(".", 1)[-1]
    return {"json": "application/json", "html": "text/html; charset=utf-8", "jsonld": "application/ld+json",
            "js": "text/javascript; charset=utf-8", "mjs": "text/javascript; charset=utf-8",
            "css": "text/css; charset=utf-8", "png": "image/png", "svg": "image/svg+xml", "wasm": "application/wasm",
            "atom": "application/atom+xml", "txt": "text/plain; charset=utf-8",
            **MEDIA_TYPES}.get(ext, "application/octet-stream")
