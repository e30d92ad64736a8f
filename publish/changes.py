"""Release history and the changes feed: what each release changed, so a researcher syncs
only the months that changed instead of downloading everything again.

``releases/index.json`` lists every release (oldest first) with its datasets' versions and
per-month row changes; ``changes.json`` flattens it into one entry per (release, dataset,
month) with rows added, changed and removed, newest first. :func:`since` filters entries by
the release's ``issued`` time (when the lake data it was built from was committed).
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from etl.storage import Store

INDEX = "releases/index.json"


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """A release as the history keeps it."""
    return {
        "release": manifest["release"], "as_of": manifest["as_of"], "issued": manifest["issued"],
        "previous": manifest.get("previous"), "manifest": f"releases/{manifest['release']}/manifest.json",
        "datasets": {ds_id: {"version": e["version"], "rows": e["rows"], "title_ko": e.get("title_ko", ""),
                             "title_en": e.get("title_en", ""), "changes": e.get("changes", {}),
                             "files": {f["period"] or "all": [x["path"] for x in e.get("files", [])
                                                              if x["period"] == f["period"]]
                                       for f in e.get("files", [])}}
                     for ds_id, e in sorted(manifest["datasets"].items())},
    }


def history(public_store: Store) -> list[dict[str, Any]]:
    if not public_store.exists(INDEX):
        return []
    return json.loads(public_store.get(INDEX))["releases"]


def record(public_store: Store, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Add the release to the history (once) and return the history."""
    releases = history(public_store)
    if all(r["release"] != manifest["release"] for r in releases):
        releases.append(summary(manifest))
        doc = {"description": "Every release of the Goyang open datasets, oldest first", "releases": releases}
        public_store.put(INDEX, (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8"),
                         "application/json")
    return releases


def entries(releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per release, dataset and month whose rows changed, newest first."""
    out = []
    for r in releases:
        for ds_id, d in r["datasets"].items():
            for period, counts in sorted(d.get("changes", {}).items()):
                if not any(counts.values()):
                    continue
                out.append({"release": r["release"], "issued": r["issued"], "as_of": r["as_of"], "dataset": ds_id,
                            "version": d["version"], "period": period, **counts,
                            "files": d.get("files", {}).get(period, [])})
    return sorted(out, key=lambda e: (e["issued"], e["release"], e["dataset"], e["period"]), reverse=True)


def feed(releases: list[dict[str, Any]]) -> dict[str, Any]:
    latest = releases[-1] if releases else None
    return {
        "description": "What each release changed: rows added, changed and removed per dataset and month "
                       "(KST). Fetch the listed files of the months that changed to stay in sync.",
        "latest_release": latest["release"] if latest else None,
        "updated": latest["issued"] if latest else None,
        "entries": entries(releases),
    }


def since(releases: list[dict[str, Any]], when: datetime) -> list[dict[str, Any]]:
    """Changes of the releases issued after ``when`` (tz-aware)."""
    return [e for e in entries(releases) if datetime.fromisoformat(e["issued"]) > when]
