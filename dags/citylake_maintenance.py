"""Nightly lake maintenance: compact yesterday's silver partitions, checkpoint, vacuum.

Wiring only: the work is in ``etl.maintenance``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from quality.metrics import DOMAINS

DOC = """
### Lake maintenance

Hourly ingest batches leave many small Parquet files. Every night (02:30 KST) this DAG
1. **compact**s the previous KST day's silver partitions, one mapped task per domain, and
   the quarantine and quality-check partitions, into files of about 128 MB (one atomic Delta commit each;
   readers and concurrent appends are unaffected);
2. **checkpoint_and_vacuum** writes Delta log checkpoints and deletes files that no table
   version of the last 7 days references (time travel stays possible for a week).
"""


@dag(
    dag_id="maintain_lake",
    schedule=CronTriggerTimetable("30 2 * * *", timezone="Asia/Seoul"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["citylake", "maintenance"],
    default_args={"owner": "citylake-data-eng", "retries": 2, "retry_delay": timedelta(minutes=5),
                  "execution_timeout": timedelta(hours=2)},
    doc_md=DOC,
)
def maintain_lake() -> None:
    @task
    def previous_kst_day(logical_date: datetime | None = None) -> str:
        from etl.timeutil import kst_date

        return (kst_date(logical_date) - timedelta(days=1)).isoformat()

    @task(max_active_tis_per_dag=2)
    def compact(domain: str, day: str) -> dict:
        from etl import maintenance

        return maintenance.compact(day, [domain])

    @task
    def checkpoint_and_vacuum(compacted: list[dict]) -> dict:
        from etl import maintenance

        return maintenance.checkpoint_and_vacuum()

    day = previous_kst_day()
    checkpoint_and_vacuum(compact.partial(day=day).expand(domain=list(DOMAINS)))


maintain_lake()
