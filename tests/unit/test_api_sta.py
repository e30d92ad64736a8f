"""The SensorThings API subset as an STA client sees it: the real ``frost_sta_client`` against the
API served by uvicorn over a real release of the small fixture lake, and in-process requests for
the service root, navigation paths and errors. Expected values come from the published Parquet
files, read here with DuckDB independently of the API."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import duckdb
import frost_sta_client as fsc
import pytest
from fastapi.testclient import TestClient

from tests.lakes import released_lake, serving

AS_OF = date(2026, 11, 29)
PREFIX = "/sta/v1.1"
AQ = "air-quality-station-hourly"
HOURLY = {"air_quality": AQ, "weather": "weather-station-hourly", "water_quality": "water-quality-hourly"}


@pytest.fixture(scope="module")
def sta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A lake, a release of it, the API served by uvicorn, an STA client and an in-process client."""
    from publish.api.app import create_app

    with released_lake(tmp_path_factory, "sta-lake", AS_OF) as (root, store):
        app = create_app(store)
        with serving(app) as base:
            yield {"service": fsc.SensorThingsService(base + PREFIX), "http": TestClient(app),
                   "public": root / "public"}


def _bulk(public: Path, dataset: str) -> str:
    pointer = json.loads((public / "latest.json").read_text())
    entry = json.loads((public / pointer["manifest"]).read_text())["datasets"][dataset]
    return str(public / next(f["path"] for f in entry["files"] if f["format"] == "parquet" and f["period"] is None))


def _devices(public: Path) -> dict[str, dict[str, Any]]:
    """The registry rows of the devices that have an hourly station dataset."""
    con = duckdb.connect()
    cur = con.execute("SELECT * FROM read_parquet(?) WHERE domain IN (?, ?, ?)", [_bulk(public, "device-registry"),
                                                                                 *HOURLY])
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}


def _values(public: Path, device: str, metric: str, where: str = "", params: list[Any] | None = None,
            dataset: str = AQ) -> list[tuple[datetime, float]]:
    """(hour start, value) of one device and metric in the published file, oldest first."""
    con = duckdb.connect()
    rows = con.execute(f'SELECT period_start, "{metric}" FROM read_parquet(?) WHERE device_id = ? '
                       f'AND "{metric}" IS NOT NULL AND NOT isnan("{metric}") {where} ORDER BY period_start',
                       [_bulk(public, dataset), device, *(params or [])]).fetchall()
    return [(r[0].astimezone(timezone.utc), r[1]) for r in rows]


def _start(phenomenon_time: str) -> datetime:
    return datetime.fromisoformat(phenomenon_time.split("/")[0].replace("Z", "+00:00"))


def _reference_station(public: Path) -> str:
    return min(d for d, row in _devices(public).items() if row["kind"] == "reference_station")


# ---- with frost-sta-client ------------------------------------------------------------------------

def test_things_with_their_locations_and_datastreams(sta: dict[str, Any]) -> None:
    devices = _devices(sta["public"])
    things = list(sta["service"].things().query().expand("Locations,Datastreams").list())
    assert {t.id for t in things} == set(devices)
    for thing in things:
        row = devices[thing.id]
        assert thing.name == row["name_en"] and thing.properties["name_ko"] == row["name_ko"]
        [location] = thing.locations.entities
        assert location.location["type"] == "Point"
        assert location.location["coordinates"] == [row["lon"], row["lat"]]
        assert {d.id for d in thing.datastreams.entities} == {f"{thing.id}:{m}" for m in row["metrics"].split()}
        assert thing.self_link.endswith(f"{PREFIX}/Things('{thing.id}')")


def test_a_datastreams_observations_filtered_and_ordered(sta: dict[str, Any]) -> None:
    public, device = sta["public"], _reference_station(sta["public"])
    everything = _values(public, device, "pm25")
    start, end = everything[3][0], everything[-3][0]
    threshold = sorted(v for _, v in everything)[len(everything) // 2]
    expected = [(t, v) for t, v in everything if start <= t < end and v > threshold]
    assert 5 < len(expected) < len(everything)

    ds = sta["service"].datastreams().find(f"{device}:pm25")
    assert ds.unit_of_measurement.symbol == "µg/m³" and ds.observation_type.endswith("OM_Measurement")
    text = f"phenomenonTime ge {start.isoformat()} and phenomenonTime lt {end.isoformat()} and result gt {threshold}"
    page = ds.get_observations().query().filter(text).orderby("phenomenonTime", "asc").top(4).count().list()
    assert page.count == len(expected) and len(page.entities) == 4 and page.next_link
    got = [(_start(o.phenomenon_time), o.result) for o in page]       # iterating follows @iot.nextLink
    assert got == expected

    by_value = ds.get_observations().query().filter(text).orderby("result", "desc").list()
    assert [o.result for o in by_value] == sorted((v for _, v in expected), reverse=True)


def test_paging_through_next_links_gives_the_published_rows(sta: dict[str, Any]) -> None:
    public = sta["public"]
    streams = ((_reference_station(public), "o3", AQ), ("wx-0002", "temperature", HOURLY["weather"]))
    for device, metric, dataset in streams:
        observations = sta["service"].datastreams().find(f"{device}:{metric}").get_observations()
        entity_list = observations.query().top(7).list()
        got = [(_start(o.phenomenon_time), o.result) for o in entity_list]
        assert got == _values(public, device, metric, dataset=dataset) and len(got) > 7
        assert all(o.result_time and o.id.startswith(f"{device}:{metric}:") for o in entity_list.entities)


def test_count_of_all_observations_matches_the_published_values(sta: dict[str, Any]) -> None:
    public, devices = sta["public"], _devices(sta["public"])
    expected = sum(len(_values(public, d, m, dataset=HOURLY[row["domain"]]))
                   for d, row in devices.items() for m in row["metrics"].split())
    result = sta["service"].observations().query().top(0).count().list()
    assert result.count == expected and result.entities == []


def test_navigation_and_find_through_the_client(sta: dict[str, Any]) -> None:
    service, device = sta["service"], _reference_station(sta["public"])
    thing = service.things().find(device)
    streams = thing.get_datastreams().query().list()              # /Things('…')/Datastreams
    assert {d.id for d in streams} == {f"{device}:{m}" for m in ("pm10", "pm25", "o3", "no2", "co", "so2")}
    [location] = list(thing.get_locations().query().list())
    assert location.id == device
    first_time, first_value = _values(sta["public"], device, "no2")[0]
    observation = service.observations().find(f"{device}:no2:{first_time:%Y%m%dT%H%MZ}")
    assert observation.result == first_value and _start(observation.phenomenon_time) == first_time
    properties = {p.id: p for p in service.observed_properties().query().list()}
    assert {"pm25", "temperature", "dissolved_oxygen"} <= set(properties)
    assert properties["pm25"].properties["name_ko"] == "초미세먼지(PM2.5)"
    sensors = {s.id for s in service.sensors().query().list()}
    assert sensors == {row["kind"] for row in _devices(sta["public"]).values()}


# ---- in-process -----------------------------------------------------------------------------------

def _get(sta: dict[str, Any], path: str, **params: Any) -> Any:
    r = sta["http"].get(PREFIX + path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_service_root_lists_entity_sets_and_conformance(sta: dict[str, Any]) -> None:
    for path in ("", "/"):
        doc = _get(sta, path)
        names = {v["name"] for v in doc["value"]}
        assert {"Things", "Locations", "Datastreams", "Sensors", "ObservedProperties", "Observations"} <= names
        assert all(v["url"] == f"http://testserver{PREFIX}/{v['name']}" for v in doc["value"])
        assert "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel" in doc["serverSettings"]["conformance"]


def test_navigation_paths(sta: dict[str, Any]) -> None:
    device = _reference_station(sta["public"])
    stream = f"{device}:pm10"
    assert _get(sta, f"/Datastreams('{stream}')/Thing")["@iot.id"] == device
    assert _get(sta, f"/Datastreams('{stream}')/Sensor")["@iot.id"] == "reference_station"
    prop = _get(sta, f"/Datastreams('{stream}')/ObservedProperty")
    assert prop["@iot.id"] == "pm10" and prop["definition"].endswith(f"/datasets/{AQ}#pm10")
    assert [t["@iot.id"] for t in _get(sta, f"/Locations('{device}')/Things")["value"]] == [device]
    nested = _get(sta, f"/Things('{device}')/Datastreams('{stream}')/Observations", **{"$top": 2})
    first = _values(sta["public"], device, "pm10")[:2]
    assert [(_start(o["phenomenonTime"]), o["result"]) for o in nested["value"]] == first
    obs = nested["value"][0]["@iot.id"]
    assert _get(sta, f"/Observations('{obs}')/Datastream")["@iot.id"] == stream
    assert _get(sta, f"/Observations('{obs}')/FeatureOfInterest")["feature"]["type"] == "Point"
    assert _get(sta, f"/Things('{device}')/name") == {"name": _devices(sta["public"])[device]["name_en"]}
    raw = sta["http"].get(f"{PREFIX}/Things('{device}')/name/$value")
    assert raw.status_code == 200 and raw.text == _devices(sta["public"])[device]["name_en"]
    ids = {d["@iot.id"] for d in _get(sta, "/Datastreams", **{"$filter": f"Thing/@iot.id eq '{device}'"})["value"]}
    assert ids == {f"{device}:{m}" for m in ("pm10", "pm25", "o3", "no2", "co", "so2")}


def test_nested_expand_with_its_own_options(sta: dict[str, Any]) -> None:
    device = _reference_station(sta["public"])
    doc = _get(sta, f"/Things('{device}')", **{
        "$expand": "Datastreams($filter=ObservedProperty/@iot.id eq 'pm25';$expand=Observations("
                   "$top=2;$orderby=phenomenonTime desc;$count=true),ObservedProperty)",
        "$select": "id,name"})
    assert set(doc) == {"@iot.id", "name", "Datastreams", "Datastreams@iot.navigationLink"}
    [stream] = doc["Datastreams"]
    values = _values(sta["public"], device, "pm25")
    assert [(_start(o["phenomenonTime"]), o["result"]) for o in stream["Observations"]] == values[::-1][:2]
    assert stream["Observations@iot.count"] == len(values) and "$skip=2" in stream["Observations@iot.nextLink"]
    assert stream["ObservedProperty"]["@iot.id"] == "pm25"
    following = sta["http"].get(stream["Observations@iot.nextLink"]).json()
    assert [o["result"] for o in following["value"]] == [v for _, v in values[::-1][2:4]]


def test_time_comparisons_on_the_hour_interval(sta: dict[str, Any]) -> None:
    device = _reference_station(sta["public"])
    values = _values(sta["public"], device, "pm25")
    t = values[5][0]
    stamp = t.isoformat().replace("+00:00", "Z")
    for op, keep in (("ge", lambda s: s >= t), ("gt", lambda s: s > t), ("lt", lambda s: s < t),
                     ("le", lambda s: s <= t), ("eq", lambda s: s == t), ("ne", lambda s: s != t)):
        doc = _get(sta, f"/Datastreams('{device}:pm25')/Observations", **{"$filter": f"phenomenonTime {op} {stamp}"})
        assert [_start(o["phenomenonTime"]) for o in doc["value"]] == [s for s, _ in values if keep(s)], op
    either = _get(sta, f"/Datastreams('{device}:pm25')/Observations", **{
        "$filter": f"(resultTime le {stamp} or not (result lt {values[-1][1]})) and result ne null"})
    assert [_start(o["phenomenonTime"]) for o in either["value"]] == [
        s for s, v in values if s + (values[1][0] - values[0][0]) <= t or v >= values[-1][1]]


@pytest.mark.parametrize("params", [
    {"$filter": "result gt"}, {"$filter": "result gt 'a'"}, {"$filter": "nope eq 1"}, {"$filter": "(result gt 1"},
    {"$filter": "result gt 1 or"}, {"$filter": "substringof('a', name)"}, {"$filter": "result gt 1 ; drop"},
    {"$filter": "phenomenonTime ge 2026-13-45T00:00:00Z"}, {"$filter": "result gt 1 2"}, {"$filter": "1 eq 1"},
    {"$filter": "result lt null"}, {"$filter": ""}, {"$top": "-1"}, {"$top": "ten"}, {"$skip": "x"},
    {"$count": "yes"}, {"$orderby": "result sideways"}, {"$orderby": "nope"}, {"$expand": "Nope"},
    {"$expand": "Datastream($top=x)"}, {"$expand": "Datastream(("}, {"$select": "nope"}, {"$resultFormat": "dataArray"},
])
def test_malformed_options_are_400(sta: dict[str, Any], params: dict[str, str]) -> None:
    r = sta["http"].get(f"{PREFIX}/Observations", params=params)
    assert r.status_code == 400, (params, r.text)
    assert set(r.json()) == {"error", "detail"} and r.json()["error"].startswith("invalid")


def test_a_repeated_option_is_400(sta: dict[str, Any]) -> None:
    r = sta["http"].get(f"{PREFIX}/Things?$top=1&$top=2")
    assert r.status_code == 400 and r.json()["error"] == "invalid option"


@pytest.mark.parametrize("path", [
    "/Things('nope')", "/Nope", "/Datastreams('aq-ref-0001:nope')", "/Observations('garbage')",
    "/Observations('aq-ref-0001:pm25:20991231T0000Z')", "/Things('aq-ref-0001')/Nope", "/Things/Datastreams",
    "/Things(12)", "/Things('aq-ref-0001')/Datastreams('wx-0001:rain')", "/Things('aq-ref-0001')/name/nope",
])
def test_unknown_entities_and_paths_are_404(sta: dict[str, Any], path: str) -> None:
    r = sta["http"].get(PREFIX + path)
    assert r.status_code == 404, (path, r.text)
    assert set(r.json()) == {"error", "detail"}
