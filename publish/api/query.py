"""SQL for the rows endpoint: typed filters, a column whitelist, and keyset pagination.

User input never reaches the SQL text: values are bound parameters (cast to the column's
Parquet type), and column names are taken only from the catalogue entry that is also in the
file's schema. The keyset is the requested order plus the rest of the primary key, so every
row has one place in the order and a cursor (the last row's key, base64 JSON) resumes after it
at any depth without OFFSET.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from etl.timeutil import KST
from publish.api.errors import ApiError
from publish.catalog import Dataset
from etl.duck import identifier as quote

OPS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
TIME_COLUMNS = ("date", "hour", "period_start", "period_end")


@dataclass(frozen=True)
class RowRequest:
    start: str | None = None
    end: str | None = None
    device_id: tuple[str, ...] = ()
    district_code: tuple[str, ...] = ()
    where: tuple[str, ...] = ()
    order: str | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass
class Query:
    sql: str
    params: list[Any]
    keys: tuple[str, ...]              # the keyset, in order
    order: str                         # the order as given back in cursors
    checks: list[tuple[str, str, str]] = field(default_factory=list)   # (column, type, value) to cast first


def allowed_columns(ds: Dataset, types: dict[str, str]) -> list[str]:
    return [c.name for c in ds.columns if c.name in types]


def _column(ds: Dataset, types: dict[str, str], name: str, what: str) -> str:
    allowed = allowed_columns(ds, types)
    if name not in allowed:
        raise ApiError(400, f"unknown column in {what}",
                       f"{name!r} is not a column of {ds.id}; allowed: {', '.join(allowed)}")
    return name


def _bind(types: dict[str, str], column: str) -> str:
    """``CAST(? AS <type>)``: the type is the file's own, never the user's."""
    return f"CAST(? AS {types[column]})"


def parse_when(text: str, bound: str) -> date | datetime:
    """A date (``2026-11-24``) or an ISO datetime; without an offset a datetime is KST."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"invalid {bound!r}", f"{text!r} is neither a date (YYYY-MM-DD) nor an ISO datetime")
    return dt if dt.tzinfo else dt.replace(tzinfo=KST)


def _time_filters(ds: Dataset, types: dict[str, str], req: RowRequest) -> tuple[list[str], list[Any]]:
    """``from`` inclusive; ``to`` inclusive for a date, exclusive for a datetime (on period_start)."""
    conds, params = [], []
    for text, bound in ((req.start, "from"), (req.end, "to")):
        if text is None:
            continue
        when = parse_when(text, bound)
        column = "period_start" if isinstance(when, datetime) else "date"
        if column not in types:
            raise ApiError(400, f"{bound!r} does not apply", f"{ds.id} has no {column!r} column")
        op = ">=" if bound == "from" else ("<" if column == "period_start" else "<=")
        conds.append(f"{quote(column)} {op} {_bind(types, column)}")
        params.append(when.isoformat())
    return conds, params


def _equal_filters(ds: Dataset, types: dict[str, str], req: RowRequest) -> tuple[list[str], list[Any]]:
    conds, params = [], []
    for column, values in (("device_id", req.device_id), ("district_code", req.district_code)):
        if not values:
            continue
        _column(ds, types, column, column)
        conds.append(f"{quote(column)} IN ({', '.join(_bind(types, column) for _ in values)})")
        params.extend(values)
    return conds, params


def _where_filters(ds: Dataset, types: dict[str, str], req: RowRequest) -> tuple[list[str], list[Any]]:
    conds, params = [], []
    for clause in req.where:
        parts = clause.split(":", 2)
        if len(parts) != 3:
            raise ApiError(400, "invalid where", f"{clause!r} is not <column>:<op>:<value>")
        column, op, value = parts
        _column(ds, types, column, "where")
        if op not in OPS:
            raise ApiError(400, "invalid where operator", f"{op!r} is not one of {', '.join(OPS)}")
        conds.append(f"{quote(column)} {OPS[op]} {_bind(types, column)}")
        params.append(value)
    return conds, params


def _order(ds: Dataset, types: dict[str, str], order: str | None) -> tuple[list[tuple[str, bool]], str]:
    """``[(column, descending)]`` from ``col,-col2`` (default the dataset's sort), then the rest
    of the primary key ascending; and the normalised order text."""
    spec = order.split(",") if order else list(ds.sort)
    keys: list[tuple[str, bool]] = []
    for item in spec:
        name = item.strip()
        desc = name.startswith("-")
        name = _column(ds, types, name.lstrip("-"), "order")
        if name not in (k for k, _ in keys):
            keys.append((name, desc))
    for name in ds.primary_key:
        if name not in (k for k, _ in keys):
            keys.append((name, False))
    return keys, ",".join(("-" if d else "") + k for k, d in keys)


def encode_cursor(order: str, values: list[Any]) -> str:
    raw = json.dumps({"o": order, "k": values}, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, order: str, n: int) -> list[Any]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        values = doc["k"]
        ok = (doc["o"] == order and isinstance(values, list) and len(values) == n
              and all(v is None or isinstance(v, (str, int, float)) for v in values))
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):   # RecursionError: nested too deep
        ok = False
    if not ok:
        raise ApiError(400, "invalid cursor", "use the 'next' link of a previous page with the same order")
    return values


def _after(keys: list[tuple[str, bool]], values: list[Any], types: dict[str, str]) -> tuple[str, list[Any]]:
    """Rows strictly after ``values`` in the order (NULLS LAST both ways), as an OR of prefixes."""
    ors, params = [], []
    for i, (name, desc) in enumerate(keys):
        parts, ps = [], []
        for prev, value in zip(keys[:i], values[:i]):
            parts.append(f"{quote(prev[0])} IS NOT DISTINCT FROM {_bind(types, prev[0])}")
            ps.append(value)
        if values[i] is None:
            continue                    # nothing sorts after a null (NULLS LAST)
        op = "<" if desc else ">"
        parts.append(f"({quote(name)} {op} {_bind(types, name)} OR {quote(name)} IS NULL)")
        ps.append(values[i])
        ors.append("(" + " AND ".join(parts) + ")")
        params.extend(ps)
    return ("(" + " OR ".join(ors) + ")" if ors else "FALSE"), params


def build(ds: Dataset, types: dict[str, str], req: RowRequest, source: str) -> Query:
    conds, params = [], []
    for make in (_time_filters, _equal_filters, _where_filters):
        c, p = make(ds, types, req)
        conds += c
        params += p
    keys, order = _order(ds, types, req.order)
    checks = [(c, types[c], v) for c, _, v in (w.split(":", 2) for w in req.where)]
    if req.cursor:
        # bound as text, each cast to its column's type once checked (a tampered cursor: 400, not DuckDB's error)
        values = [None if v is None else str(v) for v in decode_cursor(req.cursor, order, len(keys))]
        c, p = _after(keys, values, types)
        conds.append(c)
        params += p
        checks += [(k, types[k], v) for (k, _), v in zip(keys, values) if v is not None]
    where = " WHERE " + " AND ".join(conds) if conds else ""
    order_by = ", ".join(f"{quote(k)} {'DESC' if d else 'ASC'} NULLS LAST" for k, d in keys)
    sql = f"SELECT * FROM read_parquet(?){where} ORDER BY {order_by} LIMIT ?"
    return Query(sql, [source, *params, req.limit + 1], tuple(k for k, _ in keys), order, checks)


def latest(ds: Dataset, types: dict[str, str], source: str) -> tuple[str, list[Any]]:
    """The newest row per entity (the primary key without its time columns) that has a value:
    rows with only completeness counts (a device offline that hour) do not count as news."""
    entity = [k for k in ds.primary_key if k not in TIME_COLUMNS]
    time = next((c for c in ("period_start", "date") if c in types), None)
    if not entity or time is None or len(entity) == len(ds.primary_key):
        raise ApiError(400, "no latest for this dataset", f"{ds.id} is not a time series per station or district")
    part = ", ".join(quote(k) for k in entity)
    measured = [c.name for c in ds.columns if c.unit and c.name in types]
    has_value = f"({' OR '.join(f'{quote(c)} IS NOT NULL' for c in measured)})" if measured else "true"
    sql = (f"SELECT * FROM read_parquet(?) QUALIFY row_number() OVER (PARTITION BY {part} "
           f"ORDER BY {has_value} DESC, {quote(time)} DESC) = 1 ORDER BY {part}")
    return sql, [source]


BUCKETS = ("hour", "day", "week", "month")
AGGREGATES = ("avg", "min", "max", "sum")
ENTITIES = ("device_id", "district_code", "lot_id", "facility_id")
NUMERIC = ("DOUBLE", "FLOAT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "DECIMAL")
MAX_SERIES_ROWS = 10_000


def series(ds: Dataset, types: dict[str, str], req: RowRequest, metric: str, bucket: str, agg: str,
           source: str) -> tuple[str, list[Any]]:
    """Time buckets (KST) of one numeric column per station/district: the aggregate and the
    number of values in each bucket."""
    _column(ds, types, metric, "metric")
    if not types[metric].upper().startswith(NUMERIC):
        raise ApiError(400, "metric is not numeric", f"{metric!r} is {types[metric]}; pick a numeric column")
    if bucket not in BUCKETS or agg not in AGGREGATES:
        raise ApiError(400, "invalid bucket or agg", f"bucket one of {', '.join(BUCKETS)}; agg one of "
                                                     f"{', '.join(AGGREGATES)}")
    if "period_start" not in types:
        raise ApiError(400, "not a time series", f"{ds.id} has no period_start")
    conds, params = [], []
    for make in (_time_filters, _equal_filters, _where_filters):
        c, p = make(ds, types, req)
        conds += c
        params += p
    entity = next((k for k in ENTITIES if k in ds.primary_key and k in types), None)
    keys = f"{quote(entity)}, " if entity else ""
    where = " WHERE " + " AND ".join(conds) if conds else ""
    local = "date_trunc('" + bucket + "', timezone('Asia/Seoul', period_start))"
    sql = (f"SELECT {keys}strftime({local}, '%Y-%m-%dT%H:%M:%S+09:00') AS bucket_start, "
           f"{agg}({quote(metric)}) AS value, count({quote(metric)}) AS n "
           f"FROM read_parquet(?){where} GROUP BY ALL ORDER BY {keys}bucket_start LIMIT ?")
    return sql, [source, *params, MAX_SERIES_ROWS + 1]
