"""MQTT login (settings ``mqtt_username`` / ``mqtt_password``, env CITYLAKE_MQTT_USERNAME /
CITYLAKE_MQTT_PASSWORD) against a private Mosquitto with ``allow_anonymous false`` and a
password file: a missing or wrong login fails with a clear error that never shows the password;
the right one lets the simulator publish and the extractor drain."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

from etl.extract import mqtt
from etl.extract.mqtt import MqttAuthError
from etl.simulate.broker import Mosquitto
from etl.simulate.mqtt_pub import publish
from tests.conftest import REPO, clear_caches

pytestmark = pytest.mark.integration

USER = "citylake-extractor"
PASSWORD = os.urandom(12).hex()   # made per run: no credential literal in the repository


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwd = tmp_path / "passwd"
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is not installed (Debian package mosquitto)", pytrace=False)
    subprocess.run([tool, "-b", "-c", str(passwd), USER, PASSWORD], check=True, capture_output=True)
    b = Mosquitto(tmp_path / "broker", save_every_change=False,
                  extra=("allow_anonymous false", f"password_file {passwd}")).start()
    yield b
    b.stop()


@pytest.fixture
def login(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Sets the env as a deployment would; each test then sets the values it needs."""
    for name in ("CITYLAKE_MQTT_USERNAME", "CITYLAKE_MQTT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    clear_caches()
    yield
    clear_caches()


def _use(monkeypatch: pytest.MonkeyPatch, user: str | None, password: str | None) -> None:
    for name, value in (("CITYLAKE_MQTT_USERNAME", user), ("CITYLAKE_MQTT_PASSWORD", password)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    clear_caches()


def _messages(n: int) -> list[tuple[datetime, str, bytes]]:
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    return [(now, f"auth/streetlights/SL-{i:03d}/state", b'{"n":%d}' % i) for i in range(n)]


TOPIC, CLIENT = "auth/streetlights/+/state", "auth-extractor"


def test_missing_login_is_refused_with_a_clear_error(broker: Mosquitto, login: None) -> None:
    with pytest.raises(MqttAuthError, match=r"refused the login of an anonymous client .*CITYLAKE_MQTT_USERNAME"):
        mqtt.drain("127.0.0.1", broker.port, TOPIC, CLIENT, idle_s=0.2, connect_timeout_s=5)
    with pytest.raises(MqttAuthError, match="anonymous"):
        publish(_messages(3), "127.0.0.1", broker.port, "auth-gw", timeout_s=5)


def test_wrong_password_is_refused_without_showing_it(broker: Mosquitto, login: None,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    wrong = "not-" + PASSWORD
    _use(monkeypatch, USER, wrong)
    with caplog.at_level(logging.DEBUG), pytest.raises(MqttAuthError) as err:
        mqtt.drain("127.0.0.1", broker.port, TOPIC, CLIENT, idle_s=0.2, connect_timeout_s=5)
    message = str(err.value)
    assert f"user {USER!r}" in message and "CITYLAKE_MQTT_PASSWORD" in message
    assert wrong not in message and wrong not in caplog.text
    with pytest.raises(MqttAuthError, match=USER):
        publish(_messages(3), "127.0.0.1", broker.port, "auth-gw", timeout_s=5)


def test_right_login_lands_every_message(broker: Mosquitto, login: None, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    from etl.settings import get_settings

    _use(monkeypatch, USER, PASSWORD)
    with caplog.at_level(logging.DEBUG):
        mqtt.ensure_session("127.0.0.1", broker.port, TOPIC, CLIENT)
        assert publish(_messages(50), "127.0.0.1", broker.port, "auth-gw") == 50
        drained = mqtt.drain("127.0.0.1", broker.port, TOPIC, CLIENT, idle_s=0.5)
        drained.ack_and_close()
        again = mqtt.drain("127.0.0.1", broker.port, TOPIC, CLIENT, idle_s=0.3)
        again.ack_and_close()
    assert sorted(f.body for f in drained.frames) == sorted(m[2] for m in _messages(50))
    assert again.frames == []
    settings = get_settings()
    assert (settings.mqtt_username, settings.mqtt_password) == (USER, PASSWORD)
    assert PASSWORD not in repr(settings) and PASSWORD not in caplog.text


def test_the_password_stays_out_of_dag_files_and_configuration() -> None:
    """Only the environment (infra/.env, a Kubernetes Secret) holds it."""
    for path in [*(REPO / "dags").rglob("*.py"), REPO / "etl" / "config" / "citylake.yaml",
                 REPO / "etl" / "sources" / "sources.yaml"]:
        text = path.read_text(encoding="utf-8")
        assert "mqtt_password" not in text and "MQTT_PASSWORD" not in text, path


def test_compose_acl_lets_the_gateway_publish_and_the_extractor_drain(tmp_path: Path, login: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The two logins and the ACL infra/docker-compose.yml gives the broker: the gateway writes,
    the extractor reads (its durable session and the acknowledgement barrier work under it)."""
    import yaml

    compose = yaml.safe_load((REPO / "infra" / "docker-compose.yml").read_text(encoding="utf-8"))
    script = "\n".join(compose["services"]["mosquitto"]["command"])
    assert "allow_anonymous true" not in script and "1884" not in script
    env = compose["x-airflow-env"]
    assert env["CITYLAKE_MQTT_PORT"] == "1883"
    assert env["CITYLAKE_MQTT_USERNAME"] == "${MQTT_EXTRACTOR_USERNAME}"
    assert env["CITYLAKE_MQTT_PASSWORD"].startswith("${MQTT_EXTRACTOR_PASSWORD")
    assert "user $$MQTT_GATEWAY_USERNAME\" 'topic write #'" in script
    assert "user $$MQTT_EXTRACTOR_USERNAME\" 'topic read #'" in script

    gateway, extractor = ("gateway", "gw-" + os.urandom(4).hex()), (USER, PASSWORD)
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), *gateway], check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), *extractor], check=True, capture_output=True)
    acl.write_text(f"user {gateway[0]}\ntopic write #\n\nuser {extractor[0]}\ntopic read #\ntopic read $SYS/#\n")
    b = Mosquitto(tmp_path / "broker", save_every_change=False,
                  extra=("allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}")).start()
    try:
        _use(monkeypatch, *extractor)
        mqtt.ensure_session("127.0.0.1", b.port, TOPIC, CLIENT)
        _use(monkeypatch, *gateway)
        publish(_messages(20), "127.0.0.1", b.port, "auth-gw")
        _use(monkeypatch, *extractor)
        drained = mqtt.drain("127.0.0.1", b.port, TOPIC, CLIENT, idle_s=0.5)
        drained.ack_and_close()
        assert sorted(f.body for f in drained.frames) == sorted(m[2] for m in _messages(20))
        again = mqtt.drain("127.0.0.1", b.port, TOPIC, CLIENT, idle_s=0.3)
        again.ack_and_close()
        assert again.frames == []
    finally:
        b.stop()
