"""The live release as the API sees it, re-read when ``latest.json`` changes.

``latest.json`` is fetched on every request (a small object); the release manifest and the
dataset manifests it names are parsed again only when its bytes change, so a new release is
served without a restart and an unchanged one costs one small read.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from etl.storage import Store
from publish.api.errors import ApiError
from publish.release import POINTER


@dataclass
class Release:
    pointer: bytes
    manifest: dict[str, Any]
    store: Store
    _dataset_manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    _memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.manifest["release"]

    def entry(self, dataset_id: str) -> dict[str, Any]:
        """The release manifest's entry for a dataset; 404 if the release has none."""
        entry = self.manifest["datasets"].get(dataset_id)
        if entry is None:
            raise ApiError(404, "unknown dataset", f"no dataset {dataset_id!r} in release {self.id}; "
                           f"known: {', '.join(sorted(self.manifest['datasets']))}")
        return entry

    def dataset_manifest(self, dataset_id: str) -> dict[str, Any]:
        if dataset_id not in self._dataset_manifests:
            path = self.entry(dataset_id)["path"].rstrip("/") + "/manifest.json"
            self._dataset_manifests[dataset_id] = json.loads(self.store.get(path))
        return self._dataset_manifests[dataset_id]

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per release: for answers that depend on the release alone."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def bulk_parquet(self, dataset_id: str) -> str:
        """Key of the whole-dataset Parquet file of the live version."""
        return next(f["path"] for f in self.entry(dataset_id)["files"]
                    if f["format"] == "parquet" and f["period"] is None)

    def sha256_of(self, key: str) -> str | None:
        for entry in self.manifest["datasets"].values():
            for f in entry["files"]:
                if f["path"] == key:
                    return f["sha256"]
        return None


class LiveRelease:
    """Hands out the current :class:`Release`; thread-safe, one cached release at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cached: Release | None = None

    def current(self) -> Release:
        if not self.store.exists(POINTER):
            raise ApiError(503, "no release", "nothing has been published yet (no latest.json)")
        pointer = self.store.get(POINTER)
        with self._lock:
            if self._cached is None or self._cached.pointer != pointer:
                manifest = json.loads(self.store.get(json.loads(pointer)["manifest"]))
                self._cached = Release(pointer, manifest, self.store)
            return self._cached
