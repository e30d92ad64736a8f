"""The portal's JavaScript and CSS libraries, vendored from the npm registry at build time.

Each package is pinned to a version and its registry ``integrity`` (SHA-512 of the tarball);
the tarball is fetched once into a cache directory, checked, and only the files the portal
loads are kept (with the package's licence). Nothing is fetched from a CDN when a page is
viewed: the site ships these files under ``assets/vendor/<package>/``.

``make venv`` runs ``citylake portal vendor``, so the cache is filled when the project is
installed; the site build reads from it and fetches on demand if it is empty.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str            # sha512-<base64>, as the registry's dist.integrity
    keep: tuple[str, ...]     # path prefixes inside the tarball's package/ directory

    @property
    def tarball(self) -> str:
        return f"{self.name}/-/{self.name.split('/')[-1]}-{self.version}.tgz"


PACKAGES = (
    Package("leaflet", "1.9.4",
            "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==",
            ("LICENSE", "dist/leaflet.js", "dist/leaflet.css", "dist/images/")),
    Package("uplot", "1.6.32",
            "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
            ("LICENSE", "dist/uPlot.iife.min.js", "dist/uPlot.min.css")),
    Package("hyparquet", "1.33.0",
            "sha512-8EKLe73vRIMEKVEOe5y+kIzFxo6AvbLvd5ukd7P+yv3RvG0+TZM4qO8imbqxU6zds5pV+OeWRTMwy95mhHUheg==",
            ("LICENSE", "src/")),
    Package("fzstd", "0.1.1",
            "sha512-dkuVSOKKwh3eas5VkJy1AW1vFpet8TA/fGmVA5krThl8YcOVE/8ZIoEA1+U1vEn5ckxxhLirSdY837azmbaNHA==",
            ("LICENSE", "esm/index.mjs")),
    Package("swagger-ui-dist", "5.35.0",          # the API's /docs page
            "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
            ("LICENSE", "NOTICE", "swagger-ui-bundle.js", "swagger-ui.css")),
)

# ES module specifiers the portal's scripts import, for the pages' import map.
IMPORTS = {"hyparquet": "hyparquet/src/index.js", "fzstd": "fzstd/esm/index.mjs"}


class VendorError(RuntimeError):
    pass


def cache_dir() -> Path:
    """``$CITYLAKE_NPM_CACHE``, else ``$XDG_CACHE_HOME/citylake/npm`` (``~/.cache/...``)."""
    explicit = os.environ.get("CITYLAKE_NPM_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "citylake" / "npm"


def _registry() -> str:
    return (os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or REGISTRY).rstrip("/")


def check_integrity(pkg: Package, data: bytes) -> None:
    algorithm, _, expected = pkg.integrity.partition("-")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != expected:
        raise VendorError(f"{pkg.name}@{pkg.version}: tarball {algorithm} is {got}, the pin says {expected}")


def _extract(pkg: Package, data: bytes, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)           # left by an interrupted run
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            rel = member.name.removeprefix("package/")
            if not member.isfile() or ".." in Path(rel).parts or not rel.startswith(pkg.keep):
                continue
            if rel.endswith(("/node.js", ".d.ts", ".map")) or rel.endswith(".js.LICENSE.txt"):
                continue
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    tmp.rename(dest)                                  # the package appears whole or not at all


def ensure(root: Path | None = None) -> Path:
    """Fetch, check and unpack every pinned package not yet in the cache; returns the cache
    directory, which holds ``<name>/...`` for each package."""
    root = root or cache_dir()
    for pkg in PACKAGES:
        dest = root / f"{pkg.name}@{pkg.version}"
        if dest.is_dir():
            continue
        url = f"{_registry()}/{pkg.tarball}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
        except OSError as exc:
            raise VendorError(f"could not fetch {url}: {exc} (set NPM_CONFIG_REGISTRY to a reachable "
                              "npm registry, or fill the cache with `citylake portal vendor` where one is)") from exc
        check_integrity(pkg, data)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _extract(pkg, data, dest)
    return root


def assets(root: Path | None = None) -> dict[str, bytes]:
    """The vendored files as ``vendor/<name>/<path>`` → bytes."""
    root = ensure(root)
    out: dict[str, bytes] = {}
    for pkg in PACKAGES:
        base = root / f"{pkg.name}@{pkg.version}"
        for path in sorted(base.rglob("*")):
            if path.is_file():
                out[f"vendor/{pkg.name}/{path.relative_to(base).as_posix()}"] = path.read_bytes()
    return out
