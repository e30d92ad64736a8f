"""Replay quarantined batches from landing after a fix (registry, settings or code).

A replay re-runs a committed batch's normalisation from its landed bytes. Readings silver
already holds (from this batch or any other) stay as they are; the rest are classified and
validated again: those that now pass are appended to silver under the same ``batch_id``, the
batch's quarantine rows are replaced by what still fails, and its ledger row and checks are
rewritten. Every write carries the replay's transaction id (``<batch>~replay<n>``), so a
replay interrupted at any point is finished by running it again, never doubled.

The batch's accounting stays exact: received = accepted (its rows in silver) +
quarantined + duplicates (in the batch, or held by other batches).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from etl import normalize as norm
from etl import tables
from etl.extract.frames import DECODED, REJECTS
from etl.landing import list_envelopes, read_envelope
from etl.sources import load_sources
from etl.storage import BATCHES, QUARANTINE, SILVER, Store, lake
from quality import check as quality

log = logging.getLogger(__name__)


class ReplayError(RuntimeError):
    pass


@dataclass(frozen=True)
class Replayed:
    batch_id: str
    source: str
    released: int        # previously quarantined readings now in silver
    still_quarantined: int
    accepted: int
    duplicates: int
    dates: tuple[str, ...]

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def candidates(store: Store, source: str | None = None, reason: str | None = None, day: str | None = None,
               batch_id: str | None = None) -> list[str]:
    """Batch ids with quarantined rows matching the filters."""
    q = tables.read(store, QUARANTINE, [("date", "=", day)] if day else None, columns=["batch_id", "source", "reason"])
    for col, value in (("source", source), ("reason", reason), ("batch_id", batch_id)):
        if value:
            q = q.filter(pc.equal(q[col], value))
    return sorted(pc.unique(q["batch_id"]).to_pylist())


def _ledger_row(store: Store, batch_id: str) -> dict:
    rec = tables.read(store, BATCHES)
    rows = rec.filter(pc.equal(rec["batch_id"], batch_id)).to_pylist()
    if not rows:
        raise ReplayError(f"batch {batch_id} is not in the batch ledger (normalise it first)")
    return rows[0]


def _envelope_key(store: Store, source: str, batch_id: str) -> str:
    for key in list_envelopes(store, source):
        if key.rsplit("/", 1)[-1].startswith(batch_id + "."):
            return key
    raise ReplayError(f"no landed envelope for batch {batch_id}: nothing to replay from")


def replay_batch(store: Store, batch_id: str, registry: pa.Table) -> Replayed:
    ledger = _ledger_row(store, batch_id)
    source = load_sources()[ledger["source"]]
    env = read_envelope(store, _envelope_key(store, source.id, batch_id))
    txn = f"{batch_id}~replay{(ledger.get('replays') or 0) + 1}"

    decoded, rejects, _ = norm._decode_landed(store, source, env, registry)
    decoded, rejects = norm._conform(decoded, DECODED), rejects.cast(REJECTS)
    classified = norm._classify(decoded, registry, source.id)
    good, dups_in_batch = classified.silver(env)
    bad = classified.bad()
    not_elsewhere, held_by_others = norm._drop_existing(store, good, resuming=batch_id)
    fresh, held_own = norm._drop_existing(store, not_elsewhere)
    if held_own < ledger["accepted"]:
        raise ReplayError(f"batch {batch_id}: silver holds {held_own} of its rows but the ledger says "
                          f"{ledger['accepted']} were accepted; refusing to replay")
    counts = {"received": decoded.num_rows + rejects.num_rows, "decode_rejects": rejects.num_rows + bad.num_rows,
              "duplicates_in_batch": dups_in_batch, "duplicates_in_lake": held_by_others}
    checked = quality.check(store, source, env, fresh, good, registry, counts)
    released = checked.accepted.select(tables.SILVER_SCHEMA.names)
    quarantine = pa.concat_tables([norm._reject_rows(rejects, env, classified.devices), norm._classified_rejects(bad, env),
                                   norm._validation_rejects(checked.rejected, checked.reasons, env)])
    received = counts["received"]
    accepted, duplicates = held_own + released.num_rows, dups_in_batch + held_by_others
    if received != accepted + quarantine.num_rows + duplicates:
        raise norm.ReconciliationError(f"replay of {batch_id}: received {received} != accepted {accepted} + "
                                       f"quarantined {quarantine.num_rows} + duplicates {duplicates}")
    meta = {"citylake.source": source.id, "citylake.replay": txn}
    if released.num_rows:
        tables.append_once(store, SILVER, released, txn, meta)
    tables.replace_rows(store, QUARANTINE, quarantine, batch_id, txn, meta)
    checked.commit(store, batch_id, meta, replay=txn)
    dates = sorted(set(ledger["dates"]) | set(pc.unique(released["date"]).to_pylist())
                   | set(pc.unique(quarantine["date"]).to_pylist()))
    row = {**ledger, "accepted": accepted, "quarantined": quarantine.num_rows, "duplicates": duplicates,
           "duplicates_in_batch": dups_in_batch, "duplicates_in_lake": held_by_others,
           "flagged": (ledger.get("flagged") or 0) + checked.flagged, "replays": (ledger.get("replays") or 0) + 1,
           "normalized_at": datetime.now(timezone.utc), "dates": dates,
           "quality": "warn" if checked.warnings or ledger.get("quality") == "warn" else "ok"}
    tables.replace_rows(store, BATCHES, pa.Table.from_pylist([row], schema=tables.BATCHES_SCHEMA), batch_id, txn, meta)
    log.info("replayed %s: %d released to silver, %d still quarantined", batch_id, released.num_rows,
             quarantine.num_rows)
    return Replayed(batch_id, source.id, released.num_rows, quarantine.num_rows, accepted, duplicates, tuple(dates))


def replay(batch_ids: list[str], store: Store | None = None) -> list[Replayed]:
    """Replay each batch, then rebuild the quality tables of the dates they touched."""
    from etl.registry.load import load_registry
    from quality import daily

    store = store or lake()
    registry = load_registry()
    done = [replay_batch(store, b, registry) for b in batch_ids]
    dates = sorted({d for r in done for d in r.dates})
    if dates:
        daily.rebuild(dates, store)
    return done
