"""The landing zone: raw gateway bytes, immutable, one object per batch plus its envelope.

Keys are deterministic — source, window and a hash of the content — and written with
write-if-absent, so re-running an extraction for the same window cannot land the same batch
twice. The data object is written first and the envelope last: a batch without an envelope
was interrupted and is completed by the re-run.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from etl import failpoints
from etl.extract.frames import Frame, encode_frames
from etl.storage import LANDING, STATE, Store
from etl.timeutil import kst_date, parse_iso, utc

FORMAT = "citylake-frames/1"


@dataclass(frozen=True)
class Envelope:
    batch_id: str
    source: str
    kind: str
    window_start: str
    window_end: str
    received_at: str
    frames: int
    bytes: int
    sha256: str
    key: str
    format: str = FORMAT

    @property
    def received(self) -> datetime:
        return parse_iso(self.received_at)


def batch_key(source: str, window_start: datetime, window_end: datetime, digest: str) -> tuple[str, str]:
    """(batch_id, key of the data object) for a batch."""
    ws, we = utc(window_start), utc(window_end)
    batch_id = f"{source}-{ws:%Y%m%dT%H%M}-{we:%Y%m%dT%H%M}-{digest[:12]}"
    key = f"{LANDING}/source={source}/date={kst_date(ws).isoformat()}/{batch_id}.jsonl"
    return batch_id, key


def land(
    store: Store, source: str, kind: str, window_start: datetime, window_end: datetime,
    frames: list[Frame], received_at: datetime,
) -> tuple[Envelope, bool]:
    """Store a batch; returns its envelope and whether this call wrote anything new."""
    data = encode_frames(frames)
    digest = hashlib.sha256(data).hexdigest()
    batch_id, key = batch_key(source, window_start, window_end, digest)
    env_key = key[: -len(".jsonl")] + ".envelope.json"
    if store.exists(env_key):
        return Envelope(**json.loads(store.get(env_key))), False
    wrote = store.put_if_absent(key, data, "application/x-ndjson")
    failpoints.hit("after_landing_data")
    env = Envelope(
        batch_id=batch_id, source=source, kind=kind,
        window_start=utc(window_start).isoformat(), window_end=utc(window_end).isoformat(),
        received_at=utc(received_at).isoformat(), frames=len(frames), bytes=len(data), sha256=digest, key=key,
    )
    wrote |= store.put_if_absent(env_key, json.dumps(asdict(env), ensure_ascii=False, indent=1).encode(), "application/json")
    if not wrote:  # another writer finished first: use its envelope
        env = Envelope(**json.loads(store.get(env_key)))
    return env, wrote


def batch_id_of(env_key: str) -> str:
    return env_key.rsplit("/", 1)[-1][: -len(".envelope.json")]


def read_envelope(store: Store, env_key: str) -> Envelope:
    return Envelope(**json.loads(store.get(env_key)))


def read_data(store: Store, env: Envelope) -> bytes:
    data = store.get(env.key)
    if hashlib.sha256(data).hexdigest() != env.sha256:
        raise ValueError(f"landed batch {env.batch_id} does not match its checksum")
    return data


def list_envelopes(store: Store, source: str, day: str | None = None) -> list[str]:
    prefix = f"{LANDING}/source={source}/" + (f"date={day}/" if day else "")
    return [k for k in store.list(prefix) if k.endswith(".envelope.json")]


# ---- persisted cursors / watermarks -------------------------------------------------------
def cursor_key(source: str) -> str:
    return f"{STATE}/cursors/{source}.json"


def load_cursor(store: Store, source: str) -> dict:
    key = cursor_key(source)
    return json.loads(store.get(key)) if store.exists(key) else {}


def save_cursor(store: Store, source: str, cursor: dict) -> None:
    store.put(cursor_key(source), json.dumps(cursor, ensure_ascii=False, sort_keys=True).encode(), "application/json")
