"""Backfilling a date range: split it into (source, chunk of KST days), process a chunk.

The ``backfill_lake`` DAG maps one task instance per chunk. :func:`plan` is pure (no I/O),
:func:`run_chunk` does one chunk's work: optionally re-fetch the chunk's hourly windows from
a gateway that can replay them, then normalise every landed batch of the chunk's days that
silver does not hold yet. Both steps are idempotent (landing keys are content hashes, the
batch ledger skips committed batches, normalisation drops readings silver already holds),
so a chunk can be retried or re-run at any time. Nothing here imports Airflow.

A landed batch belongs to exactly one chunk: the one holding the KST date of its window
start (its landing partition). Chunks of one source must not normalise at the same time
(overlapping windows must see each other's commits); the DAG runs them one after another.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from etl.timeutil import kst_day_bounds

log = logging.getLogger(__name__)

MAX_CHUNK_DAYS = 31
MAX_CHUNKS_PER_SOURCE = 1024   # Airflow's [core] max_map_length: mapped instances per task
STEP = timedelta(hours=1)      # every source's schedule is @hourly: re-fetch in the same windows
REPLAYABLE_KINDS = {"http_cursor"}   # plus lorawan over HTTP (TTN storage integration)


@dataclass(frozen=True)
class Chunk:
    source: str
    first: date           # KST dates, both included
    last: date
    extract: bool         # re-fetch the windows from the gateway before normalising

    @property
    def days(self) -> list[str]:
        n = (self.last - self.first).days + 1
        return [(self.first + timedelta(days=i)).isoformat() for i in range(n)]

    @property
    def window(self) -> tuple[datetime, datetime]:
        """UTC [start, end) of the chunk's KST days."""
        return kst_day_bounds(self.first)[0], kst_day_bounds(self.last)[1]

    @property
    def label(self) -> str:
        return f"{self.source} {self.first}" + ("" if self.first == self.last else f"..{self.last}")

    def as_dict(self) -> dict[str, Any]:
        start, end = self.window
        return {"source": self.source, "first": self.first.isoformat(), "last": self.last.isoformat(),
                "extract": self.extract, "window_start": start.isoformat(), "window_end": end.isoformat(),
                "label": self.label}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Chunk":
        return cls(d["source"], date.fromisoformat(d["first"]), date.fromisoformat(d["last"]), bool(d["extract"]))


def can_replay(kind: str, options: Mapping[str, Any]) -> bool:
    """Whether a gateway serves any past window on request: the cursor APIs and TTN's storage
    integration (within its retention). AirKorea returns the last 24 hours whatever the window;
    MQTT and CSV drops push, so landing is their only archive."""
    return kind in REPLAYABLE_KINDS or (kind == "lorawan" and options.get("transport") == "http")


def _day(name: str, value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a date (YYYY-MM-DD, a KST calendar day)") from None


def plan(start: Any, end: Any, sources: Mapping[str, bool], only: Sequence[str] | None = None,
         chunk_days: int = 7, extract: bool = False, today: date | None = None) -> list[Chunk]:
    """The chunks of a backfill of KST days ``start``..``end`` (both included).

    ``sources`` maps every backfillable source id to whether its gateway can replay a window;
    ``only`` restricts to some of them (empty: all). Chunks are ``chunk_days`` consecutive
    days from ``start`` (the last one may be shorter), for each source, ordered by source
    then date. ``extract`` asks to re-fetch the windows, which only replayable sources do.
    ``today`` (KST), if given, must be after ``end``: the ingest DAGs are still writing today.
    """
    first, last = _day("start", start), _day("end", end)
    if last < first:
        raise ValueError(f"end {last} is before start {first}")
    if today is not None and last >= today:
        raise ValueError(f"end {last} is not before today {today} (KST): the hourly ingest runs are still "
                         f"writing it; backfill up to yesterday")
    if isinstance(chunk_days, bool) or not isinstance(chunk_days, int) or not 1 <= chunk_days <= MAX_CHUNK_DAYS:
        raise ValueError(f"chunk_days must be a whole number of days from 1 to {MAX_CHUNK_DAYS}, not {chunk_days!r}")
    unknown = sorted(set(only or []) - set(sources))
    if unknown:
        raise ValueError(f"unknown sources {unknown}; known: {sorted(sources)}")
    chosen = sorted(set(only or []) or set(sources))
    n_days = (last - first).days + 1
    per_source = -(-n_days // chunk_days)
    if per_source > MAX_CHUNKS_PER_SOURCE:
        raise ValueError(f"{n_days} days in chunks of {chunk_days} make {per_source} chunks per source, more "
                         f"than Airflow maps per task ({MAX_CHUNKS_PER_SOURCE}): raise chunk_days")
    out = []
    for sid in chosen:
        for i in range(per_source):
            lo = first + timedelta(days=i * chunk_days)
            hi = min(lo + timedelta(days=chunk_days - 1), last)
            out.append(Chunk(sid, lo, hi, bool(extract and sources[sid])))
    return out


def by_source(chunks: Iterable[Chunk], sources: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """source id -> its chunks as dicts (every source present, [] if it has none): what the
    DAG's mapped task of each source expands over."""
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in sources}
    for c in chunks:
        out[c.source].append(c.as_dict())
    return out


def windows(chunk: Chunk, step: timedelta = STEP) -> list[tuple[datetime, datetime]]:
    """The chunk's extraction windows: the ones the hourly schedule would have run."""
    start, end = chunk.window
    out = []
    while start < end:
        out.append((start, min(start + step, end)))
        start += step
    return out


COUNTS = ("received", "accepted", "flagged", "quarantined", "duplicates")


def announcements(results: Iterable[Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """domain -> the extra of its one silver asset event for the whole backfill: every KST
    date the chunks' batches touch (including batches an earlier run already committed, so
    that a backfill resumed after a failure still rebuilds them downstream), and the counts."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        if not r:
            continue
        for domain in r["domains"]:
            e = out.setdefault(domain, {"domain": domain, "dates": set(), "sources": set(), "chunks": 0,
                                        "batches": 0, "normalized": 0, **{k: 0 for k in COUNTS}, "backfill": True})
            e["dates"].update(r["dates"])
            e["sources"].add(r["source"])
            e["chunks"] += 1
            e["batches"] += r["batches"]
            e["normalized"] += r["normalized"]
            for k in COUNTS:
                e[k] += r[k]
    for e in out.values():
        e["dates"], e["sources"] = sorted(e["dates"]), sorted(e["sources"])
    return {d: out[d] for d in sorted(out) if out[d]["dates"]}


class ChunkFailed(RuntimeError):
    """Some batches of a chunk failed deterministically (quality or reconciliation)."""


def run_chunk(chunk: Chunk, store: Any = None) -> dict[str, Any]:
    """Process one chunk; returns its counts and the dates and domains its batches touch.

    Batches that fail their quality suites or reconciliation do not stop the chunk: the
    others are committed, then :class:`ChunkFailed` names them (a re-run after the fix
    processes only what is still pending)."""
    from etl import ingest, landing, tables
    from etl.normalize import ReconciliationError
    from etl.sources import load_sources
    from etl.storage import BATCHES, lake
    from quality.validate import QualityError

    store = store or lake()
    source = load_sources()[chunk.source]
    extracted = 0
    if chunk.extract:
        for ws, we in windows(chunk):
            extracted += bool(ingest.extract(chunk.source, ws, we, store)["landed"])
    keys = sorted((k for day in chunk.days for k in landing.list_envelopes(store, chunk.source, day)),
                  key=landing.batch_id_of)   # batch ids sort by window
    pending = {k for day in chunk.days for k in ingest.pending_batches(chunk.source, day, store)} if keys else set()
    total: dict[str, Any] = {"source": chunk.source, "first": chunk.first.isoformat(), "last": chunk.last.isoformat(),
                             "extracted": extracted, "batches": len(keys), "normalized": 0,
                             **{k: 0 for k in COUNTS}}
    dates: set[str] = set()
    failed: list[str] = []
    for key in keys:
        if key not in pending:
            continue
        try:
            r = ingest.normalize(chunk.source, key, store)
        except (QualityError, ReconciliationError) as exc:
            failed.append(f"{landing.batch_id_of(key)}: {exc}")
            continue
        total["normalized"] += 1
        dates.update(r["dates"])
        for k in COUNTS:
            total[k] += r.get(k) or 0
    done = [landing.batch_id_of(k) for k in keys if k not in pending]
    if done:   # batches an earlier run committed: their dates still go downstream
        months = sorted({m for d in chunk.days for m in (d[:7], _prev_month(d))})
        ledger = tables.read(store, BATCHES, [("month", "in", months)], columns=["batch_id", "dates"]).to_pylist()
        wanted = set(done)
        dates.update(d for row in ledger if row["batch_id"] in wanted for d in row["dates"])
    total["dates"] = sorted(dates)
    total["domains"] = list(source.domains)
    log.info("%s: %d batches, %d normalised now (%d extracted windows landed new bytes), accepted %d, "
             "quarantined %d, duplicates %d", chunk.label, len(keys), total["normalized"], extracted,
             total["accepted"], total["quarantined"], total["duplicates"])
    if failed:
        raise ChunkFailed(f"{chunk.label}: {len(failed)} of {len(keys)} batches failed; the others are committed. "
                          + "; ".join(failed[:5]))
    return total


def _prev_month(day: str) -> str:
    """The ledger's month is the UTC month of the window start, which for the first KST hours of
    a month's first day is the month before."""
    d = date.fromisoformat(day).replace(day=1) - timedelta(days=1)
    return d.isoformat()[:7]
