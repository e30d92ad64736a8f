"""Decoding hand-written vendor pages: readings as sent, every reject reason, no raw tags."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from etl.extract.frames import DECODED, REJECTS, Frame
from etl.extract.http_cursor import decode
from quality.reasons import REASONS

KEY = b"unit-test-key"
UTC = timezone.utc
TAG = "TAG-0A1B2C3D4E"
DROP = object()  # a field to leave out of a hand-written item


def page(*items: Any, seq: int = 0) -> Frame:
    return Frame(json.dumps({"data": list(items), "next_cursor": None}).encode(), seq=seq)


def weather_item(**fields: Any) -> dict[str, Any]:
    item = {"station": "AWS-0001", "observed_at": "2026-11-24T09:10:00+09:00", "temp_c": 3.2, "rh_pct": 61.0,
            "wind_ms": 2.1, "wind_deg": 280, "rain_mm": 0.0, "pressure_hpa": 1019.3}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not DROP}


def gate_item(**fields: Any) -> dict[str, Any]:
    item = {"event_id": "EV-1", "gate": "GATE-0001", "tag": TAG, "direction": "in", "ts": 1764000000123}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not DROP}


def test_weather_item_gives_one_reading_per_field_in_utc() -> None:
    decoded, rejects = decode([page(weather_item(), seq=3)], "weather", KEY)
    assert decoded.schema == DECODED and rejects.num_rows == 0
    rows = {r["metric"]: r for r in decoded.to_pylist()}
    assert {m: (r["value"], r["unit"]) for m, r in rows.items()} == {
        "temperature": (3.2, "degC"), "humidity": (61.0, "%"), "wind_speed": (2.1, "m/s"),
        "wind_dir": (280.0, "deg"), "rain": (0.0, "mm"), "pressure": (1019.3, "hPa")}
    assert {r["ts"] for r in rows.values()} == {datetime(2026, 11, 24, 0, 10, tzinfo=UTC)}
    assert {(r["ref"], r["frame"], r["subject"]) for r in rows.values()} == {("AWS-0001", 3, None)}


def test_temp_f_is_reported_as_sent() -> None:
    item = weather_item(temp_c=DROP, temp_f=37.8)
    decoded, rejects = decode([page(item)], "weather", KEY)
    temps = [r for r in decoded.to_pylist() if r["metric"] == "temperature"]
    assert [(t["value"], t["unit"]) for t in temps] == [(37.8, "degF")]
    assert rejects.num_rows == 0


def test_null_value_is_missing_at_the_source() -> None:
    decoded, rejects = decode([page(weather_item(rain_mm=None))], "weather", KEY)
    rain = [r for r in decoded.to_pylist() if r["metric"] == "rain"]
    assert [r["value"] for r in rain] == [None] and rejects.num_rows == 0


def test_unknown_fields_are_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="etl.extract.http_cursor"):
        decoded, rejects = decode([page(weather_item(battery_v=3.6, firmware="1.2"))], "weather", KEY)
    assert decoded.num_rows == 6 and rejects.num_rows == 0
    assert "battery_v" in caplog.text and "firmware" in caplog.text


def test_gate_events_are_pseudonymous_counts() -> None:
    frames = [page(gate_item(), gate_item(event_id="EV-2", direction="out", ts=1764030000000), seq=1)]
    decoded, rejects = decode(frames, "gate", KEY)
    subject = "p_" + hmac.new(KEY, TAG.encode(), hashlib.sha256).hexdigest()[:20]
    assert rejects.num_rows == 0
    assert [(r["ref"], r["metric"], r["ts"], r["value"], r["unit"], r["subject"], r["frame"])
            for r in decoded.to_pylist()] == [
        ("GATE-0001", "arrival", datetime(2025, 11, 24, 16, 0, 0, 123000, tzinfo=UTC), 1.0, "count", subject, 1),
        ("GATE-0001", "departure", datetime(2025, 11, 25, 0, 20, tzinfo=UTC), 1.0, "count", subject, 1),
    ]


REJECT_CASES = [
    ("weather", Frame(b"<html>502 Bad Gateway</html>"), "malformed_json"),
    ("weather", Frame(b'{"data": [\xff\xfe'), "malformed_json"),
    ("weather", Frame(b'{"error": {"code": "rate_limited", "message": "slow down"}}'), "api_error"),
    ("weather", Frame(b'{"items": []}'), "bad_envelope"),
    ("weather", page("not an object"), "bad_envelope"),
    ("weather", page(weather_item(station=DROP)), "bad_envelope"),
    ("weather", page(weather_item(observed_at=DROP)), "bad_timestamp"),
    ("weather", page(weather_item(observed_at="yesterday")), "bad_timestamp"),
    ("weather", page(weather_item(temp_c="N/A")), "bad_value"),
    ("weather", page(weather_item(rh_pct=True)), "bad_value"),
    ("gate", Frame(b'{"data": [{"tag": "TAG-0A1B2C3D4E", "gate": '), "malformed_json"),
    ("gate", page(gate_item(gate=DROP)), "bad_envelope"),
    ("gate", page(gate_item(tag=DROP)), "bad_envelope"),
    ("gate", page(gate_item(ts=DROP)), "bad_timestamp"),
    ("gate", page(gate_item(ts="1764000000123")), "bad_timestamp"),
    ("gate", page(gate_item(direction="sideways")), "bad_value"),
    ("gate", page(gate_item(direction=["in"])), "bad_value"),
]


@pytest.mark.parametrize("kind,frame,reason", REJECT_CASES)
def test_each_reject_reason(kind: str, frame: Frame, reason: str) -> None:
    frame.seq = 5
    decoded, rejects = decode([frame], kind, KEY)
    assert rejects.schema == REJECTS
    assert [r["reason"] for r in rejects.to_pylist()] == [reason]
    assert reason in REASONS
    row = rejects.to_pylist()[0]
    assert row["frame"] == 5 and row["detail"] and row["raw"]
    assert TAG not in row["raw"] + row["detail"]


def test_a_bad_value_rejects_only_its_field() -> None:
    decoded, rejects = decode([page(weather_item(temp_c="N/A"))], "weather", KEY)
    assert decoded.num_rows == 5 and "temperature" not in decoded.column("metric").to_pylist()
    (row,) = rejects.to_pylist()
    assert (row["ref"], row["metric"]) == ("AWS-0001", "temperature")
    assert row["ts"] == datetime(2026, 11, 24, 0, 10, tzinfo=UTC)


def test_gate_rejects_mask_every_tag() -> None:
    frames = [Frame(f'oops {TAG} and TAG-FFFF'.encode(), seq=0),
              page(gate_item(direction="up"), gate_item(tag="tag-lowercase-7", ts=None), seq=1)]
    decoded, rejects = decode(frames, "gate", KEY)
    assert decoded.num_rows == 0 and rejects.num_rows == 3
    text = " ".join(r["raw"] + r["detail"] for r in rejects.to_pylist())
    assert TAG not in text and "TAG-FFFF" not in text and "tag-lowercase-7" not in text
    assert "TAG-***" in text


@pytest.mark.parametrize("kind", ["weather", "gate"])
def test_garbage_never_raises(kind: str) -> None:
    bodies = [b"", b"null", b"[]", b'{"data": null}', b'{"data": [null, 1, "x", []]}', b'{"data": [{}]}']
    decoded, rejects = decode([Frame(b, seq=i) for i, b in enumerate(bodies)], kind, KEY)
    assert decoded.num_rows == 0
    assert rejects.num_rows == 4 + 5  # one per frame without a data list, one per bad item
    assert set(rejects.column("reason").to_pylist()) <= set(REASONS)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown decoder kind"):
        decode([], "parking", KEY)
