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

from etl.storage import BATCHES, CHECKS, DEVICE_HEALTH, QUALITY_DAILY, QUARANTINE, SILVER, Store, lake

# Lake Delta tables and the view names analysts see them under.
VIEWS = {SILVER: "silver", QUARANTINE: "quarantine", BATCHES: "batches", CHECKS: "quality_checks",
         QUALITY_DAILY: "quality_daily", DEVICE_HEALTH: "device_health"}


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


def connect(store: Store | None = None, threads: int = 2) -> Any:
    """A connection with views (``VIEWS``: silver, quarantine, batches, quality_checks,
    quality_daily, device_health) over the lake's Delta tables that exist."""
    import duckdb

    from etl import tables

    store = store or lake()
    con = duckdb.connect(config={"threads": threads, "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    load_extension(con, "delta")
    if store.is_s3:
        load_extension(con, "httpfs")
        sql, _ = store.duckdb_secret_sql()
        con.execute(sql)
    for name, view in VIEWS.items():
        if tables.open_table(store, name) is not None:
            uri = store.table_uri(name).replace("'", "''")
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM delta_scan('{uri}')")
    return con
