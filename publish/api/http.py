"""JSON responses with a strong ETag (a hash of the body) and conditional GETs."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request, Response

JSON_CACHE = "public, max-age=60"


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` (weak comparison, as RFC 9110 asks for it) against ``etag``."""
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def etagged(request: Request, body: bytes, media_type: str, cache: str = JSON_CACHE,
            headers: dict[str, str] | None = None) -> Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    all_headers = {"ETag": etag, "Cache-Control": cache, **(headers or {})}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=all_headers)
    return Response(body, media_type=media_type, headers=all_headers)


def json_response(request: Request, doc: Any, cache: str = JSON_CACHE) -> Response:
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return etagged(request, body, "application/json", cache)
