"""Daily quality tables and the Data Docs index, rebuilt when silver changes.

Wiring only: the work is in ``quality.daily`` and ``quality.docs``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import AssetAny, Param, dag, task

from etl.assets import quality_asset, silver_asset
from quality.metrics import DOMAINS

DOC = """
### Data quality tables

Runs whenever an ingest DAG updates a silver asset (any domain), or by hand with `dates`.

1. **dates_to_rebuild** collects the KST dates the triggering asset events' extras name
   (`extra.dates`), or the `dates` param;
2. **rebuild** recomputes `quality_daily` (per domain, source and day: received, accepted,
   flagged, quarantined, duplicates, counts per flag and reason, pass rate per expectation)
   and `device_health` (per device and day: last seen, completeness, stuck/spike counts,
   battery, status ok/degraded/offline) for exactly those dates, one atomic Delta commit
   each, so a re-run or a late batch is always safe;
3. **data_docs** renders Great Expectations' Data Docs pages for the batches of those dates
   that have none yet (ingest writes only the batch summary page, to stay fast) and
   rewrites `quality/docs/index.html`, the site's front page.

Query the results with `citylake quality report` or `citylake query`.
"""

SILVER = [silver_asset(d) for d in DOMAINS]
QUALITY = quality_asset()


@dag(
    dag_id="quality_tables",
    schedule=AssetAny(*SILVER),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["citylake", "quality"],
    default_args={"owner": "citylake-data-eng", "retries": 2, "retry_delay": timedelta(minutes=1),
                  "execution_timeout": timedelta(minutes=30)},
    params={"dates": Param([], type="array", items={"type": "string", "format": "date"},
                           description="KST dates to rebuild (when triggered by hand)")},
    doc_md=DOC,
)
def quality_tables() -> None:
    @task
    def dates_to_rebuild(params: dict | None = None, triggering_asset_events=None) -> list[str]:
        dates = set((params or {}).get("dates") or [])
        for events in (triggering_asset_events or {}).values():
            for event in events:
                dates.update((event.extra or {}).get("dates") or [])
        return sorted(dates)

    @task(outlets=[QUALITY])
    def rebuild(dates: list[str], *, outlet_events=None) -> dict:
        from quality import daily

        result = daily.rebuild(dates)
        outlet_events[QUALITY].extra = {"dates": result["dates"]}
        return result

    @task
    def data_docs(rebuilt: dict) -> dict:
        from etl.storage import lake
        from quality import docs

        store = lake()
        rendered = docs.render_pending(store, rebuilt["dates"])
        return {"rendered_batches": rendered, "index": docs.build_index(store)}

    data_docs(rebuild(dates_to_rebuild()))


quality_tables()
