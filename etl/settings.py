"""Settings: one YAML file of defaults plus environment overrides, built lazily.

Nothing here runs at import time; call :func:`get_settings`. Tests that change the
environment call ``get_settings.cache_clear()``.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "CITYLAKE_"


@dataclass(frozen=True)
class Settings:
    lake_uri: str
    public_uri: str
    s3_endpoint_url: str | None
    s3_region: str
    s3_conn_id: str
    fleet: str
    gateway_host: str
    airkorea_port: int
    cursor_port: int
    lns_port: int
    mqtt_host: str
    mqtt_port: int
    mqtt_protocol: str
    mqtt_topic_root: str
    mqtt_client_prefix: str
    # MQTT login of the extractors and the simulator's publisher (None: anonymous). The password
    # comes from the environment (CITYLAKE_MQTT_PASSWORD) and is kept out of repr() and logs.
    mqtt_username: str | None
    mqtt_password: str | None = field(repr=False)
    csv_drop_dir: str
    pseudonym_key_env: str
    # quality thresholds (quality.suites.Limits)
    quality_min_completeness: float
    quality_incomplete_share_warn: float
    quality_max_lag_s: float
    quality_max_duplicate_rate: float
    quality_max_quarantine_rate: float
    quality_future_tolerance_s: float
    # gold tables (etl.aggregate; the models read them as $gold_... parameters)
    gold_bin_overflow_pct: float
    gold_bin_collection_drop_pct: float
    gold_daycare_min_count: int
    gold_daycare_delay_days: int
    gold_lights_grace_min: float
    # publishing (publish/): the public side's address and the citizen alerts feed
    public_base_url: str | None
    alerts_days: int
    alerts_light_cluster_min: int
    alerts_bins_overflowing_min: int
    # the portal's map: a tile URL template (null: district outlines only, works offline)
    portal_tiles_url: str | None
    portal_tiles_attribution: str | None

    def s3_credentials(self) -> dict[str, str]:
        """Access key, secret and endpoint for s3:// URIs.

        The environment wins (AWS_* variables); otherwise the Airflow connection
        ``s3_conn_id`` is looked up (only when Airflow is importable and configured).
        """
        creds: dict[str, str] = {}
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            creds = {"key": key, "secret": secret}
            token = os.environ.get("AWS_SESSION_TOKEN")
            if token:
                creds["token"] = token
        else:
            creds = _airflow_connection_credentials(self.s3_conn_id)
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or creds.pop("endpoint", None) or self.s3_endpoint_url
        if endpoint:
            creds["endpoint"] = endpoint
        creds.setdefault("region", os.environ.get("AWS_REGION", self.s3_region))
        return creds

    def pseudonym_key(self) -> bytes:
        value = os.environ.get(self.pseudonym_key_env)
        if not value:
            # A fixed development key keeps the demo deterministic; production sets the env var.
            value = "citylake-development-only-key"
        return value.encode()


def _airflow_connection_credentials(conn_id: str) -> dict[str, str]:
    """Read an S3 connection from Airflow's environment/secrets backend, if any."""
    env_name = f"AIRFLOW_CONN_{conn_id.upper()}"
    if env_name not in os.environ:
        return {}
    from airflow.sdk import Connection  # lazy: Airflow is heavy and optional here

    conn = Connection.get(conn_id)
    creds = {"key": conn.login or "", "secret": conn.password or ""}
    extra = conn.extra_dejson or {}
    endpoint = extra.get("endpoint_url") or (extra.get("service_config", {}).get("s3", {}) or {}).get("endpoint_url")
    if endpoint:
        creds["endpoint"] = endpoint
    if extra.get("region_name"):
        creds["region"] = extra["region_name"]
    return creds


def _coerce(field: dataclasses.Field, raw: Any) -> Any:
    if raw is None or raw == "" or raw == "null":
        return None
    if field.type in ("int", int):
        return int(raw)
    if field.type in ("float", float):
        return float(raw)
    return str(raw)


def _resolve_file_uri(uri: str) -> str:
    """Make ``file://./x`` and bare paths absolute so every process agrees."""
    if uri.startswith("s3://"):
        return uri.rstrip("/")
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return "file://" + str(Path(path).expanduser().resolve())


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    text = resources.files("etl.config").joinpath("citylake.yaml").read_text(encoding="utf-8")
    values: dict[str, Any] = yaml.safe_load(text)
    override = env.get(ENV_PREFIX + "CONFIG")
    if override:
        values.update(yaml.safe_load(Path(override).read_text(encoding="utf-8")) or {})
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown settings keys: {sorted(unknown)}")
    for name in fields:
        if ENV_PREFIX + name.upper() in env:
            values[name] = env[ENV_PREFIX + name.upper()]
    coerced = {name: _coerce(f, values.get(name)) for name, f in fields.items()}
    coerced["lake_uri"] = _resolve_file_uri(coerced["lake_uri"])
    coerced["public_uri"] = _resolve_file_uri(coerced["public_uri"])
    coerced["csv_drop_dir"] = str(Path(coerced["csv_drop_dir"]).expanduser().resolve())
    return Settings(**coerced)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
