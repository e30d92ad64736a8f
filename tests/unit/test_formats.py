"""The bulk-file writers: the same values in every format, deterministic bytes."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from publish import formats

TABLE = pa.table({
    "date": pa.array([date(2026, 11, 24), date(2026, 11, 24)]),
    "period_start": pa.array([datetime(2026, 11, 23, 15, tzinfo=timezone.utc), None], pa.timestamp("us", tz="UTC")),
    "district_ko": ["덕양구", "일산서구, \"서\""],
    "pm25": [float("nan"), 12.5],
    "cai": pa.array([None, 51], pa.int64()),
    "open": [True, None],
})


def test_csv_has_a_bom_iso_times_and_empty_nulls() -> None:
    data = formats.csv(TABLE)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == {"date": "2026-11-24", "period_start": "2026-11-23T15:00:00Z", "district_ko": "덕양구",
                       "pm25": "", "cai": "", "open": "true"}
    assert rows[1]["district_ko"] == "일산서구, \"서\"" and rows[1]["period_start"] == "" and rows[1]["cai"] == "51"


def test_jsonl_and_geojson_carry_the_same_values() -> None:
    lines = [json.loads(x) for x in formats.jsonl(TABLE).decode().splitlines()]
    assert lines[0] == {"date": "2026-11-24", "period_start": "2026-11-23T15:00:00Z", "district_ko": "덕양구",
                        "pm25": None, "cai": None, "open": True}
    doc = json.loads(formats.geojson(TABLE, [formats.point(126.8, 37.6), None]))
    assert doc["type"] == "FeatureCollection" and [f["properties"] for f in doc["features"]] == lines
    assert doc["features"][0]["geometry"] == {"type": "Point", "coordinates": [126.8, 37.6]}
    assert doc["features"][1]["geometry"] is None


def test_fractional_seconds_are_kept() -> None:
    t = pa.table({"ts": pa.array([datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=timezone.utc)],
                                 pa.timestamp("us", tz="UTC"))})
    assert json.loads(formats.jsonl(t))["ts"] == "2026-01-01T00:00:00.250Z"


def test_parquet_is_sorted_zstd_with_statistics_and_deterministic() -> None:
    data = formats.parquet(TABLE, ("date", "district_ko"))
    assert data == formats.parquet(TABLE, ("date", "district_ko"))
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    column = meta.row_group(0).column(0)
    assert column.compression == "ZSTD" and column.statistics.has_min_max
    assert [c.column_index for c in meta.row_group(0).sorting_columns] == [0, 2]
    assert formats.csv(TABLE) == formats.csv(TABLE) and formats.jsonl(TABLE) == formats.jsonl(TABLE)
