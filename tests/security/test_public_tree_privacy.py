"""The public side holds no private-zone identifier: every file under the public root (data
files, metadata, portal pages and assets, feeds, catalogues, Data Docs) passes the privacy gate,
in a release late enough that the embargoed daycare rows are published too. And the gate would
notice: a daycare subject, a raw tag id, a gate reader's id or location planted into a copy of a
public file is caught.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.security.conftest import Released

DAYCARE = "daycare-daily"


def _fmt(path: Path) -> str:
    return "parquet" if path.suffix == ".parquet" else "text"


def _gate() -> Any:
    from etl.storage import lake
    from publish import privacy

    return privacy.load(lake())


def _public_files(released: Released) -> dict[str, Path]:
    return {p.relative_to(released.public).as_posix(): p for p in sorted(released.public.rglob("*")) if p.is_file()}


def _live(released: Released) -> dict[str, Any]:
    pointer = json.loads((released.public / "latest.json").read_text())
    return json.loads((released.public / pointer["manifest"]).read_text())


def test_the_release_publishes_the_daycare_rows(released: Released) -> None:
    """The release is past the daycare embargo, so the scan below sees the daycare data."""
    live = _live(released)
    assert live["datasets"][DAYCARE]["rows"] > 0
    assert live["privacy_gate"]["passed"] and live["privacy_gate"]["identifiers_checked"] > 0


def test_every_public_file_passes_the_gate(released: Released) -> None:
    files = _public_files(released)
    kinds = {name.split("/", 1)[0] for name in files}
    assert {"datasets", "portal", "feeds", "releases", "latest.json", "catalog.jsonld", "changes.json"} <= kinds
    assert any("/quality/" in n for n in files) and any(n.startswith("portal/assets/") for n in files)
    assert any(n.endswith(".parquet") for n in files) and any(n.startswith(f"datasets/{DAYCARE}/") for n in files)
    gate = _gate()
    assert gate.values and gate.coordinates              # the lake has private identifiers to look for
    for name, path in files.items():
        gate.scan(name, path.read_bytes(), _fmt(path))
    assert gate.files == len(files)
    assert not gate.findings, "\n".join(gate.findings[:20])


def test_the_live_release_verifies(released: Released) -> None:
    from publish.release import verify

    report = verify()
    assert report["ok"], report["problems"][:20]


# ---- the gate notices -------------------------------------------------------------------------------

def _pseudonym(gate: Any) -> str:
    """A daycare subject of the lake's silver table (the gate loads them from there)."""
    from publish.privacy import PATTERNS

    return next(v for v in sorted(gate.values) if PATTERNS["pseudonymous subject"].fullmatch(v))


def _raw_tag() -> str:
    """A raw tag id as the daycare gateway sent it, from the landing zone."""
    from etl.storage import LANDING, lake

    store = lake()
    for key in store.list(f"{LANDING}/source=daycare_http/"):
        found = re.search(r"TAG-[0-9A-F]{4,}", store.get(key).decode("utf-8", errors="replace"))
        if found:
            return found.group()
    raise AssertionError("no raw tag id in the landing zone")


def _gate_reader(gate: Any) -> str:
    """The id of a private-source device (a daycare gate reader): no shape, only the lookup finds it."""
    from publish.privacy import PATTERNS

    return next(v for v in sorted(gate.values) if not any(p.fullmatch(v) for p in PATTERNS.values()))


def _location(gate: Any) -> str:
    lat, lon = sorted(gate.coordinates)[0]
    return f"{lat:.6f},{lon:.6f}"


def _in_text(data: bytes, value: str) -> bytes:
    """``value`` added where a reader would see it: inside the text, between tokens."""
    middle = len(data) // 2
    cut = data.rfind(b"\n", 0, middle) + 1 if b"\n" in data[:middle] else middle
    return data[:cut] + f" {value} ".encode() + data[cut:]


def _in_parquet(data: bytes, value: str) -> bytes:
    """``value`` as the first value of the first string column of a Parquet file."""
    table = pq.read_table(io.BytesIO(data))
    name = next(f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    column = table[name].combine_chunks()
    replaced = pc.if_else(pa.array([i == 0 for i in range(len(column))]), pa.scalar(value, column.type), column)
    sink = io.BytesIO()
    pq.write_table(table.set_column(table.column_names.index(name), name, replaced), sink)
    return sink.getvalue()


PLANTS = {   # id: (what to plant, public file to plant it in, how, the finding expected)
    "subject in a portal page": (_pseudonym, f"portal/datasets/{DAYCARE}.html", _in_text, "pseudonymous subject"),
    "subject in the daycare CSV": (_pseudonym, f"{DAYCARE}.csv", _in_text, "pseudonymous subject"),
    "subject in the daycare Parquet": (_pseudonym, f"{DAYCARE}.parquet", _in_parquet, "pseudonymous subject"),
    "raw tag in a feed": (lambda gate: _raw_tag(), "feeds/alerts.en.json", _in_text, "raw tag id"),
    "raw tag in the DCAT catalogue": (lambda gate: _raw_tag(), "catalog.jsonld", _in_text, "raw tag id"),
    "gate reader in the Data Docs": (_gate_reader, "/quality/index.html", _in_text, "private identifier"),
    "gate location in the GeoJSON": (_location, f"{DAYCARE}.geojson", _in_text, "coordinates of a private device"),
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_the_gate_catches_a_planted_identifier(released: Released, plant: str) -> None:
    value_of, target, put, expected = PLANTS[plant]
    files = _public_files(released)
    name = next(n for n in files if n == target or (n.endswith(target) and n.startswith(("datasets/", "releases/"))))
    original = files[name].read_bytes()
    gate = _gate()
    value = value_of(gate)
    gate.scan(name, original, _fmt(files[name]))
    assert not gate.findings, gate.findings                # the file as published passes ...
    gate.scan(f"copy of {name}", put(original, value), _fmt(files[name]))
    assert any(f.startswith(f"copy of {name}: {expected}") for f in gate.findings), gate.findings   # ... its copy not
    assert value not in " ".join(gate.findings)            # and the report does not repeat the identifier
