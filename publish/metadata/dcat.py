"""The open-data catalogue as DCAT-AP 3 in JSON-LD, with its @context inline.

The context is inline because JSON-LD processors fetch a remote context at parse time, which a
harvester may not be allowed to do (and which fails offline). Shapes follow DCAT-AP 3:

* A dataset ``<base>/datasets/<id>`` has the files of every period as distributions. A partitioned
  dataset is also published as a ``dcat:DatasetSeries`` ``<base>/datasets/<id>/series`` whose members
  are the months ``<base>/datasets/<id>/series/<YYYY-MM>`` (``dcat:inSeries``, ``dcat:prev``; the
  series has ``dcat:first`` and ``dcat:last``). DCAT 3 defines ``dcat:prev`` but lists ``dcat:next``
  only as an optional inverse, so ``next`` is left out.
* The spatial coverage is a ``dct:Location`` with ``dcat:bbox`` and ``dcat:centroid`` as
  ``gsp:wktLiteral`` (WKT, CRS84 lon/lat: the encoding GeoDCAT-AP recommends and DCAT 3's own example),
  plus the GeoNames IRI of the city as a named place.
* A file's checksum is an ``spdx:Checksum`` (SHA-256, ``xsd:hexBinary``), its size
  ``xsd:nonNegativeInteger``, its media type an IANA IRI and its format an EU file-type IRI.
* A month's status (provisional until settled, then validated) is ``adms:status`` of its distributions
  (EU distribution-status DEVELOP / COMPLETED) and a version note on the month.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from publish import licences
from publish.catalog import Catalogue, Dataset
from publish.metadata import (
    DATAPACKAGE,
    DICTIONARY,
    TABULAR_FORMATS,
    all_files,
    dataset_iri,
    file_url,
    format_label,
    period_files,
    privacy_note,
    status_text,
    version_url,
)

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "adms": "http://www.w3.org/ns/adms#",
    "spdx": "http://spdx.org/rdf/terms#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "schema": "http://schema.org/",
}
EU = "http://publications.europa.eu/resource/authority"
IANA = "http://www.iana.org/assignments/media-types/"
SHA256 = "http://spdx.org/rdf/terms#checksumAlgorithm_sha256"
PUBLIC = f"{EU}/access-right/PUBLIC"
LOCAL_AUTHORITY = "http://purl.org/adms/publishertype/LocalAuthority"
LANGUAGES = [f"{EU}/language/KOR", f"{EU}/language/ENG"]
FREQUENCY = {"hourly": f"{EU}/frequency/HOURLY", "daily": f"{EU}/frequency/DAILY"}
RESOLUTION = {"hourly": "PT1H", "daily": "P1D"}
MONTHLY = f"{EU}/frequency/MONTHLY"   # a series gains a member each month
FILE_TYPES = {"csv": "CSV", "parquet": "PARQUET", "geojson": "GEOJSON"}   # JSON Lines has no EU file type
STATUS = {"provisional": f"{EU}/distribution-status/DEVELOP", "validated": f"{EU}/distribution-status/COMPLETED"}
METADATA_LICENCE = "KOGL-1"   # the licence of the catalogue itself (the metadata)


def catalog_jsonld(catalogue: Catalogue, release: dict[str, Any], manifests: dict[str, dict[str, Any]],
                   schemas: dict[str, pa.Schema] | None, base_url: str) -> dict[str, Any]:
    """The catalogue of a release; ``manifests`` (dataset id → manifest) says which datasets are in it.

    With ``schemas`` (dataset id → Arrow schema) each dataset also lists its columns as
    ``schema:variableMeasured``, which general-purpose dataset search engines read.
    """
    base = base_url.rstrip("/")
    unknown = sorted(set(manifests) - set(catalogue.datasets))
    if unknown:
        raise KeyError(f"manifests of datasets that are not in the catalogue: {unknown}")
    shared = _Shared(catalogue, base)
    graph: list[dict[str, Any]] = []
    for ds in catalogue.datasets.values():
        manifest = manifests.get(ds.id)
        if manifest is not None:
            graph += _dataset_nodes(ds, manifest, (schemas or {}).get(ds.id), shared, base)
    used = {manifest["licence"] for manifest in manifests.values()} | {METADATA_LICENCE}
    documents = [_licence_node(lic) for lic in sorted(used) if licences.licence(lic).url]
    catalog = {
        "@id": shared.catalog,
        "@type": "dcat:Catalog",
        "dct:title": _text(f"{catalogue.publisher['name_ko']} 스마트도시 공공데이터",
                           f"{catalogue.publisher['name_en']} smart-city open data"),
        "dct:description": _text(
            f"{catalogue.publisher['name_ko']} 스마트도시 센서 데이터(대기질, 기상, 수질, 쓰레기통, 주차, 보안등 등)의 "
            "공개 집계 데이터셋 목록",
            f"Open aggregated datasets from the smart-city sensors of {catalogue.publisher['name_en']} "
            "(air quality, weather, water quality, bins, parking, streetlights and more)"),
        "dct:publisher": {"@id": shared.publisher},
        "foaf:homepage": {"@id": catalogue.homepage},
        "dct:issued": _typed(release["issued"], "dateTime"),
        "dct:modified": _typed(release["issued"], "dateTime"),
        "dcat:version": release["release"],
        "adms:versionNotes": _text(f"릴리스 {release['release']}, {release['as_of']} 기준 데이터",
                                   f"Release {release['release']}, data as of {release['as_of']}"),
        "dct:license": {"@id": licences.licence(METADATA_LICENCE).url},
        "dct:language": [{"@id": lang} for lang in LANGUAGES],
        "dct:spatial": shared.spatial_refs,
        "dcat:dataset": [{"@id": node["@id"]} for node in graph],
    }
    return {"@context": CONTEXT,
            "@graph": [catalog, *shared.nodes(), *documents, *graph]}


class _Shared:
    """The catalogue-wide nodes every dataset points to: publisher, contact point, spatial coverage."""

    def __init__(self, catalogue: Catalogue, base: str) -> None:
        self.catalogue = catalogue
        self.catalog = f"{base}/catalog"
        self.publisher = f"{self.catalog}#publisher"
        self.contact = f"{self.catalog}#contact"
        self.location = f"{self.catalog}#spatial"
        geonames = catalogue.spatial.get("geonames")
        self.spatial_refs = [{"@id": self.location}] + ([{"@id": geonames}] if geonames else [])

    def nodes(self) -> list[dict[str, Any]]:
        cat = self.catalogue
        lon_min, lat_min, lon_max, lat_max = cat.spatial["bbox"]
        polygon = (f"POLYGON(({lon_min} {lat_min}, {lon_max} {lat_min}, {lon_max} {lat_max}, "
                   f"{lon_min} {lat_max}, {lon_min} {lat_min}))")
        centroid = f"POINT({round((lon_min + lon_max) / 2, 6)} {round((lat_min + lat_max) / 2, 6)})"
        return [
            {"@id": self.publisher, "@type": "foaf:Agent",
             "foaf:name": _text(cat.publisher["name_ko"], cat.publisher["name_en"]),
             "dct:type": {"@id": LOCAL_AUTHORITY}, "foaf:homepage": {"@id": cat.publisher["url"]}},
            {"@id": self.contact, "@type": "vcard:Kind",
             "vcard:fn": _text(cat.contact["name_ko"], cat.contact["name_en"]),
             "vcard:hasEmail": {"@id": f"mailto:{cat.contact['email']}"},
             "vcard:hasURL": {"@id": cat.homepage}},
            {"@id": self.location, "@type": "dct:Location",
             "skos:prefLabel": _text(cat.spatial["name_ko"], cat.spatial["name_en"]),
             "dcat:bbox": {"@value": polygon, "@type": "gsp:wktLiteral"},
             "dcat:centroid": {"@value": centroid, "@type": "gsp:wktLiteral"}},
        ]

    def common(self, licence_url: str) -> dict[str, Any]:
        """What a dataset, a series and a month all say about who, where and on what terms."""
        return {
            "dct:publisher": {"@id": self.publisher},
            "dcat:contactPoint": {"@id": self.contact},
            "dct:spatial": self.spatial_refs,
            "dct:language": [{"@id": lang} for lang in LANGUAGES],
            **({"dct:license": {"@id": licence_url}} if licence_url else {}),
        }


def _dataset_nodes(ds: Dataset, manifest: dict[str, Any], schema: pa.Schema | None, shared: _Shared,
                   base: str) -> list[dict[str, Any]]:
    """The dataset; for a partitioned one also its series and the month datasets."""
    iri = dataset_iri(base, ds.id)
    licence_url = licences.licence(manifest["licence"]).url
    version_dir = version_url(base, ds.id, manifest["version"])
    terms = {   # what the dataset and its months say alike
        **shared.common(licence_url),
        "dct:accessRights": {"@id": PUBLIC},
        **_rights(ds),
        "dcat:version": manifest["version"],
        "dct:modified": _typed(manifest["issued"], "dateTime"),
        "dcat:landingPage": {"@id": f"{version_dir}/{DICTIONARY}"},
        "dcat:temporalResolution": _typed(RESOLUTION[ds.frequency], "duration"),
    }
    dataset = {
        "@id": iri,
        "@type": "dcat:Dataset",
        "dct:identifier": ds.id,
        "dct:title": _text(ds.title_ko, ds.title_en),
        "dct:description": _text(ds.description_ko, ds.description_en),
        "dcat:keyword": _keywords(ds),
        **terms,
        **_release_note(manifest.get("release")),
        **_temporal(manifest.get("temporal")),
        "dct:accrualPeriodicity": {"@id": FREQUENCY[ds.frequency]},
        "dct:conformsTo": {"@id": f"{version_dir}/{DATAPACKAGE}"},
        "dct:provenance": _provenance(manifest["sources"]),
        **({"schema:variableMeasured": _variables(ds, schema)} if schema is not None else {}),
        "dcat:distribution": [_distribution(iri, f, manifest, licence_url, base) for f in all_files(manifest)],
    }
    if not ds.partitioned or not manifest.get("periods"):
        return [dataset]
    series = _series(ds, manifest, shared, iri, licence_url)
    dataset["dct:relation"] = {"@id": series["@id"]}
    return [dataset, series, *_months(ds, manifest, series["@id"], terms, base)]


def _series(ds: Dataset, manifest: dict[str, Any], shared: _Shared, iri: str, licence_url: str) -> dict[str, Any]:
    periods = sorted(p["period"] for p in manifest["periods"])
    return {
        "@id": f"{iri}/series",
        "@type": "dcat:DatasetSeries",
        "dct:title": _text(f"{ds.title_ko} (월별)", f"{ds.title_en} (monthly)"),
        "dct:description": _text(f"{ds.title_ko}: 한 달에 한 데이터셋", f"{ds.title_en}: one dataset per month"),
        **shared.common(licence_url),
        **_temporal(manifest.get("temporal")),
        "dct:accrualPeriodicity": {"@id": MONTHLY},
        "dct:modified": _typed(manifest["issued"], "dateTime"),
        "dcat:first": {"@id": f"{iri}/series/{periods[0]}"},
        "dcat:last": {"@id": f"{iri}/series/{periods[-1]}"},
    }


def _months(ds: Dataset, manifest: dict[str, Any], series_iri: str, terms: dict[str, Any],
            base: str) -> list[dict[str, Any]]:
    iri = dataset_iri(base, ds.id)
    licence_url = licences.licence(manifest["licence"]).url
    months: list[dict[str, Any]] = []
    for period in sorted(manifest["periods"], key=lambda p: p["period"]):
        month, rows = period["period"], period["rows"]
        ko, en = status_text(period["status"])
        months.append({
            "@id": f"{series_iri}/{month}",
            "@type": "dcat:Dataset",
            "dct:identifier": f"{ds.id}/{month}",
            "dct:title": _text(f"{ds.title_ko} {month}", f"{ds.title_en}, {month}"),
            "dct:description": _text(f"{ds.title_ko}의 {month} 자료 ({rows}행, {ko})",
                                     f"{ds.title_en} for {month} ({rows} rows, {en})"),
            "dcat:inSeries": {"@id": series_iri},
            **({"dcat:prev": {"@id": months[-1]["@id"]}} if months else {}),
            **terms,
            "adms:versionNotes": _text(ko, en),
            **_temporal({"start": period["first_date"], "end": period["last_date"]}),
            "dcat:distribution": [_distribution(iri, f, manifest, licence_url, base, period["status"])
                                  for f in period_files(manifest, month)],
        })
    return months


def _distribution(iri: str, file: dict[str, Any], manifest: dict[str, Any], licence_url: str, base: str,
                  status: str | None = None) -> dict[str, Any]:
    url = file_url(base, manifest, file["path"])
    fmt = file["format"]
    period = file.get("period") or "all"
    node: dict[str, Any] = {
        "@id": f"{iri}/distribution/{period}-{fmt}",
        "@type": "dcat:Distribution",
        "dct:title": _text(f"{period if period != 'all' else '전체 기간'} ({format_label(fmt)})",
                           f"{period if period != 'all' else 'all periods'} ({format_label(fmt)})"),
        "dcat:accessURL": {"@id": url},
        "dcat:downloadURL": {"@id": url},
        "dcat:mediaType": {"@id": f"{IANA}{file['media_type']}"},
        "dcat:byteSize": _typed(str(file["bytes"]), "nonNegativeInteger"),
        "spdx:checksum": {"@type": "spdx:Checksum", "spdx:algorithm": {"@id": SHA256},
                          "spdx:checksumValue": _typed(file["sha256"], "hexBinary")},
        "dct:modified": _typed(manifest["issued"], "dateTime"),
    }
    if fmt in FILE_TYPES:
        node["dct:format"] = {"@id": f"{EU}/file-type/{FILE_TYPES[fmt]}"}
    if licence_url:
        node["dct:license"] = {"@id": licence_url}
    if fmt in TABULAR_FORMATS:
        node["dct:conformsTo"] = {"@id": f"{version_url(base, manifest['dataset'], manifest['version'])}/{DATAPACKAGE}"}
    if status in STATUS:
        node["adms:status"] = {"@id": STATUS[status]}
    return node


def _release_note(release: str | None) -> dict[str, Any]:
    """The release that built this version (the release code may leave it empty until it knows)."""
    return {"adms:versionNotes": _text(f"릴리스 {release}", f"release {release}")} if release else {}


def _licence_node(licence_id: str) -> dict[str, Any]:
    lic = licences.licence(licence_id)
    return {"@id": lic.url, "@type": "dct:LicenseDocument", "dct:title": _text(lic.name_ko, lic.name_en)}


def _rights(ds: Dataset) -> dict[str, Any]:
    note = privacy_note(ds)
    if note is None:
        return {}
    return {"dct:rights": {"@type": "dct:RightsStatement", "rdfs:label": _text(*note)}}


def _provenance(sources: dict[str, str]) -> dict[str, Any]:
    if not sources:
        ko, en = "고양시 장치 등록부에서 생성", "Generated from the city's device registry"
    else:
        ko = "원천: " + ", ".join(f"{sid} ({licences.licence(lic).name_ko})" for sid, lic in sorted(sources.items()))
        en = "Sources: " + ", ".join(f"{sid} ({licences.licence(lic).name_en})" for sid, lic in sorted(sources.items()))
    return {"@type": "dct:ProvenanceStatement", "rdfs:label": _text(ko, en)}


def _variables(ds: Dataset, schema: pa.Schema) -> list[dict[str, Any]]:
    described = {c.name: c for c in ds.columns}
    variables = []
    for field in schema:
        column = described.get(field.name)
        node: dict[str, Any] = {"@type": "schema:PropertyValue", "schema:name": field.name}
        if column is not None:
            node["schema:description"] = _text(column.description_ko, column.description_en)
            if column.unit:
                node["schema:unitText"] = column.unit
        variables.append(node)
    return variables


def _temporal(temporal: dict[str, str] | None) -> dict[str, Any]:
    if not temporal:
        return {}
    return {"dct:temporal": {"@type": "dct:PeriodOfTime", "dcat:startDate": _typed(temporal["start"], "date"),
                             "dcat:endDate": _typed(temporal["end"], "date")}}


def _keywords(ds: Dataset) -> list[dict[str, str]]:
    return ([{"@value": k, "@language": "ko"} for k in ds.keywords_ko]
            + [{"@value": k, "@language": "en"} for k in ds.keywords_en])


def _text(ko: str, en: str) -> list[dict[str, str]]:
    return [{"@value": v, "@language": lang} for v, lang in ((ko, "ko"), (en, "en")) if v]


def _typed(value: str, xsd_type: str) -> dict[str, str]:
    return {"@value": value, "@type": f"xsd:{xsd_type}"}
