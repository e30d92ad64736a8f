"""The static portal, generated from the live release into ``portal/`` on the public side.

Korean pages at ``portal/``, English at ``portal/en/``, each with a link to the other. Every
link is relative, so the same files work from the API (``citylake serve``), any static host or
an S3 website of the public bucket: pages reach the published files as ``<portal>/../<path>``.
Everything a page needs to be read (tables, downloads, schema, previews) is in its HTML; the
map, the chart and the catalogue filter are JavaScript on top, with vendored libraries only.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from etl.storage import Store
from publish import changes, formats, licences
from publish.catalog import Dataset, load_catalogue, sources_of
from publish.api import duck
from publish.portal import data, i18n, vendor

log = logging.getLogger(__name__)

PREFIX = "portal"
API_BASE = "http://127.0.0.1:8800"      # shown in snippets; pages served over HTTP show their own origin
GRADE_COLOURS = {1: "#1e6fd9", 2: "#2e9e4f", 3: "#f08c00", 4: "#d63031", 0: "#8a8f98"}
GRADE_NAMES = {1: ("좋음", "Good"), 2: ("보통", "Moderate"), 3: ("나쁨", "Bad"), 4: ("매우나쁨", "Very bad")}


@dataclass(frozen=True)
class Page:
    """Where a page sits: ``path`` under ``portal/`` for Korean; English adds ``en/``."""
    path: str
    lang: str

    @property
    def key(self) -> str:
        return self.path if self.lang == "ko" else f"en/{self.path}"

    @property
    def root(self) -> str:
        return "../" * self.key.count("/")

    def context(self, t: Callable[[str], str]) -> dict[str, Any]:
        other = "en" if self.lang == "ko" else "ko"
        return {"lang": self.lang, "other_lang": other, "root": self.root, "files": self.root + "../",
                "home": self.root + ("" if self.lang == "ko" else "en/"),
                "switch_href": self.root + Page(self.path, other).key, "t": t}


def _env() -> Environment:
    env = Environment(loader=PackageLoader("publish.portal", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.globals["num"] = lambda v: "–" if v is None else f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
    return env


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _json_script(doc: Any) -> str:
    """JSON safe inside <script>: no '</' can close the element."""
    return json.dumps(doc, ensure_ascii=False, default=str).replace("</", "<\\/")


def build(store: Store, manifest: dict[str, Any], base_url: str, tiles: dict[str, str | None]) -> dict[str, bytes]:
    """Every file of the portal for the release ``manifest``, keyed by path under ``portal/``."""
    env, catalogue = _env(), load_catalogue()
    history = changes.history(store) if store.exists(changes.INDEX) else []
    stations, districts = data.stations_now(store, manifest), data.districts_now(store, manifest)
    out: dict[str, bytes] = {f"assets/{k}": v for k, v in vendor.assets().items()}
    for name in ("portal.css", "portal.js"):
        out[f"assets/{name}"] = resources.files("publish.portal").joinpath(f"static/{name}").read_bytes()
    for lang in i18n.LANGS:
        def t(key: str, lang: str = lang) -> str:
            return i18n.t(key, lang)

        common = {"release": manifest, "tiles": tiles}
        for ds_id, entry in manifest["datasets"].items():
            page = Page(f"datasets/{ds_id}.html", lang)
            ctx = _dataset_context(store, catalogue.datasets[ds_id], entry, manifest, history, lang, base_url)
            out[page.key] = env.get_template("dataset.html").render(
                **page.context(t), **common, page="dataset", **ctx).encode()
        page = Page("datasets/index.html", lang)
        out[page.key] = env.get_template("catalogue.html").render(
            **page.context(t), **common, page="catalogue", title=t("catalogue"),
            **_catalogue_context(catalogue.datasets, manifest, lang)).encode()
        page = Page("index.html", lang)
        grades = [{"name": GRADE_NAMES[g][lang == "en"], "colour": GRADE_COLOURS[g]} for g in (1, 2, 3, 4)]
        grades.append({"name": t("no_grade"), "colour": GRADE_COLOURS[0]})
        out[page.key] = env.get_template("home.html").render(
            **page.context(t), **common, page="home", title=t("home"), stations=stations, districts=districts,
            grades=grades, alerts=data.alerts(store, lang, base_url),
            stations_json=_json_script({"stations": stations, "colours": GRADE_COLOURS}),
            districts_json=_json_script(data.districts_geojson())).encode()
    return out


def _catalogue_context(datasets: dict[str, Dataset], manifest: dict[str, Any], lang: str) -> dict[str, Any]:
    rows = []
    for ds_id, entry in manifest["datasets"].items():
        ds = datasets[ds_id]
        title, description = getattr(ds, f"title_{lang}"), getattr(ds, f"description_{lang}")
        keywords = list(getattr(ds, f"keywords_{lang}"))
        rows.append({"id": ds_id, "title": title, "description": description, "licence": entry["licence"],
                     "frequency": ds.frequency, "frequency_name": i18n.frequency(ds.frequency, lang),
                     "rows": entry["rows"], "keywords": keywords,
                     "formats": ", ".join(sorted({f["format"] for f in entry["files"]})),
                     "search": " ".join([ds_id, title, description, *keywords]).lower()})
    return {"datasets": rows, "licences": sorted({r["licence"] for r in rows}),
            "frequencies": [{"value": f, "name": i18n.frequency(f, lang)} for f in sorted({r["frequency"] for r in rows})]}


def _dataset_context(store: Store, ds: Dataset, entry: dict[str, Any], manifest: dict[str, Any],
                     history: list[dict[str, Any]], lang: str, base_url: str) -> dict[str, Any]:
    bulk = data.bulk_parquet(manifest, ds.id)
    dataset_manifest = json.loads(store.get(entry["path"] + "manifest.json"))
    types = duck.schema(store, bulk) if bulk else {}
    preview_columns, preview_rows = data.preview(store, bulk) if bulk and entry["rows"] else ([], [])
    entity, metrics = data.series_columns(ds, types)
    lic = licences.licence(entry["licence"])
    files = [{**f, "name": f["path"].rsplit("/", 1)[-1], "size": _size(f["bytes"])}
             for f in sorted(entry["files"], key=lambda f: (f["period"] is not None, f["period"] or "", f["format"]))]
    return {
        "ds": ds, "entry": entry, "title": getattr(ds, f"title_{lang}"),
        "description": getattr(ds, f"description_{lang}"), "keywords": list(getattr(ds, f"keywords_{lang}")),
        "frequency": i18n.frequency(ds.frequency, lang), "temporal": dataset_manifest.get("temporal"),
        "licence": {"title": getattr(lic, f"name_{lang}"), "url": lic.url},
        "sources": sorted(sources_of(ds)), "files_list": files, "bulk": bulk,
        "columns": [{"name": c.name, "type": types.get(c.name, ""), "unit": c.unit,
                     "description": getattr(c, f"description_{lang}")} for c in ds.columns if c.name in types],
        "preview_columns": preview_columns, "preview_rows": preview_rows,
        "chart": {"parquet": bulk, "entity": entity, "metrics": metrics} if entity and metrics and entry["rows"] else None,
        "importmap": _json_script({"imports": {name: f"{Page(f'datasets/{ds.id}.html', lang).root}assets/vendor/{path}"
                                               for name, path in vendor.IMPORTS.items()}}),
        "quality": manifest.get("quality_reports"), "changes": entry.get("changes") or {},
        "history": [{"release": r["release"], "as_of": r["as_of"], "version": r["datasets"][ds.id]["version"]}
                    for r in reversed(history) if ds.id in r["datasets"]][:10],
        "api_base": API_BASE, "public_base_html": _public_base(base_url),
    }


def _public_base(base_url: str) -> Markup:
    """The public files' address in snippets. A file:// base (the demo) is marked so a page
    served over HTTP shows its own origin instead, which serves the same tree."""
    base = escape(base_url.rstrip("/"))
    return Markup(f"<span data-origin>{base}</span>") if base_url.startswith("file://") else base


def publish_site(store: Store, manifest: dict[str, Any], base_url: str, gate: Any) -> int:
    """Build the portal and write it under ``portal/``: assets first, the home pages last, each
    file replaced whole (a reader sees the old or the new page, never part of one). Every page
    goes through the privacy ``gate`` (:class:`publish.privacy.Gate`) before anything is written."""
    from etl.settings import get_settings

    settings = get_settings()
    files = build(store, manifest, base_url, {"url": settings.portal_tiles_url,
                                              "attribution": settings.portal_tiles_attribution})
    for path, body in files.items():
        if path.endswith(".html"):
            gate.scan(f"{PREFIX}/{path}", body, "text")
    gate.raise_if_failed()
    order = sorted(files, key=lambda p: (not p.startswith("assets/"), p.endswith("index.html"), p))
    for path in order:
        store.put(f"{PREFIX}/{path}", files[path], formats.content_type(path))
    log.info("portal: %d files for release %s", len(files), manifest["release"])
    return len(files)
