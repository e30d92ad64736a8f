"""Backfill a date range: re-ingest it chunk by chunk, then tell the downstream DAGs once.

Wiring only: the work is in ``etl.backfill``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import AssetAlias, Param, dag, task

from etl.backfill import MAX_CHUNK_DAYS
from etl.sources import load_sources

SOURCES = sorted(s.id for s in load_sources().values() if s.active)
SILVER = AssetAlias(name="citylake_backfill_silver", group="citylake-silver")

DOC = """
### Backfill a date range of the lake

Triggered by hand with `start` and `end` (KST dates, both included), for a day, a month or a year.

1. **plan** splits the range into chunks of `chunk_days` days per source (`etl/backfill.py`);
2. **backfill_&lt;source&gt;**, mapped (through `chunks_<source>`) over that source's chunks (one task instance per chunk,
   labelled with its days in the grid), optionally re-fetches the chunk's hourly windows from the
   gateway (`extract`: only the cursor APIs and TTN's storage can replay a past window), then
   normalises every landed batch of those days that silver does not hold yet. A source's chunks
   run one at a time (`max_active_tis_per_dag=1`, as the ingest DAGs' `normalize`: overlapping
   windows must see each other's commits); the sources run in parallel. Everything is
   idempotent: a chunk can be retried or the whole backfill re-run, and nothing is duplicated. A
   batch failing its quality suites fails its chunk after the chunk's other batches are in;
3. **announce** emits **one** `silver_<domain>` event per domain for the whole range (extra:
   every date touched and the counts), so `aggregate_gold` and `quality_tables` run once over
   all the dates, instead of once per ingest run as with `airflow backfill create`.
   `aggregate_gold` then fans out one task instance per domain and date.

Sizes, knobs and timings: `docs/AIRFLOW.md`, "Backfilling a year".
"""


@dag(
    dag_id="backfill_lake",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,          # two backfills of one source would normalise concurrently
    tags=["citylake", "backfill"],
    default_args={"owner": "citylake-data-eng", "retries": 2, "retry_delay": timedelta(minutes=2),
                  "retry_exponential_backoff": True, "execution_timeout": timedelta(hours=3)},
    params={
        "start": Param(None, type=["null", "string"], format="date", description="first KST date (included)"),
        "end": Param(None, type=["null", "string"], format="date",
                     description="last KST date (included); before today"),
        "sources": Param([], type="array", items={"type": "string", "enum": SOURCES},
                         description="sources to backfill (default: all)"),
        "chunk_days": Param(7, type="integer", minimum=1, maximum=MAX_CHUNK_DAYS,
                            description="days per task instance"),
        "extract": Param(False, type="boolean",
                         description="re-fetch the windows from the gateways that can replay them first"),
    },
    doc_md=DOC,
)
def backfill_lake() -> None:
    @task(retries=0)
    def plan(params: dict | None = None, logical_date: datetime | None = None, dag_run=None) -> dict[str, list[dict]]:
        from etl import backfill
        from etl.sources import load_sources as sources
        from etl.timeutil import kst_date

        params = params or {}
        if not params.get("start") or not params.get("end"):
            raise ValueError("trigger with the params start and end (KST dates, YYYY-MM-DD)")
        known = {s.id: backfill.can_replay(s.kind, s.options) for s in sources().values() if s.active}
        chunks = backfill.plan(params["start"], params["end"], known, params.get("sources") or None,
                               int(params.get("chunk_days") or 7), bool(params.get("extract")),
                               today=kst_date(logical_date or dag_run.run_after))   # manual runs may have no logical date
        return backfill.by_source(chunks, SOURCES)

    planned = plan()
    lanes = [_lane(sid).expand(chunk=_chunks(sid)(planned)) for sid in SOURCES]
    _announce(lanes)


def _chunks(source_id: str):
    @task(task_id=f"chunks_{source_id}")
    def chunks_of(planned: dict[str, list[dict]]) -> list[dict]:
        return planned.get(source_id, [])

    return chunks_of


def _lane(source_id: str):
    @task(task_id=f"backfill_{source_id}", max_active_tis_per_dag=1, map_index_template="{{ chunk_label }}")
    def backfill(chunk: dict) -> dict:
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from etl.backfill import Chunk, ChunkFailed, run_chunk

        get_current_context()["chunk_label"] = chunk["label"]  # names the mapped instance in the UI
        try:
            return run_chunk(Chunk.from_dict(chunk))
        except ChunkFailed as exc:  # deterministic: retrying cannot help, a fix can
            raise AirflowFailException(str(exc)) from exc

    return backfill


def _announce(lanes: list):
    @task(outlets=[SILVER], trigger_rule="none_failed")
    def announce(*, outlet_events=None, ti=None) -> dict:
        from etl.assets import silver_asset
        from etl.backfill import announcements

        # a list of task ids: every map index of each, as one list (None for a lane with no chunk)
        results = [r for r in ti.xcom_pull(task_ids=[f"backfill_{sid}" for sid in SOURCES]) or [] if r]
        extras = announcements(results)
        for domain, extra in extras.items():
            outlet_events[SILVER].add(silver_asset(domain), extra=extra)
        return {"chunks": len(results), "domains": sorted(extras),
                "dates": sorted({d for e in extras.values() for d in e["dates"]})}

    done = announce()
    lanes >> done
    return done


backfill_lake()
