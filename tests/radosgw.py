"""A throwaway single-node Ceph cluster with an S3 gateway (radosgw), for integration tests.

Debian bookworm's Ceph 16.2 (Pacific) has no standalone RGW backend, so this starts the
smallest real cluster that serves S3: one monitor, one OSD on ``memstore`` (objects in RAM,
nothing on disk but logs and the mon store) and radosgw with the beast frontend, all as plain
processes under a temporary directory, on loopback, on free ports; no systemd, no ceph user,
no /etc/ceph. Cephx is off (``auth * required = none``); the messenger runs in ``crc`` mode
(without it radosgw loops in AUTH_CONNECTING, ``get_initial_auth_request returned -13``).
No ceph-mgr: I/O does not need it (only health reports and ``ceph -s`` stats do), and it is
the slowest and largest daemon (≈300 MB) with ~35 more packages.

    with RadosGW.started() as rgw:          # ~10 s
        rgw.client().put_object(...)        # boto3, path-style, keys rgw.access_key/secret_key

``python -m tests.radosgw`` starts one, prints its endpoint and keeps it up until Ctrl-C.

Anything that does not come up raises :class:`RadosGWError` with the tails of the daemons'
logs; missing packages raise it with the ``apt-get`` line that installs them.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The minimal Debian set that runs mon + memstore OSD + rgw (54 packages with
# --no-install-recommends on bookworm; ceph-common, which brings the `ceph` CLI, and
# radosgw-admin come with them).
PACKAGES = ("ceph-mon", "ceph-osd", "radosgw")
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool", "ceph-authtool")
INSTALL_HINT = "apt-get install -y --no-install-recommends " + " ".join(PACKAGES)

ACCESS_KEY = "citylake-test"
SECRET_KEY = os.urandom(16).hex()   # made per run: no credential literal in the repository
REGION = "us-east-1"   # RGW ignores the region of SigV4 requests for the default zonegroup

# What pyarrow (AWS SDK for C++) and boto3 need against Pacific RGW: it does not understand
# the aws-chunked uploads with trailing CRC checksums that newer AWS SDKs send by default
# (UploadPart fails with 411 MissingContentLength). Documented AWS SDK settings, see
# https://docs.aws.amazon.com/sdkref/latest/guide/feature-dataintegrity.html
CLIENT_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED",
}


class RadosGWError(RuntimeError):
    pass


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RadosGW:
    """One cluster under ``root``; :meth:`start` brings it up, :meth:`stop` removes it."""

    def __init__(self, root: Path | None = None, timeout_s: float = 60.0):
        missing = missing_binaries()
        if missing:
            raise RadosGWError(
                f"Ceph is not installed (missing {', '.join(missing)}); the radosgw tests need "
                f"Debian's Ceph packages: `{INSTALL_HINT}` (as root; .ci/run does it)")
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="citylake-rgw-")) if root is None else root
        self.timeout_s = timeout_s
        self.mon_port, self.rgw_port = _free_port(), _free_port()
        self.fsid = str(uuid.uuid4())
        self.conf = self.root / "ceph.conf"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.access_key, self.secret_key, self.region = ACCESS_KEY, SECRET_KEY, REGION
        self.timings: dict[str, float] = {}

    # ---- public ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rgw_port}"

    @classmethod
    @contextmanager
    def started(cls, **kwargs: Any) -> Iterator["RadosGW"]:
        rgw = cls(**kwargs)
        try:
            rgw.start()
            yield rgw
        finally:
            rgw.stop()

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def start(self) -> None:
        t0 = time.monotonic()
        try:
            self._write_conf()
            self._mon()
            self.timings["mon"] = time.monotonic() - t0
            self._osd()
            self.timings["osd"] = time.monotonic() - t0
            self._rgw()
            self.timings["rgw"] = time.monotonic() - t0
            self._user()
            self.timings["user"] = time.monotonic() - t0
        except BaseException as exc:
            report = self.log_tails()
            self.stop()
            if isinstance(exc, RadosGWError):
                raise RadosGWError(f"{exc}\n{report}") from None
            raise RadosGWError(f"radosgw cluster failed to start: {exc!r}\n{report}") from exc

    def stop(self) -> None:
        """Kill the daemons (their own process groups: we started them; SIGKILL, as nothing is
        kept: a graceful radosgw stop takes ~4 s) and remove the directory."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            proc.wait(timeout=10)
        self.procs.clear()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tails(self, lines: int = 25) -> str:
        out = []
        for name, proc in self.procs.items():
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            out.append(f"--- {name}: {state}")
        logs = sorted((self.root / "log").glob("*")) if (self.root / "log").is_dir() else []
        for path in logs:
            text = path.read_text(errors="replace").splitlines()
            out.append(f"--- {path.name} (last {lines} lines of {len(text)})")
            out.extend(text[-lines:])
        return "\n".join(out)

    # ---- the cluster ------------------------------------------------------------------------
    def _write_conf(self) -> None:
        r = self.root
        for d in ("run", "log", "mon", "osd"):
            (r / d).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(f"""[global]
fsid = {self.fsid}
mon host = v2:127.0.0.1:{self.mon_port}
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms mon client mode = crc
ms client mode = crc
ms mon service mode = crc
ms service mode = crc
ms mon cluster mode = crc
ms cluster mode = crc
run dir = {r}/run
admin socket = {r}/run/$name.asok
pid file = {r}/run/$name.pid
log file = {r}/log/$name.log
log to stderr = false
err to stderr = true
keyring = {r}/keyring
mon data = {r}/mon/$id
osd data = {r}/osd/$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
# one mon, nothing to batch: commit map changes at once (each pool rgw creates waited 1 s)
paxos propose interval = 0.01
paxos min wait = 0.001
osd pool default pg autoscale mode = off
mon warn on pool no redundancy = false
mon data avail crit = 1
mon data avail warn = 2
mon osd full ratio = 0.99
mon osd backfillfull ratio = 0.99
mon osd nearfull ratio = 0.99
osd max object name len = 460
osd max object namespace len = 64
rgw frontends = beast endpoint=127.0.0.1:{self.rgw_port}
rgw enable usage log = false
rgw dns name = 127.0.0.1
rgw data = {r}/rgw
""")

    def _run(self, *args: str, timeout: float = 30.0) -> str:
        proc = subprocess.run([*args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "CEPH_CONF": str(self.conf)})
        if proc.returncode != 0:
            raise RadosGWError(f"`{' '.join(args)}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.root / "log" / f"{name}.stderr", "wb")
        self.procs[name] = subprocess.Popen([*args, "-f", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)
        log.close()

    def _wait(self, what: str, ok: Any, proc: str | None = None) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if proc is not None and self.procs[proc].poll() is not None:
                raise RadosGWError(f"{proc} exited with {self.procs[proc].returncode} while waiting for {what}")
            try:
                if ok():
                    return
            except (OSError, subprocess.SubprocessError, RadosGWError):
                pass
            time.sleep(0.1)
        raise RadosGWError(f"timed out after {self.timeout_s:.0f} s waiting for {what}")

    def _mon(self) -> None:
        r = self.root
        self._run("ceph-authtool", "--create-keyring", str(r / "keyring"), "--gen-key", "-n", "mon.",
                  "--cap", "mon", "allow *")
        self._run("monmaptool", "--create", "--fsid", self.fsid, "--addv", "a", f"[v2:127.0.0.1:{self.mon_port}]",
                  str(r / "monmap"))
        self._run("ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a", "--monmap", str(r / "monmap"),
                  "--keyring", str(r / "keyring"))
        self._spawn("mon.a", "ceph-mon", "-i", "a")
        self._wait("the monitor's port", lambda: _port_open(self.mon_port), "mon.a")

    def _osd(self) -> None:
        osd_uuid = str(uuid.uuid4())
        osd_id = self._run("ceph", "osd", "new", osd_uuid).strip()
        (self.root / "osd" / osd_id).mkdir(parents=True, exist_ok=True)
        self._run("ceph-osd", "-c", str(self.conf), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        self._spawn(f"osd.{osd_id}", "ceph-osd", "-i", osd_id)
        self._wait("the OSD to be up", lambda: '"num_up_osds":1' in self._run("ceph", "osd", "stat", "-f", "json")
                   .replace(" ", ""), f"osd.{osd_id}")

    def _rgw(self) -> None:
        (self.root / "rgw").mkdir(exist_ok=True)
        self._spawn("client.rgw", "radosgw", "-n", "client.rgw")
        self._wait("radosgw to answer HTTP", lambda: _http_status(self.endpoint) is not None, "client.rgw")

    def _user(self) -> None:
        self._run("radosgw-admin", "user", "create", "--uid=citylake", "--display-name=citylake tests",
                  f"--access-key={self.access_key}", f"--secret-key={self.secret_key}")
        # signed request round trip: the gateway knows the user (its user cache may lag a moment)
        self._wait("radosgw to accept the test user", lambda: self.client().list_buckets() is not None)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the process that started it dies, so a
    killed test run leaves no daemons behind (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


if __name__ == "__main__":
    t0 = time.monotonic()
    with RadosGW.started() as gw:
        print(f"radosgw up in {time.monotonic() - t0:.1f} s ({gw.timings}) at {gw.endpoint}, "
              f"access key {gw.access_key!r}, secret {gw.secret_key!r}; conf {gw.conf}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
