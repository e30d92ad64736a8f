"""DuckDB for the API: a connection per request (STYLE rule 8), reading the published Parquet
files where they are (local path, or S3 through httpfs and a secret).

Opening an in-memory database costs about 20 ms, more than a typical query, so each public
store has one database per process and a request gets its own cursor on it (a cursor is a
connection of its own to the same database: safe to use from its thread, cheap to open)."""
from __future__ import annotations

import threading
from typing import Any

from etl.duck import attach_s3
from etl.storage import Store


_DATABASES: dict[str, Any] = {}
_LOCK = threading.Lock()


def _open(store: Store) -> Any:
    import duckdb

    con = duckdb.connect(config={"threads": 2, "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    if store.is_s3:
        attach_s3(con, store)
    return con


def connect(store: Store) -> Any:
    """A new cursor on the store's database; close it when the request is done."""
    with _LOCK:
        database = _DATABASES.get(store.root)
        if database is None:
            database = _DATABASES[store.root] = _open(store)
        return database.cursor()


def query(store: Store, sql: str, params: list[Any]) -> Any:
    """Run one statement on a fresh cursor and return the result as an Arrow table."""
    con = connect(store)
    try:
        return con.execute(sql, params).to_arrow_table()
    finally:
        con.close()


def source(store: Store, key: str) -> str:
    """What ``read_parquet(?)`` is given for a public key."""
    return store.table_uri(key)


_SCHEMAS: dict[tuple[str, str], dict[str, str]] = {}


def schema(store: Store, key: str) -> dict[str, str]:
    """Column name → DuckDB type of a published Parquet file (cached: version paths are immutable)."""
    cache_key = (store.root, key)
    if cache_key not in _SCHEMAS:
        con = connect(store)
        try:
            rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [source(store, key)]).fetchall()
        finally:
            con.close()
        _SCHEMAS[cache_key] = {r[0]: r[1] for r in rows}
    return _SCHEMAS[cache_key]
