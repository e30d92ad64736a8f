"""What analysts see in DuckDB: a comment on every view and column of the lake.

``etl.duck.analyst_session`` and ``citylake duckdb-file`` apply these with DuckDB's
``COMMENT ON VIEW`` / ``COMMENT ON COLUMN`` (shown by ``duckdb_views()`` and
``duckdb_columns()``, and by ``DESCRIBE`` in recent DuckDB shells).
"""
from __future__ import annotations

from typing import Any

_READING = {
    "device_id": "Device id in the registry (view devices), e.g. aq-ref-0001",
    "domain": "Domain: air_quality, weather, water_quality, waste_bins, parking, streetlights, daycare_safety",
    "metric": "Metric name (docs/QUALITY.md lists every metric, its unit and ranges)",
    "ts": "Observation time, UTC (AirKorea hourly values: start of the hour they cover)",
    "value": "Value in the metric's canonical unit",
    "unit": "Canonical unit of the metric",
    "source": "Gateway source that delivered it (etl/sources/sources.yaml)",
    "batch_id": "Landed batch it came from (landing/ holds the exact bytes)",
    "received_at": "When the batch was received, UTC",
    "date": "KST calendar date of ts (partition)",
}

DOCS: dict[str, tuple[str, dict[str, str]]] = {
    "silver": ("Canonical readings, one row per device, metric, time (and daycare subject); deduplicated, "
               "validated. 정제된 센서 측정값.", {
                   **_READING,
                   "quality_flag": "Kept but suspicious: implausible, stuck, spike, pm25_above_pm10 (';'-joined); "
                                   "null = passed every check",
                   "subject": "Private pseudonymous subject (daycare tags only); never published",
               }),
    "quarantine": ("Every record that could not be accepted, with the reason; nothing is dropped silently. "
                   "격리된 레코드.", {
                       **_READING,
                       "frame": "Position of the frame in the landed batch",
                       "reason": "Reason code (docs/QUALITY.md, quality/reasons.py)",
                       "detail": "What was wrong, readable",
                       "ref": "The source's own device reference as sent",
                       "raw": "Excerpt of what was received (undecodable frames)",
                       "date": "KST date of ts, or of receipt when ts is unknown (partition)",
                   }),
    "batches": ("One row per landed batch: received = accepted + quarantined + duplicates.", {
        "batch_id": "Landed batch id: <source>-<window start>-<window end>-<content hash>",
        "window_start": "Start of the extraction window, UTC", "window_end": "End of the window, UTC",
        "received": "Records received", "accepted": "Readings committed to silver",
        "flagged": "Accepted with a quality_flag", "quarantined": "Records quarantined",
        "duplicates": "Records already seen (in the batch or in silver)",
        "quality": "ok | warn (a batch that fails quality is not recorded until fixed)",
        "replays": "Times `citylake quarantine replay` re-processed it",
        "source": "Gateway source (etl/sources/sources.yaml)", "received_at": "When it was received, UTC",
        "normalized_at": "When it was normalised, UTC", "frames": "Frames (messages, pages, files) in the batch",
        "duplicates_in_batch": "Sent more than once within the batch",
        "duplicates_in_lake": "Already in silver from an earlier batch (overlapping windows, redeliveries)",
        "domains": "Domains it fed", "dates": "KST dates it touched (silver or quarantine)",
        "month": "Month of the window start (partition)",
    }),
    "quality_checks": ("Every expectation's outcome per batch (GX suites in quality/suites.py).", {
        "suite": "citylake.<domain> or citylake.batch", "expectation": "GX expectation type",
        "target": "Column(s) checked", "action": "quarantine | flag | fail | warn",
        "code": "Reason or flag code", "evaluated": "Rows evaluated", "failed": "Rows that failed",
        "date": "KST date of the batch window start (partition)",
    }),
    "quality_daily": ("Per domain, source and KST day: received, accepted, flagged, quarantined, duplicates, "
                      "counts per flag and reason, pass rate per expectation.", {
                          "checks": "Per expectation: evaluated, failed, pass_rate",
                          "flagged_by": "Accepted rows per quality flag",
                          "quarantined_by": "Quarantined records per reason",
                      }),
    "device_health": ("Per device and KST day: last seen, reports vs expected, completeness, stuck/spike/"
                      "quarantined counts, battery, status ok | degraded | offline | idle.", {
                          "completeness": "reports / expected over the part of the day the source delivered",
                          "status": "ok, degraded, offline (no report although due) or idle (event-driven, none)",
                      }),
    "devices": ("The device and station registry (etl/registry/): location, district, install date, "
                "reporting interval. 장치 등록부.", {
                    "external_id": "The gateway's own id for the device (station name, devEUI, ...)",
                    "lat": "Latitude (WGS84)", "lon": "Longitude (WGS84)",
                    "interval_s": "Expected reporting interval in seconds (0 = event-driven)",
                    "install_date": "Installed on (KST)",
                }),
}


def annotate(con: Any) -> None:
    """COMMENT ON every known view (or table) and column present in ``con``."""
    from etl.aggregate.runner import MODELS, model_doc

    present = {r[0]: r[1] for r in con.sql(
        "SELECT table_name, table_type FROM information_schema.tables").fetchall()}
    gold = {m.name: model_doc(m.name) for m in MODELS}
    for name, (doc, columns) in {**DOCS, **gold}.items():
        if name not in present:
            continue
        kind = "VIEW" if present[name] == "VIEW" else "TABLE"
        con.execute(f"COMMENT ON {kind} {name} IS {_quote(doc)}")
        have = {r[0] for r in con.sql(f"SELECT column_name FROM information_schema.columns "
                                       f"WHERE table_name = '{name}'").fetchall()}
        for column, text in columns.items():
            if column in have:
                con.execute(f"COMMENT ON COLUMN {name}.{column} IS {_quote(text)}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
