"""Quarantine reason codes: the documented vocabulary. Every quarantined record has one."""
from __future__ import annotations

REASONS: dict[str, str] = {
    # decoding (normalisation)
    "malformed_json": "The payload is not valid JSON.",
    "malformed_csv": "A CSV row could not be parsed (wrong field count, undecodable text).",
    "malformed_xml": "The payload is not valid XML.",
    "bad_envelope": "The network-server envelope lacks a required field (device id, payload, time).",
    "bad_payload": "The device payload bytes do not match the device codec.",
    "bad_timestamp": "The time stamp is missing or cannot be parsed.",
    "bad_value": "The value is not a number.",
    "api_error": "The gateway answered with an error envelope instead of data.",
    "simulated_uplink": "A network-server console simulation, not a real device uplink.",
    "source_missing": "The source marked the value as missing (e.g. AirKorea '-' with a *Flag).",
    "sentinel": "The value is a missing-data sentinel (e.g. -9, -999, -99999.992).",
    "unknown_device": "The device reference is not in the device registry.",
    "unknown_metric": "The field is not a metric of the device's domain.",
    "unknown_unit": "The unit cannot be converted to the metric's canonical unit.",
    "instrument_status": "The instrument reported an abnormal status (calibration, repair, power cut).",
    # row-level quality (quality suites)
    "out_of_physical_range": "The value is outside the physically possible range.",
    "future_timestamp": "The time stamp is later than the batch was received.",
    "before_install": "The time stamp is before the device was installed.",
    "outside_goyang": "The reported coordinates are outside Goyang (swapped latitude/longitude?).",
}


def check(reason: str) -> str:
    if reason not in REASONS:
        raise ValueError(f"undocumented quarantine reason {reason!r}")
    return reason
