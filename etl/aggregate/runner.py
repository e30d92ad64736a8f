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

import dataclasses
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, timedelta
from importlib import resources
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl import failpoints
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
    Model("weather_station_hourly", "weather", 0, "Weather per station and hour", "관측소별 시간 기상"),
    Model("weather_station_daily", "weather", 0, "Weather per station and day", "관측소별 일 기상"),
    Model("water_quality_hourly", "water_quality", 0, "Water quality per probe and hour, against the limits",
          "측정기별 시간 수질"),
    Model("water_quality_exceedances", "water_quality", 0, "Water-quality limit exceedance events",
          "수질 기준 초과 사례"),
    Model("waste_bins_hourly", "waste_bins", 1, "Smart-bin fill level per bin and hour", "쓰레기통별 시간 적재율"),
    Model("waste_bins_collections", "waste_bins", 1, "Detected bin collections (emptying events)",
          "수거 감지 사례"),
    Model("waste_bins_daily", "waste_bins", 1, "Smart bins per bin and day: overflow hours, collections",
          "쓰레기통별 일 요약"),
    Model("waste_bins_to_empty", "waste_bins", 1, "Bins to empty next, ranked per district", "구별 수거 우선순위"),
    Model("parking_lot_hourly", "parking", 1, "Parking occupancy per lot and hour", "주차장별 시간 점유율"),
    Model("parking_lot_availability", "parking", 1, "Latest availability per parking lot", "주차장별 최신 가용 면수"),
    Model("streetlight_outages", "streetlights", 0, "Streetlight outage events (should be on, is off or faulted)",
          "보안등 고장·소등 사례"),
    Model("streetlights_daily", "streetlights", 0, "Streetlights per light and day: uptime, energy",
          "보안등별 일 가동률·전력량"),
    Model("streetlights_district_daily", "streetlights", 0, "Streetlights per district and day: energy, outages",
          "구별 보안등 전력량·고장"),
    Model("daycare_daily", "daycare_safety", 0, "Daycare arrivals and departures per facility and day, small counts "
          "suppressed", "어린이집별 일 등·하원 수 (소수 값 비공개)"),
    Model("district_daily_summary", "summary", 0, "Every domain per district and day", "구별 일 종합 요약"),
)
DOMAIN_OF = {m.name: m.domain for m in MODELS}
# Quarantine reasons meaning the source itself said "no valid value" (completeness counts them
# as missing_source; every other reason is missing_quarantined). Models use source_marked(reason).
SOURCE_MARKED = ("source_missing", "source_flagged", "sentinel", "instrument_status")


def models_for(domain: str) -> list[Model]:
    return [m for m in MODELS if m.domain == domain]


@lru_cache(maxsize=None)
def model_sql(name: str) -> str:
    """The model's SQL file (read once per process)."""
    return resources.files("etl.aggregate.models").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def session(store: Store) -> Any:
    """An in-memory DuckDB with the lake's views, the devices table and the index macros."""
    from etl import duck, tables
    from etl.aggregate import indices

    # One thread: parallel aggregation adds float partial sums in a varying order, so the same
    # silver gave gold differing in the last bits run to run (re-runs published spurious revisions).
    con = duck.connect(store, threads=1)
    duck.add_devices(con)
    con.execute("SET TimeZone = 'UTC'")   # date_trunc on UTC timestamps must not depend on the machine
    present = {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    for name, view in duck.VIEWS.items():   # an empty lake: empty tables with the right columns
        if view not in present and name in tables.SCHEMAS:
            con.register(view, tables.SCHEMAS[name].empty_table())
    indices.register(con)
    reasons = ", ".join(f"'{r}'" for r in SOURCE_MARKED)
    con.execute(f"CREATE OR REPLACE MACRO source_marked(reason) AS reason IN ({reasons})")
    limits = _water_limits()
    con.register("water_limits", limits)
    return con


def _water_limits() -> pa.Table:
    """The water-quality limits (etl/config/water_limits.yaml) as a table."""
    import yaml

    text = resources.files("etl.config").joinpath("water_limits.yaml").read_text(encoding="utf-8")
    rows = yaml.safe_load(text)["limits"]
    schema = pa.schema([("metric", pa.string()), ("min_value", pa.float64()), ("max_value", pa.float64()),
                        ("name_en", pa.string()), ("name_ko", pa.string()), ("basis", pa.string())])
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def parameters(dates: list[str], model: Model) -> dict[str, Any]:
    """What a model may name: $dates, $read_dates and every gold_* setting."""
    from etl.settings import get_settings

    s = get_settings()
    gold = {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name.startswith("gold_")}
    return {"dates": dates, "read_dates": read_dates(dates, model.lookback_days), **gold}


def with_followers(domain: str, dates: list[str], store: Store | None = None) -> list[str]:
    """``dates`` plus the days after them whose models read them as lookback (the 24-hour PM
    concentration, a bin's reading before midnight), where silver has data for those days:
    late data for D changes D + 1's rows too, and nothing else."""
    from etl import tables
    from etl.storage import SILVER

    lookback = max([m.lookback_days for m in models_for(domain)] + [0])
    days = {date.fromisoformat(d) for d in dates}
    candidates = {(d + timedelta(days=i)).isoformat() for d in days for i in range(1, lookback + 1)} - set(dates)
    if not candidates:
        return sorted(set(dates))
    silver = tables.open_table(store or lake(), SILVER)
    present = set() if silver is None else {p["date"] for p in silver.partitions() if p.get("domain") == domain}
    return sorted(set(dates) | (candidates & present))


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
        if domain == "summary":
            _ensure_inputs(con, domain)
        horizon = data_horizon(store, None if domain == "summary" else domain)
        for m in models:
            t0 = time.perf_counter()
            if m.domain == "streetlights":    # sunrise/sunset in Goyang for the days read
                from etl.aggregate.sun import sun_times

                con.register("sun", sun_times(read_dates(dates, m.lookback_days)))
            con.execute(f"DROP VIEW IF EXISTS {m.name}")    # its fresh output, not the lake's copy, is read later
            whole = within(con.execute(model_sql(m.name), _used(m.name, parameters(dates, m))).to_arrow_table(),
                           horizon)
            con.register(m.name, whole)       # for the later models of the domain
            out = whole.filter(pc.is_in(whole["date"], value_set=pa.array(dates)))
            failpoints.hit("gold.model")
            tables.replace_partitions(store, m.table, _plain(out), "date", dates,
                                      {"citylake.rebuilt_dates": ",".join(dates), "citylake.model": m.name})
            failpoints.hit("gold.commit")
            result["tables"][m.name] = out.num_rows
            log.info("gold %s rebuilt for %s: %d rows in %.1f s", m.name, dates, out.num_rows,
                     time.perf_counter() - t0)
    finally:
        if own:
            con.close()
    return result


def data_horizon(store: Store, domain: str | None) -> tuple[Any, Any] | None:
    """(first, last) reading time in silver for ``domain`` (all when None), from the Delta
    file statistics (no scan); None when silver has none."""
    from etl import tables
    from etl.storage import SILVER

    dt = tables.open_table(store, SILVER)
    if dt is None:
        return None
    files = pa.table(dt.get_add_actions(flatten=True))
    if domain is not None:
        files = files.filter(pc.equal(files["partition.domain"], domain))
    if files.num_rows == 0:
        return None
    return pc.min(files["min.ts"]).as_py(), pc.max(files["max.ts"]).as_py()


def within(rows: pa.Table, horizon: tuple[Any, Any] | None) -> pa.Table:
    """Rows of the KST days silver has readings of the domain in, from the first to the last:
    no rows of "offline" devices for a day that has not come yet (a future-dated reading's
    quarantine date) or before the lake began."""
    from etl.timeutil import kst_date

    if horizon is None:
        return rows.slice(0, 0)
    first, last = (kst_date(t).isoformat() for t in horizon)
    return rows.filter(pc.and_(pc.greater_equal(rows["date"], first), pc.less_equal(rows["date"], last)))


def _ensure_inputs(con: Any, domain: str) -> None:
    """Other domains' gold tables a model may read (the summary) exist in the session: a table
    not in the lake yet becomes an empty one, with the columns its model gives on no dates."""
    present = {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}
    epoch = ["1970-01-01"]    # a day before any device: the model's columns, typed, and no rows
    for m in MODELS:
        if m.domain != domain and m.name not in present:
            if m.domain == "streetlights":
                from etl.aggregate.sun import sun_times

                con.register("sun", sun_times(epoch))
            empty = con.execute(model_sql(m.name), _used(m.name, parameters(epoch, m))).to_arrow_table().slice(0, 0)
            con.register(m.name, empty)


def _used(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Only the parameters the model's SQL body names (DuckDB rejects unused ones)."""
    text = "\n".join(line for line in model_sql(name).splitlines() if not line.lstrip().startswith("--"))
    return {k: v for k, v in params.items() if f"${k}" in text}


def _plain(table: pa.Table) -> pa.Table:
    """Delta has no unsigned or 'hugeint' types: DuckDB's unsigned ints and whole-number
    decimals (sums of integers) become int64, other decimals double."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_unsigned_integer(t) or (pa.types.is_decimal(t) and t.scale == 0):
            t = pa.int64()
        elif pa.types.is_decimal(t):
            t = pa.float64()
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


def model_doc(name: str) -> tuple[str, dict[str, str]]:
    """(description, {column: description}) from the model file's header comments: the
    description is the comment text before the first ``Parameters:``/``@column`` line."""
    text, columns, described = [], {}, True
    for line in model_sql(name).splitlines():
        if not line.startswith("--"):
            break
        body = line[2:].strip()
        if body.startswith("@column "):
            column, _, doc = body[len("@column "):].partition(":")
            columns[column.strip()] = doc.strip()
            described = False
        elif body.startswith("Parameters:"):
            described = False
        elif described:
            text.append(body)
    description = " ".join(text)
    if description.startswith(name + ":"):
        description = description.split(": ", 1)[1]
    return description[:1].upper() + description[1:], columns
