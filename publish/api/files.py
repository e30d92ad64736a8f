"""The published files over HTTP, as a CDN would serve them: byte ranges (206, 416),
strong ETags (the manifest's SHA-256 where the release knows the file), conditional GETs
(304), and long caching for the immutable version paths only."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterator

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from etl.storage import Store
from publish import formats
from publish.api.errors import ApiError
from publish.api.http import etag_matches

NAME_MAX = 255                  # bytes of a path segment: a longer one is no file (and the OS refuses it)
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=60, must-revalidate"
CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_IMMUTABLE_PATH = re.compile(r"^(datasets/[^/]+/[^/]+/|releases/[^/]+/)")


def safe_key(path: str) -> str:
    """The key of a public file, or 404 for anything that could leave the public root or that
    no file can be called."""
    parts = path.split("/")
    if (not path or "\\" in path or "\x00" in path
            or any(p in ("", ".", "..") or p.startswith(".") or len(p.encode()) > NAME_MAX for p in parts)):
        raise ApiError(404, "not found", f"no file {path!r}")
    return path


def cache_control(key: str) -> str:
    return IMMUTABLE if _IMMUTABLE_PATH.match(key) else SHORT


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for one ``bytes=`` range; None without a Range header;
    416 for a range that is malformed, multiple or outside the file."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or m.groups() == ("", ""):
        raise _unsatisfiable(size, f"unsupported Range {header!r}: one bytes=first-last range")
    first, last = m.groups()
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size or (last and int(last) < start):
            raise _unsatisfiable(size, f"Range {header!r} is outside the file ({size} bytes)")
    else:
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size, f"Range {header!r} selects no bytes")
        start, end = max(size - length, 0), size - 1
    return start, end


def _unsatisfiable(size: int, detail: str) -> ApiError:
    return ApiError(416, "range not satisfiable", detail, {"Content-Range": f"bytes */{size}"})


@dataclass(frozen=True)
class FileInfo:
    key: str
    size: int
    etag: str


def stat(store: Store, key: str, sha256: str | None) -> FileInfo:
    """Size and ETag of a public file (the SHA-256 the manifest lists, else the store's tag)."""
    head = store.head(key)
    if head is None:
        raise ApiError(404, "not found", f"no file {key!r}")
    size, tag = head
    return FileInfo(key, size, f'"{sha256 or hashlib.sha256(tag.encode()).hexdigest()}"')


def _read(store: Store, info: FileInfo, start: int, end: int) -> Iterator[bytes]:
    """The bytes start..end in chunks: ranged GETs on S3, reads of the open file locally."""
    position = start
    while position <= end:
        last = min(position + CHUNK - 1, end)
        chunk = store.get_range(info.key, position, last)
        if not chunk:
            return
        position += len(chunk)
        yield chunk


def serve(request: Request, store: Store, info: FileInfo) -> Response:
    headers = {"ETag": info.etag, "Cache-Control": cache_control(info.key), "Accept-Ranges": "bytes"}
    if etag_matches(request.headers.get("if-none-match"), info.etag):
        return Response(status_code=304, headers=headers)
    media_type = formats.content_type(info.key)
    rng = parse_range(request.headers.get("range"), info.size)
    if rng is None:
        start, end, status = 0, info.size - 1, 200
    else:
        (start, end), status = rng, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(_read(store, info, start, end), status_code=status, headers=headers,
                             media_type=media_type)

