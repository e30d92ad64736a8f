"""The LoRaWAN adapter on frames built from real network-server messages."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl.codecs import CODECS, bosch_pls, em310_udl
from etl.extract.frames import DECODED, REJECTS, Frame
from etl.extract.lorawan import FIELDS, FILL_LEVEL, decode, fill_level
from etl.extract.lorawan_envelope import chirpstack_v4_uplink, ttn_v3_uplink
from quality.metrics import METRICS
from quality.reasons import REASONS
from tests.conftest import real_data

REAL = real_data()
UPLINKS = REAL / "lorawan-uplinks"
VENDORS = REAL / "thingsboard-lns-payloads" / "VENDORS"

UTC = timezone.utc
BIN = "1000000000000001"      # the anonymised EUI of ThingsBoard's TTS/ChirpStack samples
PARKING = "0102030405060708"  # the anonymised EUI of ThingsBoard's LORIOT "gw" samples
DEVICES = {
    BIN: {"codec": "em310_udl", "bin_depth_mm": 2500},
    PARKING: {"codec": "bosch_pls"},
}
SIM_TS = datetime(2025, 3, 1, 3, 0, 0, 250000, tzinfo=UTC)


def _file(path: Path, seq: int) -> Frame:
    return Frame(body=path.read_bytes(), meta={"file": path.name}, seq=seq)


def _storage_ndjson(seq: int) -> Frame:
    """A TTS storage-integration response: one ``{"result": ...}`` per line, one line broken."""
    real = json.loads((VENDORS / "Milesight/EM310-UDL/ThingsStackIndustries/uplink/payload.json").read_text())
    f_port, payload = bosch_pls.encode_heartbeat(False, -5)
    built = ttn_v3_uplink(PARKING, f_port, payload, SIM_TS, "parking-0001", "goyang-parking")
    lines = [json.dumps({"result": real}), '{"result": {"end_device_ids": ', json.dumps({"result": built})]
    return Frame(body="\n".join(lines).encode(), meta={"topic": "storage"}, seq=seq)


def _frames() -> list[Frame]:
    f_port, payload = bosch_pls.encode_status(True)
    chirpstack = chirpstack_v4_uplink(PARKING, f_port, payload, SIM_TS, "parking-0001", "goyang-parking")
    return [
        _file(VENDORS / "Milesight/EM310-UDL/ThingsStackCommunity/uplink/payload.json", 0),  # 4 readings
        _file(VENDORS / "Bosch/Parking_Lot_Sensor/LORIOT/uplink/payload_3.json", 1),         # 2 readings
        _file(UPLINKS / "kschmott_ttn_simulated_uplink.json", 2),                            # simulated_uplink
        _file(UPLINKS / "bertrik_decoded_fields.json", 3),                                   # malformed_json
        _file(UPLINKS / "bertrik_ttnv3_mqtt_message.json", 4),                               # unknown_device
        _file(UPLINKS / "bertrik_json_payload.json", 5),                                     # bad_envelope
        _file(VENDORS / "Milesight/EM310-UDL/HTTP/uplink/payload.json", 6),                  # bad_timestamp
        # The same anonymised EUI as the bin, so the Bosch start-up bytes meet the EM310 codec.
        _file(VENDORS / "Bosch/Parking_Lot_Sensor/ChirpStack/uplink/payload_2.json", 7),     # bad_payload
        _storage_ndjson(8),                                                                  # 4 + 2, malformed
        Frame(body=json.dumps(chirpstack).encode(), meta={"topic": "up"}, seq=9),           # 1 reading
        Frame(body=b"\xff\xfe{", meta={"topic": "up"}, seq=10),                             # malformed_json
    ]


@pytest.fixture(scope="module")
def tables() -> tuple[pa.Table, pa.Table]:
    return decode(_frames(), DEVICES)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def test_schemas(tables: tuple[pa.Table, pa.Table]) -> None:
    decoded, rejects = tables
    assert decoded.schema == DECODED
    assert rejects.schema == REJECTS


def test_reject_counts_and_reasons(tables: tuple[pa.Table, pa.Table]) -> None:
    rejects = _rows(tables[1])
    assert Counter((r["frame"], r["reason"]) for r in rejects) == Counter({
        (2, "simulated_uplink"): 1,
        (3, "malformed_json"): 1,
        (4, "unknown_device"): 1,
        (5, "bad_envelope"): 1,
        (6, "bad_timestamp"): 1,
        (7, "bad_payload"): 1,
        (8, "malformed_json"): 1,
        (10, "malformed_json"): 1,
    })
    assert all(r["reason"] in REASONS and r["raw"] for r in rejects)


def test_rejects_name_the_device_when_known(tables: tuple[pa.Table, pa.Table]) -> None:
    by_frame = {r["frame"]: r for r in _rows(tables[1])}
    assert by_frame[2]["ref"] == "F8C61C63E6A038B6"
    assert by_frame[2]["ts"] == datetime(2024, 10, 30, 20, 33, 52, 115046, tzinfo=UTC)
    assert by_frame[4]["ref"] == "0000547AF1BF713C"
    assert by_frame[7]["ref"] == BIN and "00000000990200d1" in by_frame[7]["detail"]
    assert by_frame[5]["ref"] is None and by_frame[3]["ref"] is None
    assert "line 2" in by_frame[8]["detail"] and by_frame[8]["raw"] == '{"result": {"end_device_ids": '


def test_readings(tables: tuple[pa.Table, pa.Table]) -> None:
    tts_community = datetime(2023, 5, 19, 5, 33, 35, 641841, tzinfo=UTC)
    tts_industries = datetime(2023, 5, 18, 8, 25, 25, 906399, tzinfo=UTC)
    loriot = datetime(2023, 8, 1, 14, 47, 40, 493000, tzinfo=UTC)
    bin_readings = [
        ("battery", 92.0, "%"), ("distance", 2116.0, "mm"), ("tilt", 1.0, "bool"), ("fill_level", 15.4, "%"),
    ]
    expected = (
        [(0, BIN, m, tts_community, v, u) for m, v, u in bin_readings]
        + [(1, PARKING, "occupied", loriot, 1.0, "bool"), (1, PARKING, "temperature", loriot, 18.0, "degC")]
        + [(8, BIN, m, tts_industries, v, u) for m, v, u in bin_readings]
        + [(8, PARKING, "occupied", SIM_TS, 0.0, "bool"), (8, PARKING, "temperature", SIM_TS, -5.0, "degC")]
        + [(9, PARKING, "occupied", SIM_TS, 1.0, "bool")]
    )
    rows = _rows(tables[0])
    assert [(r["frame"], r["ref"], r["metric"], r["ts"], r["value"], r["unit"]) for r in rows] == expected
    assert all(r["src_flag"] is None and r["subject"] is None for r in rows)


def test_fields_cover_every_codec_in_canonical_units() -> None:
    assert set(FIELDS) == set(CODECS)
    known = {(m.metric, m.unit) for m in METRICS}
    assert {pair for table in FIELDS.values() for pair in table.values()} | {FILL_LEVEL} <= known


def test_no_fill_level_without_bin_depth() -> None:
    frame = _file(VENDORS / "Milesight/EM310-UDL/ThingsStackCommunity/uplink/payload.json", 0)
    decoded, rejects = decode([frame], {BIN: {"codec": "em310_udl"}})
    assert decoded.column("metric").to_pylist() == ["battery", "distance", "tilt"]
    assert rejects.num_rows == 0


@pytest.mark.parametrize("distance, depth, percent", [(2116, 2500, 15.4), (3000, 2500, 0.0), (0, 1000, 100.0),
                                                      (333, 1000, 66.7)])
def test_fill_level(distance: int, depth: int, percent: float) -> None:
    assert fill_level(distance, depth) == percent


def test_registry_with_an_unknown_codec_rejects_instead_of_raising() -> None:
    frame = _file(VENDORS / "Milesight/EM310-UDL/ThingsStackCommunity/uplink/payload.json", 0)
    decoded, rejects = decode([frame], {BIN: {"codec": "em999"}})
    assert decoded.num_rows == 0
    assert rejects.column("reason").to_pylist() == ["unknown_device"]


def test_json_array_body_and_empty_input() -> None:
    payload = em310_udl.encode(80, 500, False)
    up = chirpstack_v4_uplink(BIN, em310_udl.F_PORT, payload, SIM_TS, "bin", "goyang-bins")
    decoded, rejects = decode([Frame(body=json.dumps([up, up]).encode(), seq=3)], DEVICES)
    assert decoded.num_rows == 8 and rejects.num_rows == 0
    assert set(decoded.column("frame").to_pylist()) == {3}
    empty_decoded, empty_rejects = decode([], DEVICES)
    assert empty_decoded.num_rows == empty_rejects.num_rows == 0
