"""No secret in the repository: every file git tracks is scanned for credentials, and the DAG
files and settings are checked to take theirs from the environment.

What counts as a credential: AWS access key ids, private key blocks, URLs with a password,
Slack and GitHub tokens, and a literal assigned to a secret-sounding name (``password = "…"``,
``AWS_SECRET_ACCESS_KEY=…``). A value is not a literal when it refers to the environment
(``${VAR}``, ``$VAR``) or is a ``<placeholder>``. The few dummy values tests and the simulator
need are listed in ALLOWED, each with its reason.
"""
from __future__ import annotations

import ast
import gzip
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

# what: (pattern, substrings one of which a match contains: a quick test before the regex)
SHAPES = {
    "AWS access key id": (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"), ("AKIA", "ASIA")),
    "private key block": (re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"), ("PRIVATE KEY",)),
    "URL with a password": (re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?P<value>[^/\s@'\"]+)@"), ("://",)),
    "Slack token": (re.compile(r"\bxox[aboprs]-[0-9A-Za-z-]{10,}"), ("xox",)),
    "Slack webhook": (re.compile(r"hooks\.slack\.com/services/T[0-9A-Z]+/B[0-9A-Z]+/[0-9A-Za-z]+"), ("hooks.slack",)),
    "GitHub token": (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
                     ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
}
# A name that holds a secret (not one that names it: secretName, pseudonym_key_env, ACCESS_KEY ids).
_SECRET_NAME = (r"[A-Za-z0-9_.-]*?(?:secret(?:[_-]?access)?(?:[_-]?key)?|password|passwd|pwd|token|api[_-]?keys?"
                r"|service[_-]?key|fernet[_-]?key|private[_-]?key|pseudonym[_-]?key|auth[_-]?key|jwt[_-]?secret)")
# name = "literal" (any file), and name=literal / name: literal (config files, where values are bare)
QUOTED = re.compile(rf"""(?i)\b(?P<name>{_SECRET_NAME})["']?\s*(?::\s*[\w\[\]., |]+?\s*)?(?:=|:)\s*(?:[rbfu]?)(?P<q>["'])(?P<value>[^"'\n]{{6,}})(?P=q)""")
BARE = re.compile(rf"""(?im)^\s*(?:export\s+|-\s+)?(?P<name>{_SECRET_NAME})\s*(?:=|:)\s*(?P<value>[^\s"'#{{}}\[\],]{{6,}})\s*(?:#.*)?$""")
NAMED = re.compile(r"(?i)secret|passw|pwd|token|key|jwt")      # a line worth the two patterns above
CONFIG_SUFFIXES = (".env", ".example", ".yaml", ".yml", ".conf", ".toml", ".ini", ".cfg", ".properties", "Dockerfile")

# Values that look like secrets but are not; each says why. Every entry must still be in use
# (test_the_allowlist_is_in_use), so the list cannot grow stale.
ALLOWED = {
    "change-me": "infra/.env.example: the documented placeholder; docker compose refuses to start until it is set",
    "PASSWORD": "infra/README.md: the placeholder in an example connection string",
    "dev-airkorea-service-key": "etl/simulate/gateways.py DEV_SECRETS: accepted by the local simulator only",
    "dev-weather-token": "etl/simulate/gateways.py DEV_SECRETS: accepted by the local simulator only",
    "NNSXS.DEV-ONLY-TTN-KEY": "etl/simulate/gateways.py DEV_SECRETS: accepted by the local simulator only",
    "test-token-5f3a": "tests/integration: the token of a gateway simulator the test starts",
    "city-partner-1": "tests/unit/test_api.py: an API key the test itself puts in CITYLAKE_API_KEYS",
    "any-open-key": "tests/unit/test_api_datagokr.py: the data.go.kr view takes any serviceKey (the data is open)",
}


def _is_reference(value: str) -> bool:
    """``${VAR}``, ``$VAR``, ``<placeholder>``, an f-string's ``{…}``, the name of a variable:
    not a value at all."""
    return (value.startswith(("$", "<", "%(")) or bool(re.search(r"\{[^{}]*\}", value))
            or bool(re.fullmatch(r"[A-Z][A-Z0-9_]*_(?:KEY|TOKEN|SECRET|PASSWORD)", value)))


def find_secrets(name: str, text: str) -> list[tuple[str, int, str]]:
    """(what, line, value) of every credential-looking thing in ``text``, allowed or not."""
    found = []
    for what, (pattern, markers) in SHAPES.items():
        if any(m in text for m in markers):
            found += [(what, text.count("\n", 0, m.start()) + 1, m.groupdict().get("value") or m.group(0))
                      for m in pattern.finditer(text)]
    patterns = [QUOTED, BARE] if name.endswith(CONFIG_SUFFIXES) or "/.env" in name else [QUOTED]
    for number, line in enumerate(text.splitlines(), 1):
        if NAMED.search(line):
            found += [(f"literal for {m.group('name')}", number, m.group("value"))
                      for pattern in patterns for m in pattern.finditer(line)]
    return [(what, line, value) for what, line, value in found if not _is_reference(value)]


SELF = "tests/security/test_no_secrets.py"      # the patterns and the allowlist themselves


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and f != SELF]


def _text(path: Path) -> str | None:
    """A file's text: a .gz decompressed; None for a binary file."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def scan() -> dict[str, list[tuple[str, int, str]]]:
    """Findings per tracked file (a file deleted in the work tree is skipped)."""
    found = {}
    for name in tracked_files():
        path = REPO / name
        text = _text(path) if path.is_file() else None
        if text is not None:
            found[name] = find_secrets(name, text)
    return found


def test_every_tracked_file_is_scanned(scan: dict[str, list[tuple[str, int, str]]]) -> None:
    assert len(scan) > 200 and "etl/settings.py" in scan and "infra/docker-compose.yml" in scan
    assert "etl/registry/data/fleet-goyang.csv.gz" in scan          # compressed text is read too


def test_no_credentials_in_the_repository(scan: dict[str, list[tuple[str, int, str]]]) -> None:
    leaks = [f"{name}:{line}: {what} {value[:4]}…" for name, hits in scan.items() for what, line, value in hits
             if value not in ALLOWED]
    assert not leaks, "credential-looking values (move them to the environment, or allow a dummy in ALLOWED):\n" + \
        "\n".join(leaks)


def test_the_allowlist_is_in_use(scan: dict[str, list[tuple[str, int, str]]]) -> None:
    used = {value for hits in scan.values() for _, _, value in hits}
    assert set(ALLOWED) <= used, f"no longer needed: {sorted(set(ALLOWED) - used)}"


def test_the_scanner_finds_each_kind() -> None:
    """The patterns work: one planted example of each kind is found (built at run time, so
    this file holds none)."""
    key_id = "AKIA" + "Q7ZB3XK2LMN4PR5T"
    samples = {
        "a.py": f'aws_access_key_id = "{key_id}"',
        "b.py": 'aws_secret_access_key = "' + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYz" + '"',
        "c.py": 'DB_PASSWORD: str = "hunter2-but-longer"',
        "d.py": "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE...",
        "e.md": "postgresql://etl:" + "s3cr3t-pass" + "@db.example:5432/lake",
        "f.py": 'SLACK = "' + "xoxb-" + "1234567890-abcdefghij" + '"',
        "g.py": 'gh = "' + "ghp_" + "A" * 36 + '"',
        "infra/.env": "S3_API_SECRET_KEY=" + "9f8e7d6c5b4a",
        "h.yaml": "  api_key: " + "live-0123456789",
        "i.py": "conn = Connection(conn_id='x', password='" + "pa55word-real" + "')",
    }
    for name, text in samples.items():
        assert find_secrets(name, text), name
    clean = {"j.py": 'password = os.environ["DB_PASSWORD"]', "k.yaml": "password: ${DB_PASSWORD}",
             "l.md": "postgresql://${USER}:${PASSWORD}@db:5432/x", "q.py": 'headers = {"X-API-Key": f"k-{i}"}', "m.yaml": "secretName: citylake-airflow-jwt",
             "n.yaml": "pseudonym_key_env: CITYLAKE_PSEUDONYM_KEY", "o.py": "token = request.headers.get('x')",
             "infra/.env.example": "CITYLAKE_API_KEYS=", "p.py": 'x = "<your-api-key>"  # api_key = "<your-api-key>"'}
    for name, text in clean.items():
        assert not find_secrets(name, text), (name, find_secrets(name, text))


# ---- the DAG files and the settings ----------------------------------------------------------------

def _literal_strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@pytest.mark.parametrize("dag_file", sorted((REPO / "dags").glob("*.py")), ids=lambda p: p.name)
def test_dag_files_hold_no_credentials(dag_file: Path) -> None:
    """No string in a DAG file looks like a credential, no call passes a literal password,
    login or secret, and no Connection is built in the file: connections and keys come from
    the environment (``AIRFLOW_CONN_*``, ``AWS_*``: :meth:`etl.settings.Settings.s3_credentials`)."""
    tree = ast.parse(dag_file.read_text(encoding="utf-8"), str(dag_file))
    for text in _literal_strings(tree):
        hits = [what for what, (pattern, _) in SHAPES.items() if pattern.search(text)]
        assert not hits, f"{dag_file.name}: {hits} in a string literal"
    secret_arg = re.compile(rf"(?i)^(?:{_SECRET_NAME}|login|extra)$")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            assert not func.endswith("Connection"), f"{dag_file.name}:{node.lineno}: builds a Connection"
            for kw in node.keywords:
                if kw.arg and secret_arg.match(kw.arg) and _literal_strings(kw.value):
                    raise AssertionError(f"{dag_file.name}:{node.lineno}: {kw.arg}= a literal")
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = ast.unparse(target)
                assert not re.fullmatch(_SECRET_NAME, name, re.I) or not isinstance(node.value.value, str), \
                    f"{dag_file.name}:{node.lineno}: {name} = a literal"


def test_s3_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys are the environment's; without them (and without an Airflow connection in the
    environment) there are none: no built-in fallback."""
    from etl.settings import load_settings

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings({})
    monkeypatch.delenv(f"AIRFLOW_CONN_{settings.s3_conn_id.upper()}", raising=False)
    bare = settings.s3_credentials()
    assert "key" not in bare and "secret" not in bare and "token" not in bare
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment-secret")
    creds = settings.s3_credentials()
    assert (creds["key"], creds["secret"]) == ("from-the-environment-id", "from-the-environment-secret")


def test_gateway_secrets_are_named_not_given() -> None:
    """sources.yaml names the environment variable of each gateway's secret, never the secret."""
    sources = yaml.safe_load((REPO / "etl" / "sources" / "sources.yaml").read_text(encoding="utf-8"))
    entries = sources.get("sources", sources) if isinstance(sources, dict) else sources
    named = [s["secret_env"] for s in (entries.values() if isinstance(entries, dict) else entries)
             if isinstance(s, dict) and s.get("secret_env")]
    assert named and all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in named), named
