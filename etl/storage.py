"""One place for lake paths and for talking to file:// or s3:// storage.

A :class:`Store` is a root URI plus the few operations the pipeline needs: atomic
writes, write-if-absent (``If-None-Match: *`` on S3, a hard link on local disk), listing,
and the options that pyarrow, delta-rs and DuckDB need to reach the same place.
"""
from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from etl.settings import Settings, get_settings

# Top-level prefixes of the private lake. Everything that names a lake path goes through here.
LANDING = "landing"
SILVER = "silver"
QUARANTINE = "quarantine"
BATCHES = "batches"
GOLD = "gold"
STATE = "state"
# quality: the per-batch check table (Delta), GX results (JSON), Data Docs (HTML), daily tables
CHECKS = "quality/checks"
VALIDATIONS = "quality/validations"
DOCS = "quality/docs"
QUALITY_DAILY = "quality/daily"
DEVICE_HEALTH = "quality/device_health"
RUNS = "quality/runs"            # one JSON report per ingest DAG run (the Airflow plugin reads them)

log = logging.getLogger(__name__)
T = TypeVar("T")

# S3 retries. Each engine tries a request MAX_ATTEMPTS times (5xx, throttling, dropped
# connections, timeouts) with exponential backoff; a GET or listing page whose answer is cut
# mid-stream is tried BODY_ATTEMPTS times on top (tests/faults/test_s3_faults.py).
MAX_ATTEMPTS = 5
BODY_ATTEMPTS = 3
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
# delta-rs (object_store) storage_options: bounded, so an outage fails a task in seconds.
DELTA_RETRIES = {"max_retries": str(MAX_ATTEMPTS), "retry_timeout": "30s",
                 "timeout": f"{READ_TIMEOUT}s", "connect_timeout": f"{CONNECT_TIMEOUT}s"}


@dataclass(frozen=True)
class Store:
    root: str  # file:///abs/path or s3://bucket/prefix, no trailing slash
    settings: Settings

    # ---- naming -----------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def _local(self, key: str) -> Path:
        return Path(self.root[len("file://"):]) / key

    def _bucket_key(self, key: str) -> tuple[str, str]:
        bucket, _, prefix = self.root[len("s3://"):].partition("/")
        return bucket, "/".join(p for p in (prefix, key) if p)

    # ---- object operations --------------------------------------------------------------
    def put_if_absent(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """Write ``data`` at ``key`` unless an object is already there. True if written."""
        if self.is_s3:
            bucket, k = self._bucket_key(key)
            try:
                _s3_client(self.settings).put_object(
                    Bucket=bucket, Key=k, Body=data, IfNoneMatch="*", ContentType=content_type
                )
            except Exception as exc:  # botocore ClientError; keep botocore import lazy
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    return False
                raise
            return True
        path = self._local(key)
        if path.exists():
            return False
        tmp = _write_temp(path, data)
        try:
            os.link(tmp, path)  # atomic and refuses to clobber
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Atomically create or replace ``key`` (readers see the old or the new bytes)."""
        if self.is_s3:
            bucket, k = self._bucket_key(key)
            _s3_client(self.settings).put_object(Bucket=bucket, Key=k, Body=data, ContentType=content_type)
            return
        path = self._local(key)
        tmp = _write_temp(path, data)
        os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        if self.is_s3:
            bucket, k = self._bucket_key(key)
            return _read_body(lambda: _s3_client(self.settings).get_object(Bucket=bucket, Key=k))
        return self._local(key).read_bytes()

    def head(self, key: str) -> tuple[int, str] | None:
        """(size in bytes, a tag that changes when the bytes do) of an object, or None if there
        is none: one HEAD on S3 (its ETag), a stat locally (size and mtime)."""
        if self.is_s3:
            bucket, k = self._bucket_key(key)
            try:
                meta = _s3_client(self.settings).head_object(Bucket=bucket, Key=k)
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            return int(meta["ContentLength"]), meta["ETag"].strip('"')
        path = self._local(key)
        if not path.is_file():
            return None
        st = path.stat()
        return st.st_size, f"{st.st_size}-{st.st_mtime_ns}"

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` (inclusive) of an object: a ranged GET on S3, a seek locally."""
        if self.is_s3:
            bucket, k = self._bucket_key(key)
            client = _s3_client(self.settings)
            return _read_body(lambda: client.get_object(Bucket=bucket, Key=k, Range=f"bytes={start}-{end}"))
        with self._local(key).open("rb") as f:
            f.seek(start)
            return f.read(end - start + 1)

    def exists(self, key: str) -> bool:
        if self.is_s3:
            bucket, k = self._bucket_key(key)
            try:
                _s3_client(self.settings).head_object(Bucket=bucket, Key=k)
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True
        return self._local(key).exists()

    def list(self, prefix: str) -> list[str]:
        """Keys (relative to the root) under ``prefix``, sorted."""
        return sorted(self._iter_keys(prefix))

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        if self.is_s3:
            bucket, k = self._bucket_key(prefix)
            root_prefix = self._bucket_key("")[1]
            strip = len(root_prefix) + 1 if root_prefix else 0
            client, token = _s3_client(self.settings), None
            while True:   # page by page, each page retried: a failure mid-way resumes at that page
                extra = {"ContinuationToken": token} if token else {}
                page = _retrying(lambda: client.list_objects_v2(Bucket=bucket, Prefix=k, **extra))
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:]
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    return
        base = self._local(prefix)
        root = self._local("")
        if base.is_file():
            yield str(base.relative_to(root))
            return
        if not base.exists():
            return
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield str(path.relative_to(root))

    # ---- engines ------------------------------------------------------------------------
    def delta_options(self) -> dict[str, str]:
        """``storage_options`` for delta-rs."""
        if not self.is_s3:
            return {}
        c = self.settings.s3_credentials()
        opts = {
            "AWS_REGION": c["region"],
            "AWS_ACCESS_KEY_ID": c.get("key", ""),
            "AWS_SECRET_ACCESS_KEY": c.get("secret", ""),
        }
        if c.get("token"):
            opts["AWS_SESSION_TOKEN"] = c["token"]
        if c.get("endpoint"):
            opts["AWS_ENDPOINT_URL"] = c["endpoint"]
            if c["endpoint"].startswith("http://"):
                opts["AWS_ALLOW_HTTP"] = "true"
        return {**opts, **DELTA_RETRIES}

    def table_uri(self, *parts: str) -> str:
        """URI of a Delta table as delta-rs and DuckDB expect it (plain path for local)."""
        uri = self.uri(*parts)
        return uri[len("file://"):] if uri.startswith("file://") else uri

    def arrow_filesystem(self) -> tuple[Any, str]:
        """A pyarrow filesystem and the root path inside it."""
        import pyarrow.fs as pafs

        if not self.is_s3:
            return pafs.LocalFileSystem(), self.root[len("file://"):]
        c = self.settings.s3_credentials()
        kwargs: dict[str, Any] = {"region": c["region"], "access_key": c.get("key"), "secret_key": c.get("secret"),
                                  "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=MAX_ATTEMPTS),
                                  "connect_timeout": CONNECT_TIMEOUT, "request_timeout": READ_TIMEOUT}
        if c.get("token"):
            kwargs["session_token"] = c["token"]
        if c.get("endpoint"):
            scheme, _, hostport = c["endpoint"].partition("://")
            kwargs.update(endpoint_override=hostport, scheme=scheme)
        return pafs.S3FileSystem(**kwargs), self.root[len("s3://"):]

    def duckdb_secret_sql(self) -> tuple[str, list[Any]] | None:
        """CREATE SECRET statement (with parameters) for DuckDB httpfs, or None for local."""
        if not self.is_s3:
            return None
        c = self.settings.s3_credentials()
        endpoint = c.get("endpoint", "")
        use_ssl = not endpoint.startswith("http://")
        host = endpoint.split("://", 1)[-1] if endpoint else f"s3.{c['region']}.amazonaws.com"
        parts = [
            "TYPE S3",
            f"KEY_ID '{_sql_literal(c.get('key', ''))}'",
            f"SECRET '{_sql_literal(c.get('secret', ''))}'",
            f"REGION '{_sql_literal(c['region'])}'",
            f"ENDPOINT '{_sql_literal(host)}'",
            f"USE_SSL {'true' if use_ssl else 'false'}",
        ]
        if endpoint:
            parts.append("URL_STYLE 'path'")
        return "CREATE OR REPLACE SECRET citylake_s3 (" + ", ".join(parts) + ")", []


def _sql_literal(value: str) -> str:
    return value.replace("'", "''")


def _write_temp(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


@functools.lru_cache(maxsize=8)
def _client_for(endpoint: str | None, region: str, key: str | None, secret: str | None, token: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"}, connect_timeout=CONNECT_TIMEOUT,
                      read_timeout=READ_TIMEOUT, s3={"addressing_style": "path"}),
    )


def _stream_errors() -> tuple[type[BaseException], ...]:
    """What reading an answer's body raises when the connection breaks mid-stream. botocore
    retries a request until its answer begins, not after: these are retried here."""
    from http.client import IncompleteRead

    from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError
    from urllib3.exceptions import ProtocolError, ReadTimeoutError as Urllib3ReadTimeout

    return IncompleteReadError, ResponseStreamingError, ReadTimeoutError, ProtocolError, Urllib3ReadTimeout, \
        IncompleteRead


def _retrying(call: Callable[[], T]) -> T:
    """``call()``, tried again (BODY_ATTEMPTS in all) when its answer is cut mid-stream."""
    errors = _stream_errors()
    for attempt in range(1, BODY_ATTEMPTS + 1):
        try:
            return call()
        except errors as exc:
            if attempt == BODY_ATTEMPTS:
                raise
            log.warning("S3 answer cut (%r), trying again (%d/%d)", exc, attempt, BODY_ATTEMPTS - 1)
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def _read_body(get: Callable[[], dict[str, Any]]) -> bytes:
    """GET (botocore retries the request) and read the whole body, with a new GET if the
    body is cut mid-stream."""
    return _retrying(lambda: get()["Body"].read())


def _s3_client(settings: Settings) -> Any:
    c = settings.s3_credentials()
    return _client_for(c.get("endpoint"), c["region"], c.get("key"), c.get("secret"), c.get("token"))


def lake(settings: Settings | None = None) -> Store:
    s = settings or get_settings()
    return Store(s.lake_uri, s)


def public(settings: Settings | None = None) -> Store:
    s = settings or get_settings()
    return Store(s.public_uri, s)

