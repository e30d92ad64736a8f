"""The portal as files: every page of both languages is generated for the live release, every
relative link and asset resolves to a published file, and the vendored libraries are checked
against their pinned integrity."""
from __future__ import annotations

import json
import posixpath
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

import pytest

from publish.portal import vendor
from tests.lakes import released_lake

API_ROUTES = {"docs"}          # served by the API, not files of the public tree


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "data-parquet") and value:
                self.links.append(value)


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with released_lake(tmp_path_factory, "portal-site-lake", date(2026, 11, 29)) as (root, _):
        yield root / "public"


def test_every_page_of_both_languages_exists(public: Path) -> None:
    pointer = json.loads((public / "latest.json").read_text())
    manifest = json.loads((public / pointer["manifest"]).read_text())
    for prefix in ("portal", "portal/en"):
        assert (public / prefix / "index.html").is_file()
        assert (public / prefix / "datasets/index.html").is_file()
        for ds_id in manifest["datasets"]:
            page = (public / prefix / "datasets" / f"{ds_id}.html").read_text()
            assert ds_id in page and manifest["datasets"][ds_id]["version"] in page
    assert '<html lang="ko">' in (public / "portal/index.html").read_text()
    assert '<html lang="en">' in (public / "portal/en/index.html").read_text()


def test_every_relative_link_resolves_to_a_published_file(public: Path) -> None:
    checked = 0
    for page in sorted((public / "portal").rglob("*.html")):
        parser = _Links()
        parser.feed(page.read_text())
        key = page.relative_to(public).as_posix()
        for link in parser.links:
            if link.startswith(("http://", "https://", "file://", "data:", "#", "mailto:")):
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(key), link.split("#")[0].split("?")[0]))
            if target in API_ROUTES:
                continue
            assert not target.startswith(".."), f"{key}: {link} leaves the public root"
            assert (public / target).is_file(), f"{key}: {link} → {target} is not published"
            checked += 1
    assert checked > 1000


def test_pages_name_no_outside_script_or_style(public: Path) -> None:
    for page in (public / "portal").rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        outside = [link for link in parser.links if link.startswith(("http://", "https://", "//"))
                   and link.endswith((".js", ".css", ".mjs"))]
        assert not outside, f"{page}: {outside}"


def test_vendored_packages_are_checked_against_their_pins(tmp_path: Path) -> None:
    pkg = vendor.PACKAGES[0]
    with pytest.raises(vendor.VendorError, match="the pin says"):
        vendor.check_integrity(pkg, b"not the tarball")
    root = vendor.ensure(tmp_path / "npm")        # a fresh cache: fetched from the npm registry
    for p in vendor.PACKAGES:
        assert (root / f"{p.name}@{p.version}" / "LICENSE").is_file()
    files = vendor.assets(root)
    assert "vendor/leaflet/dist/leaflet.js" in files and "vendor/hyparquet/src/index.js" in files
    assert not any(k.endswith((".map", ".d.ts")) for k in files)
