"""An OGC SensorThings API v1.1 read subset over the live release, under ``/sta/v1.1``, for STA
clients (frost-sta-client, dashboards, QGIS' SensorThings provider).

What the published files become:

* **Things** and their **Locations** (and **FeaturesOfInterest**): the devices of the published
  ``device-registry`` whose domain has an hourly station dataset below; a GeoJSON Point each;
* **Sensors**: one per device kind (AirKorea reference station, low-cost PM sensor, …);
* **ObservedProperties**: the measured metrics of those datasets (:mod:`quality.metrics`), with the
  catalogue's descriptions and units, Korean in ``properties``;
* **Datastreams**: each (device, metric) the registry says the device measures;
* **Observations**: the non-null values of the hourly datasets in long form; ``phenomenonTime`` is
  the hour ``start/end`` (UTC), ``resultTime`` its end, ``parameters`` the row's status/revision.

Ids are strings, stable across releases: a Thing, Location or FeatureOfInterest is its
``device_id``, a Sensor its kind, an ObservedProperty its metric, a Datastream ``device:metric``
and an Observation ``device:metric:YYYYMMDDTHHMMZ`` (the hour's start), e.g.
``/Datastreams('aq-ref-0001:pm25')/Observations``. Query options: :mod:`publish.api.sta_query`.
The small entity sets are Arrow tables queried with DuckDB next to the Parquet files, so every
option is SQL with bound parameters; errors are the API's JSON errors (400, 404), never a 5xx.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote as urlquote

import pyarrow as pa
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from etl.duck import identifier as quote
from etl.storage import Store
from publish.api import duck, schemas
from publish.api.errors import ApiError
from publish.api.http import json_response
from publish.api.live import LiveRelease, Release
from publish.api.sta_query import (FIELDS, KEYS, NAVS, PROPS, RELATIONS, Expand, Options, bad, literal,
                                   parse_options, parse_path)
from publish.catalog import Column, Dataset, load_catalogue
from quality.metrics import METRICS

PREFIX = "/sta/v1.1"
REGISTRY = "device-registry"
STREAMS = ("air-quality-station-hourly", "weather-station-hourly", "water-quality-hourly")
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
CONFORMANCE = ("http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
               "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
               "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data")
# device kind -> (name, Korean name, description)
SENSORS: dict[str, tuple[str, str, str]] = {
    "reference_station": ("AirKorea reference station", "에어코리아 도시대기측정소",
                          "Reference-method monitor of the national air-quality network (AirKorea)"),
    "lowcost_pm": ("Low-cost PM sensor", "간이 미세먼지 측정기", "Optical particle sensor for PM10 and PM2.5"),
    "weather_station": ("Weather station", "생활기상 관측소",
                        "Living-weather station: temperature, humidity, wind, rain and pressure"),
    "water_probe": ("Water quality probe", "수질 측정기",
                    "River probe: pH, dissolved oxygen, turbidity, conductivity and water temperature"),
}


# ---- the answers, for the OpenAPI document (the routes write their JSON by hand) -----------------

class StaEntitySet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    url: str


class StaServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conformance: list[str] = Field(description="URIs of the conformance classes served")


class StaServiceRoot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: list[StaEntitySet]
    serverSettings: StaServerSettings


class StaEntity(BaseModel):
    """An entity with its properties, ``<Nav>@iot.navigationLink``s and expansions; or, for a
    property path, the one property."""
    model_config = ConfigDict(extra="allow")
    iot_id: str | None = Field(None, alias="@iot.id", description="the entity's id")
    iot_self_link: str | None = Field(None, alias="@iot.selfLink")


class StaCollection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iot_count: int | None = Field(None, alias="@iot.count", description="with $count=true: all matching entities")
    iot_next_link: str | None = Field(None, alias="@iot.nextLink", description="the next page; absent on the last")
    value: list[StaEntity]


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.Error, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": StaCollection | StaEntity, "content": {"text/plain": schemas.TEXT},
          "description": "an entity collection, an entity, or a property (as text with /$value)"},
    **schemas.NOT_MODIFIED,
    400: _error("a malformed query option, key or $filter"),
    404: _error("no such entity set, entity, navigation property or property"),
    503: _error("nothing has been published yet"),
}
ROOT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": StaServiceRoot, "description": "the entity sets and the conformance classes"},
    **schemas.NOT_MODIFIED}


@dataclass(frozen=True)
class Model:
    """The release as entities: the small sets as Arrow tables (SQL columns) and JSON bodies by
    id; Observations stay in the hourly Parquet files ``(key, metric columns)``."""
    tables: dict[str, pa.Table]
    docs: dict[str, dict[str, dict[str, Any]]]
    sources: tuple[tuple[str, tuple[str, ...]], ...]


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _columns(set_name: str) -> dict[str, pa.DataType]:
    """The SQL columns of a small entity set: what its properties and relations name."""
    cols = {c: pa.timestamp("us", tz="UTC") if p.kind in ("instant", "interval") else pa.string()
            for p in PROPS[set_name].values() for c in p.columns}
    cols.update({c: pa.string() for (src, _), rel in RELATIONS.items() if src == set_name for c in rel.source_cols})
    return cols


def _unpivot(store: Store, sources: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[str, list[Any]]:
    """Every value of the hourly files as (thing_id, observed_property_id, period_start, period_end,
    result, status, revision); column names come from :data:`quality.metrics.METRICS`."""
    parts, params = [], []
    for key, metrics in sources:
        cols = ", ".join(f"CAST({quote(m)} AS DOUBLE) AS {quote(m)}" for m in metrics)
        parts.append("SELECT device_id AS thing_id, metric AS observed_property_id, period_start, period_end, "
                     "result, status, revision FROM (UNPIVOT (SELECT device_id, period_start, period_end, status, "
                     f"revision, {cols} FROM read_parquet(?)) ON {', '.join(quote(m) for m in metrics)} "
                     "INTO NAME metric VALUE result) WHERE NOT isnan(result)")
        params.append(duck.source(store, key))
    if not parts:
        parts = ["SELECT NULL::VARCHAR AS thing_id, NULL::VARCHAR AS observed_property_id, NULL::TIMESTAMPTZ "
                 "AS period_start, NULL::TIMESTAMPTZ AS period_end, NULL::DOUBLE AS result, NULL::VARCHAR AS "
                 "status, NULL::INTEGER AS revision WHERE false"]
    return "(" + " UNION ALL ".join(parts) + ")", params


# ---- the model of a release -----------------------------------------------------------------------

_MODELS: dict[tuple[str, str], Model] = {}


def model(store: Store, release: Release) -> Model:
    """Built once per release (version paths are immutable)."""
    key = (str(store.root), release.id)
    if key not in _MODELS:
        if len(_MODELS) >= 4:
            _MODELS.clear()
        _MODELS[key] = _build(store, release)
    return _MODELS[key]


@dataclass
class _Sets:
    """The small entity sets being built: JSON bodies by id, and the rows of their SQL tables."""
    docs: dict[str, dict[str, dict[str, Any]]]
    rows: dict[str, list[dict[str, Any]]]

    def add(self, set_name: str, key: str, doc: dict[str, Any], **sql: Any) -> None:
        self.docs[set_name][key] = doc
        values = {"id": key, **doc, **sql}
        self.rows[set_name].append({c: values.get(c) for c in _columns(set_name)})


Span = tuple[datetime, datetime, datetime]     # first hour's start, last hour's end, first hour's end


def _sources(store: Store, release: Release) -> tuple[list[tuple[str, tuple[str, ...]]], dict[str, Any]]:
    """The hourly files with their metric columns, and metric -> (dataset, catalogue column)."""
    cat = load_catalogue()
    sources, column_of = [], {}
    for did in (d for d in STREAMS if d in release.manifest["datasets"]):
        ds, key = cat.datasets[did], release.bulk_parquet(did)
        published = {c.name for c in ds.columns} & set(duck.schema(store, key))
        names = tuple(m.metric for m in METRICS if m.domain == ds.domain and m.metric in published)
        if names:
            sources.append((key, names))
        column_of.update({m: (ds, ds.column(m)) for m in names})
    return sources, column_of


def _read(store: Store, release: Release, sources: list[tuple[str, tuple[str, ...]]],
          domains: list[str]) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Span]]:
    """The registry rows of the devices in ``domains``, and the time span of each stream's values."""
    if not domains:
        return [], {}
    con = duck.connect(store)
    try:
        cur = con.execute(f"SELECT * FROM read_parquet(?) WHERE domain IN ({', '.join(['?'] * len(domains))}) "
                          "AND lat IS NOT NULL AND lon IS NOT NULL ORDER BY device_id",
                          [duck.source(store, release.bulk_parquet(REGISTRY)), *domains])
        devices = [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
        sql, params = _unpivot(store, tuple(sources))
        spans = {(r[0], r[1]): r[2:] for r in con.execute(
            f"SELECT thing_id, observed_property_id, min(period_start), max(period_end), min(period_end) "
            f"FROM {sql} GROUP BY ALL", params).fetchall()}
    finally:
        con.close()
    return devices, spans


def _device(sets: _Sets, d: dict[str, Any], homepage: str) -> None:
    """A device's Thing, Location, FeatureOfInterest and (first of its kind) Sensor."""
    label_en, label_ko, about = SENSORS.get(d["kind"], (d["kind"], d["kind"], d["kind"]))
    place = {k: d[k] for k in ("district_code", "district_ko", "district_en", "dong_code", "dong_ko", "dong_en")}
    sets.add("Things", d["device_id"], {
        "name": d["name_en"], "description": f"{label_en} in {d['dong_en']}, {d['district_en']}, Goyang",
        "properties": {"name_ko": d["name_ko"], "domain": d["domain"], "kind": d["kind"], **place,
                       "install_date": str(d["install_date"]) if d["install_date"] else None,
                       "interval_s": d["interval_s"]}})
    point = {"type": "Point", "coordinates": [d["lon"], d["lat"]]}
    where = {"name": d["name_en"], "description": f"{d['dong_en']}, {d['district_en']}, Goyang",
             "encodingType": "application/geo+json", "properties": {"name_ko": d["name_ko"], **place}}
    sets.add("Locations", d["device_id"], {**where, "location": point})
    sets.add("FeaturesOfInterest", d["device_id"], {**where, "feature": point})
    if d["kind"] not in sets.docs["Sensors"]:
        sets.add("Sensors", d["kind"], {"name": label_en, "description": about, "encodingType": "text/html",
                                        "metadata": f"{homepage}/datasets/{REGISTRY}",
                                        "properties": {"name_ko": label_ko, "kind": d["kind"], "domain": d["domain"]}})


def _stream(sets: _Sets, d: dict[str, Any], name: str, ds: Dataset, col: Column, span: Span | None,
            homepage: str) -> None:
    """The Datastream of a device's metric, and (first of its metric) its ObservedProperty."""
    metric = next(m for m in METRICS if m.domain == ds.domain and m.metric == name)
    definition = f"{homepage}/datasets/{ds.id}#{name}"
    if name not in sets.docs["ObservedProperties"]:
        sets.add("ObservedProperties", name, {
            "name": metric.description_en, "definition": definition, "description": col.description_en,
            "properties": {"name_ko": metric.description_ko, "description_ko": col.description_ko,
                           "dataset": ds.id, "column": name}})
    times = {"phenomenonTime": f"{iso(span[0])}/{iso(span[1])}",
             "resultTime": f"{iso(span[2])}/{iso(span[1])}"} if span else {}
    sets.add("Datastreams", f"{d['device_id']}:{name}", {
        "name": f"{metric.description_en} at {d['name_en']}", "description": col.description_en,
        "observationType": OM_MEASUREMENT,
        "unitOfMeasurement": {"name": metric.unit, "symbol": col.unit or metric.unit, "definition": definition},
        **times,
        "properties": {"name_ko": f"{d['name_ko']} {metric.description_ko}", "dataset": ds.id, "column": name}},
        thing_id=d["device_id"], sensor_id=d["kind"], observed_property_id=name,
        phenomenon_start=span and span[0], phenomenon_end=span and span[1],
        result_start=span and span[2], result_end=span and span[1])


def _build(store: Store, release: Release) -> Model:
    homepage = load_catalogue().homepage
    sources, column_of = _sources(store, release)
    devices, spans = _read(store, release, sources, sorted({ds.domain for ds, _ in column_of.values()}))
    small = [s for s in PROPS if s != "Observations"]
    sets = _Sets({s: {} for s in small}, {s: [] for s in small})
    for d in devices:
        _device(sets, d, homepage)
        for name in (m for m in (d["metrics"] or "").split() if m in column_of):
            _stream(sets, d, name, *column_of[name], spans.get((d["device_id"], name)), homepage)
    tables = {s: pa.Table.from_pylist(sets.rows[s], schema=pa.schema(list(_columns(s).items()))) for s in small}
    return Model(tables, sets.docs, tuple(sources))


# ---- queries --------------------------------------------------------------------------------------

@dataclass
class _Ctx:
    con: Any
    store: Store
    model: Model
    root: str


Cond = tuple[str, list[Any]]


def _source(ctx: _Ctx, set_name: str) -> Cond:
    if set_name != "Observations":
        return quote(f"sta_{set_name}"), []
    sql, params = _unpivot(ctx.store, ctx.model.sources)
    return (f"(SELECT o.* FROM {sql} o SEMI JOIN {quote('sta_Datastreams')} d ON o.thing_id = d.thing_id "
            "AND o.observed_property_id = d.observed_property_id)"), params


def _match(cols: tuple[str, ...], keys: list[tuple[Any, ...]]) -> Cond:
    """Rows whose ``cols`` equal one of ``keys``."""
    if not keys:
        return "FALSE", []
    if len(cols) == 1:
        return f"{quote(cols[0])} IN ({', '.join(['?'] * len(keys))})", [k[0] for k in keys]
    one = "(" + " AND ".join(f"{quote(c)} = ?" for c in cols) + ")"
    return "(" + " OR ".join([one] * len(keys)) + ")", [v for k in keys for v in k]


def _key(set_name: str, key: str) -> Cond:
    """The condition selecting one entity by its id; an Observation's id is parsed into its keys."""
    if set_name != "Observations":
        return _match(("id",), [(key,)])
    parts = key.rsplit(":", 2)
    try:
        start = datetime.strptime(parts[-1], "%Y%m%dT%H%MZ").replace(tzinfo=timezone.utc)
    except ValueError:
        start = None
    if len(parts) != 3 or start is None:
        raise ApiError(404, "not found", f"no Observation {key!r}: ids are '<device>:<metric>:YYYYMMDDTHHMMZ'")
    return _match(KEYS["Observations"], [(parts[0], parts[1], start)])


def _select(ctx: _Ctx, set_name: str, conds: list[Cond], opts: Options,
            partition: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], dict[tuple[Any, ...], int]]:
    """One page (``top + 1`` rows, per ``partition`` when expanding) and, if asked, the counts."""
    import duckdb

    src, params = _source(ctx, set_name)
    conds = conds + ([opts.where] if opts.where else [])
    where = " WHERE " + " AND ".join(c for c, _ in conds) if conds else ""
    params = params + [p for _, ps in conds for p in ps]
    order = opts.order + [(k, False) for k in KEYS[set_name] if k not in (c for c, _ in opts.order)]
    order_by = ", ".join(f"{quote(c)} {'DESC' if d else 'ASC'} NULLS LAST" for c, d in order)
    group = ", ".join(quote(c) for c in partition)
    if partition:
        sql = (f"SELECT * FROM {src} AS t{where} QUALIFY row_number() OVER (PARTITION BY {group} "
               f"ORDER BY {order_by}) BETWEEN ? AND ? ORDER BY {group}, {order_by}")
        page = [opts.skip + 1, opts.skip + opts.top + 1]
    else:
        sql, page = f"SELECT * FROM {src} AS t{where} ORDER BY {order_by} LIMIT ? OFFSET ?", [opts.top + 1, opts.skip]
    try:
        cur = ctx.con.execute(sql, params + page)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        counts: dict[tuple[Any, ...], int] = {}
        if opts.count:
            head = f"SELECT {group + ', ' if partition else ''}count(*) FROM {src} AS t{where}"
            for r in ctx.con.execute(head + (f" GROUP BY {group}" if partition else ""), params).fetchall():
                counts[tuple(r[:-1])] = r[-1]
    except (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException) as exc:
        raise bad("value", str(exc).splitlines()[0]) from None
    return rows, counts


def _one(ctx: _Ctx, set_name: str, conds: list[Cond], what: str) -> dict[str, Any]:
    rows, _ = _select(ctx, set_name, conds, Options(top=1))
    if not rows:
        raise ApiError(404, "not found", f"no {what}")
    return rows[0]


# ---- entities as JSON -----------------------------------------------------------------------------

def _id(set_name: str, row: dict[str, Any]) -> str:
    if set_name == "Observations":
        start = row["period_start"].astimezone(timezone.utc)
        return f"{row['thing_id']}:{row['observed_property_id']}:{start:%Y%m%dT%H%MZ}"
    return row["id"]


def _body(ctx: _Ctx, set_name: str, row: dict[str, Any]) -> dict[str, Any]:
    key = _id(set_name, row)
    link = f"{ctx.root}/{set_name}({urlquote(literal(key), safe=chr(39) + ':@')})"
    if set_name == "Observations":
        doc = {"phenomenonTime": f"{iso(row['period_start'])}/{iso(row['period_end'])}",
               "resultTime": iso(row["period_end"]), "result": row["result"],
               "parameters": {"status": row["status"], "revision": row["revision"]}}
    else:
        doc = ctx.model.docs[set_name][key]
    return {"@iot.id": key, "@iot.selfLink": link, **doc,
            **{f"{nav}@iot.navigationLink": f"{link}/{nav}" for nav in NAVS[set_name]}}


def _selected(body: dict[str, Any], opts: Options) -> dict[str, Any]:
    if opts.select is None:
        return body
    keep = set(opts.select) | {e.nav for e in opts.expand} | ({"@iot.id"} if "id" in opts.select else set())
    return {k: v for k, v in body.items() if k in keep or k.split("@")[0] in keep}


def _link(url: str, options: dict[str, Any]) -> str:
    query = "&".join(f"{urlquote(k, safe='$')}={urlquote(str(v), safe=chr(39) + '$(),:/')}" for k, v in options.items())
    return f"{url}?{query}"


def _expand(ctx: _Ctx, set_name: str, rows: list[dict[str, Any]], bodies: list[dict[str, Any]],
            items: list[Expand]) -> None:
    """Fill each body's expanded navigation properties: one query per item and level."""
    for item in items:
        rel, opts = RELATIONS[(set_name, item.nav)], item.options
        keys = [tuple(r[c] for c in rel.source_cols) for r in rows]
        wanted = list(dict.fromkeys(k for k in keys if None not in k))
        if not wanted:
            continue
        if not rel.many:
            opts = replace(opts, top=len(wanted), skip=0, count=False)
        found, counts = _select(ctx, rel.target, [_match(rel.target_cols, wanted)], opts,
                                rel.target_cols if rel.many else ())
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for r in found:
            groups[tuple(r[c] for c in rel.target_cols)].append(r)
        pages = [groups.get(k, [])[:opts.top if rel.many else 1] for k in keys]
        kids = [r for page in pages for r in page]
        kid_bodies = [_body(ctx, rel.target, r) for r in kids]
        _expand(ctx, rel.target, kids, kid_bodies, opts.expand)
        kid_bodies = [_selected(b, opts) for b in kid_bodies]
        at = 0
        for key, page, body in zip(keys, pages, bodies):
            mine, at = kid_bodies[at:at + len(page)], at + len(page)
            if not rel.many:
                if mine:
                    body[item.nav] = mine[0]
                continue
            body[item.nav] = mine
            if opts.count:
                body[f"{item.nav}@iot.count"] = counts.get(key, 0)
            if 0 < opts.top < len(groups.get(key, [])):
                body[f"{item.nav}@iot.nextLink"] = _link(f"{body['@iot.selfLink']}/{item.nav}", {
                    **opts.raw, "$top": opts.top, "$skip": opts.skip + opts.top})


# ---- paths and routes -----------------------------------------------------------------------------

@dataclass
class _Target:
    set_name: str
    conds: list[Cond]
    row: dict[str, Any] | None = None      # the path names one entity
    prop: str | None = None                # …and one of its properties
    raw_value: bool = False                # …as text (``/$value``)


def _resolve(ctx: _Ctx, path: str) -> _Target:
    segments = parse_path(path)
    name, key = segments[0]
    if name not in PROPS:
        raise ApiError(404, "not found", f"no entity set {name!r}; known: {', '.join(PROPS)}")
    target = _Target(name, [_key(name, key)] if key is not None else [])
    if key is not None:
        target.row = _one(ctx, name, target.conds, f"{name}({literal(key)})")
    for i, (nav, key) in enumerate(segments[1:], 1):
        if target.prop is not None and nav == "$value" and key is None and i == len(segments) - 1:
            target.raw_value = True
            continue
        if target.row is None or target.prop is not None:
            raise ApiError(404, "not found", f"{nav!r} must follow a single entity: name it by its id")
        rel = RELATIONS.get((target.set_name, nav))
        if rel is None:
            if key is None and nav in FIELDS[target.set_name]:
                target.prop = nav
                continue
            raise ApiError(404, "not found", f"{target.set_name} has no {nav!r}")
        parent = target.row
        target = _Target(rel.target, [_match(rel.target_cols, [tuple(parent[c] for c in rel.source_cols)])])
        if key is not None or not rel.many:
            if key is not None:
                target.conds.append(_key(rel.target, key))
            target.row = _one(ctx, rel.target, target.conds, f"{nav} of this entity")
    return target


def _options(request: Request) -> dict[str, str]:
    """The ``$`` options of the query string; other parameters are ignored, as STA allows."""
    raw: dict[str, str] = {}
    for k, v in request.query_params.multi_items():
        if k.startswith("$"):
            if k in raw:
                raise bad("option", f"{k} given twice")
            raw[k] = v
    return raw


def service_root(root: str) -> dict[str, Any]:
    return {"value": [{"name": s, "url": f"{root}/{s}"} for s in PROPS],
            "serverSettings": {"conformance": list(CONFORMANCE)}}


def answer(store: Store, release: Release, root: str, path: str, raw: dict[str, str]) -> Any:
    """The JSON document (or text, for ``/$value``) a resource path and its options ask for."""
    con = duck.connect(store)
    try:
        ctx = _Ctx(con, store, model(store, release), root)
        for set_name, table in ctx.model.tables.items():
            con.register(f"sta_{set_name}", table)
        target = _resolve(ctx, path)
        if target.row is not None:
            opts = parse_options({k: v for k, v in raw.items() if k in ("$select", "$expand")}, target.set_name)
            body = _body(ctx, target.set_name, target.row)
            if target.prop is not None:
                value = body.get(target.prop)
                if not target.raw_value:
                    return {target.prop: value}
                return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            _expand(ctx, target.set_name, [target.row], [body], opts.expand)
            return _selected(body, opts)
        opts = parse_options(raw, target.set_name)
        rows, counts = _select(ctx, target.set_name, target.conds, opts)
        page = rows[:opts.top]
        bodies = [_body(ctx, target.set_name, r) for r in page]
        _expand(ctx, target.set_name, page, bodies, opts.expand)
        doc: dict[str, Any] = {"@iot.count": counts.get((), 0)} if opts.count else {}
        if 0 < opts.top < len(rows):
            doc["@iot.nextLink"] = _link(f"{root}/{urlquote(path.strip('/'), safe=chr(39) + '/():@')}",
                                         {**opts.raw, "$top": opts.top, "$skip": opts.skip + opts.top})
        doc["value"] = [_selected(b, opts) for b in bodies]
        return doc
    finally:
        con.close()


def router(live: LiveRelease, store: Store) -> APIRouter:
    api = APIRouter(prefix=PREFIX, tags=["OGC SensorThings API"])

    @api.get("", responses=ROOT_RESPONSES, openapi_extra=schemas.CONDITIONAL)
    def sta_root(request: Request) -> Response:
        """The service root: entity sets and conformance classes."""
        return json_response(request, service_root(str(request.base_url).rstrip("/") + PREFIX))

    @api.get("/{resource:path}", responses=RESPONSES, openapi_extra=schemas.CONDITIONAL)
    def sta_resource(request: Request, resource: str,
                     top: str | None = Query(None, alias="$top"), skip: str | None = Query(None, alias="$skip"),
                     count: str | None = Query(None, alias="$count"),
                     filter_: str | None = Query(None, alias="$filter"),
                     orderby: str | None = Query(None, alias="$orderby"),
                     expand: str | None = Query(None, alias="$expand"),
                     select: str | None = Query(None, alias="$select")) -> Response:
        """An entity set, an entity, a navigation path or a property: ``Things``, ``Things('id')``,
        ``Datastreams('device:metric')/Observations``, ``Things('id')/name/$value``."""
        root = str(request.base_url).rstrip("/") + PREFIX
        if not resource.strip("/"):
            return json_response(request, service_root(root))
        doc = answer(store, live.current(), root, resource, _options(request))
        if isinstance(doc, str):
            return Response(doc, media_type="text/plain; charset=utf-8")
        return json_response(request, doc)

    return api
