"""The Airflow assets that connect the DAGs (one place for their names and URIs).

Imported only by DAG files; ``airflow.sdk`` is imported when an asset is made.
"""
from __future__ import annotations

from typing import Any


def silver_asset(domain: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"silver_{domain}", uri=f"citylake://silver/{domain}", group="citylake-silver")


def quality_asset() -> Any:
    from airflow.sdk import Asset

    return Asset(name="quality_daily", uri="citylake://quality/daily", group="citylake-quality")


def gold_asset(domain: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"gold_{domain}", uri=f"citylake://gold/{domain}", group="citylake-gold")
