"""Running a row query and writing its page as JSON, CSV (streamed, with a BOM like the
published files), Parquet or GeoJSON."""
from __future__ import annotations

import io
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from etl.storage import Store
from publish import formats
from publish.api import duck
from publish.api.errors import ApiError
from publish.api.query import Query, encode_cursor
from publish.catalog import Dataset

CSV_BATCH_ROWS = 1000


def run(store: Store, sql: str, params: list[Any]) -> pa.Table:
    """Execute; a value that does not cast to its column's type is the caller's error (400)."""
    import duckdb

    try:
        return duck.query(store, sql, params)
    except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
        raise ApiError(400, "invalid value", str(exc).splitlines()[0])


def check_values(checks: list[tuple[str, str, str]]) -> None:
    """400 for a ``where`` value that is not of its column's type, whether or not a row is
    ever compared with it (DuckDB casts lazily)."""
    import duckdb

    if not checks:
        return
    con = duckdb.connect()
    try:
        for column, type_, value in checks:
            if con.execute(f"SELECT TRY_CAST(? AS {type_}) IS NULL", [value]).fetchone()[0]:
                raise ApiError(400, "invalid value", f"{value!r} is not a {type_} (column {column!r})")
    finally:
        con.close()


def page(store: Store, query: Query, limit: int) -> tuple[pa.Table, str | None]:
    """The page's rows and the cursor after its last row (None on the last page)."""
    check_values(query.checks)
    table = run(store, query.sql, query.params)
    if table.num_rows <= limit:
        return table, None
    table = table.slice(0, limit)
    last = formats.as_text_values(table.select(list(query.keys)).slice(limit - 1, 1)).to_pylist()[0]
    return table, encode_cursor(query.order, [last[k] for k in query.keys])


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The same values as the published CSV/JSON Lines: ISO UTC timestamps, ISO dates, NaN → null."""
    return formats.as_text_values(table).to_pylist()


def csv_chunks(table: pa.Table) -> Iterator[bytes]:
    text = formats.as_text_values(table)
    yield formats.BOM
    for i, batch in enumerate(text.to_batches(max_chunksize=CSV_BATCH_ROWS) or [text.slice(0, 0)]):
        sink = io.BytesIO()
        pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=i == 0, quoting_style="needed"))
        yield sink.getvalue()


def parquet_bytes(ds: Dataset, table: pa.Table) -> bytes:
    return formats.parquet(table)


def geojson_bytes(ds: Dataset, table: pa.Table) -> bytes:
    from publish.release import geometries

    geoms = geometries(ds, table)
    if geoms is None:
        raise ApiError(400, "no geometry", f"{ds.id} has no location; use format=json or csv")
    return formats.geojson(table, geoms)
