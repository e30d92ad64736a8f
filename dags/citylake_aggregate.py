"""Gold tables, rebuilt for the (domain, date) partitions new silver data touched.

Wiring only: the work is in ``etl.aggregate.runner``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import AssetAny, Param, dag, task

from etl.aggregate.runner import MODELS
from etl.assets import gold_asset, silver_asset

SUMMARY = "summary"   # models over the other domains' gold tables, rebuilt after them
DOMAINS = sorted({m.domain for m in MODELS} - {SUMMARY})

DOC = """
### Gold tables (DuckDB SQL models)

Runs whenever an ingest DAG updates a silver asset, or by hand with `domains` and `dates`.

1. **partitions** turns the triggering silver asset events (`extra.dates`, the KST dates a
   batch touched) into the (domain, date) partitions to rebuild, or takes the params;
2. **rebuild_&lt;domain&gt;**, mapped over that domain's dates (one task instance per date, so
   the work spreads over the workers), runs every SQL model of the domain
   (`etl/aggregate/models/*.sql`) in DuckDB over silver and replaces exactly that date's
   partition of each gold Delta table in one commit: late data rebuilds its own dates and
   nothing else, and a re-run writes the same rows again. Each instance emits the
   `gold_<domain>` asset with the date and the rows written;
3. **rebuild_summary**, mapped over every date rebuilt, then joins the domains' gold
   tables of that date into `district_daily_summary` (emits `gold_summary`).

Models, columns and conventions: `docs/AGGREGATES.md`; query them with `citylake sql`.
"""


@dag(
    dag_id="aggregate_gold",
    schedule=AssetAny(*(silver_asset(d) for d in DOMAINS)),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=4,
    tags=["citylake", "gold"],
    default_args={"owner": "citylake-data-eng", "retries": 2, "retry_delay": timedelta(minutes=1),
                  "execution_timeout": timedelta(minutes=60)},
    params={
        "dates": Param([], type="array", items={"type": "string", "format": "date"},
                       description="KST dates to rebuild (when triggered by hand)"),
        "domains": Param([], type="array", items={"type": "string", "enum": DOMAINS},
                         description="domains to rebuild (when triggered by hand; default: all)"),
    },
    doc_md=DOC,
)
def aggregate_gold() -> None:
    @task
    def partitions(params: dict | None = None, triggering_asset_events=None) -> dict[str, list[str]]:
        from etl.aggregate.plan import partitions_to_rebuild

        return partitions_to_rebuild(DOMAINS, params or {}, triggering_asset_events or {})

    plan = partitions()
    rebuilt = [_rebuild(domain).expand(day=_dates(domain)(plan)) for domain in DOMAINS]
    rebuilt >> _rebuild(SUMMARY, trigger_rule="none_failed").expand(day=_dates(SUMMARY)(plan))


def _dates(domain: str):
    @task(task_id=f"dates_{domain}")
    def dates_of(plan: dict[str, list[str]]) -> list[str]:
        if domain == SUMMARY:        # every date any domain rebuilds
            return sorted({d for days in plan.values() for d in days})
        return plan.get(domain, [])

    return dates_of


def _rebuild(domain: str, **kwargs):
    asset = gold_asset(domain)

    @task(task_id=f"rebuild_{domain}", outlets=[asset], map_index_template="{{ day }}", **kwargs)
    def rebuild(day: str, *, outlet_events=None) -> dict:
        from airflow.sdk import get_current_context

        from etl.aggregate.runner import rebuild as run

        get_current_context()["day"] = day   # names the mapped instance in the UI (map_index_template)
        result = run(domain, [day])
        outlet_events[asset].extra = {"dates": result["dates"], "tables": result["tables"]}
        return result

    return rebuild


aggregate_gold()
