"""Airflow for local use: the project's DAGs under a real scheduler (``citylake airflow``).

Starts ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as child
processes sharing one environment (AIRFLOW_HOME under ``var/``, the ``dags/`` folder,
LocalExecutor, the metadata database), migrates the database first and knows the UI login.
The end-to-end test ``tests/e2e/test_real_airflow.py`` drives the same code, plus
:class:`Api`, a small client of the REST API. Nothing here imports Airflow: the children do.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TextIO

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
DEFAULT_HOME = REPO / "var" / "airflow"
LOCAL = ("api-server", "scheduler", "dag-processor", "triggerer")
CELERY = (*LOCAL, "celery-worker")
PASSWORDS = "simple_auth_manager_passwords.json.generated"   # SimpleAuthManager's default file name


@dataclass(frozen=True)
class Setup:
    """Where Airflow keeps its state and how its processes find each other."""

    home: Path = DEFAULT_HOME
    db: str | None = None                      # SQLAlchemy URL; None: SQLite in ``home``
    host: str = "127.0.0.1"
    port: int = 8080
    executor: str = "LocalExecutor"
    parallelism: int = 4
    user: str = "admin"
    broker: str = "redis://127.0.0.1:6379/0"   # CeleryExecutor only: the broker and the queue
    queue: str = "default"
    log_server_port: int = 8793                # the scheduler's / worker's log server (+1: triggerer's)
    components: tuple[str, ...] = LOCAL
    extra: Mapping[str, str] = field(default_factory=dict)   # more AIRFLOW__* settings

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.home.resolve() / 'airflow.db'}"

    @property
    def password_file(self) -> Path:
        return self.home / PASSWORDS

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The children's environment: ``base`` (default: ours) plus the Airflow settings."""
        from etl.simulate.gateways import dev_environment

        env = dict(os.environ if base is None else base)
        for key, value in dev_environment().items():   # the simulator's credentials, unless set
            env.setdefault(key, value)
        env.update({
            "AIRFLOW_HOME": str(self.home.resolve()),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            # Airflow 3 turns a cron `schedule` into a CronTriggerTimetable whose data interval is
            # empty (start == end); the ingest DAGs extract their data interval, so scheduled and
            # backfilled runs need the interval timetable.
            "AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS": "True",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",   # the quality summary is logged at INFO
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_server_port + 1),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
        })
        if self.executor == "CeleryExecutor":   # results go to the metadata database (db+ URL, the default)
            env["AIRFLOW__CELERY__BROKER_URL"] = self.broker
            env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = self.queue
        env.update(self.extra)
        return env

    def command(self, component: str) -> list[str]:
        airflow = [sys.executable, "-m", "airflow"]
        return {
            "api-server": [*airflow, "api-server", "-H", self.host, "-p", str(self.port), "-w", "1"],
            "scheduler": [*airflow, "scheduler"],
            "dag-processor": [*airflow, "dag-processor"],
            "triggerer": [*airflow, "triggerer"],
            "celery-worker": [*airflow, "celery", "worker", "-q", self.queue, "-c", str(self.parallelism),
                              "-H", f"{self.queue}@%h", "--without-gossip", "--without-mingle"],
        }[component]


# ---- the metadata database -------------------------------------------------------------------
def is_postgres(url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name() == "postgresql"


def _admin_engine(url: str) -> tuple[Any, str]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT"), str(u.database)


def create_database(url: str) -> bool:
    """Create the PostgreSQL database of ``url`` unless it exists; True if it was created."""
    from sqlalchemy import text

    engine, name = _admin_engine(url)
    try:
        with engine.connect() as con:
            if con.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first():
                return False
            # an identifier cannot be a bind parameter: the dialect quotes it
            con.execute(text("CREATE DATABASE " + engine.dialect.identifier_preparer.quote(name)))
            return True
    finally:
        engine.dispose()


def drop_database(url: str) -> None:
    from sqlalchemy import text

    engine, name = _admin_engine(url)
    try:
        with engine.connect() as con:
            con.execute(text("DROP DATABASE IF EXISTS " + engine.dialect.identifier_preparer.quote(name)
                             + " WITH (FORCE)"))
    finally:
        engine.dispose()


def migrate(env: Mapping[str, str], timeout: float = 600) -> None:
    """``airflow db migrate`` (creates or upgrades the metadata schema; writes airflow.cfg)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=dict(env), cwd=REPO,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{(out.stdout + out.stderr)[-4000:]}")


def ensure_login(setup: Setup, password: str | None = None) -> str:
    """The UI password of ``setup.user``: kept in SimpleAuthManager's passwords file.

    The api-server only generates passwords for users missing from that file, so writing it
    first gives a known login (``password``, or the one already there, or a new random one).
    """
    path = setup.password_file
    passwords = json.loads(path.read_text(encoding="utf-8") or "{}") if path.exists() else {}
    if password or setup.user not in passwords:
        passwords[setup.user] = password or secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(passwords) + "\n", encoding="utf-8")
    return passwords[setup.user]


# ---- the processes ---------------------------------------------------------------------------
@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: Path


class Airflow:
    """The components as child processes, each in its own process group; stopped together."""

    def __init__(self, setup: Setup, env: Mapping[str, str]):
        self.setup = setup
        self.env = dict(env)
        self.logs = setup.home / "processes"
        self.children: list[Child] = []

    def start(self) -> "Airflow":
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in self.setup.components:
            log = self.logs / f"{name}.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen(self.setup.command(name), env=self.env, cwd=REPO, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            self.children.append(Child(name, proc, log))
        return self

    def dead(self) -> list[str]:
        return [c.name for c in self.children if c.process.poll() is not None]

    def returncode(self, name: str) -> int | None:
        return next(c.process.returncode for c in self.children if c.name == name)

    def tail(self, name: str, chars: int = 3000) -> str:
        child = next(c for c in self.children if c.name == name)
        return child.log.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to every child's process group (its workers too), SIGKILL after ``timeout``."""
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child in self.children:
            _signal_group(child.process, signal.SIGKILL)   # stragglers, and orphans of the group
            child.process.wait()
        self.children = []

    def wait_ready(self, timeout: float = 180) -> dict[str, Any]:
        """Wait until the api-server answers and every started component reports healthy."""
        want = {"metadatabase"} | {c.replace("-", "_") for c in self.setup.components
                                  if c in ("scheduler", "dag-processor", "triggerer")}
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.dead():
                raise RuntimeError(f"{self.dead()} exited while starting:\n" + self.tail(self.dead()[0]))
            try:
                health = _request("GET", self.setup.url + "/api/v2/monitor/health")
            except (OSError, urllib.error.URLError):
                health = {}
            if health and all((health.get(k) or {}).get("status") == "healthy" for k in want):
                return health
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s: {health}")

    def __enter__(self) -> "Airflow":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)   # the group this child leads (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


# ---- the REST API ----------------------------------------------------------------------------
def _request(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


class Api:
    """The api-server's REST API (``/api/v2``) as ``user``, with a token from ``POST /auth/token``."""

    def __init__(self, url: str, user: str, password: str):
        self.url, self.user, self.password = url.rstrip("/"), user, password
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            answer = _request("POST", self.url + "/auth/token", {"username": self.user, "password": self.password})
            self._token = answer["access_token"]
        return self._token

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        query = ("?" + urllib.parse.urlencode(params, doseq=True)) if params else ""
        return _request(method, self.url + path + query, body, self.token())

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        """A manual run of ``dag_id`` with ``conf`` (its params), as the UI's Trigger button makes."""
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns", limit=100, order_by="run_after")["dag_runs"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """A task's log as text (the structured events' ``event`` fields, one a line)."""
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/"
                f"{task_id}/logs/{try_number}")
        answer = self.get(path, full_content="true", map_index=map_index)
        content = answer.get("content") if isinstance(answer, dict) else answer
        if isinstance(content, str):
            return content
        return "\n".join(str(e.get("event", e)) if isinstance(e, dict) else str(e) for e in content or [])


# ---- `citylake airflow` ----------------------------------------------------------------------
def serve(setup: Setup, password: str | None = None, create_db: bool = False, out: TextIO = sys.stdout) -> int:
    """Migrate, start the components, print where the UI is; run until Ctrl-C or a child dies."""
    db = setup.db_url
    if setup.executor == "CeleryExecutor" and not is_postgres(db):
        raise SystemExit("CeleryExecutor needs a PostgreSQL metadata database (--db postgresql://...)")
    if is_postgres(db):
        if create_db and create_database(db):
            print(f"created database {db.rsplit('/', 1)[-1]}", file=out)
    elif setup.db is None:
        print("metadata database: SQLite in AIRFLOW_HOME (development only; PostgreSQL is recommended: "
              "--db postgresql://postgres@127.0.0.1:5432/citylake_airflow --create-db)", file=out)
    env = setup.environment()
    print(f"AIRFLOW_HOME={env['AIRFLOW_HOME']}; migrating the metadata database ...", file=out, flush=True)
    migrate(env)
    login = ensure_login(setup, password)
    airflow = Airflow(setup, env)
    stop = _interrupt_on_sigterm()
    try:
        airflow.start()
        print(f"starting {', '.join(setup.components)} (logs in {airflow.logs}/) ...", file=out, flush=True)
        airflow.wait_ready()
        print(f"\nAirflow UI:  {setup.url}\nlogin:       {setup.user} / {login}   (stored in {setup.password_file})\n"
              f"executor:    {setup.executor}, parallelism {setup.parallelism}; DAGs from {DAGS}\n"
              "DAGs start paused: unpause them in the UI or with `airflow dags unpause DAG_ID` "
              "(same environment; see docs/AIRFLOW.md). Ctrl-C stops everything.", file=out, flush=True)
        while not airflow.dead():
            time.sleep(1)
        name = airflow.dead()[0]
        print(f"{name} exited with code {airflow.returncode(name)}; stopping the others. Its log ends:\n"
              f"{airflow.tail(name)}", file=out, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", file=out, flush=True)
        return 0
    finally:
        airflow.stop()
        signal.signal(signal.SIGTERM, stop)


def _interrupt_on_sigterm() -> Any:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def shell_environment(setup: Setup) -> str:
    """``export`` lines for running the ``airflow`` CLI against this setup from another shell."""
    env = setup.environment(base={})
    keys = [k for k in env if k.startswith("AIRFLOW")]
    return "\n".join(f"export {k}={shlex.quote(env[k])}" for k in keys)
