"""Ingest DAGs, one per gateway source in etl/sources/sources.yaml.

Wiring only: each task calls one function of ``etl.ingest`` with plain arguments. Adding a
source is a change to sources.yaml, not to this file.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from etl.assets import silver_asset
from etl.sources import Source, load_sources

DOC = """
### Ingest `{id}` — {title}

**Gateway kind:** `{kind}` · **endpoint:** `{endpoint}` · **schedule:** `{schedule}` · **feeds:** {domains}

1. **extract** fetches the run's data interval from the gateway and lands the exact bytes
   received in `landing/source={id}/date=<KST date>/` with an envelope (source, received_at,
   batch_id). The key is a hash of the content: a re-run cannot land the same batch twice.
2. **normalize** decodes the batch into canonical readings (UTC, canonical units, registry
   joined), quarantines what cannot be used with a reason, drops duplicates, and commits to
   the silver Delta table once per batch. Between deduplication and the commit the
   Great Expectations suites of `quality/suites.py` validate the batch: rows failing a
   row-level check go to quarantine with a reason, implausible-but-possible rows are kept
   with a `quality_flag`, and an error-level batch check fails the task with a summary in
   the log (nothing reaches silver; a re-run after the fix processes the landed batch). It
   also fails if `received != accepted + quarantined + duplicates`. The run's quality
   report is on the **Quality report** tab of the DAG run. It also finishes batches that an
   earlier, interrupted run landed but did not normalise.

Extraction runs in parallel across runs (backfills fan out); `normalize` runs one at a time
per source so that overlapping windows see each other's commits. Re-running a run is always safe. The silver asset event's extra lists the KST dates touched.
"""


def build(source: Source):  # noqa: ANN201 - returns an Airflow DAG
    outlets = [silver_asset(d) for d in source.domains]

    @dag(
        dag_id=f"ingest_{source.id}",
        description=source.title,
        # each run extracts its data interval: the interval timetable, not Airflow 3's default
        # cron trigger (whose runs have an empty interval)
        schedule=CronDataIntervalTimetable(source.schedule, timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=4,
        tags=["citylake", "ingest", source.kind, *source.domains] + (["private"] if source.private else []),
        default_args={
            "owner": "citylake-data-eng",
            "retries": 3,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
            "execution_timeout": timedelta(minutes=30),
        },
        params={
            "window_start": Param(None, type=["null", "string"], format="date-time",
                                  description="Override the data interval start (ISO 8601), e.g. to re-ingest a day"),
            "window_end": Param(None, type=["null", "string"], format="date-time",
                                description="Override the data interval end (ISO 8601)"),
        },
        doc_md=DOC.format(id=source.id, title=source.title, kind=source.kind, endpoint=source.endpoint,
                          schedule=source.schedule, domains=", ".join(f"`silver_{d}`" for d in source.domains)),
    )
    def ingest() -> None:
        @task
        def extract(params: dict | None = None, data_interval_start: datetime | None = None,
                    data_interval_end: datetime | None = None) -> dict:
            from etl import ingest as job

            start, end = job.window(params, data_interval_start, data_interval_end)
            return job.extract(source.id, start, end)

        # One normalize at a time per source: overlapping windows of one source (the look-back
        # hour, catch-up) must see each other's commits to drop duplicates. Sources never share
        # devices, so different sources normalise in parallel; extraction always does.
        @task(outlets=outlets, max_active_tis_per_dag=1)
        def normalize(landed: dict, params: dict | None = None, data_interval_start: datetime | None = None,
                      data_interval_end: datetime | None = None, *, outlet_events=None, dag_run=None) -> dict:
            from etl import ingest as job
            from etl.normalize import ReconciliationError
            from quality.validate import QualityError

            start, _ = job.window(params, data_interval_start, data_interval_end)
            try:
                summary = job.normalize_all(source.id, landed.get("envelope"), start)
            except (QualityError, ReconciliationError) as exc:  # deterministic: retrying cannot help, a fix can
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(str(exc)) from exc
            job.record_run(dag_run.dag_id, dag_run.run_id, summary)
            for asset in outlets:
                outlet_events[asset].extra = job.asset_extra(summary, asset.name.removeprefix("silver_"))
            return {k: v for k, v in summary.items() if k != "results"}

        normalize(extract())

    return ingest()


for _source in load_sources().values():
    if _source.active:
        globals()[f"ingest_{_source.id}"] = build(_source)
