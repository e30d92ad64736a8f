"""The production deployment in infra/: the compose file as Compose itself resolves it, no secret
written down, the public-read bucket policy on a real S3-compatible server, the Helm values."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from importlib import util
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
COMPOSE = INFRA / "docker-compose.yml"
ENV_EXAMPLE = INFRA / ".env.example"
POLICY = INFRA / "public-bucket-policy.json"
POLICY_BUCKET = "goyang-open-data"          # the placeholder the docs substitute

AIRFLOW_SERVICES = {"airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}
ONE_SHOT = {"airflow-init", "minio-init"}
# environment names that hold a credential (AWS_ACCESS_KEY_ID too: it is one half of a key pair)
CREDENTIAL = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|AUTH$")
WHOLE_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[?-][^}]*)?\}$")
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
URL_PASSWORD = re.compile(r"://[^/:@\s]*:([^@\s]*)@")


# ---- the compose file, resolved by Compose -------------------------------------------------------
def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is not installed: `apt-get install docker-compose` (Debian's package "
                    "validates infra/docker-compose.yml without a Docker engine)", pytrace=False)
    return found


def _compose_config(env_file: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` with only ``env_file`` as variables (no host environment)."""
    return subprocess.run(
        [_docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE), "--profile", "static", "config"],
        capture_output=True, text=True, timeout=60, cwd=cwd, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    done = _compose_config(ENV_EXAMPLE, tmp_path_factory.mktemp("compose"))
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def test_compose_file_validates_with_the_example_env(tmp_path: Path) -> None:
    done = _compose_config(ENV_EXAMPLE, tmp_path)
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    assert set(yaml.safe_load(done.stdout)["services"]) == AIRFLOW_SERVICES | {
        "postgres", "redis", "minio", "minio-init", "mosquitto", "citylake-api", "portal"}


def test_compose_refuses_to_run_without_the_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = _compose_config(empty, tmp_path)
    assert done.returncode != 0 and "infra/.env" in done.stderr


def test_env_example_lists_every_variable_and_no_secret() -> None:
    used = set(COMPOSE_VARIABLE.findall(COMPOSE.read_text(encoding="utf-8")))
    example = _env_example()
    assert used == set(example), f"only in compose: {used - set(example)}, only in .env.example: {set(example) - used}"
    for name, value in example.items():
        if CREDENTIAL.search(name) and "ACCESS_KEY" not in name:
            assert value in ("change-me", ""), f"{name} in .env.example must be a change-me placeholder"


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_compose_has_no_literal_secrets(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: environment as a mapping, please"
        for key, value in env.items():
            if CREDENTIAL.search(key):
                assert WHOLE_REFERENCE.match(str(value)), f"{name}: {key} must be a ${{VAR}} reference, not {value!r}"
    for text in _strings(raw):
        for password in URL_PASSWORD.findall(text):
            assert WHOLE_REFERENCE.match(password), f"a password written into a URL: {text}"


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def test_every_image_is_pinned(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        assert _pinned(service["image"]), f"{name}: image {service['image']!r} is not pinned"
        if "build" in service:
            dockerfile = Path(service["build"]["context"]) / service["build"].get("dockerfile", "Dockerfile")
            bases = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(encoding="utf-8"), flags=re.M)
            assert bases and all(_pinned(b) for b in bases), f"{dockerfile}: unpinned base image"


def test_the_image_matches_the_lock() -> None:
    """One Airflow and one Python everywhere: the Dockerfile's base, the lock and pyproject agree."""
    dockerfile = (INFRA / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", dockerfile, flags=re.M)
    assert base, "infra/Dockerfile starts from apache/airflow:<version>-python<version>"
    lock = (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8")
    assert f"\napache-airflow=={base[1]}\n" in lock
    assert f'requires-python = ">={base[2]}' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
    for step in ("-r requirements/lock.txt", "--no-deps .", "citylake publish vendor", "dags/ /opt/airflow/dags/"):
        assert step in dockerfile


def _airflow_options() -> dict[str, set[str]]:
    spec = util.find_spec("airflow")
    assert spec and spec.submodule_search_locations
    config = Path(spec.submodule_search_locations[0]) / "config_templates" / "config.yml"
    return {section: set(body["options"]) for section, body in yaml.safe_load(config.read_text()).items()}


def test_airflow_services_share_one_configuration(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    shared = services["airflow-scheduler"]["environment"]
    own = {"airflow-worker": {"DUMB_INIT_SETSID"}, "airflow-init": {
        "_AIRFLOW_DB_MIGRATE", "_AIRFLOW_WWW_USER_CREATE", "_AIRFLOW_WWW_USER_USERNAME",
        "_AIRFLOW_WWW_USER_PASSWORD", "_AIRFLOW_WWW_USER_EMAIL"}}
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert {k: v for k, v in env.items() if k not in own.get(name, set())} == shared, name
        assert services[name]["image"] == services["airflow-scheduler"]["image"]
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert shared["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert services["airflow-init"]["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    # every AIRFLOW__SECTION__KEY names an option of the installed Airflow (celery: the provider's)
    options = _airflow_options()
    for key in (k for k in shared if k.startswith("AIRFLOW__")):
        section, option = (part.lower() for part in key[len("AIRFLOW__"):].split("__", 1))
        if section != "celery":
            assert option in options.get(section, set()), f"{key}: no [{section}] {option} in Airflow"
    for required in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                     "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CORE__FERNET_KEY",
                     "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert shared[required], required


def test_health_checks_and_start_order(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name} runs once"
        else:
            assert "healthcheck" in service, f"{name} has no health check"
        for dependency, condition in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition["condition"] == wanted, f"{name} -> {dependency}"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target -> source of a resolved service's volumes (Compose v1 strings or v2 mappings)."""
    out: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        out[target] = source
    return out


def _bucket(uri: str) -> str:
    return uri.removeprefix("s3://").split("/")[0]


def _policy_buckets(path: Path) -> set[str]:
    statements = json.loads(path.read_text(encoding="utf-8"))["Statement"]
    return {r.removeprefix("arn:aws:s3:::").split("/")[0] for s in statements for r in s["Resource"]}


def test_buckets_and_policies_agree(resolved: dict[str, Any]) -> None:
    """The public bucket gets the repository's policy, the lake none; each key sees only its buckets."""
    services = resolved["services"]
    env = services["airflow-scheduler"]["environment"]
    lake, public = _bucket(env["CITYLAKE_LAKE_URI"]), _bucket(env["CITYLAKE_PUBLIC_URI"])
    assert lake != public
    script = "\n".join(services["minio-init"]["command"])
    assert f"mc anonymous set-json /infra/public-bucket-policy.json city/{public}" in script
    assert f"mc anonymous set none city/{lake}" in script
    assert _mounts(services["minio-init"])["/infra/public-bucket-policy.json"] == str(POLICY)
    assert _bucket(services["citylake-api"]["environment"]["CITYLAKE_PUBLIC_URI"]) == public
    assert public == POLICY_BUCKET      # the file is applied as it is, as docs/PUBLISHING.md does
    assert _policy_buckets(INFRA / "minio" / "pipeline-policy.json") == {lake, public}
    assert _policy_buckets(INFRA / "minio" / "api-policy.json") == {public}
    api = json.loads((INFRA / "minio" / "api-policy.json").read_text(encoding="utf-8"))
    assert not any(a.startswith(("s3:Put", "s3:Delete")) for s in api["Statement"] for a in s["Action"])


def test_brokers_and_api_are_wired(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    mosquitto = services["mosquitto"]
    assert _mounts(mosquitto)["/infra/mosquitto.conf"] == str(INFRA / "mosquitto.conf")
    script = "\n".join(mosquitto["command"])
    port = services["airflow-worker"]["environment"]["CITYLAKE_MQTT_PORT"]
    assert f"'listener {port}'" in script and "'listener 1883' 'allow_anonymous false'" in script
    api = services["citylake-api"]
    assert api["entrypoint"][-1] == "citylake" and api["command"][:3] == ["serve", "--host", "0.0.0.0"]
    # the API's own read-only key, not the pipelines'
    assert api["environment"]["AWS_ACCESS_KEY_ID"] != services["airflow-worker"]["environment"]["AWS_ACCESS_KEY_ID"]


# ---- the public-read bucket policy -----------------------------------------------------------------
def _policy_for(target: str) -> str:
    """The policy for ``target`` (a bucket, or bucket/prefix), substituted as the docs do."""
    return POLICY.read_text(encoding="utf-8").replace(POLICY_BUCKET, target)


def test_policy_grants_anonymous_read_and_nothing_else() -> None:
    """Reads only; no listing (keys of a release not yet switched live stay unguessable, and the
    policy stays valid when the placeholder becomes bucket/prefix); no writes."""
    statements = json.loads(POLICY.read_text(encoding="utf-8"))["Statement"]
    assert [s["Effect"] for s in statements] == ["Allow"]
    assert statements[0]["Principal"] == "*"
    assert statements[0]["Action"] == ["s3:GetObject"]
    assert statements[0]["Resource"] == [f"arn:aws:s3:::{POLICY_BUCKET}/*"]


@pytest.fixture
def s3(moto_s3: str) -> dict[str, Any]:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    where = {"endpoint_url": moto_s3, "region_name": "us-east-1"}
    return {"admin": boto3.client("s3", aws_access_key_id="test", aws_secret_access_key="test", **where),
            "anonymous": boto3.client("s3", config=Config(signature_version=UNSIGNED), **where)}


def _status(call: Any, **kwargs: Any) -> int:
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)["ResponseMetadata"]["HTTPStatusCode"]
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"]


def _assert_read_only(anonymous: Any, admin: Any, bucket: str, readable: list[str], private: list[str]) -> None:
    for key in readable:
        assert anonymous.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    if readable:        # the portal's charts and DuckDB read Parquet by ranges
        ranged = anonymous.get_object(Bucket=bucket, Key=readable[0], Range="bytes=0-3")
        assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert ranged["ContentRange"].startswith("bytes 0-3/")
    for key in private:
        assert _status(anonymous.get_object, Bucket=bucket, Key=key) == 403, key
    for key in readable + private:
        assert _status(anonymous.put_object, Bucket=bucket, Key=key, Body=b"defaced") == 403, key
        assert _status(anonymous.delete_object, Bucket=bucket, Key=key) == 403, key
        assert admin.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()


@pytest.mark.integration
def test_policy_on_a_dedicated_public_bucket(s3: dict[str, Any]) -> None:
    """docs/PUBLISHING.md and infra/docker-compose.yml: the public side is a bucket of its own
    (readable), the lake another bucket without a policy (not readable)."""
    admin, anonymous = s3["admin"], s3["anonymous"]
    public, lake = f"open-data-{uuid.uuid4().hex[:8]}", f"lake-{uuid.uuid4().hex[:8]}"
    readable = ["latest.json", "portal/index.html", "datasets/aq/v1/2026-11/aq-2026-11.parquet"]
    private = ["lake/silver/_delta_log/0.json", "lake/landing/batch.jsonl.zst"]
    for bucket, keys in ((public, readable), (lake, private)):
        admin.create_bucket(Bucket=bucket)
        for key in keys:
            admin.put_object(Bucket=bucket, Key=key, Body=key.encode())
    admin.put_bucket_policy(Bucket=public, Policy=_policy_for(public))
    admin.put_bucket_cors(Bucket=public, CORSConfiguration=json.loads((INFRA / "public-bucket-cors.json").read_text()))
    _assert_read_only(anonymous, admin, public, readable, [])
    _assert_read_only(anonymous, admin, lake, [], private)


@pytest.mark.integration
def test_policy_on_a_prefix_of_a_shared_bucket(s3: dict[str, Any]) -> None:
    """README's s3://bucket/public layout (and the e2e test): only keys under public/ are readable;
    the lake beside it, and keys that merely start with "public", are not."""
    admin, anonymous = s3["admin"], s3["anonymous"]
    bucket = f"city-{uuid.uuid4().hex[:8]}"
    readable = ["public/latest.json", "public/portal/index.html"]
    private = ["lake/silver/_delta_log/0.json", "lake/landing/batch.jsonl.zst", "publicity.txt"]
    admin.create_bucket(Bucket=bucket)
    for key in readable + private:
        admin.put_object(Bucket=bucket, Key=key, Body=key.encode())
    admin.put_bucket_policy(Bucket=bucket, Policy=_policy_for(f"{bucket}/public"))
    _assert_read_only(anonymous, admin, bucket, readable, private)


# ---- Helm ----------------------------------------------------------------------------------------
def test_helm_values_name_the_image_and_executor_without_secrets() -> None:
    values = yaml.safe_load((INFRA / "helm" / "values.yaml").read_text(encoding="utf-8"))
    assert values["executor"] == "CeleryExecutor"
    assert values["airflowVersion"] == "3.3.2"
    image = values["images"]["airflow"]
    assert image["repository"] and image["tag"] not in (None, "", "latest")
    assert values["postgresql"]["enabled"] is False and values["redis"]["enabled"] is False
    for key in ("metadataSecretName", "brokerUrlSecretName"):
        assert values["data"][key]
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[key]
    for key in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert not values.get(key), f"{key} inline"
    assert "metadataConnection" not in values["data"] and "brokerUrl" not in values["data"]
    assert not any(CREDENTIAL.search(e["name"]) for e in values["env"]), "secrets come from extraEnvFrom"
    assert "secretRef" in values["extraEnvFrom"]
    assert values["dags"]["gitSync"]["enabled"] is False     # the DAGs are baked into the image
    for component in ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers"):
        assert values[component]["resources"]["requests"], component
    api = list(yaml.safe_load_all((INFRA / "helm" / "citylake-api.yaml").read_text(encoding="utf-8")))
    deployment = next(d for d in api if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].rsplit(":", 1)[1] == image["tag"]
    assert not any(CREDENTIAL.search(e["name"]) for e in container["env"])
    assert container["envFrom"] == [{"secretRef": {"name": "citylake-api-env"}}]
