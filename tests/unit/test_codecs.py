"""Device codecs against the vendors' own test vectors and ThingsBoard's decoded output."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from etl.codecs import CODECS, CodecError, bosch_pls, em310_udl
from tests.conftest import real_data

REAL = real_data()
UPLINKS = REAL / "lorawan-uplinks"
VENDORS = REAL / "thingsboard-lns-payloads" / "VENDORS"

VECTOR_FILES = {
    "ttn-devicerepo_milesight_em310-udl-codec.yaml": "em310_udl",
    "ttn-devicerepo_bosch_tps110-0292-codec.yaml": "bosch_pls",
}
# TTN's Device Repository decoder is older than Milesight's and names ``position`` ``tilt``.
VECTOR_KEYS = {"tilt": "position"}

ORACLE_DIRS = {"Milesight/EM310-UDL": "em310_udl", "Bosch/Parking_Lot_Sensor": "bosch_pls"}
# ThingsBoard's Bosch converter names reset causes its own way.
TB_RESET_CAUSES = {
    "Watchdog reset": "watchdog", "Power On Reset": "power on", "System Request Reset": "system request",
}

EM310_VECTOR = bytes([0x01, 0x75, 0x5C, 0x03, 0x82, 0x44, 0x08, 0x04, 0x00, 0x01])


def _vectors() -> list[Any]:
    cases = []
    for path in sorted(UPLINKS.glob("ttn-devicerepo_*-codec.yaml")):
        examples = yaml.safe_load(path.read_text())["uplinkDecoder"]["examples"]
        for example in examples:
            name = f"{path.stem}:{example['description']}"
            cases.append(pytest.param(VECTOR_FILES[path.name], example, id=name))
    return cases


def _oracle_pairs() -> list[Any]:
    cases = []
    for folder, codec in ORACLE_DIRS.items():
        for payload in sorted((VENDORS / folder).glob("*/uplink/payload*.json")):
            result = payload.with_name(payload.name.replace("payload", "result"))
            cases.append(pytest.param(codec, payload, result, id=str(payload.relative_to(VENDORS))))
    return cases


def _envelope_bytes(envelope: dict[str, Any]) -> tuple[int, bytes]:
    """Port and bytes straight from the envelope, independent of the envelope parser."""
    if "uplink_message" in envelope:
        up = envelope["uplink_message"]
        return up["f_port"], base64.b64decode(up["frm_payload"])
    if "cmd" in envelope:
        return envelope["port"], bytes.fromhex(envelope["data"])
    return envelope["fPort"], base64.b64decode(envelope["data"])


def _device_values(result: Any) -> dict[str, Any]:
    entry = result[0] if isinstance(result, list) else result
    return entry["telemetry"][0]["values"]


def _from_thingsboard(values: dict[str, Any], payload: bytes) -> dict[str, Any]:
    """ThingsBoard's Bosch start-up reading in our codec's terms."""
    expected = dict(values)
    if "firmwareVersion" in expected:
        expected["firmwareVersion"] = ".".join(reversed(expected["firmwareVersion"].split(".")))
    if "resetCause" in expected:
        expected["resetCause"] = TB_RESET_CAUSES[expected["resetCause"]]
    if "debugInfo" in expected:
        assert expected.pop("debugInfo") == payload[:12].hex(" ")
    return expected


def test_every_vector_file_has_a_codec() -> None:
    found = {p.name for p in UPLINKS.glob("ttn-devicerepo_*-codec.yaml")}
    assert found == set(VECTOR_FILES)


def test_registry_names_both_codecs() -> None:
    assert CODECS == {"em310_udl": em310_udl.decode, "bosch_pls": bosch_pls.decode}
    assert issubclass(CodecError, ValueError)


@pytest.mark.parametrize("codec, example", _vectors())
def test_vendor_vector(codec: str, example: dict[str, Any]) -> None:
    decoded = CODECS[codec](example["input"]["fPort"], bytes(example["input"]["bytes"]))
    renames = VECTOR_KEYS if codec == "em310_udl" else {}
    expected = {renames.get(k, k): v for k, v in example["output"]["data"].items()}
    assert decoded == expected


def test_thingsboard_oracle_pairs_are_all_found() -> None:
    assert len(_oracle_pairs()) == 19


@pytest.mark.parametrize("codec, payload_path, result_path", _oracle_pairs())
def test_thingsboard_oracle(codec: str, payload_path: Path, result_path: Path) -> None:
    f_port, payload = _envelope_bytes(json.loads(payload_path.read_text()))
    values = _device_values(json.loads(result_path.read_text()))
    decoded = CODECS[codec](f_port, payload)
    if codec == "em310_udl":
        assert decoded == values
    else:
        expected = _from_thingsboard(values, payload)
        assert {k: decoded[k] for k in expected} == expected
        assert set(decoded) - set(expected) <= {"debugCodes"}


def test_thingsboard_startup_debug_codes() -> None:
    payload = bytes.fromhex("00000000990200d100050000001d020200")
    assert bosch_pls.decode(3, payload)["debugCodes"] == [0x299, 0x500]


# --- EM310-UDL -----------------------------------------------------------------------


def test_em310_encode_matches_vendor_vector() -> None:
    assert em310_udl.encode(battery=92, distance_mm=2116, tilted=True) == EM310_VECTOR


@pytest.mark.parametrize("battery, distance, tilted", [(0, 0, False), (100, 65535, True), (57, 1234, False)])
def test_em310_round_trip(battery: int, distance: int, tilted: bool) -> None:
    decoded = em310_udl.decode(em310_udl.F_PORT, em310_udl.encode(battery, distance, tilted))
    assert decoded == {"battery": battery, "distance": distance, "position": "tilt" if tilted else "normal"}


def test_em310_device_information_channels() -> None:
    payload = bytes.fromhex("ff0101" "ff090110" "ff0a011f" "ff166136c19146600003" "ff0f00" "fffeff" "ff0bff")
    assert em310_udl.decode(85, payload) == {
        "ipso_version": "v0.1",
        "hardware_version": "v1.1",
        "firmware_version": "v1.1f",
        "sn": "6136c19146600003",
        "lorawan_class": "Class A",
        "reset_event": "reset",
        "device_status": "on",
    }


def test_em310_downlink_responses() -> None:
    payload = bytes.fromhex("fe020a00" "ff03b004" "ff06" "82" "6400" "ffff" "0a00" "0500")
    assert em310_udl.decode(85, payload) == {
        "collection_interval": 10,
        "report_interval": 1200,
        "distance_alarm_config": {
            "condition": "above", "alarm_release_enable": "enable",
            "threshold_min": 100, "threshold_max": -1, "lock_time": 10, "continue_time": 5,
        },
    }


@pytest.mark.parametrize("payload, message", [
    (b"", "empty"),
    (EM310_VECTOR[:-1], "truncated position"),
    (EM310_VECTOR[:5], "truncated distance"),
    (EM310_VECTOR + b"\x01", "truncated channel header"),
    (bytes.fromhex("0599ff"), "unknown channel 0x05 0x99"),
    (bytes.fromhex("040002"), "unknown position 0x02"),
])
def test_em310_rejects_bad_bytes(payload: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        em310_udl.decode(85, payload)


@pytest.mark.parametrize("battery, distance", [(101, 0), (-1, 0), (50, 65536)])
def test_em310_encode_refuses_values_that_do_not_fit(battery: int, distance: int) -> None:
    with pytest.raises(ValueError):
        em310_udl.encode(battery, distance, False)


# --- Bosch parking lot sensor --------------------------------------------------------


def test_bosch_encoders_match_vendor_vectors() -> None:
    assert bosch_pls.encode_status(True) == (1, bytes([1]))
    assert bosch_pls.encode_heartbeat(True, -1) == (2, bytes([1, 255]))


@pytest.mark.parametrize("occupied", [True, False])
@pytest.mark.parametrize("temperature", [-128, -20, 0, 18, 127])
def test_bosch_round_trip(occupied: bool, temperature: int) -> None:
    status = bosch_pls.decode(*bosch_pls.encode_status(occupied))
    assert status == {"type": "parking status", "occupied": occupied}
    decoded = bosch_pls.decode(*bosch_pls.encode_heartbeat(occupied, temperature))
    assert decoded == {"type": "heartbeat", "occupied": occupied, "temperature": temperature}


def test_bosch_heartbeat_without_temperature() -> None:
    assert bosch_pls.decode(2, b"\x00") == {"type": "heartbeat", "occupied": False}


def test_bosch_service_ports_carry_no_measurement() -> None:
    assert bosch_pls.decode(4, b"\x01\x02") == {"type": "device information", "raw": "0102"}
    assert bosch_pls.decode(6, bytes.fromhex("0100000004050000 0800".replace(" ", ""))) == {
        "type": "debug", "timestamp": 1, "debugCode": 0x504, "sequenceNumber": 8,
    }


@pytest.mark.parametrize("f_port, payload, message", [
    (1, b"", "parking status has 0 bytes"),
    (1, b"\x01\x00", "parking status has 2 bytes"),
    (2, b"\x01\x02\x03", "heartbeat has 3 bytes"),
    (3, bytes(16), "start-up message has 16 bytes"),
    (6, bytes(9), "debug message has 9 bytes"),
    (9, b"\x01", "fPort 9"),
])
def test_bosch_rejects_bad_bytes(f_port: int, payload: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        bosch_pls.decode(f_port, payload)


def test_bosch_heartbeat_refuses_temperature_out_of_int8() -> None:
    with pytest.raises(ValueError):
        bosch_pls.encode_heartbeat(True, 128)
