"""The citizen alerts feed: threshold alerts from the gold tables and new releases, as Atom 1.0
and JSON Feed 1.1 in Korean and English (the city reposts it on its social channels).

Entry ids are tag URIs built only from what identifies the event (an air episode by district and
start hour, a water event by probe, metric, bound and first reading), so a reader sees one item
that is updated as the event grows, never a new one per run. Rendering reads no clock: the same
entries give the same bytes, whichever day the release is rebuilt.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import astuple, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from urllib.parse import quote, urlsplit

from etl.timeutil import KST, UTC, kst_day_bounds, parse_iso, utc

TAG_YEAR = "2026"                      # the date part of every tag URI: changing it changes every id
LOCAL_AUTHORITY = "citylake.local"     # tag authority when the base URL is not http(s) (file:// demo)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LANGS = ("ko", "en")
ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

# kind -> the published dataset an alert points to (publish/catalog/datasets.yaml ids)
DATASETS = {"air": "air-quality-district-hourly", "water": "water-quality-exceedances",
            "bins": "waste-bins-daily", "lights": "streetlight-outages"}
POLLUTANTS = {"pm25": "PM2.5", "pm10": "PM10", "o3": "O3", "no2": "NO2", "co": "CO", "so2": "SO2"}
FEED_TEXT = {
    "ko": {"title": "고양특례시 시민 알림", "author": "고양특례시",
           "subtitle": "대기질, 수질, 쓰레기통, 보안등 알림과 새 공공데이터 배포"},
    "en": {"title": "Goyang citizen alerts", "author": "Goyang Special City",
           "subtitle": "Air quality, water quality, waste bin and streetlight alerts, and new open-data releases"},
}


@dataclass(frozen=True)
class Entry:
    id: str              # stable tag URI
    kind: str            # "air" | "water" | "bins" | "lights" | "release"
    updated: datetime    # tz-aware UTC
    title_ko: str
    title_en: str
    summary_ko: str
    summary_en: str
    link: str            # absolute URL
    district_code: str = ""

    def __post_init__(self) -> None:
        if self.updated.tzinfo is None:
            raise ValueError(f"entry {self.id}: updated must be tz-aware")


# ---- identifiers, links and time formats ---------------------------------------------------

def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def _authority(base_url: str) -> str:
    """The host of an http(s) base URL: ids then name the city's own domain."""
    parts = urlsplit(base_url)
    if parts.scheme in ("http", "https") and parts.hostname:
        return parts.hostname
    return LOCAL_AUTHORITY


def tag_uri(base_url: str, *path: str) -> str:
    """``tag:<host>,2026:<path>``; path segments are percent-encoded so any device id is safe."""
    specific = "/".join(quote(str(p), safe="-._~:") for p in path)
    return f"tag:{_authority(base_url)},{TAG_YEAR}:{specific}"


def _dataset_link(base_url: str, kind: str) -> str:
    return f"{_base(base_url)}/datasets/{DATASETS[kind]}/"


def _kst_text(ts: datetime) -> str:
    """What a citizen reads: local wall time, e.g. ``2026-11-24 10:00 KST``."""
    return f"{utc(ts).astimezone(KST):%Y-%m-%d %H:%M} KST"


def _rfc3339(ts: datetime) -> str:
    return f"{utc(ts):%Y-%m-%dT%H:%M:%SZ}"


def _num(value: Any) -> str:
    return f"{float(value):g}"


def _window(as_of: date, days: int) -> tuple[date, datetime, datetime]:
    """First KST day of the window and its UTC bounds: ``days`` days ending with as_of."""
    first = as_of - timedelta(days=max(days, 1) - 1)
    return first, kst_day_bounds(first)[0], kst_day_bounds(as_of)[1]


# ---- reading the gold tables ---------------------------------------------------------------

def _has_table(con: Any, name: str) -> bool:
    """Gold tables appear once their first partition is built; a missing one means no alerts."""
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
    return bool(row and row[0])


def _rows(con: Any, table: str, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    if not _has_table(con, table):
        return []
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


# Consecutive bad hours share period_start - n hours (n: their rank in the district): one episode.
# Hours after the as-of day are not read, so a rebuilt release shows what it showed then.
_AIR_SQL = """
WITH bad AS (
    SELECT *, period_start - to_hours(row_number() OVER (PARTITION BY district_code ORDER BY period_start))
              AS episode
    FROM air_quality_district_hourly
    WHERE cai_grade >= 3 AND period_start < $until
)
SELECT district_code, any_value(district_ko) AS district_ko, any_value(district_en) AS district_en,
       min(period_start) AS first_start, max(period_end) AS last_end, count(*) AS hours,
       max(cai) AS peak_cai, arg_max(cai_grade_ko, cai_grade) AS grade_ko,
       arg_max(cai_grade_en, cai_grade) AS grade_en, arg_max(cai_main, cai) AS pollutant
FROM bad
GROUP BY district_code, episode
HAVING max(period_start) >= $since
ORDER BY district_code, first_start
"""

# A row carried over midnight (open_at_start, the day after a row open_at_end) continues its chain.
_WATER_SQL = """
WITH days AS (
    SELECT *, CAST(date AS DATE) AS day FROM water_quality_exceedances WHERE CAST(date AS DATE) <= $last
),
linked AS (
    SELECT *, CASE WHEN open_at_start AND lag(open_at_end) OVER w AND lag(day) OVER w = day - 1
                   THEN 0 ELSE 1 END AS starts_chain
    FROM days
    WINDOW w AS (PARTITION BY device_id, metric, bound ORDER BY start_ts)
),
chains AS (
    SELECT *, sum(starts_chain) OVER (PARTITION BY device_id, metric, bound ORDER BY start_ts
                                      ROWS UNBOUNDED PRECEDING) AS chain
    FROM linked
)
SELECT device_id, metric, bound, any_value(district_code) AS district_code,
       any_value(district_ko) AS district_ko, any_value(district_en) AS district_en, any_value(unit) AS unit,
       any_value(limit_value) AS limit_value, any_value(limit_name_ko) AS limit_name_ko,
       any_value(limit_name_en) AS limit_name_en, min(start_ts) AS first_start,
       arg_max(end_ts, start_ts) AS last_end, arg_max(open_at_end, start_ts) AS ongoing,
       CASE WHEN any_value(bound) = 'max' THEN max(peak_value) ELSE min(peak_value) END AS peak_value,
       arg_max(peak_ts, CASE WHEN bound = 'max' THEN peak_value ELSE -peak_value END) AS peak_ts,
       sum(readings) AS readings
FROM chains
GROUP BY device_id, metric, bound, chain
HAVING max(day) >= $first
ORDER BY device_id, metric, bound, first_start
"""

_BINS_SQL = """
SELECT CAST(date AS DATE) AS day, district_code, any_value(district_ko) AS district_ko,
       any_value(district_en) AS district_en, count(DISTINCT device_id) AS bins,
       sum(overflow_hours) AS hours, list_sort(list_distinct(list(dong_ko))) AS dongs_ko,
       list_sort(list_distinct(list(dong_en))) AS dongs_en
FROM waste_bins_daily
WHERE overflow_hours > 0 AND CAST(date AS DATE) BETWEEN $first AND $last
GROUP BY day, district_code
HAVING count(DISTINCT device_id) >= $min_bins
ORDER BY day, district_code
"""

# Rows of the morning after the as-of day are not read: that night is counted as it stood then.
_LIGHTS_SQL = """
SELECT CAST(night AS DATE) AS night, dong_code, any_value(dong_ko) AS dong_ko, any_value(dong_en) AS dong_en,
       any_value(district_code) AS district_code, any_value(district_ko) AS district_ko,
       any_value(district_en) AS district_en, count(DISTINCT device_id) AS lights, sum(minutes) AS minutes,
       min(period_start) AS first_start, max(period_end) AS last_end
FROM streetlight_outages
WHERE CAST(date AS DATE) <= $last AND CAST(night AS DATE) >= $first
GROUP BY CAST(night AS DATE), dong_code
HAVING count(DISTINCT device_id) >= $min_lights
ORDER BY night, dong_code
"""


# ---- alerts ----------------------------------------------------------------------------------

def _air_entry(r: dict[str, Any], base_url: str) -> Entry:
    start, end = utc(r["first_start"]), utc(r["last_end"])
    label = POLLUTANTS.get(r["pollutant"] or "", (r["pollutant"] or "").upper())
    span_ko = f"{_kst_text(start)}부터 {_kst_text(end)}까지 {r['hours']}시간"
    span_en = f"{r['hours']} h from {_kst_text(start)} to {_kst_text(end)}"
    return Entry(
        id=tag_uri(base_url, "alert", "air", r["district_code"], f"{start.astimezone(KST):%Y-%m-%dT%H}"),
        kind="air", updated=end, link=_dataset_link(base_url, "air"), district_code=r["district_code"],
        title_ko=f"{r['district_ko']} 대기질 {r['grade_ko']} ({label})",
        title_en=f"{r['district_en']} air quality: {r['grade_en']} ({label})",
        summary_ko=f"{r['district_ko']} 통합대기환경지수(CAI) {r['grade_ko']}: {span_ko}, "
                   f"최고 CAI {_num(r['peak_cai'])}, 주 오염물질 {label}.",
        summary_en=f"{r['district_en']}: integrated air quality index (CAI) {r['grade_en']} for "
                   f"{span_en}; peak CAI {_num(r['peak_cai'])}, main pollutant {label}.")


def _water_entry(r: dict[str, Any], base_url: str) -> Entry:
    start, end = utc(r["first_start"]), utc(r["last_end"])
    unit, peak = r["unit"] or "", _num(r["peak_value"])
    peak_ko, peak_en = ("최고값", "peak") if r["bound"] == "max" else ("최저값", "lowest")
    end_ko = f"{_kst_text(end)} 현재 계속" if r["ongoing"] else f"{_kst_text(end)} 해소"
    end_en = f"still on at {_kst_text(end)}" if r["ongoing"] else f"over at {_kst_text(end)}"
    return Entry(
        id=tag_uri(base_url, "alert", "water", r["device_id"], r["metric"], r["bound"], _rfc3339(start)),
        kind="water", updated=end, link=_dataset_link(base_url, "water"), district_code=r["district_code"] or "",
        title_ko=f"{r['district_ko']} 수질 기준 초과: {r['limit_name_ko']}",
        title_en=f"{r['district_en']} water quality: {r['limit_name_en']}",
        summary_ko=f"측정기 {r['device_id']}: {_kst_text(start)} 시작, {end_ko}. {peak_ko} {peak} {unit} "
                   f"({_kst_text(r['peak_ts'])}), 기준 {_num(r['limit_value'])} {unit}, 초과 측정 {r['readings']}회.",
        summary_en=f"Probe {r['device_id']}: from {_kst_text(start)}, {end_en}; {peak_en} {peak} {unit} "
                   f"at {_kst_text(r['peak_ts'])}, limit {_num(r['limit_value'])} {unit}, "
                   f"{r['readings']} readings beyond it.")


def _bins_entry(r: dict[str, Any], base_url: str) -> Entry:
    day: date = r["day"]
    n, hours = r["bins"], r["hours"]
    bins_en = "1 bin" if n == 1 else f"{n} bins"
    return Entry(
        id=tag_uri(base_url, "alert", "bins", r["district_code"], day.isoformat()),
        kind="bins", updated=kst_day_bounds(day)[1], link=_dataset_link(base_url, "bins"),
        district_code=r["district_code"],
        title_ko=f"{r['district_ko']} 쓰레기통 {n}개 넘침",
        title_en=f"{r['district_en']}: {bins_en} overflowing",
        summary_ko=f"{day.isoformat()} {r['district_ko']}에서 쓰레기통 {n}개가 넘쳤습니다 "
                   f"(넘침 시간 합계 {hours}시간). 동: {', '.join(r['dongs_ko'])}.",
        summary_en=f"On {day.isoformat()}, {bins_en} overflowed in {r['district_en']} "
                   f"({hours} overflow hours in all). Dongs: {', '.join(r['dongs_en'])}.")


def _lights_entry(r: dict[str, Any], base_url: str) -> Entry:
    night: date = r["night"]
    n, start, end = r["lights"], utc(r["first_start"]), utc(r["last_end"])
    minutes = round(float(r["minutes"]))
    return Entry(
        id=tag_uri(base_url, "alert", "lights", r["dong_code"], night.isoformat()),
        kind="lights", updated=end, link=_dataset_link(base_url, "lights"), district_code=r["district_code"] or "",
        title_ko=f"{r['district_ko']} {r['dong_ko']} 보안등 {n}개 꺼짐",
        title_en=f"{r['dong_en']}, {r['district_en']}: {n} streetlights out",
        summary_ko=f"{night.isoformat()} 밤 {r['dong_ko']}에서 보안등 {n}개가 꺼졌습니다 "
                   f"({_kst_text(start)} ~ {_kst_text(end)}, 소등 시간 합계 {minutes}분).",
        summary_en=f"On the night of {night.isoformat()}, {n} streetlights were out in {r['dong_en']} "
                   f"({_kst_text(start)} to {_kst_text(end)}, {minutes} light-minutes in all).")


def alert_entries(con: Any, as_of: date, base_url: str) -> list[Entry]:
    """Threshold alerts of the ``alerts_days`` KST days ending with ``as_of`` (inclusive).

    ``con`` is a DuckDB connection in which the gold tables are queryable by name; a table
    that does not exist yields no alerts of its kind.
    """
    from etl.settings import get_settings

    s = get_settings()
    first, since, until = _window(as_of, s.alerts_days)
    dates = {"first": first, "last": as_of}
    queries = (
        ("air_quality_district_hourly", _AIR_SQL, {"since": since, "until": until}, _air_entry),
        ("water_quality_exceedances", _WATER_SQL, dates, _water_entry),
        ("waste_bins_daily", _BINS_SQL, {**dates, "min_bins": s.alerts_bins_overflowing_min}, _bins_entry),
        ("streetlight_outages", _LIGHTS_SQL, {**dates, "min_lights": s.alerts_light_cluster_min}, _lights_entry),
    )
    return [make(r, base_url) for table, sql, params, make in queries for r in _rows(con, table, sql, params)]


# ---- releases --------------------------------------------------------------------------------

def _changed(manifest: dict[str, Any], previous: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """Datasets whose version differs from the previous release's (all of them without one)."""
    before = (previous or {}).get("datasets", {})
    return [(ds_id, ds) for ds_id, ds in sorted(manifest.get("datasets", {}).items())
            if (before.get(ds_id) or {}).get("version") != ds.get("version")]


def _row_changes(ds: dict[str, Any]) -> tuple[int, int, int]:
    """Rows added, changed and removed, summed over the months the release touched."""
    months = list((ds.get("changes") or {}).values())
    added, changed, removed = (sum(int(m.get(k, 0)) for m in months) for k in ("added", "changed", "removed"))
    return added, changed, removed


def _dataset_lines(changed: list[tuple[str, dict[str, Any]]]) -> tuple[str, str]:
    ko, en = [], []
    for ds_id, ds in changed:
        added, changed_rows, removed = _row_changes(ds)
        ko.append(f"- {ds.get('title_ko') or ds_id} ({ds_id}) {ds.get('version', '')}: "
                  f"추가 {added}행, 변경 {changed_rows}행, 삭제 {removed}행")
        en.append(f"- {ds.get('title_en') or ds_id} ({ds_id}) {ds.get('version', '')}: "
                  f"{added} rows added, {changed_rows} changed, {removed} removed")
    return "\n".join(ko) or "- 변경된 데이터셋 없음", "\n".join(en) or "- no dataset changed"


def _release_entry(manifest: dict[str, Any], previous: dict[str, Any] | None, base_url: str) -> Entry:
    release, as_of = manifest["release"], manifest.get("as_of", "")
    ko, en = _dataset_lines(_changed(manifest, previous))
    return Entry(
        id=tag_uri(base_url, "release", release), kind="release", updated=parse_iso(manifest["issued"]),
        link=f"{_base(base_url)}/releases/{quote(release, safe='-._~')}/manifest.json",
        title_ko=f"새 공공데이터 배포 {release}", title_en=f"New open-data release {release}",
        summary_ko=f"기준일 {as_of} 배포 {release}에서 바뀐 데이터셋:\n{ko}",
        summary_en=f"Datasets changed in release {release} (as of {as_of}):\n{en}")


def release_entries(releases: list[dict[str, Any]], base_url: str) -> list[Entry]:
    """One entry per release manifest; each is compared with the release issued before it in
    ``releases``, so pass the one before the oldest you want to announce too."""
    ordered = sorted(releases, key=lambda m: (parse_iso(m["issued"]), m["release"]))
    return [_release_entry(m, prev, base_url) for prev, m in zip([None, *ordered], ordered)]


# ---- rendering -------------------------------------------------------------------------------

def _latest(entries: Iterable[Entry]) -> list[Entry]:
    """One entry per id (the newest; equal times settled by content, never by input order),
    newest first, ties by id."""
    best: dict[str, Entry] = {}
    for e in entries:
        kept = best.get(e.id)
        if kept is None or (utc(e.updated), astuple(e)) > (utc(kept.updated), astuple(kept)):
            best[e.id] = e
    by_id = sorted(best.values(), key=lambda e: e.id)
    return sorted(by_id, key=lambda e: utc(e.updated), reverse=True)


def _feed_updated(entries: list[Entry]) -> datetime:
    return utc(entries[0].updated) if entries else EPOCH


def _feed_url(base_url: str, lang: str, ext: str) -> str:
    return f"{_base(base_url)}/feeds/alerts.{lang}.{ext}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _atom_entry(feed: ET.Element, e: Entry, lang: str) -> None:
    el = _sub(feed, "entry")
    _sub(el, "id", e.id)
    _sub(el, "title", getattr(e, f"title_{lang}"), type="text")
    _sub(el, "updated", _rfc3339(e.updated))
    _sub(el, "link", rel="alternate", href=e.link)
    _sub(el, "summary", getattr(e, f"summary_{lang}"), type="text")
    _sub(el, "category", term=e.kind)


def _atom(entries: list[Entry], lang: str, base_url: str) -> bytes:
    text = FEED_TEXT[lang]
    feed = ET.Element("feed", {"xmlns": ATOM_NS, XML_LANG: lang})
    _sub(feed, "id", tag_uri(base_url, "feed", f"alerts.{lang}"))
    _sub(feed, "title", text["title"], type="text")
    _sub(feed, "subtitle", text["subtitle"], type="text")
    _sub(feed, "link", rel="self", type="application/atom+xml", href=_feed_url(base_url, lang, "atom"))
    _sub(feed, "link", rel="alternate", type="text/html", href=f"{_base(base_url)}/")
    _sub(feed, "updated", _rfc3339(_feed_updated(entries)))
    _sub(_sub(feed, "author"), "name", text["author"])
    for e in entries:
        _atom_entry(feed, e, lang)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def _json_item(e: Entry, lang: str) -> dict[str, Any]:
    return {"id": e.id, "url": e.link, "title": getattr(e, f"title_{lang}"),
            "content_text": getattr(e, f"summary_{lang}"), "date_modified": _rfc3339(e.updated), "tags": [e.kind]}


def _json_feed(entries: list[Entry], lang: str, base_url: str) -> bytes:
    text = FEED_TEXT[lang]
    doc = {"version": JSON_FEED_VERSION, "title": text["title"], "description": text["subtitle"],
           "home_page_url": f"{_base(base_url)}/", "feed_url": _feed_url(base_url, lang, "json"),
           "language": lang, "authors": [{"name": text["author"]}],
           "items": [_json_item(e, lang) for e in entries]}
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def render(entries: list[Entry], base_url: str) -> dict[str, bytes]:
    """The four feed documents by public path; byte-identical for the same entries."""
    latest = _latest(entries)
    out: dict[str, bytes] = {}
    for lang in LANGS:
        out[f"feeds/alerts.{lang}.atom"] = _atom(latest, lang, base_url)
        out[f"feeds/alerts.{lang}.json"] = _json_feed(latest, lang, base_url)
    return out
