"""The quality step of normalisation: validate a batch's candidate readings, split it, keep the results.

Called by ``etl.normalize.normalize`` between deduplication and the silver commit:

1. the domain suites (quality.suites) run over the fresh candidate rows: rows failing a
   ``quarantine`` expectation leave with its reason; ``flag`` expectations set ``quality_flag``;
2. the batch suite runs over the batch's counts, lag and completeness;
3. :meth:`Checked.raise_for_errors` stops the batch on a ``fail`` check (after saving the
   result, so the failure can be read); :meth:`Checked.commit` stores the check rows (Delta
   ``quality/checks``), the GX results (JSON) and the batch's Data Docs page.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.landing import Envelope
from etl.sources import Source
from etl.storage import CHECKS, VALIDATIONS, Store
from quality.validate import BatchOutcome, Check, QualityError, RowOutcome, completeness, limits_from_settings, \
    validate_batch, validate_readings

log = logging.getLogger(__name__)


@dataclass
class Checked:
    accepted: pa.Table            # candidate rows kept, with quality_flag set
    rejected: pa.Table            # candidate rows the suites quarantined
    reasons: pa.Array             # their reason codes
    rows: RowOutcome
    batch: BatchOutcome
    env: Envelope
    source: str
    window_date: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> int:
        return self.rows.flagged

    @property
    def warnings(self) -> list[str]:
        return self.batch.warnings

    @property
    def errors(self) -> list[str]:
        return self.rows.failures + self.batch.errors

    def checks(self) -> list[Check]:
        return self.rows.checks + self.batch.checks

    def summary_lines(self) -> list[str]:
        """A readable summary for the task log."""
        lines = [f"quality {self.env.batch_id}: {len(self.checks())} checks, flagged {self.flagged}, "
                 f"quarantined by suites {self.rejected.num_rows}"]
        for c in self.checks():
            if not c.success:
                lines.append(f"  {c.action.upper():<10} {c.suite} {c.expectation} on {c.target}: "
                             f"{c.failed} of {c.evaluated}{' -> ' + c.code if c.code else ''}"
                             f"{' (observed ' + c.observed + ')' if c.observed else ''}")
        return lines

    def raise_for_errors(self, store: Store | None = None) -> None:
        if not self.errors:
            return
        if store is not None:
            self.save_results(store)
        raise QualityError(
            f"batch {self.env.batch_id} ({self.source}) failed quality checks at error level; nothing of it was "
            "written to silver, the landed batch is kept and a re-run after the fix will process it:\n  - "
            + "\n  - ".join(self.errors) + "\n" + "\n".join(self.summary_lines()))

    def result_document(self) -> dict[str, Any]:
        return {"batch_id": self.env.batch_id, "source": self.source, "received_at": self.env.received.isoformat(),
                "window_start": self.env.window_start, "window_end": self.env.window_end,
                "validated_at": datetime.now(timezone.utc).isoformat(), "errors": self.errors,
                "warnings": self.warnings, "checks": [c.as_dict() for c in self.checks()], **self.extra,
                "gx_results": self.rows.results + [self.batch.result]}

    def save_results(self, store: Store) -> str:
        """GX results as JSON and the batch's Data Docs page; returns the JSON key."""
        from quality import docs

        key = validation_key(self.source, self.window_date, self.env.batch_id)
        doc = self.result_document()
        store.put(key, json.dumps(doc, ensure_ascii=False, default=str).encode(), "application/json")
        docs.write_batch(store, doc, self.source, self.window_date)
        return key

    def commit(self, store: Store, batch_id: str, meta: dict[str, str], replay: str | None = None) -> None:
        """Store the results; a replay (``replay`` = its transaction id) replaces the batch's checks."""
        from etl import tables

        self.save_results(store)
        now = datetime.now(timezone.utc)
        rows = [{**c.as_dict(), "batch_id": batch_id, "source": self.source, "validated_at": now,
                 "date": self.window_date} for c in self.checks()]
        table = pa.Table.from_pylist(rows, schema=tables.CHECKS_SCHEMA)
        if replay is None:
            tables.append_once(store, CHECKS, table, batch_id, meta)
        else:
            tables.replace_rows(store, CHECKS, table, batch_id, replay, meta)


def validation_key(source: str, date: str, batch_id: str) -> str:
    return f"{VALIDATIONS}/source={source}/date={date}/{batch_id}.json"


def check(store: Store, source: Source, env: Envelope, fresh: pa.Table, good: pa.Table, registry: pa.Table,
          counts: dict[str, int]) -> Checked:
    """Validate ``fresh`` (candidate rows not yet in silver); ``good`` (every usable reading of
    the batch, also those silver already held) measures completeness and lag."""
    from etl.timeutil import kst_date, parse_iso

    from quality.context import series_context

    limits = limits_from_settings()
    history = series_context(store, fresh, registry, exclude_batch=env.batch_id)
    rows = validate_readings(fresh, fresh["src_flag"], registry, env.received, limits, history)
    bad = rows.reason != None  # noqa: E711 - elementwise
    flags = pa.array(rows.flags.tolist(), pa.string())
    accepted = fresh.filter(pa.array(~bad)).set_column(
        fresh.schema.get_field_index("quality_flag"), "quality_flag", flags.filter(pa.array(~bad)))
    at = pa.array(np.flatnonzero(bad))
    rejected, reasons = fresh.take(at), pa.array(rows.reason[bad].tolist(), pa.string())

    start, end = parse_iso(env.window_start), parse_iso(env.window_end)
    device_hours, incomplete = completeness(good, registry, source.id, start, end, limits)
    lag = None  # freshness: how far the newest reading is behind the end of the window asked for
    if good.num_rows:
        newest = pc.max(good["ts"]).as_py()
        lag = max(0.0, (min(end, env.received) - newest).total_seconds())
    quarantined = counts["decode_rejects"] + rejected.num_rows
    duplicates = counts["duplicates_in_batch"] + counts["duplicates_in_lake"]
    batch = validate_batch({"received": counts["received"], "accepted": accepted.num_rows, "quarantined": quarantined,
                            "duplicates": duplicates, "duplicates_in_batch": counts["duplicates_in_batch"]},
                           lag, device_hours, incomplete, limits)
    extra = {"counts": {"received": counts["received"], "accepted": accepted.num_rows, "flagged": rows.flagged,
                        "quarantined": quarantined, "duplicates": duplicates},
             "lag_s": lag, "device_hours": device_hours, "incomplete_share": incomplete}
    return Checked(accepted, rejected, reasons, rows, batch, env, source.id, kst_date(start).isoformat(), extra)


__all__ = ["Checked", "QualityError", "check", "validation_key"]
