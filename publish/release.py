"""Versioned releases of the open datasets on the public side.

Layout of the public URI (file:// in the demo, an S3 bucket in production)::

    datasets/<id>/<version>/            immutable: one version of one dataset
        <YYYY-MM>/<id>-<YYYY-MM>.{parquet,csv,jsonl,geojson}   a month (KST) of rows
        <id>.{parquet,csv,jsonl,geojson}                         everything
        datapackage.json  dictionary.html  manifest.json       (manifest last: the version is complete)
    releases/<release>/manifest.json    immutable: the datasets' versions, every file's SHA-256,
                                        size and rows, the lake table versions read
    releases/<release>/catalog.jsonld   DCAT-AP 3 catalogue of the release
    releases/<release>/quality/…        the Data Docs (validation reports) at release time
    releases/index.json                 every release, oldest first
    latest.json                         the pointer: names the live release; switched last
    changes.json                        what each release changed (datasets, months, rows)
    catalog.jsonld, feeds/…             the live release's catalogue, the alerts feeds

A dataset version is named by a hash of what it is built from (the gold table's Delta
version, the catalogue entry, the as-of state and the previous version), so the same inputs
give the same version and the same bytes, and a dataset that did not change keeps its version.
Nothing is visible before ``latest.json`` names it: a crash midway leaves the previous release
live and complete, and the next run finishes the job (files already there are not rewritten).
"""
from __future__ import annotations

import calendar
import dataclasses
import hashlib
import io
import json
import logging
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl import failpoints
from etl.duck import identifier
from etl.storage import GOLD, Store, lake, public
from publish import formats, licences, privacy
from publish.catalog import (REGISTRY, Catalogue, CatalogueError, Dataset, load_catalogue, registry_columns,
                             sources_of)

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"          # bump when the files' layout or encoding changes (new versions for all)
POINTER = "latest.json"
INDEX = "releases/index.json"
CHANGES = "changes.json"
FORMATS = ("parquet", "csv", "jsonl", "geojson")


class ReleaseError(RuntimeError):
    """A release cannot be made; the previous one stays live."""


# Failures that the same inputs will repeat (the DAG fails them at once, without retries).
DETERMINISTIC = (licences.LicenceError, privacy.PrivacyError, CatalogueError, ReleaseError)


# ---- inputs -----------------------------------------------------------------------------------

def snapshot(lake_store: Store, catalogue: Catalogue) -> dict[str, dict[str, Any]]:
    """The version and commit time of every table the catalogue publishes (what a release reads)."""
    from etl import tables
    from etl.registry.load import resolve_fleet

    out: dict[str, dict[str, Any]] = {}
    for ds in catalogue.datasets.values():
        if ds.table == REGISTRY:
            fleet = resolve_fleet()
            raw = _registry_bytes(fleet)
            out[REGISTRY] = {"fleet": fleet.rsplit("/", 1)[-1], "sha256": hashlib.sha256(raw).hexdigest()}
            continue
        name = f"{GOLD}/{ds.table}"
        dt = tables.open_table(lake_store, name)
        if dt is None:
            continue
        version = dt.version()
        out[name] = {"version": version, "timestamp": _commit_time(lake_store, name, version)}
    return out


def _commit_time(store: Store, name: str, version: int) -> str:
    """When a Delta version was committed, from its log entry (DeltaTable.history hangs on S3)."""
    log = store.get(f"{name}/_delta_log/{version:020d}.json").decode("utf-8")
    for line in log.splitlines():
        info = json.loads(line).get("commitInfo")
        if info and "timestamp" in info:
            return datetime.fromtimestamp(info["timestamp"] / 1000, timezone.utc).isoformat()
    raise ReleaseError(f"{name} version {version} has no commit time in its log")


def _registry_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def read_table(lake_store: Store, ds: Dataset, snap: dict[str, dict[str, Any]]) -> pa.Table | None:
    """The dataset's rows as the lake held them at the snapshot (None: no table yet)."""
    if ds.table == REGISTRY:
        return _registry_rows()
    name = f"{GOLD}/{ds.table}"
    if name not in snap:
        return None
    from deltalake import DeltaTable

    dt = DeltaTable(lake_store.table_uri(name), version=snap[name]["version"], storage_options=lake_store.delta_options())
    table = dt.to_pyarrow_table()
    if "date" in table.column_names and pa.types.is_string(table["date"].type):
        table = table.set_column(table.schema.get_field_index("date"), "date", pc.cast(table["date"], pa.date32()))
    return table.select([c.name for c in ds.columns if c.name in table.column_names])


def _registry_rows() -> pa.Table:
    """The registry without private sources' devices and without operational columns."""
    from etl.registry.load import load_registry
    from etl.sources import load_sources

    private = [sid for sid, s in load_sources().items() if s.private]
    registry = load_registry()
    registry = registry.filter(pc.invert(pc.is_in(registry["source"], pa.array(private, pa.string()))))
    return registry.select(list(registry_columns()))


# ---- one dataset --------------------------------------------------------------------------------

@dataclasses.dataclass
class Built:
    """A dataset version: its manifest, and the files (key → bytes) still to write, if new."""

    manifest: dict[str, Any]
    files: dict[str, bytes]
    schema: pa.Schema

    @property
    def prefix(self) -> str:
        return f"datasets/{self.manifest['dataset']}/{self.manifest['version']}"


def month_status(month: str, as_of: date, settle_days: int) -> str:
    """A month is validated once as_of is settle_days past its end; until then provisional."""
    year, mon = (int(p) for p in month.split("-"))
    end = date(year, mon, calendar.monthrange(year, mon)[1])
    return "validated" if as_of >= end + timedelta(days=settle_days) else "provisional"


def prepare(ds: Dataset, table: pa.Table, as_of: date, settle_days: int) -> pa.Table:
    """Rows published as of ``as_of``: no future dates, embargoes applied, lifecycle status."""
    if not ds.partitioned:
        return table
    table = table.filter(pc.less_equal(table["date"], pa.scalar(as_of, pa.date32())))
    if ds.embargo_until:
        early = pc.fill_null(pc.greater(table[ds.embargo_until], pa.scalar(as_of, pa.date32())), False)
        if ds.embargo_columns:
            for name in ds.embargo_columns:
                i = table.schema.get_field_index(name)
                table = table.set_column(i, name, pc.if_else(early, pa.nulls(table.num_rows, table[name].type),
                                                              table[name]))
        else:
            table = table.filter(pc.invert(early))
    months = pc.strftime(table["date"], format="%Y-%m")
    status = [month_status(m, as_of, settle_days) for m in months.to_pylist()]
    return table.append_column("status", pa.array(status, pa.string()))


def with_revisions(ds: Dataset, table: pa.Table, previous: pa.Table | None) -> tuple[pa.Table, dict[str, dict[str, int]]]:
    """Add ``revision`` (1 when new, +1 when the values changed since the previous version) and
    count per month the rows added, changed and removed."""
    import duckdb

    if not ds.partitioned:
        return table, {}
    con = duckdb.connect()
    try:
        values = [c for c in table.column_names if c not in ("status", "revision")]
        con.register("cur", table)
        key = ", ".join(identifier(c) for c in ds.primary_key)
        digest = "md5(to_json(struct_pack(" + ", ".join(f"{identifier(c)} := {identifier(c)}" for c in values) + ")))"
        if previous is None or any(c not in previous.column_names for c in (*ds.primary_key, "revision")):
            previous = table.append_column("revision", pa.array([0] * table.num_rows, pa.int32())).slice(0, 0)
        con.register("prev_rows", previous)
        prev_values = [c for c in values if c in previous.column_names]
        same_shape = len(prev_values) == len(values)
        prev_digest = digest if same_shape else "NULL"
        con.execute(f"CREATE TEMP TABLE prev AS SELECT {key}, revision, {prev_digest} AS h, "
                    f"strftime(date, '%Y-%m') AS month FROM prev_rows")
        on = " AND ".join(f"c.{identifier(k)} IS NOT DISTINCT FROM p.{identifier(k)}" for k in ds.primary_key)
        con.execute(f"CREATE TEMP TABLE c AS SELECT *, {digest} AS _h FROM cur")
        out = con.execute(f"""
            SELECT c.* EXCLUDE (_h),
                   CAST(CASE WHEN p.revision IS NULL THEN 1 WHEN p.h = c._h THEN p.revision ELSE p.revision + 1 END
                        AS INTEGER) AS revision,
                   CASE WHEN p.revision IS NULL THEN 'added' WHEN p.h = c._h THEN 'same' ELSE 'changed' END AS _change
            FROM c LEFT JOIN prev p ON {on}""").to_arrow_table()
        removed = con.execute(f"""
            SELECT p.month, count(*) FROM prev p
            WHERE NOT EXISTS (SELECT 1 FROM c WHERE {on}) GROUP BY ALL""").fetchall()
    finally:
        con.close()
    changes: dict[str, dict[str, int]] = {}
    months = pc.strftime(out["date"], format="%Y-%m").to_pylist()
    for month, change in zip(months, out["_change"].to_pylist()):
        if change != "same":
            changes.setdefault(month, {"added": 0, "changed": 0, "removed": 0})[change] += 1
    for month, n in removed:
        changes.setdefault(month, {"added": 0, "changed": 0, "removed": 0})["removed"] += n
    return out.drop_columns(["_change"]), dict(sorted(changes.items()))


def geometries(ds: Dataset, table: pa.Table) -> list[str | None] | None:
    """GeoJSON geometry text per row, or None when the dataset has no location."""
    from etl.registry import geo
    from etl.registry.load import load_registry

    if ds.geometry == "none":
        return None
    if ds.geometry == "columns":
        return [formats.point(lon, lat) for lon, lat in zip(table["lon"].to_pylist(), table["lat"].to_pylist())]
    if ds.geometry == "district":
        shapes = {code: formats.polygon(area.polygons) for code, area in geo.districts().items()}
        return [shapes.get(code) for code in table["district_code"].to_pylist()]
    registry = load_registry().select(["device_id", "group_id", "lat", "lon"]).to_pylist()
    if ds.geometry == "device":
        points = {r["device_id"]: formats.point(r["lon"], r["lat"]) for r in registry}
        return [points.get(k) for k in table["device_id"].to_pylist()]
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in registry:
        if r["group_id"]:
            groups.setdefault(r["group_id"], []).append((r["lon"], r["lat"]))
    points = {g: formats.point(sum(p[0] for p in ps) / len(ps), sum(p[1] for p in ps) / len(ps))
              for g, ps in groups.items()}
    return [points.get(k) for k in table[ds.group_key].to_pylist()]


def file_set(ds: Dataset, table: pa.Table) -> dict[str, tuple[str, str | None, bytes, int]]:
    """Every bulk file of a dataset version: relative path → (format, month or None, bytes, rows)."""
    table = table.sort_by([(c, "ascending") for c in ds.sort]) if ds.sort else table
    parts: list[tuple[str | None, pa.Table]] = []
    if ds.partitioned and table.num_rows:
        months = pc.strftime(table["date"], format="%Y-%m")
        for month in sorted(set(months.to_pylist())):
            parts.append((month, table.filter(pc.equal(months, month))))
    parts.append((None, table))
    out: dict[str, tuple[str, str | None, bytes, int]] = {}
    for month, rows in parts:
        stem = f"{month}/{ds.id}-{month}" if month else ds.id
        geoms = geometries(ds, rows)
        for fmt in FORMATS:
            if fmt == "geojson" and geoms is None:
                continue
            if fmt == "parquet":
                data = formats.parquet(rows, ds.sort)
            elif fmt == "csv":
                data = formats.csv(rows)
            elif fmt == "jsonl":
                data = formats.jsonl(rows)
            else:
                data = formats.geojson(rows, geoms)
            out[f"{stem}.{fmt}"] = (fmt, month, data, rows.num_rows)
    return out


def inputs_key(ds: Dataset, inputs: dict[str, Any]) -> str:
    """A hash of what the dataset's rows are made of (lake snapshot, catalogue entry, as-of state)."""
    spec = json.dumps({"format": FORMAT_VERSION, "dataset": dataclasses.asdict(ds), **inputs},
                      sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(spec.encode()).hexdigest()


def version_of(key: str, previous_version: str | None) -> str:
    """The version name: the inputs and the version it revises (revisions count from it)."""
    return "v-" + hashlib.sha256(f"{key}:{previous_version}".encode()).hexdigest()[:12]


def build_dataset(ds: Dataset, catalogue: Catalogue, snap: dict[str, dict[str, Any]], as_of: date,
                  lake_store: Store, public_store: Store, previous: dict[str, Any] | None, gate: privacy.Gate,
                  issued: str, base_url: str, again: bool = False) -> Built | None:
    """Build one dataset version in memory (scanned by the gate), or reuse the existing one
    (``again``: build it even if it exists, to compare)."""
    from etl.settings import get_settings
    from publish.metadata.dictionary import dictionary_html
    from publish.metadata.frictionless import datapackage

    raw = read_table(lake_store, ds, snap)
    if raw is None:
        log.info("%s: table %s not in the lake yet; not published", ds.id, ds.table)
        return None
    table = prepare(ds, raw, as_of, catalogue.settle_days)
    table_key = REGISTRY if ds.table == REGISTRY else f"{GOLD}/{ds.table}"
    sources = sources_of(ds)
    key = inputs_key(ds, {"lake": {table_key: snap[table_key]}, "statuses": _statuses(table),
                          "last_date": _last_date(table), "sources": sources,
                          "embargo": as_of.isoformat() if ds.embargo_until else None})
    live_version = _version(public_store, ds.id, previous["version"]) if previous else None
    if live_version and not again and live_version[1].get("inputs") == key:   # unchanged: keep it
        return Built(live_version[1], {}, _schema_of(public_store, *live_version))
    version = version_of(key, (previous or {}).get("version"))
    prefix = f"datasets/{ds.id}/{version}"
    problems = privacy.check_rows(ds.id, ds.domain, table, as_of, get_settings().gold_daycare_min_count,
                                  ds.embargo_until, ds.embargo_columns)
    if problems:
        gate.findings.extend(problems)
    if not again and public_store.exists(f"{prefix}/manifest.json"):   # an interrupted run wrote it
        existing = _version(public_store, ds.id, version)
        _rescan(public_store, *existing, gate)
        return Built(existing[1], {}, _schema_of(public_store, *existing))
    prev_rows = _previous_rows(public_store, live_version)
    table, changes = with_revisions(ds, table, prev_rows)
    files = file_set(ds, table)
    manifest: dict[str, Any] = {
        "dataset": ds.id, "version": version, "release": None, "issued": issued,
        "table": table_key, "rows": table.num_rows, "temporal": _temporal(table),
        "periods": _periods(table, files), "files": [], "licence": ds.licence, "sources": sources,
        "lake": {table_key: snap[table_key]}, "previous_version": (previous or {}).get("version"),
        "changes": changes, "inputs": key,
    }
    out: dict[str, bytes] = {}
    for path, (fmt, month, data, rows) in files.items():
        gate.scan(f"{prefix}/{path}", data, fmt)
        out[path] = data
        manifest["files"].append({"path": path, "format": fmt, "media_type": formats.MEDIA_TYPES[fmt],
                                  "period": month, "rows": rows, "bytes": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest()})
    for path, data in (("datapackage.json", _json(datapackage(ds, table.schema, manifest, catalogue, base_url))),
                       ("dictionary.html", dictionary_html(ds, table.schema, manifest, catalogue, base_url).encode("utf-8"))):
        gate.scan(f"{prefix}/{path}", data, "text")
        out[path] = data
    return Built(manifest, out, table.schema)


def _rescan(public_store: Store, prefix: str, manifest: dict[str, Any], gate: privacy.Gate) -> None:
    """Put a version an interrupted run wrote (not live yet) through the gate again, as a fresh
    build would: the release's gate report counts every file of it, and a file that is not
    what its manifest says stops the release."""
    for f in manifest["files"]:
        data = public_store.get(f"{prefix}/{f['path']}")
        if len(data) != f["bytes"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise ReleaseError(f"{prefix}/{f['path']}: size or SHA-256 differs from the version's manifest")
        gate.scan(f"{prefix}/{f['path']}", data, f["format"])
    for name in ("datapackage.json", "dictionary.html"):
        gate.scan(f"{prefix}/{name}", public_store.get(f"{prefix}/{name}"), "text")


def _statuses(table: pa.Table) -> dict[str, str]:
    if "status" not in table.column_names or not table.num_rows:
        return {}
    months = pc.strftime(table["date"], format="%Y-%m").to_pylist()
    return dict(sorted(zip(months, table["status"].to_pylist())))


def _last_date(table: pa.Table) -> str | None:
    if "date" not in table.column_names or not table.num_rows:
        return None
    return pc.max(table["date"]).as_py().isoformat()


def _temporal(table: pa.Table) -> dict[str, str] | None:
    if "date" not in table.column_names or not table.num_rows:
        return None
    return {"start": pc.min(table["date"]).as_py().isoformat(), "end": pc.max(table["date"]).as_py().isoformat()}


def _periods(table: pa.Table, files: dict[str, tuple[str, str | None, bytes, int]]) -> list[dict[str, Any]]:
    if "date" not in table.column_names or not table.num_rows:
        return []
    months = pc.strftime(table["date"], format="%Y-%m")
    out = []
    for month in sorted(set(months.to_pylist())):
        rows = table.filter(pc.equal(months, month))
        out.append({"period": month, "status": rows["status"][0].as_py(), "rows": rows.num_rows,
                    "first_date": pc.min(rows["date"]).as_py().isoformat(),
                    "last_date": pc.max(rows["date"]).as_py().isoformat()})
    return out


def _version(public_store: Store, dataset_id: str, version: str) -> tuple[str, dict[str, Any]]:
    """(prefix, manifest) of a published dataset version."""
    prefix = f"datasets/{dataset_id}/{version}"
    return prefix, json.loads(public_store.get(f"{prefix}/manifest.json"))


def _whole_parquet(prefix: str, manifest: dict[str, Any]) -> str:
    """Key of a version's whole-dataset Parquet file."""
    return prefix + "/" + next(f["path"] for f in manifest["files"] if f["format"] == "parquet" and f["period"] is None)


def _previous_rows(public_store: Store, live_version: tuple[str, dict[str, Any]] | None) -> pa.Table | None:
    """The rows of the dataset's live version (its "all" Parquet file), for revisions."""
    if not live_version:
        return None
    return pq.read_table(io.BytesIO(public_store.get(_whole_parquet(*live_version))))


def _schema_of(public_store: Store, prefix: str, manifest: dict[str, Any]) -> pa.Schema:
    """The schema from the file's footer only (no download of the whole file)."""
    fs, root = public_store.arrow_filesystem()
    return pq.read_schema(f"{root}/{_whole_parquet(prefix, manifest)}", filesystem=fs)


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# ---- the release ---------------------------------------------------------------------------------

def live(public_store: Store) -> dict[str, Any] | None:
    """The live release's manifest (None before the first release)."""
    if not public_store.exists(POINTER):
        return None
    pointer = json.loads(public_store.get(POINTER))
    return json.loads(public_store.get(pointer["manifest"]))


def as_of_for_run(param: str | None, dag_run: Any) -> date:
    """The as-of date of a DAG run: the param, else the KST date the run was triggered for."""
    from etl.timeutil import kst_date

    if param:
        return date.fromisoformat(param)
    when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    return kst_date(when) if when else kst_date(datetime.now(timezone.utc))


def base_url_of(public_store: Store) -> str:
    from etl.settings import get_settings

    return (get_settings().public_base_url or public_store.root).rstrip("/")


def publish(as_of: date | None = None, datasets: list[str] | None = None, lake_store: Store | None = None,
            public_store: Store | None = None) -> dict[str, Any]:
    """Make a release of every dataset (or of ``datasets``, the rest kept at their live
    versions) as of ``as_of`` (default: today in KST), check it and switch to it."""
    from etl.timeutil import KST

    t0 = time.perf_counter()
    lake_store, public_store = lake_store or lake(), public_store or public()
    as_of = as_of or datetime.now(KST).date()
    catalogue = load_catalogue()
    chosen = [catalogue.datasets[d] for d in (datasets or catalogue.datasets)]
    for ds in chosen:                       # the licence rule, before any work
        licences.check_derivatives(ds.id, sources_of(ds), ds.derivatives_permitted)
    current = live(public_store)
    snap = snapshot(lake_store, catalogue)
    issued = max((s["timestamp"] for s in snap.values() if "timestamp" in s), default=f"{as_of}T00:00:00+00:00")
    base_url = base_url_of(public_store)
    gate = privacy.load(lake_store)
    previous = (current or {}).get("datasets", {})
    built: dict[str, Built] = {}
    for ds in chosen:
        prev = previous.get(ds.id)
        b = build_dataset(ds, catalogue, snap, as_of, lake_store, public_store,
                          prev, gate, issued, base_url)
        if b is not None:
            built[ds.id] = b
    failpoints.hit("publish.gate")
    gate.raise_if_failed()                  # nothing of this release was written yet
    entries = _dataset_entries(catalogue, built, previous, datasets)
    release = f"{as_of.isoformat()}." + hashlib.sha256(
        json.dumps({k: v["version"] for k, v in entries.items()}, sort_keys=True).encode()).hexdigest()[:8]
    if current and current["release"] == release:
        _after_switch(public_store, lake_store, current, base_url, as_of, gate)
        return {"release": release, "changed": False, "datasets": len(entries), "seconds": time.perf_counter() - t0}
    for ds_id, b in built.items():          # new dataset versions: data files, then manifest last
        for path, data in sorted(b.files.items()):
            failpoints.hit("publish.file")
            public_store.put_if_absent(f"{b.prefix}/{path}", data, formats.content_type(path))
        if b.files:                         # the release that first published this version
            failpoints.hit("publish.version")
            b.manifest["release"] = release
            public_store.put_if_absent(f"{b.prefix}/manifest.json", _json(b.manifest), "application/json")
    manifest = _release_manifest(release, as_of, issued, snap, entries, gate, current)
    schemas = {ds_id: b.schema for ds_id, b in built.items()}
    manifests = {ds_id: b.manifest for ds_id, b in built.items()}
    manifests.update({ds_id: _dataset_manifest(public_store, e) for ds_id, e in entries.items() if ds_id not in manifests})
    _write_release(public_store, lake_store, release, manifest, catalogue, manifests, schemas, base_url, gate)
    failpoints.hit("publish.switch")
    public_store.put(POINTER, _json({"release": release, "manifest": f"releases/{release}/manifest.json",
                                     "as_of": as_of.isoformat(), "issued": issued}), "application/json")
    failpoints.hit("publish.after_switch")
    _after_switch(public_store, lake_store, manifest, base_url, as_of, gate)
    log.info("release %s: %d datasets, %d new versions", release, len(entries), sum(1 for b in built.values() if b.files))
    return {"release": release, "changed": True, "datasets": len(entries),
            "new_versions": sorted(d for d, b in built.items() if b.files),
            "rows": {d: e["rows"] for d, e in entries.items()}, "privacy_gate": gate.report(),
            "seconds": time.perf_counter() - t0}


def _dataset_entries(catalogue: Catalogue, built: dict[str, Built], previous: dict[str, Any],
                     chosen: list[str] | None) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for ds_id, ds in catalogue.datasets.items():
        if ds_id in built:
            m = built[ds_id].manifest
            entries[ds_id] = {"version": m["version"], "path": built[ds_id].prefix + "/", "rows": m["rows"],
                              "title_ko": ds.title_ko, "title_en": ds.title_en, "licence": m["licence"],
                              "changes": m["changes"] if m["version"] != previous.get(ds_id, {}).get("version") else {},
                              "files": [{**f, "path": built[ds_id].prefix + "/" + f["path"]} for f in m["files"]]}
        elif chosen is not None and ds_id in previous:
            entries[ds_id] = {**previous[ds_id], "changes": {}}
    return entries


def _dataset_manifest(public_store: Store, entry: dict[str, Any]) -> dict[str, Any]:
    return json.loads(public_store.get(entry["path"] + "manifest.json"))


def _release_manifest(release: str, as_of: date, issued: str, snap: dict[str, Any], entries: dict[str, Any],
                      gate: privacy.Gate, current: dict[str, Any] | None) -> dict[str, Any]:
    from importlib.metadata import version

    return {"release": release, "as_of": as_of.isoformat(), "issued": issued,
            "previous": (current or {}).get("release"), "lake": snap,
            "software": {"citylake": version("citylake"), "pyarrow": pa.__version__, "format": FORMAT_VERSION},
            "privacy_gate": gate.report(), "datasets": entries}


def _write_release(public_store: Store, lake_store: Store, release: str, manifest: dict[str, Any],
                   catalogue: Catalogue, manifests: dict[str, dict[str, Any]], schemas: dict[str, pa.Schema],
                   base_url: str, gate: privacy.Gate) -> None:
    from publish.metadata.dcat import catalog_jsonld

    prefix = f"releases/{release}"
    docs = _data_docs(lake_store)
    for path, data in docs.items():
        gate.scan(f"{prefix}/quality/{path}", data, "text")
    dcat = _json(catalog_jsonld(catalogue, {"release": release, "as_of": manifest["as_of"],
                                            "issued": manifest["issued"]}, manifests, schemas, base_url))
    gate.scan(f"{prefix}/catalog.jsonld", dcat, "text")
    gate.raise_if_failed()
    for path, data in sorted(docs.items()):
        failpoints.hit("publish.metadata")
        public_store.put_if_absent(f"{prefix}/quality/{path}", data, formats.content_type(path))
    failpoints.hit("publish.metadata")
    public_store.put_if_absent(f"{prefix}/catalog.jsonld", dcat, "application/ld+json")
    manifest["quality_reports"] = f"{prefix}/quality/index.html" if docs else None
    failpoints.hit("publish.manifest")
    public_store.put_if_absent(f"{prefix}/manifest.json", _json(manifest), "application/json")


def _data_docs(lake_store: Store) -> dict[str, bytes]:
    from etl.storage import DOCS

    return {key[len(DOCS) + 1:]: lake_store.get(key) for key in lake_store.list(DOCS)}


def _after_switch(public_store: Store, lake_store: Store, manifest: dict[str, Any], base_url: str, as_of: date,
                  gate: privacy.Gate) -> None:
    """Files derived from the live release (safe to redo: same release, same bytes)."""
    from publish import changes, feeds, portal

    previous = manifest.get("previous")
    if previous and all(r["release"] != previous for r in changes.history(public_store)):
        # the previous release went live but its run died before recording it: keep the history whole
        changes.record(public_store, json.loads(public_store.get(f"releases/{previous}/manifest.json")))
    history = changes.record(public_store, manifest)
    public_store.put(CHANGES, _json(changes.feed(history)), "application/json")
    public_store.put("catalog.jsonld", public_store.get(f"releases/{manifest['release']}/catalog.jsonld"),
                     "application/ld+json")
    con = _gold_session(lake_store)
    try:
        entries = feeds.alert_entries(con, as_of, base_url) + feeds.release_entries(history, base_url)
    finally:
        con.close()
    rendered = feeds.render(entries, base_url)
    for path, data in rendered.items():
        gate.scan(path, data, "text")
    gate.raise_if_failed()
    failpoints.hit("publish.feeds")
    for path, data in rendered.items():
        public_store.put(path, data, "application/atom+xml" if path.endswith(".atom") else "application/feed+json")
    failpoints.hit("publish.portal")
    portal.publish_site(public_store, manifest, base_url, gate)


def _gold_session(lake_store: Store) -> Any:
    from etl import duck

    return duck.analyst_session(lake_store)


def verify(lake_store: Store | None = None, public_store: Store | None = None) -> dict[str, Any]:
    """Check the live release as a user would get it: every file listed is there with its
    size and SHA-256, and the privacy gate finds nothing in any of them."""
    lake_store, public_store = lake_store or lake(), public_store or public()
    current = live(public_store)
    if current is None:
        return {"ok": False, "problems": ["no release is live (latest.json is missing)"]}
    gate = privacy.load(lake_store)
    problems: list[str] = []
    files = 0
    for ds_id, entry in current["datasets"].items():
        for f in entry["files"]:
            data = public_store.get(f["path"])
            files += 1
            if len(data) != f["bytes"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
                problems.append(f"{f['path']}: size or SHA-256 differs from the manifest")
            gate.scan(f["path"], data, f["format"])
        for name in ("datapackage.json", "dictionary.html", "manifest.json"):
            gate.scan(entry["path"] + name, public_store.get(entry["path"] + name), "text")
    for key in public_store.list(f"releases/{current['release']}/"):
        gate.scan(key, public_store.get(key), "text")
    problems += gate.findings
    return {"ok": not problems, "release": current["release"], "files_checked": files,
            "privacy_gate": gate.report(), "problems": problems}


def rebuild(release: str, lake_store: Store | None = None, public_store: Store | None = None) -> dict[str, Any]:
    """Build a release's dataset versions again from the lake table versions its manifest names
    (Delta time travel) and compare every file with the published bytes. Needs the lake's old
    versions: a release older than the vacuum retention (maintain_lake) cannot be rebuilt."""
    lake_store, public_store = lake_store or lake(), public_store or public()
    manifest = json.loads(public_store.get(f"releases/{release}/manifest.json"))
    catalogue = load_catalogue()
    as_of, base_url = date.fromisoformat(manifest["as_of"]), base_url_of(public_store)
    checked, differing = 0, []
    for ds_id, entry in manifest["datasets"].items():
        published = json.loads(public_store.get(entry["path"] + "manifest.json"))
        previous = ({"version": published["previous_version"]}
                    if published.get("previous_version") else None)
        built = build_dataset(catalogue.datasets[ds_id], catalogue, manifest["lake"], as_of, lake_store, public_store,
                              previous, privacy.Gate(), published["issued"], base_url, again=True)
        if built is None or built.manifest["version"] != published["version"]:
            differing.append(f"{ds_id}: version {built.manifest['version'] if built else None} "
                             f"instead of {published['version']}")
            continue
        for f in published["files"]:
            checked += 1
            data = built.files.get(f["path"])
            if data is None or hashlib.sha256(data).hexdigest() != f["sha256"]:
                differing.append(f"{entry['path']}{f['path']}")
    return {"release": release, "files_compared": checked, "identical": not differing, "differing": differing}
