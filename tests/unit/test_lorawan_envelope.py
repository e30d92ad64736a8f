"""Envelope parsing against every real network-server message we hold, and the builders."""
from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from etl.extract.lorawan_envelope import (
    NETWORKS,
    EnvelopeError,
    Uplink,
    chirpstack_v4_uplink,
    parse_uplink,
    ttn_v3_uplink,
)
from etl.timeutil import parse_iso
from quality.reasons import REASONS
from tests.conftest import real_data

REAL = real_data()
UPLINKS = REAL / "lorawan-uplinks"
VENDORS = REAL / "thingsboard-lns-payloads" / "VENDORS"

UTC = timezone.utc

# file -> (network, dev_eui, f_port, payload hex, ts, simulated)
REAL_UPLINKS: dict[str, tuple[str, str, int, str, str, bool]] = {
    "bertrik_ttnv3_mqtt_message.json": (
        "ttn_v3", "0000547AF1BF713C", 1, "010204460202019b036700f604684205732798",
        "2021-02-04T22:12:45.550581+00:00", False),
    "kschmott_ttn_simulated_uplink.json": (
        "ttn_v3", "F8C61C63E6A038B6", 1, "eabcbdcbbcdf", "2024-10-30T20:33:52.115046+00:00", True),
    "bertrik_ttn_mqtt_message.json": (
        "ttn_v2", "000084B14CA4AE30", 1, "00c6008fffffffff", "2019-04-21T19:11:54.660942+00:00", False),
    "bertrik_ttn_rudzl_message.json": (
        "ttn_v2", "00878E9A6221870B", 1, "6549093310ab045903ec03ec", "2019-09-08T21:35:12.677098+00:00", False),
    "bertrik_ttn_ttnulm_message.json": (
        "ttn_v2", "0004A30B001E00BE", 1, "012c012c0f6e0870", "2020-04-27T11:50:40.670033+00:00", False),
    "bertrik_helium_uplink.json": (
        "helium", "0004A30B001F21FA", 1, "03", "2021-09-12T14:39:25.832000+00:00", False),
}
NOT_UPLINKS = {"bertrik_json_payload.json", "bertrik_cdp_message.json"}
INVALID_JSON = {"bertrik_decoded_fields.json"}

# ThingsBoard's Decentlab TTS converter stamps the application server's time (top-level
# received_at); we keep the network server's (uplink_message.received_at).
TB_USES_AS_TIME = "Decentlab/DL-PM/ThingsStackCommunity"
# Milesight HTTP samples have "2020-0327T12:39:05.547336Z" (a dash missing).
TB_BAD_TIME = "/HTTP/"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _real(name: str) -> dict[str, Any]:
    return _load(UPLINKS / name)


def _tb_payloads() -> list[Any]:
    return [pytest.param(p, id=str(p.relative_to(VENDORS))) for p in sorted(VENDORS.rglob("payload*.json"))]


def _tb_expected(result_path: Path) -> tuple[str | None, Any]:
    result = _load(result_path)
    entry = result[0] if isinstance(result, list) else result
    attributes = entry.get("attributes", {})
    return attributes.get("eui") or attributes.get("lora_dev_eui"), entry["telemetry"][0].get("ts")


def _epoch_ms(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def test_every_real_uplink_file_is_covered() -> None:
    names = {p.name for p in UPLINKS.glob("*.json")}
    assert names == set(REAL_UPLINKS) | NOT_UPLINKS | INVALID_JSON


@pytest.mark.parametrize("name", sorted(REAL_UPLINKS))
def test_real_uplink(name: str) -> None:
    network, dev_eui, f_port, payload, ts, simulated = REAL_UPLINKS[name]
    assert parse_uplink(_real(name)) == Uplink(
        dev_eui=dev_eui, f_port=f_port, payload=bytes.fromhex(payload),
        ts=datetime.fromisoformat(ts), network=network, simulated=simulated,
    )


@pytest.mark.parametrize("name", sorted(NOT_UPLINKS))
def test_device_json_and_nb_iot_push_are_not_uplinks(name: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_uplink(_real(name))
    assert caught.value.reason == "bad_envelope"


def test_invalid_json_file_fails_in_the_json_parser() -> None:
    with pytest.raises(json.JSONDecodeError):
        _real("bertrik_decoded_fields.json")


def test_thingsboard_payload_files_are_all_found() -> None:
    assert len(_tb_payloads()) == 57


@pytest.mark.parametrize("path", _tb_payloads())
def test_thingsboard_envelope(path: Path) -> None:
    envelope = _load(path)
    if TB_BAD_TIME in str(path):
        with pytest.raises(EnvelopeError) as caught:
            parse_uplink(envelope)
        assert caught.value.reason == "bad_timestamp"
        return
    up = parse_uplink(envelope)
    eui, ts = _tb_expected(path.with_name(path.name.replace("payload", "result")))
    assert up.dev_eui == eui
    assert not up.simulated and up.payload
    if TB_USES_AS_TIME in str(path):
        assert _epoch_ms(parse_iso(envelope["received_at"])) == ts
    elif isinstance(ts, int):
        assert _epoch_ms(up.ts) == ts
    elif isinstance(ts, str):
        assert up.ts == parse_iso(ts)


def test_networks_are_recognised_by_their_keys() -> None:
    def network(relative: str) -> str:
        return parse_uplink(_load(VENDORS / relative)).network

    assert network("Milesight/EM310-UDL/ChirpStack/uplink/payload.json") == "chirpstack_v4"
    assert network("Milesight/EM310-UDL/LORIOT/uplink/payload_1.json") == "loriot"
    assert network("Milesight/EM310-UDL/ThingsStackIndustries/uplink/payload.json") == "ttn_v3"
    assert network("Decentlab/DL-PM/ChirpStack/uplink/payload_03.json") == "chirpstack_v3"


def test_chirpstack_v3_base64_dev_eui_and_gateway_time() -> None:
    up = parse_uplink(_load(VENDORS / "Decentlab/DL-PM/ChirpStack/uplink/payload_03.json"))
    assert up.dev_eui == "0202020202020202"  # "AgICAgICAgI=" from the JSON v3 marshaler
    assert up.ts == datetime(2019, 11, 8, 13, 59, 25, 48445, tzinfo=UTC)


def test_milesight_http_is_recognised_once_its_time_is_valid() -> None:
    envelope = _load(VENDORS / "Milesight/EM310-UDL/HTTP/uplink/payload.json")
    envelope["time"] = "2020-03-27T12:39:05.547336Z"
    up = parse_uplink(envelope)
    assert (up.network, up.dev_eui, up.f_port) == ("milesight_http", "24E1641092176759", 85)
    assert up.payload.hex() == "01755c03824408040001"


def test_storage_integration_wrapper() -> None:
    message = _real("bertrik_ttnv3_mqtt_message.json")
    assert parse_uplink({"result": message}) == parse_uplink(message)


def test_ns_received_time_wins_over_application_time() -> None:
    message = _real("bertrik_ttnv3_mqtt_message.json")
    assert message["received_at"] != message["uplink_message"]["received_at"]
    assert parse_uplink(message).ts == parse_iso(message["uplink_message"]["received_at"])


def test_simulation_is_seen_from_the_correlation_id_too() -> None:
    message = _real("kschmott_ttn_simulated_uplink.json")
    del message["simulated"]
    assert parse_uplink(message).simulated


def _broken(name: str, edit: Any) -> dict[str, Any]:
    message = copy.deepcopy(_real(name))
    edit(message)
    return message


TTN3 = "bertrik_ttnv3_mqtt_message.json"
TTN2 = "bertrik_ttn_mqtt_message.json"
HELIUM = "bertrik_helium_uplink.json"


@pytest.mark.parametrize("message, reason, detail", [
    (_broken(TTN3, lambda m: m.pop("uplink_message")), "bad_envelope", "not an uplink"),
    (_broken(TTN3, lambda m: m["uplink_message"].pop("frm_payload")), "bad_envelope", "frm_payload is missing"),
    (_broken(TTN3, lambda m: m["uplink_message"].update(frm_payload="%%")), "bad_envelope", "not base64"),
    (_broken(TTN3, lambda m: m["end_device_ids"].pop("dev_eui")), "bad_envelope", "dev_eui is missing"),
    (_broken(TTN3, lambda m: m["end_device_ids"].update(dev_eui="12345")), "bad_envelope", "not a 64-bit EUI"),
    (_broken(TTN3, lambda m: m["uplink_message"].update(f_port=300)), "bad_envelope", "port 0..255"),
    (_broken(TTN3, lambda m: [m.pop("received_at"), m["uplink_message"].pop("received_at")]),
     "bad_timestamp", "missing"),
    (_broken(TTN2, lambda m: m["metadata"].update(time="yesterday")), "bad_timestamp", "yesterday"),
    (_broken(HELIUM, lambda m: m.update(reported_at="1631457565832")), "bad_timestamp", "epoch"),
    ({"cmd": "tx", "EUI": "1000000000000001"}, "bad_envelope", "not an uplink"),
    ({"cmd": "rx", "EUI": "1000000000000001", "ts": 1, "port": 1, "encdata": "00"}, "bad_envelope", "encrypted"),
    ({"cmd": "rx", "EUI": "1000000000000001", "ts": 1, "port": 1, "data": "0g"}, "bad_envelope", "not hex"),
    ({"error": {"code": 16, "message": "unauthenticated"}}, "api_error", "unauthenticated"),
    ([1, 2], "bad_envelope", "got list"),
    ({}, "bad_envelope", "not a known uplink envelope"),
])
def test_envelope_errors(message: Any, reason: str, detail: str) -> None:
    with pytest.raises(EnvelopeError, match=detail) as caught:
        parse_uplink(message)
    assert caught.value.reason == reason
    assert reason in REASONS


def test_envelope_error_refuses_undocumented_reasons() -> None:
    with pytest.raises(ValueError, match="undocumented"):
        EnvelopeError("no_such_reason", "x")


# --- builders ------------------------------------------------------------------------

TS = datetime(2025, 3, 1, 3, 15, 42, 123456, tzinfo=UTC)
NS_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|\+00:00)$")
TTS_SAMPLE = VENDORS / "Milesight/EM310-UDL/ThingsStackCommunity/uplink/payload.json"
CHIRPSTACK_SAMPLE = VENDORS / "Milesight/EM310-UDL/ChirpStack/uplink/payload.json"


def _keys(obj: dict[str, Any], *path: str | int) -> set[str]:
    for key in path:
        obj = obj[key]
    return set(obj)


def test_ttn_v3_builder_round_trips() -> None:
    envelope = ttn_v3_uplink("24e1641092176759", 85, b"\x01\x75\x5c", TS, "bin-0001", "goyang-bins")
    assert parse_uplink(envelope) == Uplink("24E1641092176759", 85, b"\x01\x75\x5c", TS, "ttn_v3", False)
    assert parse_uplink({"result": envelope}).ts == TS


def test_ttn_v3_builder_has_the_real_shape() -> None:
    real = _load(TTS_SAMPLE)
    built = ttn_v3_uplink("24E1641092176759", 85, b"\x01", TS, "bin", "app")
    assert _keys(built) == _keys(real)
    assert _keys(built, "uplink_message") == _keys(real, "uplink_message")
    real_gateway = _keys(real, "uplink_message", "rx_metadata", 0)
    assert _keys(built, "uplink_message", "rx_metadata", 0) == real_gateway - {"frequency_offset"}
    assert _keys(built, "uplink_message", "settings") == _keys(real, "uplink_message", "settings")
    assert _keys(built, "end_device_ids") == _keys(real, "end_device_ids")
    assert NS_ISO.match(built["received_at"]) and NS_ISO.match(built["uplink_message"]["received_at"])
    assert built["uplink_message"]["settings"]["frequency"] in {"922100000", "922300000", "922500000"}


def test_chirpstack_v4_builder_round_trips() -> None:
    envelope = chirpstack_v4_uplink("24E1641092176759", 2, b"\x01\x12", TS, "parking-0001", "goyang-parking")
    assert parse_uplink(envelope) == Uplink("24E1641092176759", 2, b"\x01\x12", TS, "chirpstack_v4", False)


def test_chirpstack_v4_builder_has_the_real_shape() -> None:
    real = _load(CHIRPSTACK_SAMPLE)
    built = chirpstack_v4_uplink("24E1641092176759", 2, b"\x01", TS, "p", "app")
    assert _keys(built) == _keys(real)
    assert _keys(built, "deviceInfo") == _keys(real, "deviceInfo")
    assert _keys(built, "rxInfo", 0) == _keys(real, "rxInfo", 0)
    assert _keys(built, "txInfo", "modulation", "lora") == _keys(real, "txInfo", "modulation", "lora")
    assert NS_ISO.match(built["time"])
    assert built["deviceInfo"]["devEui"] == "24e1641092176759"


def test_builders_are_deterministic_and_refuse_naive_time() -> None:
    assert ttn_v3_uplink("24E1641092176759", 85, b"\x01", TS, "b", "a") == ttn_v3_uplink(
        "24E1641092176759", 85, b"\x01", TS, "b", "a")
    assert chirpstack_v4_uplink("24E1641092176759", 1, b"\x01", TS, "p", "a") == chirpstack_v4_uplink(
        "24E1641092176759", 1, b"\x01", TS, "p", "a")
    with pytest.raises(ValueError, match="naive"):
        ttn_v3_uplink("24E1641092176759", 85, b"\x01", TS.replace(tzinfo=None), "b", "a")


def test_network_names_are_listed() -> None:
    assert {"ttn_v3", "chirpstack_v4", "ttn_v2", "loriot", "helium", "milesight_http"} <= set(NETWORKS)
