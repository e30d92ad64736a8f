"""The dataset catalogue (datasets.yaml + columns.yaml): what is published, in Korean and English.

Loaded and checked once per process. Every metadata format (datapackage.json, DCAT-AP, the
data dictionary pages) is generated from the :class:`Catalogue` this returns, and the release
reads each dataset's table, keys, order, geometry and embargo from it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from etl.aggregate.runner import MODELS, model_doc
from publish import licences

LIFECYCLE_COLUMNS = ("status", "revision")   # added to every gold row on publication
REGISTRY = "registry"          # table name of the device-registry dataset
GEOMETRIES = ("device", "group", "district", "columns", "none")
FREQUENCIES = ("hourly", "daily")


@dataclass(frozen=True)
class Column:
    name: str
    description_en: str
    description_ko: str
    unit: str = ""


@dataclass(frozen=True)
class Dataset:
    id: str
    table: str
    domain: str                        # silver domain, "summary" or "registry"
    title_ko: str
    title_en: str
    description_ko: str
    description_en: str
    keywords_ko: tuple[str, ...]
    keywords_en: tuple[str, ...]
    primary_key: tuple[str, ...]
    sort: tuple[str, ...]
    geometry: str
    frequency: str
    licence: str
    columns: tuple[Column, ...]
    group_key: str = ""
    embargo_until: str = ""           # column holding the first date a row (or embargo_columns) may be public
    embargo_columns: tuple[str, ...] = ()   # empty: the whole row waits
    derivatives_permitted: dict[str, str] = field(default_factory=dict)

    @property
    def partitioned(self) -> bool:
        """Monthly bulk files (every gold table has a KST `date`; the registry has none)."""
        return self.table != REGISTRY

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Catalogue:
    datasets: dict[str, Dataset]
    publisher: dict[str, str]
    contact: dict[str, str]
    homepage: str
    spatial: dict[str, Any]
    settle_days: int

    def by_domain(self, domain: str) -> list[Dataset]:
        return [d for d in self.datasets.values() if d.domain == domain]


class CatalogueError(ValueError):
    """datasets.yaml or columns.yaml is inconsistent; the message lists every problem."""


def _yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("publish.catalog").joinpath(name).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    return parse_catalogue(_yaml("datasets.yaml"), _yaml("columns.yaml"))


def registry_columns() -> tuple[str, ...]:
    from etl.registry.generate import COLUMNS

    return tuple(c for c in COLUMNS if c not in PRIVATE_REGISTRY_COLUMNS)


# Registry columns that are not published: the vendor-side id (a LoRaWAN DevEUI, a gate id) and
# the payload codec are operational details.
PRIVATE_REGISTRY_COLUMNS = ("external_id", "codec")


def parse_catalogue(data: dict[str, Any], glossary: dict[str, dict[str, str]]) -> Catalogue:
    problems: list[str] = []
    models = {m.name: m for m in MODELS}
    default_licence = data.get("default_licence", "KOGL-1")
    datasets: dict[str, Dataset] = {}
    for did, spec in (data.get("datasets") or {}).items():
        table = spec.get("table", "")
        model = models.get(table)
        if model is None and table != REGISTRY:
            problems.append(f"{did}: table {table!r} is neither a gold model nor {REGISTRY!r}")
            continue
        if model is not None:
            description_en, docs = model_doc(table)
            names = list(docs)
        else:
            description_en, names = "", list(registry_columns())
            docs = {}
        columns, missing = [], []
        overrides = spec.get("columns") or {}
        for name in names:
            entry = {**(glossary.get(name) or {}), **(overrides.get(name) or {})}
            en = (overrides.get(name) or {}).get("en") or docs.get(name) or entry.get("en", "")
            if not en or not entry.get("ko"):
                missing.append(name)
            columns.append(Column(name, en, entry.get("ko", ""), entry.get("unit", "")))
        if model is not None:      # every published gold row carries its lifecycle
            for name in LIFECYCLE_COLUMNS:
                entry = glossary.get(name) or {}
                columns.append(Column(name, entry.get("en", ""), entry.get("ko", ""), ""))
                if not entry.get("en") or not entry.get("ko"):
                    missing.append(name)
        if missing:
            problems.append(f"{did}: columns without an English and a Korean description: {', '.join(missing)}")
        licence = spec.get("licence", default_licence)
        if licence not in licences.LICENCES:
            problems.append(f"{did}: unknown licence {licence!r}")
        geometry = spec.get("geometry", "none")
        if geometry not in GEOMETRIES:
            problems.append(f"{did}: geometry {geometry!r} is not one of {GEOMETRIES}")
        frequency = spec.get("frequency", "daily")
        if frequency not in FREQUENCIES:
            problems.append(f"{did}: frequency {frequency!r} is not one of {FREQUENCIES}")
        embargo = spec.get("embargo") or {}
        for key in ("description_ko", "description_en"):     # the privacy settings in force
            if key in spec:
                spec = {**spec, key: _fill(str(spec[key]))}
        ds = Dataset(
            id=did, table=table, domain=model.domain if model else REGISTRY,
            title_ko=spec.get("title_ko") or (model.title_ko if model else ""),
            title_en=spec.get("title_en") or (model.title_en if model else ""),
            description_ko=str(spec.get("description_ko", "")).strip(),
            description_en=str(spec.get("description_en") or description_en).strip(),
            keywords_ko=tuple(spec.get("keywords_ko") or ()), keywords_en=tuple(spec.get("keywords_en") or ()),
            primary_key=tuple(spec.get("primary_key") or ()), sort=tuple(spec.get("sort") or ()),
            geometry=geometry, frequency=frequency, licence=licence, columns=tuple(columns),
            group_key=spec.get("group_key", ""), embargo_until=embargo.get("until", ""),
            embargo_columns=tuple(embargo.get("columns") or ()),
            derivatives_permitted=dict(spec.get("derivatives_permitted") or {}),
        )
        problems += _column_problems(ds, set(names))
        datasets[did] = ds
    if problems:
        raise CatalogueError("dataset catalogue: " + "; ".join(problems))
    return Catalogue(datasets=datasets, publisher=dict(data["publisher"]), contact=dict(data["contact"]),
                     homepage=data["homepage"], spatial=dict(data["spatial"]),
                     settle_days=int(data.get("settle_days", 3)))


def _fill(text: str) -> str:
    from etl.settings import get_settings

    s = get_settings()
    return text.replace("{k}", str(s.gold_daycare_min_count)).replace("{delay}", str(s.gold_daycare_delay_days))


def _column_problems(ds: Dataset, names: set[str]) -> list[str]:
    problems = []
    for what, cols in (("primary_key", ds.primary_key), ("sort", ds.sort), ("embargo columns", ds.embargo_columns),
                       ("embargo until", (ds.embargo_until,) if ds.embargo_until else ()),
                       ("group_key", (ds.group_key,) if ds.group_key else ())):
        unknown = [c for c in cols if c not in names]
        if unknown:
            problems.append(f"{ds.id}: {what} names unknown columns {unknown}")
    if not ds.primary_key:
        problems.append(f"{ds.id}: no primary_key")
    needs = {"device": ("device_id",), "district": ("district_code",), "columns": ("lat", "lon")}.get(ds.geometry, ())
    if ds.geometry == "group" and not ds.group_key:
        problems.append(f"{ds.id}: geometry group needs group_key")
    if any(c not in names for c in needs):
        problems.append(f"{ds.id}: geometry {ds.geometry} needs columns {needs}")
    if not ds.description_ko or not ds.title_ko or not ds.title_en:
        problems.append(f"{ds.id}: needs a title in both languages and a Korean description")
    return problems


def sources_of(ds: Dataset) -> dict[str, str]:
    """The sources (id → licence id) whose data the dataset is derived from."""
    from etl.sources import load_sources

    if ds.domain == REGISTRY:
        return {}
    return {sid: s.licence for sid, s in load_sources().items()
            if ds.domain == "summary" or ds.domain in s.domains}
