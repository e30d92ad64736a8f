"""Rebuild gold tables: DuckDB SQL models over silver, one Delta table per model.

A model is one ``models/<name>.sql`` file: a SELECT over the views ``silver``, ``quarantine``
and the ``devices`` table (the registry), with the index tables and macros of
``etl.aggregate.indices``. It reads ``$read_dates`` (the dates to rebuild plus the model's
lookback, KST 'YYYY-MM-DD') and may return rows for any of them; the runner keeps its
whole output as an in-memory table named after the model, so that later models of the same
domain can read it (district rows from station rows), and writes only the rows of the dates
asked for, replacing exactly those ``date`` partitions in one Delta commit. A rebuild is
idempotent; late data rebuilds its own dates and nothing else.

Conventions of every gold row (docs/AGGREGATES.md): periods are hour-beginning,
``[period_start, period_end)`` in UTC, with ``date`` (partition) and ``hour`` the KST date
and hour of ``period_start``; daily rows are KST days.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.storage import GOLD, Store, lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Model:
    name: str              # the gold table (gold/<name>) and the SQL file
    domain: str            # the silver domain it is rebuilt for
    lookback_days: int     # days of silver before each date that it reads
    title_en: str
    title_ko: str

    @property
    def table(self) -> str:
        return f"{GOLD}/{self.name}"


# In the order a domain's rebuild runs them (later ones may read earlier ones' output).
MODELS: tuple[Model, ...] = (
    Model("air_quality_station_hourly", "air_quality", 1, "Air quality per station and hour, with CAI and US AQI",
          "측정소별 시간 대기질 (통합대기환경지수, 미국 AQI)"),
    Model("air_quality_district_hourly", "air_quality", 1, "Air quality per district and hour, with CAI and US AQI",
          "구별 시간 대기질 (통합대기환경지수, 미국 AQI)"),
    Model("air_quality_station_daily", "air_quality", 1, "Air quality per station and day", "측정소별 일 대기질"),
    Model("air_quality_district_daily", "air_quality", 1, "Air quality per district and day", "구별 일 대기질"),
)
DOMAIN_OF = {m.name: m.domain for m in MODELS}


def models_for(domain: str) -> list[Model]:
    return [m for m in MODELS if m.domain == domain]


def model_sql(name: str) -> str:
    return resources.files("etl.aggregate.models").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def session(store: Store) -> Any:
    """An in-memory DuckDB with the lake's views, the devices table and the index macros."""
    from etl import duck, tables
    from etl.aggregate import indices

    con = duck.analyst_session(store)
    con.execute("SET TimeZone = 'UTC'")   # date_trunc on UTC timestamps must not depend on the machine
    present = {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    for name, view in duck.VIEWS.items():   # an empty lake: empty tables with the right columns
        if view not in present and name in tables.SCHEMAS:
            con.register(view, tables.SCHEMAS[name].empty_table())
    for m in MODELS:                      # the models' own output, not the lake's copy, is read below
        con.execute(f"DROP VIEW IF EXISTS {m.name}")
    indices.register(con)
    return con


def read_dates(dates: list[str], lookback_days: int) -> list[str]:
    """``dates`` plus the ``lookback_days`` before each, sorted."""
    out = set()
    for d in dates:
        day = date.fromisoformat(d)
        out.update((day - timedelta(days=i)).isoformat() for i in range(lookback_days + 1))
    return sorted(out)


def rebuild(domain: str, dates: list[str], store: Store | None = None, con: Any = None) -> dict[str, Any]:
    """Rebuild every model of ``domain`` for ``dates``; returns rows written per model."""
    from etl import tables

    store = store or lake()
    dates = sorted({date.fromisoformat(d).isoformat() for d in dates})
    models = models_for(domain)
    if not models:
        raise ValueError(f"no gold models for domain {domain!r}")
    result: dict[str, Any] = {"domain": domain, "dates": dates, "tables": {}}
    if not dates:
        return result
    own = con is None
    con = con or session(store)
    try:
        for m in models:
            t0 = time.perf_counter()
            params = {"dates": dates, "read_dates": read_dates(dates, m.lookback_days)}
            whole = con.execute(model_sql(m.name), _used(m.name, params)).to_arrow_table()
            con.register(m.name, whole)       # for the later models of the domain
            out = whole.filter(pc.is_in(whole["date"], value_set=pa.array(dates)))
            tables.replace_partitions(store, m.table, _plain(out), "date", dates,
                                      {"citylake.rebuilt_dates": ",".join(dates), "citylake.model": m.name})
            result["tables"][m.name] = out.num_rows
            log.info("gold %s rebuilt for %s: %d rows in %.1f s", m.name, dates, out.num_rows,
                     time.perf_counter() - t0)
    finally:
        if own:
            con.close()
    return result


def _used(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Only the parameters the model's SQL body names (DuckDB rejects unused ones)."""
    text = "\n".join(line for line in model_sql(name).splitlines() if not line.lstrip().startswith("--"))
    return {k: v for k, v in params.items() if f"${k}" in text}


def _plain(table: pa.Table) -> pa.Table:
    """Delta has no unsigned or 'hugeint' types: cast DuckDB's to plain int64 / double."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_unsigned_integer(t):
            t = pa.int64()
        elif pa.types.is_decimal(t):
            t = pa.float64()
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


def model_doc(name: str) -> tuple[str, dict[str, str]]:
    """(description, {column: description}) from the model file's header comments: the
    description is the comment text before the first ``Parameters:``/``@column`` line."""
    text, columns = [], {}
    for line in model_sql(name).splitlines():
        if not line.startswith("--"):
            break
        body = line[2:].strip()
        if body.startswith("@column "):
            column, _, doc = body[len("@column "):].partition(":")
            columns[column.strip()] = doc.strip()
        elif not columns and not body.startswith("Parameters:") and not any(t.startswith("Parameters:") for t in text):
            text.append(body)
    description = " ".join(text)
    if description.startswith(name + ":"):
        description = description.split(": ", 1)[1]
    return description[:1].upper() + description[1:], columns
