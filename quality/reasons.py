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
    "bad_category": "The value is not one of the metric's allowed values (e.g. 0/1 for a switch).",
    "source_flagged": "The source flagged the reading as invalid (an AirKorea *Flag, an abnormal status code).",
}

# Quality flags: the reading is kept in silver, with these codes in ``quality_flag`` (';'-joined).
FLAGS: dict[str, str] = {
    "implausible": "Possible, but outside what Goyang normally sees (the metric's plausible range).",
    "stuck": "Part of a run of identical consecutive values: the sensor may be frozen.",
    "spike": "Jumps further than the metric's max step away from both neighbouring readings.",
    "pm25_above_pm10": "PM2.5 above PM10 at the same station and time (PM2.5 is a fraction of PM10).",
}


def check_flag(flag: str) -> str:
    if flag not in FLAGS:
        raise ValueError(f"undocumented quality flag {flag!r}")
    return flag


def check(reason: str) -> str:
    if reason not in REASONS:
        raise ValueError(f"undocumented quarantine reason {reason!r}")
    return reason
