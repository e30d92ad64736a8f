"""The source registry (sources.yaml): which gateways exist and how to reach them."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from etl.settings import Settings, get_settings

KINDS = ("airkorea", "http_cursor", "mqtt", "lorawan", "csv_drop")


@dataclass(frozen=True)
class Source:
    id: str
    kind: str
    title: str
    domains: tuple[str, ...]
    schedule: str
    endpoint: str
    secret_env: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    private: bool = False
    licence: str = "KOGL-1"
    active: bool = True

    def secret(self) -> str:
        """The credential, from the environment (or Airflow's secrets backend via AIRFLOW_CONN_*)."""
        if not self.secret_env:
            return ""
        value = os.environ.get(self.secret_env)
        if value:
            return value
        conn_env = "AIRFLOW_CONN_" + self.secret_env.upper()
        if conn_env in os.environ:
            from airflow.sdk import Connection

            return Connection.get(self.secret_env).password or ""
        raise KeyError(
            f"source {self.id!r} needs a credential: set the environment variable {self.secret_env} "
            f"(or an Airflow connection named {self.secret_env})"
        )


def parse_sources(data: dict[str, Any], settings: Settings) -> dict[str, Source]:
    values = {k: getattr(settings, k) for k in ("gateway_host", "airkorea_port", "cursor_port", "lns_port",
                                                 "mqtt_host", "mqtt_port", "csv_drop_dir", "mqtt_topic_root")}
    out: dict[str, Source] = {}
    for sid, spec in data.items():
        spec = dict(spec)
        if spec.get("kind") not in KINDS:
            raise ValueError(f"source {sid}: unknown kind {spec.get('kind')!r} (one of {KINDS})")
        spec["endpoint"] = str(spec["endpoint"]).format(**values)
        opts = dict(spec.get("options") or {})
        if "topic" in opts:  # MQTT: topic from settings, durable client id per source
            opts["topic"] = opts["topic"].format(**values)
            opts.setdefault("client_id", f"{settings.mqtt_client_prefix}-{sid}")
        spec["options"] = opts
        spec["domains"] = tuple(spec["domains"])
        out[sid] = Source(id=sid, **spec)
    return out


@functools.lru_cache(maxsize=1)
def load_sources() -> dict[str, Source]:
    text = resources.files("etl.sources").joinpath("sources.yaml").read_text(encoding="utf-8")
    return parse_sources(yaml.safe_load(text), get_settings())
