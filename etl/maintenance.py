"""Lake maintenance: compact the small files hourly batches leave behind, checkpoint the
Delta logs, and vacuum files no version needs any more.

Compaction rewrites a partition's files into fewer, larger ones in one Delta commit; readers
see the old or the new files, never a mix, and appends running meanwhile are not affected.
"""
from __future__ import annotations

import logging
from typing import Any

from etl import tables
from etl.storage import BATCHES, CHECKS, DEVICE_HEALTH, QUALITY_DAILY, QUARANTINE, SILVER, Store, lake

log = logging.getLogger(__name__)

TARGET_FILE_BYTES = 128 * 1024 * 1024
RETENTION_HOURS = 7 * 24   # time travel kept for a week (releases pin the versions they used)


def compact(day: str, domains: list[str] | None = None, store: Store | None = None) -> dict[str, Any]:
    """Compact one KST date of silver (per domain), quarantine and the quality checks."""
    store = store or lake()
    out: dict[str, Any] = {"date": day, "silver": {}, "quarantine": None}
    dt = tables.open_table(store, SILVER)
    if dt is not None:
        for domain in domains or sorted({p["domain"] for p in dt.partitions()}):
            metrics = dt.optimize.compact(partition_filters=[("domain", "=", domain), ("date", "=", day)],
                                          target_size=TARGET_FILE_BYTES, writer_properties=tables.writer_properties())
            out["silver"][domain] = {k: metrics.get(k) for k in ("numFilesAdded", "numFilesRemoved")}
            dt.update_incremental()
    for name in (QUARANTINE, CHECKS):  # one small file per batch each
        q = tables.open_table(store, name)
        if q is not None:
            m = q.optimize.compact(partition_filters=[("date", "=", day)], writer_properties=tables.writer_properties())
            out["quarantine" if name == QUARANTINE else "checks"] = {k: m.get(k) for k in ("numFilesAdded",
                                                                                          "numFilesRemoved")}
    log.info("compacted %s: %s", day, out)
    return out


def checkpoint_and_vacuum(retention_hours: int = RETENTION_HOURS, store: Store | None = None) -> dict[str, int]:
    """Write a log checkpoint and delete unreferenced files older than the retention."""
    store = store or lake()
    removed: dict[str, int] = {}
    for name in (SILVER, QUARANTINE, BATCHES, CHECKS, QUALITY_DAILY, DEVICE_HEALTH):
        dt = tables.open_table(store, name)
        if dt is None:
            continue
        dt.create_checkpoint()
        removed[name] = len(dt.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False))
    return removed
