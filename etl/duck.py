"""DuckDB sessions over the lake: the delta and httpfs extensions loaded from their PyPI
wheels (DuckDB cannot download extensions here), S3 credentials as a secret, and views.

Stateless per use (STYLE rule 8): an in-memory connection, nothing shared between tasks.
"""
from __future__ import annotations

import atexit
import importlib
import os
from pathlib import Path
from typing import Any

from etl.aggregate.runner import MODELS
from etl.storage import BATCHES, CHECKS, DEVICE_HEALTH, QUALITY_DAILY, QUARANTINE, SILVER, Store, lake

# Lake Delta tables and the view names analysts see them under.
VIEWS = {SILVER: "silver", QUARANTINE: "quarantine", BATCHES: "batches", CHECKS: "quality_checks",
         QUALITY_DAILY: "quality_daily", DEVICE_HEALTH: "device_health",
         **{m.table: m.name for m in MODELS}}   # gold tables: one view each, named after the model


_PROCESS_DB: tuple[int, Any] | None = None


def process_cursor() -> Any:
    """A cursor on this process's in-memory DuckDB, for per-batch work in the pipeline:
    opening a database per batch costs ~10 ms, a cursor nothing. Nothing is stored in it."""
    import duckdb

    global _PROCESS_DB
    if _PROCESS_DB is None or _PROCESS_DB[0] != os.getpid():  # not across a fork
        _PROCESS_DB = (os.getpid(), duckdb.connect(config={"threads": 2}))
        atexit.register(_PROCESS_DB[1].close)  # DuckDB aborts if its threads outlive the interpreter
    return _PROCESS_DB[1].cursor()


def load_extension(con: Any, name: str) -> None:
    """LOAD an extension straight from its wheel (writes nothing under $HOME)."""
    version = con.sql("PRAGMA version").fetchone()[0]
    pkg = importlib.import_module(f"duckdb_extension_{name}")
    path = Path(pkg.__file__).parent / "extensions" / version / f"{name}.duckdb_extension"
    con.execute(f"LOAD '{path}'")


# httpfs retries (DuckDB's defaults: 3 retries, 100 ms wait): as patient as the boto3 and
# delta-rs clients (etl.storage), so a burst of 5xx or a cut answer does not fail a query.
HTTP_SETTINGS = {"http_retries": 5, "http_retry_wait_ms": 200, "http_retry_backoff": 2, "http_timeout": 60}


def attach_s3(con: Any, store: Store) -> None:
    """Load httpfs on ``con``, with the store's S3 secret and the retry settings."""
    load_extension(con, "httpfs")
    for name, value in HTTP_SETTINGS.items():
        con.execute(f"SET {name} = {value}")
    sql, params = store.duckdb_secret_sql()
    con.execute(sql, params)


def connect(store: Store | None = None, threads: int = 2) -> Any:
    """A connection with views (``VIEWS``: silver, quarantine, batches, quality_checks,
    quality_daily, device_health) over the lake's Delta tables that exist."""
    import duckdb

    store = store or lake()
    con = duckdb.connect(config={"threads": threads, "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    load_extension(con, "delta")
    if store.is_s3:
        attach_s3(con, store)
    _create_views(con, store)
    return con


def _create_views(con: Any, store: Store) -> list[str]:
    """``CREATE OR REPLACE VIEW`` over each lake Delta table that exists; returns the view names."""
    from etl import tables

    names = []
    for name, view in VIEWS.items():
        if tables.open_table(store, name) is not None:
            uri = store.table_uri(name).replace("'", "''")
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM delta_scan('{uri}')")
            names.append(view)
    return names


def add_devices(con: Any) -> None:
    """The ``devices`` table: the device registry."""
    from etl.registry.load import load_registry

    con.register("_registry", load_registry())
    con.execute("CREATE OR REPLACE TABLE devices AS SELECT * FROM _registry")
    con.unregister("_registry")


def _add_registry_and_comments(con: Any) -> None:
    """The ``devices`` table (the registry) and a comment on every view and column (etl.views)."""
    from etl import views

    add_devices(con)
    views.annotate(con)


def analyst_session(store: Store | None = None, threads: int = 2) -> Any:
    """:func:`connect` plus the ``devices`` registry table and a comment on every view and
    column. In memory: readers hold Delta snapshots, writers are never locked out."""
    con = connect(store, threads)
    _add_registry_and_comments(con)
    return con


def write_database_file(path: str, store: Store | None = None) -> list[str]:
    """A ``.duckdb`` file with the lake's views (over the Delta tables where they are, local or
    S3), the registry and the comments; returns the view and table names. The file holds no
    data but the registry and no credentials: open it where the delta extension loads (and an
    S3 secret exists, for an s3:// lake), e.g. ``citylake sql --db PATH``."""
    import duckdb

    con = duckdb.connect(path, config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        load_extension(con, "delta")
        names = _create_views(con, store or lake())
        _add_registry_and_comments(con)
        con.execute("CHECKPOINT")
        return names + ["devices"]
    finally:
        con.close()


def identifier(name: str) -> str:
    """A column or table name as a quoted SQL identifier (names come from config, values are
    always bound parameters)."""
    return '"' + name.replace('"', '""') + '"'
