"""The portal in a real browser: Debian's Chromium driven by Playwright (``executable_path``,
no browser download), against the API serving a real release of the fixture lake over HTTP.

Checked: the air map draws the district outlines and one marker per station in its grade's
colour (elements and pixels); the chart reads the published Parquet through HTTP Range
requests and draws the series (points and pixels); the language switch; the catalogue
filter; a download link returns the published file; pages work without JavaScript; no
request leaves the host."""
from __future__ import annotations

import hashlib
import io
import shutil
from datetime import date
from typing import Any, Iterator

import duckdb
import pytest
from PIL import Image

from publish.portal.site import GRADE_COLOURS
from tests.lakes import released_lake, serving

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
AQ = "air-quality-station-hourly"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from publish.api.app import create_app

    with released_lake(tmp_path_factory, "portal-lake", date(2026, 11, 29)) as (root, store):
        with serving(create_app(store)) as base:
            yield {"base": base, "public": root / "public"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium") == CHROMIUM, "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    pg = context.new_page()
    pg.errors, pg.requests = [], []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: pg.requests.append(r))
    yield pg
    context.close()
    assert not pg.errors, pg.errors
    outside = [r.url for r in pg.requests if not r.url.startswith((site["base"], "data:"))]
    assert not outside, f"requests left the host: {outside}"


def _published(site: dict[str, Any], sql: str) -> list[tuple]:
    public = site["public"]
    return duckdb.sql(sql.replace("$public", str(public))).fetchall()


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _pixels(png: bytes, colour: str, tolerance: int = 12) -> int:
    target = _hex(colour)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(1 for px in image.get_flattened_data() if all(abs(a - b) <= tolerance for a, b in zip(px, target)))


def test_home_map_shows_districts_and_stations_by_grade(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/")
    assert page.url.endswith("/portal/index.html")
    page.wait_for_selector("#map[data-stations]", state="attached")
    stations = page.locator("#map path.station")
    # one marker per published air-quality station with coordinates (the registry is published too)
    expected = _published(site, """
        SELECT count(DISTINCT a.device_id) FROM read_parquet('$public/datasets/air-quality-station-hourly/*/air-quality-station-hourly.parquet') a
        JOIN read_parquet('$public/datasets/device-registry/*/device-registry.parquet') r USING (device_id)
        WHERE r.lat IS NOT NULL""")[0][0]
    assert expected > 0 and stations.count() == expected == int(page.get_attribute("#map", "data-stations"))
    outlines = page.locator("#map path.leaflet-interactive:not(.station)")
    assert outlines.count() == 3                       # Deogyang-gu, Ilsandong-gu, Ilsanseo-gu
    # each marker's colour is its grade's; the table (no-JS alternative) has the same grades
    rows = page.locator("#stations tbody tr")
    assert rows.count() == expected
    table_grades = sorted(int(g) for g in rows.evaluate_all("rs => rs.map(r => r.dataset.grade)"))
    marker_grades = sorted(int(c.split(" g")[1].split()[0]) for c in stations.evaluate_all(
        "ps => ps.map(p => p.getAttribute('class'))"))
    assert marker_grades == table_grades
    for grade in set(marker_grades):
        fill = page.locator(f"#map path.station.g{grade}").first.get_attribute("fill")
        assert fill == GRADE_COLOURS[grade]
    # pixels: the map is drawn, with the outlines' fill and the markers' colours on screen
    png = page.locator("#map").screenshot()
    assert _pixels(png, "#efece4", 4) > 10_000
    for grade in set(marker_grades):
        assert _pixels(png, GRADE_COLOURS[grade]) > 50, f"no pixels of grade {grade}"


def test_chart_reads_parquet_by_range_requests_and_draws(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['base']}/portal/datasets/{AQ}.html")
    page.wait_for_selector("#chart[data-state]", state="attached", timeout=20_000)
    assert page.get_attribute("#chart", "data-state") == "ready"
    device, metric = page.input_value("#chart-entity"), page.input_value("#chart-metric")
    expected = _published(site, f"""
        SELECT count({metric}) FROM read_parquet('$public/datasets/{AQ}/*/{AQ}.parquet') WHERE device_id = '{device}'""")[0][0]
    assert expected > 0 and int(page.get_attribute("#chart", "data-points")) == expected
    ranged = [r for r in page.requests if r.url.endswith(f"{AQ}.parquet") and "range" in r.headers]
    assert ranged and all(r.response().status == 206 for r in ranged)
    png = page.locator("#chart-plot canvas").first.screenshot()
    assert _pixels(png, "#1e6fd9", 40) > 200          # the series line
    # another station: the chart redraws with that station's points
    others = page.locator("#chart-entity option").evaluate_all("os => os.map(o => o.value)")
    other = next(o for o in others if o != device)
    page.select_option("#chart-entity", other)
    expected = _published(site, f"""
        SELECT count({metric}) FROM read_parquet('$public/datasets/{AQ}/*/{AQ}.parquet') WHERE device_id = '{other}'""")[0][0]
    assert int(page.get_attribute("#chart", "data-points")) == expected


def test_language_switch(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['base']}/portal/datasets/{AQ}.html")
    assert page.get_attribute("html", "lang") == "ko"
    assert page.inner_text("h1") == "측정소별 시간 대기질 (통합대기환경지수, 미국 AQI)"
    page.click("#lang-switch")
    page.wait_for_url(f"**/portal/en/datasets/{AQ}.html")
    assert page.get_attribute("html", "lang") == "en"
    assert "Air quality" in page.inner_text("h1") and page.inner_text("#lang-switch") == "한국어"
    page.click("#lang-switch")
    page.wait_for_url(f"**/portal/datasets/{AQ}.html")
    assert page.get_attribute("html", "lang") == "ko"


def test_download_link_returns_the_published_file(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['base']}/portal/en/datasets/{AQ}.html")
    links = page.locator("a[download]")
    assert links.count() >= 4                          # parquet, csv, jsonl, geojson (whole + months)
    for i in range(links.count()):
        link = links.nth(i)
        href = link.evaluate("a => a.href")
        response = page.request.get(href)
        assert response.status == 200
        assert hashlib.sha256(response.body()).hexdigest() == link.get_attribute("data-sha256")
    with page.expect_download() as info:               # a click saves the file
        links.first.click()
    path = info.value.path()
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == links.first.get_attribute("data-sha256")


def test_catalogue_search_and_filters(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['base']}/portal/en/datasets/index.html")
    items = page.locator("#datasets > li")
    total = items.count()
    assert total == 20 and page.inner_text("#count span") == "20"
    page.fill("#q", "parking")
    visible = page.locator("#datasets > li:not([hidden])")
    assert 0 < visible.count() < total and page.inner_text("#count span") == str(visible.count())
    assert all("parking" in t.lower() for t in visible.all_inner_texts())
    page.fill("#q", "")
    page.select_option("#frequency", "hourly")
    assert all(v == "hourly" for v in visible.evaluate_all("ls => ls.map(l => l.dataset.frequency)"))
    page.goto(f"{site['base']}/portal/datasets/index.html?q=대기질")   # the form's GET works as a link
    assert 0 < page.locator("#datasets > li:not([hidden])").count() < total


def test_pages_work_without_javascript_and_by_keyboard(browser: Any, site: dict[str, Any]) -> None:
    context = browser.new_context(java_script_enabled=False)
    pg = context.new_page()
    pg.goto(f"{site['base']}/portal/datasets/{AQ}.html")
    assert pg.locator("table.preview tbody tr").count() == 10
    assert pg.locator("a[download]").count() >= 4
    pg.goto(f"{site['base']}/portal/index.html")
    assert pg.locator("#stations tbody tr").count() > 0 and pg.locator("#map path").count() == 0
    pg.keyboard.press("Tab")                           # the first stop is the skip link
    assert pg.evaluate("document.activeElement.className") == "skip"
    pg.keyboard.press("Enter")
    assert pg.url.endswith("#main")
    assert pg.locator("img:not([alt])").count() == 0
    assert all(pg.locator("[role=img]").nth(i).get_attribute("aria-label")
               for i in range(pg.locator("[role=img]").count()))
    context.close()


def test_api_docs_render_from_vendored_swagger(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['base']}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/latest" in p for p in paths) and any("/sta/v1.1" in p for p in paths)
