"""Settings, time, units, storage and landing: the small pieces everything rests on."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from etl import timeutil, units
from etl.extract.frames import Frame, decode_frames, encode_frames
from etl.settings import load_settings

UTC = timezone.utc


# ---- settings -------------------------------------------------------------------------------
def test_settings_defaults_and_env_overrides(tmp_path: Path) -> None:
    s = load_settings({})
    assert s.lake_uri.startswith("file:///") and s.lake_uri.endswith("var/lake")
    s = load_settings({"CITYLAKE_LAKE_URI": "s3://city/lake/", "CITYLAKE_MQTT_PORT": "1884"})
    assert s.lake_uri == "s3://city/lake" and s.mqtt_port == 1884
    extra = tmp_path / "over.yaml"
    extra.write_text("fleet: goyang\n")
    assert load_settings({"CITYLAKE_CONFIG": str(extra)}).fleet == "goyang"
    extra.write_text("nonsense_key: 1\n")
    with pytest.raises(ValueError, match="nonsense_key"):
        load_settings({"CITYLAKE_CONFIG": str(extra)})


def test_settings_are_lazy() -> None:
    """Importing the pipeline builds no settings (a fresh interpreter, so caches are untouched)."""
    import subprocess
    import sys

    code = ("import etl.settings, etl.storage, etl.ingest, etl.normalize;"
            "print(etl.settings.get_settings.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_s3_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    monkeypatch.setenv("AWS_REGION", "ap-northeast-2")
    c = load_settings({"CITYLAKE_S3_ENDPOINT_URL": "http://127.0.0.1:9"}).s3_credentials()
    assert c == {"key": "AK", "secret": "SK", "endpoint": "http://127.0.0.1:9", "region": "ap-northeast-2"}


def test_s3_credentials_from_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_CITYLAKE_S3",
                       '{"conn_type": "aws", "login": "L", "password": "P", '
                       '"extra": {"endpoint_url": "http://minio:9000", "region_name": "us-east-1"}}')
    c = load_settings({}).s3_credentials()
    assert (c["key"], c["secret"], c["endpoint"], c["region"]) == ("L", "P", "http://minio:9000", "us-east-1")


# ---- time -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [
    ("2024-02-18 24:00", datetime(2024, 2, 18, 15, tzinfo=UTC)),
    ("2024-02-18 09:00", datetime(2024, 2, 18, 0, tzinfo=UTC)),
    ("202402180930", datetime(2024, 2, 18, 0, 30, tzinfo=UTC)),
    ("2024-12-31 24:00", datetime(2024, 12, 31, 15, tzinfo=UTC)),
])
def test_parse_kst(text: str, want: datetime) -> None:
    assert timeutil.parse_local(text) == want


def test_24_00_only_on_the_hour() -> None:
    with pytest.raises(ValueError):
        timeutil.parse_local("2024-02-18 24:30")


def test_iso_with_nanoseconds_and_epoch_ms() -> None:
    assert timeutil.parse_iso("2026-11-24T03:05:00.123456789Z") == datetime(2026, 11, 24, 3, 5, 0, 123456, tzinfo=UTC)
    assert timeutil.parse_iso("2026-11-24T12:05:00+09:00") == datetime(2026, 11, 24, 3, 5, tzinfo=UTC)
    assert timeutil.from_epoch_ms(1764000000123) == datetime(2025, 11, 24, 16, 0, 0, 123000, tzinfo=UTC)


def test_kst_dates_and_day_bounds() -> None:
    import pyarrow as pa

    start, end = timeutil.kst_day_bounds(date(2026, 11, 24))
    assert start == datetime(2026, 11, 23, 15, tzinfo=UTC) and end - start == timedelta(days=1)
    ts = pa.array([start, end - timedelta(microseconds=1), end], pa.timestamp("us", tz="UTC"))
    assert timeutil.kst_date_strings(ts).to_pylist() == ["2026-11-24", "2026-11-24", "2026-11-25"]
    assert timeutil.format_kst_hour(end) == "2026-11-24 24:00"


# ---- units ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value,src,dst,want", [
    (0.035, "mg/m3", "ug/m3", 35.0), (212.0, "degF", "degC", 100.0), (0.12, "kW", "W", 120.0),
    (1.2, "mS/cm", "uS/cm", 1200.0), (36.0, "km/h", "m/s", 10.0), (35.0, "㎍/㎥", "ug/m3", 35.0),
    (7.0, "℃", "degC", 7.0), (40.0, "Mircrogram/m3", "ug/m3", 40.0),
])
def test_unit_conversions(value: float, src: str, dst: str, want: float) -> None:
    assert units.convert(value, src, dst) == pytest.approx(want)


def test_unknown_conversion_raises() -> None:
    with pytest.raises(KeyError):
        units.conversion("ppm", "ug/m3")


# ---- frames ---------------------------------------------------------------------------------
def test_frames_keep_exact_bytes() -> None:
    frames = [Frame("행신동 {\"a\": 1}\n".encode(), {"topic": "x"}), Frame("측정일시".encode("cp949"), {"file": "a.csv"}),
              Frame(b"\x00\xff binary")]
    back = decode_frames(encode_frames(frames))
    assert [f.body for f in back] == [f.body for f in frames]
    assert [f.meta for f in back] == [f.meta for f in frames]


# ---- storage and landing, on local disk and on the S3 server --------------------------------
def _landing_roundtrip() -> None:
    from etl import landing
    from etl.storage import lake

    store = lake()
    start = datetime(2026, 11, 23, 15, tzinfo=UTC)
    frames = [Frame(b'{"x": 1}', {"page": 0}), Frame(b'{"x": 2}', {"page": 1})]
    env, wrote = landing.land(store, "weather_http", "http_cursor", start, start + timedelta(hours=1), frames,
                              datetime.now(UTC))
    assert wrote and env.frames == 2
    again, wrote_again = landing.land(store, "weather_http", "http_cursor", start, start + timedelta(hours=1), frames,
                                      datetime.now(UTC) + timedelta(minutes=5))
    assert not wrote_again and again == env                    # same window, same bytes: landed once
    assert decode_frames(landing.read_data(store, env))[1].body == b'{"x": 2}'
    assert landing.list_envelopes(store, "weather_http") == [env.key.replace(".jsonl", ".envelope.json")]
    assert env.key.startswith("landing/source=weather_http/date=2026-11-24/")
    assert not store.put_if_absent(env.key, b"other bytes")    # conditional write refuses to clobber
    assert landing.read_data(store, env)                        # and the original is intact
    other, wrote_other = landing.land(store, "weather_http", "http_cursor", start, start + timedelta(hours=1),
                                      frames[:1], datetime.now(UTC))
    assert wrote_other and other.batch_id != env.batch_id       # new content for the window: a new batch
    landing.save_cursor(store, "weather_http", {"until": "2026-11-24T15:00:00+00:00"})
    assert landing.load_cursor(store, "weather_http") == {"until": "2026-11-24T15:00:00+00:00"}


def test_landing_on_local_disk(lake_env: Path) -> None:
    _landing_roundtrip()
    leftovers = [p for p in (lake_env / "lake").rglob(".tmp-*")]
    assert leftovers == []


@pytest.mark.integration
def test_landing_on_s3_server(s3_lake: str) -> None:
    _landing_roundtrip()
