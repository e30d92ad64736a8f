"""The landed batch format and the tables every gateway decoder returns.

A landed batch is JSON Lines, one *frame* per line: one HTTP response body, one MQTT
message, one LoRaWAN uplink or one dropped file, exactly as received::

    {"seq": 0, "meta": {"topic": "..."}, "body": "<the bytes as UTF-8 text>"}
    {"seq": 1, "meta": {"file": "x.csv"}, "body_b64": "<base64 when not UTF-8>"}

JSON string escaping is lossless, so ``body`` (or ``body_b64``) gives back the exact bytes.

Decoders turn frames into two Arrow tables: :data:`DECODED` candidate readings, keyed by
the source's own device reference, and :data:`REJECTS`, what could not be decoded and why.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import pyarrow as pa


@dataclass
class Frame:
    body: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding)


def encode_frames(frames: Iterable[Frame]) -> bytes:
    lines = []
    for i, f in enumerate(frames):
        rec: dict[str, Any] = {"seq": i, "meta": f.meta}
        try:
            rec["body"] = f.body.decode("utf-8")
        except UnicodeDecodeError:
            rec["body_b64"] = base64.b64encode(f.body).decode("ascii")
        lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def decode_frames(data: bytes) -> list[Frame]:
    frames = []
    for line in data.decode("utf-8").splitlines():
        if not line:
            continue
        rec = json.loads(line)
        body = rec["body"].encode("utf-8") if "body" in rec else base64.b64decode(rec["body_b64"])
        frames.append(Frame(body=body, meta=rec.get("meta") or {}, seq=rec["seq"]))
    return frames


TS = pa.timestamp("us", tz="UTC")

# What a decoder emits: one candidate reading per row.
DECODED = pa.schema([
    ("ref", pa.string()),        # the source's device reference (station name, devEUI, sensor id, ...)
    ("metric", pa.string()),     # canonical metric name (quality.metrics)
    ("ts", TS),                  # observation time in UTC
    ("value", pa.float64()),     # as sent, in `unit`; null = missing at the source
    ("unit", pa.string()),       # unit as sent; normalisation converts it
    ("src_flag", pa.string()),   # the source's own flag/status text, if any
    ("subject", pa.string()),    # private: pseudonymous subject (daycare tags), else null
    ("frame", pa.int32()),       # seq of the frame it came from
])

# What could not be decoded: one row per frame or field that failed.
REJECTS = pa.schema([
    ("frame", pa.int32()),
    ("reason", pa.string()),     # a code from quality.reasons
    ("detail", pa.string()),     # human-readable
    ("ref", pa.string()),
    ("metric", pa.string()),
    ("ts", TS),
    ("raw", pa.string()),        # excerpt of what was received
])


class Rows:
    """Column accumulator for decoders written in Python."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.cols: dict[str, list[Any]] = {n: [] for n in schema.names}

    def add(self, **values: Any) -> None:
        for name, col in self.cols.items():
            col.append(values.get(name))

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))

    def table(self) -> pa.Table:
        return pa.table(self.cols, schema=self.schema)


def excerpt(raw: bytes | str, limit: int = 500) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text if len(text) <= limit else text[:limit] + "…"
