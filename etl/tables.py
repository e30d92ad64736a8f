"""The lake's Delta tables: their schemas and the few ways we write and read them.

Writes are *once per batch*: every commit carries a Delta application transaction
(``txn`` action, app id = batch id), so a re-run after a crash sees the batch already
committed and writes nothing. The check and the commit are part of the Delta log, so there
is no side ledger to get out of step.
"""
from __future__ import annotations

import atexit
import logging
import os
from datetime import datetime
from typing import Any, Iterable

import pyarrow as pa

from etl.storage import BATCHES, CHECKS, QUARANTINE, SILVER, Store

log = logging.getLogger(__name__)

TS = pa.timestamp("us", tz="UTC")

# The canonical reading (DESIGN.md), plus the partition column `date` (KST date of ts) and
# `subject`, a private pseudonymous id (daycare tags only; null elsewhere, never published).
SILVER_SCHEMA = pa.schema([
    ("device_id", pa.string()),
    ("domain", pa.string()),
    ("metric", pa.string()),
    ("ts", TS),
    ("value", pa.float64()),
    ("unit", pa.string()),
    ("quality_flag", pa.string()),
    ("source", pa.string()),
    ("batch_id", pa.string()),
    ("received_at", TS),
    ("subject", pa.string()),
    ("date", pa.string()),
])

QUARANTINE_SCHEMA = pa.schema([
    ("source", pa.string()),
    ("batch_id", pa.string()),
    ("frame", pa.int32()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("ref", pa.string()),
    ("device_id", pa.string()),
    ("domain", pa.string()),
    ("metric", pa.string()),
    ("ts", TS),
    ("value", pa.float64()),
    ("unit", pa.string()),
    ("raw", pa.string()),
    ("received_at", TS),
    ("date", pa.string()),  # KST date of ts, or of received_at when ts is unknown
])

BATCHES_SCHEMA = pa.schema([
    ("batch_id", pa.string()),
    ("source", pa.string()),
    ("window_start", TS),
    ("window_end", TS),
    ("received_at", TS),
    ("normalized_at", TS),
    ("frames", pa.int64()),
    ("received", pa.int64()),
    ("accepted", pa.int64()),
    ("quarantined", pa.int64()),
    ("duplicates", pa.int64()),
    ("flagged", pa.int64()),                 # accepted with a quality_flag
    ("quality", pa.string()),                # ok | warn (a failed batch is never recorded)
    ("replays", pa.int64()),                 # times `citylake quarantine replay` re-processed it
    ("duplicates_in_batch", pa.int64()),
    ("duplicates_in_lake", pa.int64()),
    ("domains", pa.list_(pa.string())),
    ("dates", pa.list_(pa.string())),
    ("month", pa.string()),
])

# One row per batch, domain and expectation: what was checked and how much failed.
CHECKS_SCHEMA = pa.schema([
    ("batch_id", pa.string()),
    ("source", pa.string()),
    ("suite", pa.string()),
    ("expectation", pa.string()),
    ("target", pa.string()),
    ("level", pa.string()),        # schema | row | batch
    ("action", pa.string()),       # quarantine | flag | fail | warn
    ("code", pa.string()),         # reason or flag code
    ("evaluated", pa.int64()),
    ("failed", pa.int64()),
    ("success", pa.bool_()),
    ("observed", pa.string()),
    ("validated_at", TS),
    ("date", pa.string()),         # KST date of the batch window's start
])

PARTITIONS = {SILVER: ["domain", "date"], QUARANTINE: ["date"], BATCHES: ["month"], CHECKS: ["date"]}
# Columns whose min/max the Delta log keeps for file skipping (set when a table is created).
# Every commit re-reads the stats of every active file, so a commit costs more the more files
# and stats there are: 45 ms instead of 30 ms with 400 files (measured on the batch ledger).
# Parquet row-group statistics inside the files are unaffected (all columns).
STATS_COLUMNS = {
    SILVER: "device_id,metric,ts,source,batch_id",
    QUARANTINE: "source,batch_id,reason,ts",
    BATCHES: "batch_id,source",
    CHECKS: "batch_id,source,suite",
}
SCHEMAS = {SILVER: SILVER_SCHEMA, QUARANTINE: QUARANTINE_SCHEMA, BATCHES: BATCHES_SCHEMA, CHECKS: CHECKS_SCHEMA}


def writer_properties() -> Any:
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=1 << 20)


def open_table(store: Store, name: str) -> Any | None:
    """The DeltaTable at its latest version, or None if it does not exist yet.

    Tables stay open for the life of the process and are brought up to date incrementally
    on every call: replaying a log of hundreds of commits costs more than normalising a
    small batch, reading the commits since the last call costs next to nothing.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri, options = store.table_uri(name), store.delta_options()
    key = _open_key(uri, options)
    dt = _OPEN.get(key)
    if dt is not None:
        try:
            if store.is_s3:
                dt.update_incremental()
                return dt
            log_dir = os.path.join(uri, "_delta_log")
            if os.path.exists(os.path.join(log_dir, f"{dt.version() + 1:020d}.json")):  # commits since
                dt.update_incremental()
            if os.path.exists(os.path.join(log_dir, f"{dt.version():020d}.json")):  # not replaced under us
                return dt
        except Exception:  # noqa: BLE001 - removed or replaced under us: open it afresh
            pass
        _OPEN.pop(key, None)
    # (DeltaTable.is_deltatable hangs against S3 in deltalake 1.6.6; opening and catching does not)
    try:
        dt = DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return None
    if not _OPEN:
        atexit.register(_OPEN.clear)  # release delta-rs objects before interpreter teardown
    _OPEN[key] = dt
    return dt


_OPEN: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def _open_key(uri: str, options: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return uri, tuple(sorted(options.items()))


def committed(store: Store, name: str, batch_id: str) -> bool:
    dt = open_table(store, name)
    return dt is not None and _transaction_version(dt, batch_id) is not None


def _transaction_version(dt: Any, app_id: str) -> int | None:
    """``dt.transaction_version``, remembered for as long as the table stays at the same
    version (a lookup replays the log: a few ms that a batch would otherwise pay five times)."""
    key = (dt.table_uri, app_id)
    hit = _TXNS.get(key)
    if hit is not None and hit[0] == dt.version():
        return hit[1]
    found = dt.transaction_version(app_id)
    if len(_TXNS) > 1024:
        _TXNS.clear()
    _TXNS[key] = (dt.version(), found)
    return found


_TXNS: dict[tuple[str, str], tuple[int, int | None]] = {}


def append_once(store: Store, name: str, table: pa.Table, batch_id: str, metadata: dict[str, str] | None = None) -> bool:
    """Append ``table`` to Delta table ``name`` unless ``batch_id`` was committed. True if this
    call wrote it, or its write reported an error yet the batch is committed (a lost answer, or
    a racing writer of the same batch won); False if it was committed before."""
    from deltalake import CommitProperties, Transaction, write_deltalake

    dt = open_table(store, name)
    if dt is not None and _transaction_version(dt, batch_id) is not None:
        log.info("%s: batch %s already committed, nothing to write", name, batch_id)
        return False
    table = table.cast(SCHEMAS[name])
    props = CommitProperties(
        custom_metadata={"citylake.batch_id": batch_id, **(metadata or {})},
        app_transactions=[Transaction(app_id=batch_id, version=1)],
    )
    try:
        write_deltalake(
            dt if dt is not None else store.table_uri(name), table, mode="append", partition_by=PARTITIONS[name],
            storage_options=store.delta_options(), writer_properties=writer_properties(), commit_properties=props,
            configuration=None if dt is not None else {"delta.dataSkippingStatsColumns": STATS_COLUMNS[name]},
        )
    except Exception:
        # The commit may have landed and only its answer been lost (a retried conditional PUT
        # then "conflicts" with itself): look again before failing, so a retry never appends twice.
        if _landed(store, name, batch_id):
            log.warning("%s: batch %s committed although the write reported an error", name, batch_id)
            return True
        raise
    return True


def _landed(store: Store, name: str, batch_id: str) -> bool:
    """Whether ``batch_id`` is in table ``name``, read afresh (False if that cannot be told)."""
    _OPEN.pop(_open_key(store.table_uri(name), store.delta_options()), None)
    try:
        dt = open_table(store, name)
        return dt is not None and dt.transaction_version(batch_id) is not None
    except Exception:  # noqa: BLE001 - the store is still failing: the write's own error is raised
        return False


def existing_keys(store: Store, domain_dates: Iterable[tuple[str, str]], ts_min: datetime, ts_max: datetime,
                  devices: tuple[str, str] | None = None, exclude_batch: str | None = None) -> pa.Table:
    """Silver keys (device_id, metric, ts, subject) in the given partitions and time range,
    and device_id range if given (a batch resuming after a crash excludes its own rows)."""
    return silver_slice(store, domain_dates, ts_min, ts_max, ["device_id", "metric", "ts", "subject"], devices,
                        exclude_batch)


def silver_slice(store: Store, domain_dates: Iterable[tuple[str, str]], ts_min: datetime, ts_max: datetime,
                 columns: list[str], devices: tuple[str, str] | None = None,
                 exclude_batch: str | None = None) -> pa.Table:
    """Silver ``columns`` in the given partitions, time range (inclusive) and device_id range.

    Partition filters prune files; the ts and device ranges use Parquet row-group statistics
    (files are sorted by device), so only the slice of the day a batch overlaps is read, and
    not the files of other sources feeding the same domain.
    """
    import pyarrow.dataset as ds

    empty = pa.table({n: pa.array([], SILVER_SCHEMA.field(n).type) for n in columns})
    dt = open_table(store, SILVER)
    pairs = sorted(set(domain_dates))
    if dt is None or not pairs:
        return empty
    tables = []
    for domain, dates in _group(pairs).items():
        dataset = dt.to_pyarrow_dataset(file_pruning_predicate=[("domain", "=", domain), ("date", "in", dates)])
        flt = (ds.field("ts") >= pa.scalar(ts_min, TS)) & (ds.field("ts") <= pa.scalar(ts_max, TS))
        if devices is not None:
            flt &= (ds.field("device_id") >= devices[0]) & (ds.field("device_id") <= devices[1])
        if exclude_batch is not None:  # a batch resuming after a crash: its own rows are not "already there"
            flt &= ds.field("batch_id") != exclude_batch
        tables.append(dataset.to_table(columns=columns, filter=flt))
    return pa.concat_tables(tables).cast(empty.schema) if tables else empty


def batch_rows(store: Store, batch_id: str, domain_dates: Iterable[tuple[str, str]]) -> pa.Table:
    """The silver rows a committed batch wrote (to resume its bookkeeping after a crash)."""
    import pyarrow.dataset as ds

    dt = open_table(store, SILVER)
    parts = []
    for domain, dates in _group(sorted(set(domain_dates))).items():
        dataset = dt.to_pyarrow_dataset(file_pruning_predicate=[("domain", "=", domain), ("date", "in", dates)])
        parts.append(dataset.to_table(filter=ds.field("batch_id") == batch_id))
    return pa.concat_tables(parts).cast(SILVER_SCHEMA) if parts else SILVER_SCHEMA.empty_table()


def _group(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for domain, d in pairs:
        out.setdefault(domain, []).append(d)
    return out


def read(store: Store, name: str, filters: list[tuple[str, str, Any]] | None = None, columns: list[str] | None = None) -> pa.Table:
    """A whole table (or its filtered partitions) as Arrow; empty with the schema if absent."""
    dt = open_table(store, name)
    if dt is None:
        schema = SCHEMAS[name]
        return schema.empty_table() if columns is None else schema.empty_table().select(columns)
    return dt.to_pyarrow_dataset(file_pruning_predicate=filters).to_table(columns=columns)


def replace_rows(store: Store, name: str, table: pa.Table, batch_id: str, txn: str,
                 metadata: dict[str, str] | None = None) -> bool:
    """Replace every row of ``batch_id`` in table ``name`` by ``table`` (rows of that batch),
    in one commit carrying transaction ``txn``; skipped if ``txn`` was committed. True if written."""
    from deltalake import CommitProperties, Transaction, write_deltalake

    dt = open_table(store, name)
    if dt is not None and _transaction_version(dt, txn) is not None:
        return False
    if "'" in batch_id:
        raise ValueError(f"bad batch id {batch_id!r}")
    props = CommitProperties(custom_metadata={"citylake.batch_id": batch_id, **(metadata or {})},
                             app_transactions=[Transaction(app_id=txn, version=1)])
    table = table.cast(SCHEMAS[name])
    if dt is None:
        write_deltalake(store.table_uri(name), table, mode="append", partition_by=PARTITIONS[name],
                        storage_options=store.delta_options(), writer_properties=writer_properties(),
                        commit_properties=props,
                        configuration={"delta.dataSkippingStatsColumns": STATS_COLUMNS[name]})
        return True
    write_deltalake(dt, table, mode="overwrite", predicate=f"batch_id = '{batch_id}'", partition_by=PARTITIONS[name],
                    storage_options=store.delta_options(), writer_properties=writer_properties(),
                    commit_properties=props)
    return True


def replace_partitions(store: Store, name: str, table: pa.Table, column: str, values: list[str],
                       metadata: dict[str, str] | None = None) -> None:
    """Atomically replace the rows whose ``column`` is in ``values`` by ``table`` (one Delta
    commit: readers see the old partitions or the new ones, never a mix). For derived tables
    that are rebuilt, not appended: a re-run writes the same rows again."""
    from deltalake import CommitProperties, write_deltalake

    if any("'" in v for v in values):
        raise ValueError(f"bad partition value in {values!r}")
    dt = open_table(store, name)
    props = CommitProperties(custom_metadata=metadata or {})
    if dt is None:
        write_deltalake(store.table_uri(name), table, mode="append", partition_by=[column],
                        storage_options=store.delta_options(), writer_properties=writer_properties(),
                        commit_properties=props)
        return
    predicate = f"{column} IN ({', '.join(repr(v) for v in values)})"
    write_deltalake(dt, table, mode="overwrite", predicate=predicate, partition_by=[column],
                    storage_options=store.delta_options(), writer_properties=writer_properties(),
                    commit_properties=props)
