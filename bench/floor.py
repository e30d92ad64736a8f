"""The floor: landed batches turned into the same silver Parquet with nothing but DuckDB and pyarrow.

For each landed batch, DuckDB reads the frames file itself, parses the bodies with its JSON
functions, joins the registry (device id and domain are part of the canonical reading),
converts declared units, sorts by (device_id, ts) and hands Arrow to pyarrow, which writes
hive-partitioned (domain, date) zstd Parquet with the writer settings silver uses. No
decoder semantics beyond what the simulated payloads need, no reject reasons, no dedupe, no
anti-join against earlier batches, no transaction log: what the pipeline adds on top of this
is what the benchmark's ratio measures.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from etl import tables, units
from etl.landing import Envelope
from quality.metrics import METRICS

FRAMES = ("read_json($path, format='newline_delimited', "
          "columns={'seq': 'INTEGER', 'meta': 'JSON', 'body': 'VARCHAR', 'body_b64': 'VARCHAR'})")
BODIES = ("read_json($path, format='newline_delimited', columns={'body': 'VARCHAR'})")


@dataclass(frozen=True)
class Parser:
    """A landed batch as SQL: ``wide`` yields one row per message (``ref``, ``ts`` as a UTC
    TIMESTAMP, field columns); ``fields`` unpivots it into readings (metric, value expression,
    unit as sent: a literal, or an expression when the message declares it)."""

    wide: str
    fields: tuple[tuple[str, str, str], ...]
    subject: str = "NULL::VARCHAR"


def _lit(unit: str) -> str:
    return "'" + unit.replace("'", "''") + "'"


PARSERS: dict[str, Parser] = {
    "streetlight": Parser(
        f"""SELECT j.id AS ref, make_timestamp(j.ts * 1000) AS ts, j.* EXCLUDE (id, ts) FROM (
              SELECT json_transform_valid(body, '{{"id":"VARCHAR","ts":"BIGINT","on":"BOOLEAN","dim":"DOUBLE",
                     "fault":"DOUBLE","power_w":"DOUBLE","power_kw":"DOUBLE"}}') AS j
              FROM {BODIES})""",
        (("lamp_on", '"on"::DOUBLE', _lit("bool")), ("power", "power_w", _lit("W")), ("power", "power_kw", _lit("kW")),
         ("dimming", "dim", _lit("%")), ("fault_code", "fault", _lit("code")))),
    "airsensor": Parser(
        f"""SELECT j.sensor AS ref, j.time::TIMESTAMPTZ::TIMESTAMP AS ts, j.pm10, j.pm2_5,
                   coalesce(j.unit, 'ug/m3') AS unit FROM (
              SELECT json_transform_valid(body, '{{"sensor":"VARCHAR","time":"VARCHAR","pm10":"DOUBLE","pm2_5":"DOUBLE",
                     "unit":"VARCHAR"}}') AS j FROM {BODIES})""",
        (("pm10", "pm10", "unit"), ("pm25", "pm2_5", "unit"))),
    "chirpstack": Parser(
        f"""SELECT ref, ts, port, (try_cast('0x' || h[1:2] AS INTEGER) & 1)::DOUBLE AS occupied,
                   CASE WHEN port = 2 THEN ((try_cast('0x' || h[3:4] AS INTEGER) + 128) % 256 - 128)::DOUBLE END AS temp
            FROM (SELECT upper(j.deviceInfo.devEui) AS ref, j.time::TIMESTAMPTZ::TIMESTAMP AS ts, j.fPort AS port,
                         hex(from_base64(j.data)) AS h
                  FROM (SELECT json_transform_valid(body, '{{"deviceInfo":{{"devEui":"VARCHAR"}},"time":"VARCHAR",
                               "fPort":"INTEGER","data":"VARCHAR"}}') AS j FROM {BODIES}))
            WHERE (port = 1 AND length(h) = 2) OR (port = 2 AND length(h) = 4)""",
        (("occupied", "occupied", _lit("bool")), ("temperature", "temp", _lit("degC")))),
    "ttn": Parser(
        f"""SELECT ref, ts, try_cast('0x' || h[5:6] AS INTEGER)::DOUBLE AS battery,
                   try_cast('0x' || h[13:14] || h[11:12] AS INTEGER)::DOUBLE AS distance,
                   try_cast('0x' || h[19:20] AS INTEGER)::DOUBLE AS tilt
            FROM (SELECT j.result.end_device_ids.dev_eui AS ref,
                         j.result.uplink_message.received_at::TIMESTAMPTZ::TIMESTAMP AS ts,
                         hex(from_base64(j.result.uplink_message.frm_payload)) AS h
                  FROM (SELECT json_transform_valid(line, '{{"result":{{"end_device_ids":{{"dev_eui":"VARCHAR"}},
                               "uplink_message":{{"frm_payload":"VARCHAR","received_at":"VARCHAR"}}}}}}') AS j
                        FROM (SELECT unnest(string_split(body, chr(10))) AS line FROM {BODIES})
                        WHERE line <> ''))
            WHERE length(h) = 20""",
        (("battery", "battery", _lit("%")), ("distance", "distance", _lit("mm")), ("tilt", "tilt", _lit("bool")),
         ("fill_level", "round(greatest(least((capacity - distance) / capacity * 100, 100), 0), 1)", _lit("%")))),
    "weather": Parser(
        f"""SELECT i.station AS ref, try_cast(i.observed_at AS TIMESTAMPTZ)::TIMESTAMP AS ts, i.* FROM (
              SELECT unnest(json_transform_valid(body, '{{"data":[{{"station":"VARCHAR","observed_at":"VARCHAR",
                     "temp_c":"DOUBLE","temp_f":"DOUBLE","rh_pct":"DOUBLE","wind_ms":"DOUBLE","wind_deg":"DOUBLE",
                     "rain_mm":"DOUBLE","pressure_hpa":"DOUBLE"}}]}}').data) AS i FROM {BODIES})""",
        (("temperature", "temp_c", _lit("degC")), ("temperature", "temp_f", _lit("degF")),
         ("humidity", "rh_pct", _lit("%")), ("wind_speed", "wind_ms", _lit("m/s")), ("wind_dir", "wind_deg", _lit("deg")),
         ("rain", "rain_mm", _lit("mm")), ("pressure", "pressure_hpa", _lit("hPa")))),
    "gate": Parser(
        f"""SELECT i.gate AS ref, make_timestamp(i.ts * 1000) AS ts, i.direction, i.tag FROM (
              SELECT unnest(json_transform_valid(body, '{{"data":[{{"gate":"VARCHAR","tag":"VARCHAR","direction":"VARCHAR",
                     "ts":"BIGINT"}}]}}').data) AS i FROM {BODIES})""",
        (("arrival", "CASE WHEN direction = 'in' THEN 1.0 END", _lit("count")),
         ("departure", "CASE WHEN direction = 'out' THEN 1.0 END", _lit("count"))),
        subject="pseudonym(tag)"),
    "airkorea": Parser(
        f"""SELECT ref, strptime(i.dataTime[1:10], '%Y-%m-%d') + to_hours(i.dataTime[12:13]::INTEGER)
                        - INTERVAL 9 HOUR AS ts, i.* FROM (
              SELECT meta->>'stationName' AS ref, unnest(json_transform_valid(body, '{{"response":{{"body":{{"items":[{{
                     "dataTime":"VARCHAR","pm10Value":"VARCHAR","pm25Value":"VARCHAR","o3Value":"VARCHAR",
                     "no2Value":"VARCHAR","coValue":"VARCHAR","so2Value":"VARCHAR"}}]}}}}}}').response.body.items) AS i
              FROM {FRAMES})""",
        tuple((m, f"try_cast({m}Value AS DOUBLE)", _lit(u)) for m, u in
              (("pm10", "ug/m3"), ("pm25", "ug/m3"), ("o3", "ppm"), ("no2", "ppm"), ("co", "ppm"), ("so2", "ppm")))),
    "csv_drop": Parser(
        "SELECT * FROM scada",
        tuple((m, m, "unit_" + m) for m in ("water_temp", "ph", "dissolved_oxygen", "turbidity", "conductivity"))),
}


def canonical_sql(parser: Parser) -> str:
    """Registry join on the messages, unpivot, unit conversion, sort: the silver columns."""
    branches = "\nUNION ALL ".join(
        f"SELECT device_id, domain, '{metric}' AS metric, ts, {value} AS value, {unit} AS unit, "
        f"{parser.subject} AS subject FROM q WHERE {value} IS NOT NULL"
        for metric, value, unit in parser.fields)
    return f"""
WITH w AS ({parser.wide}),
q AS (SELECT r.device_id, r.domain, r.capacity, w.* FROM w JOIN reg r ON r.external_id = w.ref WHERE w.ts IS NOT NULL),
x AS ({branches})
SELECT x.device_id, x.domain, x.metric, x.ts, x.value * c.factor + c."offset" AS value, c.canon_unit AS unit,
       x.subject, strftime(x.ts + INTERVAL 9 HOUR, '%Y-%m-%d') AS date
FROM x JOIN conv c ON c.domain = x.domain AND c.metric = x.metric AND c.unit = x.unit
ORDER BY x.device_id, x.ts
"""


def with_batch_columns(table: pa.Table, source: str, batch_id: str, received: Any) -> pa.Table:
    """The per-batch constants, added after the sort (sorting them costs DuckDB more than this)."""
    n = table.num_rows
    cols = {"quality_flag": pa.nulls(n, pa.string()), "source": pa.repeat(pa.scalar(source, pa.string()), n),
            "batch_id": pa.repeat(pa.scalar(batch_id, pa.string()), n),
            "received_at": pa.repeat(pa.scalar(received, tables.TS), n)}
    return pa.table({f.name: cols[f.name] if f.name in cols else table[f.name].cast(f.type)
                     for f in tables.SILVER_SCHEMA}, schema=tables.SILVER_SCHEMA)


def parser_of(source: Any) -> str:
    o = source.options
    if source.kind == "mqtt" or source.kind == "http_cursor":
        return o["decoder"]
    if source.kind == "lorawan":
        return "chirpstack" if o.get("transport") == "mqtt" else "ttn"
    return source.kind  # airkorea, csv_drop


def conversions() -> pa.Table:
    """(domain, metric, unit as sent) -> canonical unit, factor, offset, for every spelling etl.units knows."""
    sent = set(units.ALIASES) | set(units.ALIASES.values()) | {u for pair in units.CONVERSIONS for u in pair}
    sent |= {m.unit for m in METRICS}
    rows: dict[str, list] = {"domain": [], "metric": [], "unit": [], "canon_unit": [], "factor": [], "offset": []}
    for m in METRICS:
        for u in sorted(sent):
            try:
                f, o = units.conversion(u, m.unit)
            except KeyError:
                continue
            for k, v in zip(rows, (m.domain, m.metric, u, m.unit, f, o)):
                rows[k].append(v)
    return pa.table(rows)


class Floor:
    """One DuckDB connection and one output directory for a whole run."""

    def __init__(self, out_dir: Path, registry: pa.Table, pseudonym_key: bytes):
        self.out_dir = out_dir
        self.registry = registry
        self.con = duckdb.connect(config={"threads": 2})
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.register("conv", conversions())
        self.con.execute("CREATE MACRO json_transform_valid(doc, spec) AS "
                         "CASE WHEN json_valid(doc) THEN json_transform(doc, spec) END")
        key = pseudonym_key
        self.con.create_function(
            "pseudonym", lambda tags: pa.array(["p_" + hmac.new(key, t.encode(), hashlib.sha256).hexdigest()[:20]
                                                for t in tags.to_pylist()]),
            [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"), type="arrow")
        self._source: str | None = None
        self._sql: dict[str, str] = {}

    def _use_registry(self, source_id: str) -> None:
        if self._source != source_id:
            import pyarrow.compute as pc

            reg = self.registry.filter(pc.equal(self.registry["source"], source_id))
            self.con.register("reg", reg.select(["external_id", "device_id", "domain", "capacity"]))
            self._source = source_id

    def batch(self, source: Any, env: Envelope, path: str) -> int:
        """Parse one landed batch file and write its Parquet; returns the rows written."""
        self._use_registry(source.id)
        kind = parser_of(source)
        params = {}
        if kind == "csv_drop":
            self.con.register("scada", scada_readings(path))
        else:
            params["path"] = path
        if kind not in self._sql:
            self._sql[kind] = canonical_sql(PARSERS[kind])
        table = self.con.execute(self._sql[kind], params).to_arrow_table()
        if table.num_rows:
            write(with_batch_columns(table, source.id, env.batch_id, env.received), self.out_dir, env.batch_id)
        return table.num_rows


def write(table: pa.Table, out_dir: Path, batch_id: str) -> None:
    """One zstd Parquet file per (domain, date) partition, silver's writer settings (the
    fastest pyarrow path: ``write_dataset``'s partitioner costs more than the split here)."""
    import pyarrow.compute as pc

    parts = table.group_by(["domain", "date"]).aggregate([]).to_pylist()
    for part in parts:
        rows = table if len(parts) == 1 else table.filter(
            pc.and_(pc.equal(table["domain"], part["domain"]), pc.equal(table["date"], part["date"])))
        target = out_dir / f"domain={part['domain']}" / f"date={part['date']}"
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows.drop_columns(["domain", "date"]), target / f"{batch_id}.parquet", compression="zstd",
                       compression_level=3, row_group_size=1 << 20)


# ---- SCADA CSV (cp949 or UTF-8 with BOM): pyarrow's CSV reader, one file per frame --------
SCADA_COLUMNS = {"수온": "water_temp", "수소이온농도": "ph", "용존산소": "dissolved_oxygen", "탁도": "turbidity",
                 "전기전도도": "conductivity"}


def scada_readings(path: str) -> pa.Table:
    """The batch's CSV files as one wide table: ref, ts, and per metric its value and unit."""
    import json

    import pyarrow.compute as pc

    parts = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        body = rec["body"].encode("utf-8") if "body" in rec else base64.b64decode(rec["body_b64"])
        bom = body.startswith(b"\xef\xbb\xbf")
        t = pacsv.read_csv(io.BytesIO(body), read_options=pacsv.ReadOptions(encoding="utf-8-sig" if bom else "cp949"),
                           parse_options=pacsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
                           convert_options=pacsv.ConvertOptions(column_types={"측정일시": pa.string()}))
        ts = pc.subtract(pc.strptime(t["측정일시"], format="%Y-%m-%d %H:%M:%S", unit="us"),
                         pa.scalar(9 * 3600 * 1_000_000, pa.duration("us")))
        ok = pc.equal(t["상태코드"], 0)
        cols: dict[str, Any] = {"ref": t["측정소코드"].cast(pa.string()), "ts": ts}
        for name in t.column_names:
            label, _, unit = name.partition("(")
            if label in SCADA_COLUMNS:
                value = pc.cast(t[name], pa.float64())
                metric = SCADA_COLUMNS[label]
                cols[metric] = pc.if_else(pc.and_(ok, pc.not_equal(value, -999.0)), value, None)
                cols["unit_" + metric] = pa.array([unit.rstrip(")")] * t.num_rows, pa.string())
        parts.append(pa.table(cols))
    return pa.concat_tables(parts) if parts else pa.table({"ref": pa.array([], pa.string())})
