"""Open-data releases, made whenever gold tables change.

Wiring only: the work is in ``publish.release``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import Asset, AssetAny, Param, dag, task

from etl.aggregate.runner import MODELS
from etl.assets import gold_asset

DOMAINS = sorted({m.domain for m in MODELS})
RELEASE = Asset(name="open_data_release", uri="citylake://public/latest", group="citylake-public")

DOC = """
### Open-data release

Runs whenever a gold asset is updated (an aggregate rebuild), or by hand.

1. **release** builds a new version of every dataset whose gold table changed (monthly and
   whole-dataset files in Parquet, CSV with BOM, JSON Lines, GeoJSON; datapackage.json, data
   dictionary), runs the licence rule and the **privacy gate** over every file before anything is
   written, writes the release manifest and DCAT-AP catalogue, and only then switches
   `latest.json` to it; then the changes feed and the citizen alerts feeds. A failure at any
   point leaves the previous release live. Re-running with the same inputs changes nothing.
2. **verify** reads the live release back: every file's size and SHA-256 against the manifest,
   and the privacy gate over all of it.

`as_of` (KST date) decides which months are final and which daycare rows have passed their
embargo; by default the KST date the run was triggered at. Catalogue: `publish/catalog/`;
layout and formats: `docs/PUBLISHING.md`.
"""


@dag(
    dag_id="publish_open_data",
    schedule=AssetAny(*(gold_asset(d) for d in DOMAINS)),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,          # releases are made one after the other
    tags=["citylake", "publish"],
    default_args={"owner": "citylake-data-eng", "retries": 2, "retry_delay": timedelta(minutes=1),
                  "execution_timeout": timedelta(minutes=60)},
    params={
        "as_of": Param(None, type=["null", "string"], format="date",
                       description="KST date the release is as of (default: the run's date in KST)"),
        "datasets": Param([], type="array", items={"type": "string"},
                          description="only these datasets (default: all; the others keep their live version)"),
    },
    doc_md=DOC,
)
def publish_open_data() -> None:
    @task(outlets=[RELEASE])
    def release(params: dict | None = None, dag_run=None, *, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from publish.release import DETERMINISTIC, as_of_for_run, publish

        params = params or {}
        try:
            result = publish(as_of=as_of_for_run(params.get("as_of"), dag_run), datasets=params.get("datasets") or None)
        except DETERMINISTIC as exc:      # a licence or privacy finding: retrying cannot help
            raise AirflowFailException(str(exc)) from exc
        outlet_events[RELEASE].extra = {"release": result["release"], "changed": result["changed"]}
        return {k: v for k, v in result.items() if k != "rows"}

    @task
    def verify() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from publish.release import verify as check

        result = check()
        if not result["ok"]:
            raise AirflowFailException("the live release does not verify: " + "; ".join(result["problems"][:10]))
        return {k: v for k, v in result.items() if k != "problems"}

    release() >> verify()


publish_open_data()
