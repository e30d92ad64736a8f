"""kill -9 during the gold aggregation, the quality tables and publish, as real CLI processes.

Each stage runs as ``python -m etl.cli ...`` and is killed again and again, at a failpoint
(``name@N``, exit 137) or by SIGKILL after a random delay; each run resumes from what the
killed one left. After every kill readers must see a consistent state (every Delta table
opens and reads and holds either its old or its new rows; ``latest.json`` names a complete
release); after a last, uninterrupted run the state must equal a clean run's. The seed is
printed on failure (``CITYLAKE_FAULT_SEED`` replays it; ``CITYLAKE_KILLS`` sets kills per stage).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import clear_caches
from tests.faults import figures, kills
from tests.lakes import build_lake, lake_environment

pytestmark = [pytest.mark.faults, pytest.mark.slow]

AS_OF = "2026-11-29"
DATES = ("--from", "2026-11-23", "--to", "2026-11-25")
BASE_URL = "https://data.goyang.example.kr"     # the published bytes do not depend on the public root
GOLD_CMD = ("aggregate", "rebuild", *DATES)
QUALITY_CMD = ("quality", "rebuild", *DATES)
MOVED_CMD = ("aggregate", "rebuild", "--domain", "weather", "--domain", "summary", *DATES)
PUBLISH_CMD = ("publish", "--as-of", AS_OF)
KILLS = int(os.environ.get("CITYLAKE_KILLS", "8"))
SEED = int(os.environ.get("CITYLAKE_FAULT_SEED", random.SystemRandom().randrange(1 << 30)))
VERSIONED = re.compile(r"datasets/[a-z0-9-]+/v-[0-9a-f]{12}/[A-Za-z0-9._/-]*[A-Za-z0-9]")


# ---- the lakes: built once per session, then copied -----------------------------------------------

def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Roots (each with ``lake/`` and ``public/``), built once per session:

    ``stale``  the simulated lake with release R1 live, then a late weather batch normalised:
               silver moved on, the gold and quality tables did not;
    ``fresh``  a copy of ``stale`` after clean CLI runs of the quality and gold rebuilds;
    ``moved``  a copy of ``stale`` after a clean rebuild of the gold the late batch changed
               (weather, summary): three datasets have a new version due, the rest not;
    ``r2``     a copy of ``moved`` after a clean CLI publish: release R2 live (the reference);
    ``seconds``  how long each clean CLI run took (the range of the random SIGKILL delays).
    """
    base = tmp_path_factory.getbasetemp() / "kill-gold-publish"
    roots: dict[str, Any] = {name: base / name for name in ("stale", "fresh", "moved", "r2")}
    if (base / "seconds.json").exists():
        return {**roots, "seconds": json.loads((base / "seconds.json").read_text())}
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    _build_stale(roots["stale"])
    copy_root(roots["stale"], roots["fresh"])
    copy_root(roots["stale"], roots["moved"])
    seconds = {}
    for stage, root, cmd in (("quality", "fresh", QUALITY_CMD), ("gold", "fresh", GOLD_CMD),
                             ("moved", "moved", MOVED_CMD), ("publish", "r2", PUBLISH_CMD)):
        if stage == "publish":
            copy_root(roots["moved"], roots["r2"])
        t0 = time.perf_counter()
        proc = run_cli(roots[root], cmd)
        seconds[stage] = time.perf_counter() - t0
        assert proc.returncode == 0, proc.tail
    (base / "seconds.json").write_text(json.dumps(seconds))
    return {**roots, "seconds": seconds}


def _build_stale(root: Path) -> None:
    from etl import normalize
    from etl.registry.load import load_registry
    from etl.sources import load_sources
    from etl.storage import lake
    from publish.catalog import load_catalogue
    from publish.release import publish

    with pytest.MonkeyPatch.context() as mp:
        lake_environment(mp, root)
        mp.setenv("CITYLAKE_PUBLIC_BASE_URL", BASE_URL)
        clear_caches()
        load_catalogue.cache_clear()
        built = build_lake(root, late="weather_http")
        publish(as_of=date.fromisoformat(AS_OF))
        env = built["late"][0]
        r = normalize.normalize(lake(), load_sources()[env.source], env, load_registry())
        assert r.accepted > 0
    load_catalogue.cache_clear()
    clear_caches()


def copy_root(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for part in ("lake", "public"):
        if (src / part).exists():
            shutil.copytree(src / part, dst / part)


def environment(root: Path) -> dict[str, str]:
    """The settings that point a ``citylake`` process at ``root``'s lake and public tree."""
    return {"CITYLAKE_LAKE_URI": f"file://{root / 'lake'}", "CITYLAKE_PUBLIC_URI": f"file://{root / 'public'}",
            "CITYLAKE_CSV_DROP_DIR": str(root / "drops"), "CITYLAKE_FLEET": "small",
            "CITYLAKE_PUBLIC_BASE_URL": BASE_URL}


def run_cli(root: Path, cmd: tuple[str, ...], failpoint: str | None = None,
            kill_after: float | None = None) -> kills.Outcome:
    """``citylake cmd`` over ``root`` (run by tests.faults.kills); SIGKILLed after ``kill_after`` seconds if given."""
    argv = kills.cli_cmd(list(cmd))
    if kill_after is None:
        return kills.run(argv, failpoint, timeout=600, extra_env=environment(root))
    return kills.kill_after(argv, kill_after, timeout=600, extra_env=environment(root))


def killed(outcome: kills.Outcome) -> bool:
    assert outcome.killed or outcome.returncode == 0, f"exit {outcome.returncode}: {outcome.tail}"
    return outcome.killed


# ---- what readers see -----------------------------------------------------------------------------

def table_rows(root: Path, name: str) -> tuple[str, list[str]] | None:
    """(schema, rows as sorted canonical JSON) of a Delta table under ``root/lake``; None if absent.
    Opening and reading it is itself the check that a reader can."""
    from deltalake import DeltaTable

    path = root / "lake" / name
    if not (path / "_delta_log").exists():
        return None
    table = DeltaTable(str(path)).to_pyarrow_table()
    rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())
    return str(table.schema), rows


def gold_tables() -> list[str]:
    from etl.aggregate.runner import MODELS

    return [m.table for m in MODELS]


def quality_tables() -> list[str]:
    from etl.storage import DEVICE_HEALTH, QUALITY_DAILY

    return [QUALITY_DAILY, DEVICE_HEALTH]


def tree(public: Path) -> dict[str, str]:
    """Every visible file of the public side → SHA-256 (temporary files of a killed write excluded)."""
    return {str(p.relative_to(public)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(public.rglob("*")) if p.is_file() and not p.name.startswith(".tmp-")}


def check_live(public: Path) -> dict[str, Any]:
    """What a user of the public side gets is whole: ``latest.json`` names a release whose
    manifest, dataset manifests, metadata and every listed file (size, SHA-256) exist, and
    every versioned file the portal links to exists. Returns the live release manifest."""
    pointer = json.loads((public / "latest.json").read_text())
    manifest = json.loads((public / pointer["manifest"]).read_text())
    release = manifest["release"]
    assert release == pointer["release"]
    assert (public / f"releases/{release}/catalog.jsonld").is_file()
    if manifest.get("quality_reports"):
        assert (public / manifest["quality_reports"]).is_file()
    for ds_id, entry in manifest["datasets"].items():
        version = json.loads((public / entry["path"] / "manifest.json").read_text())
        assert version["version"] == entry["version"], ds_id
        for name in ("datapackage.json", "dictionary.html"):
            assert (public / entry["path"] / name).is_file(), (ds_id, name)
        for f in entry["files"]:
            data = (public / f["path"]).read_bytes()
            assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]
    for page in (public / "portal").rglob("*.html"):
        for ref in set(VERSIONED.findall(page.read_text(encoding="utf-8"))):
            assert (public / ref).is_file(), f"{page.relative_to(public)} links to missing {ref}"
    return manifest


# ---- the kill loop ---------------------------------------------------------------------------------

def kill_repeatedly(rng: random.Random, start: Path, work: Path, cmd: tuple[str, ...], points: list[tuple[str, int]],
                    clean_seconds: float, kills: int, check: Any) -> int:
    """Kill ``cmd`` ``kills`` times on ``work`` (a copy of ``start``): odd rounds at a random
    failpoint of ``points`` (name, hits in a whole run), even rounds by SIGKILL after a random
    delay. Each run resumes the last killed one's state; a run that finishes puts ``work``
    back to ``start``, so that every kill lands in real work. ``check(work)`` after each kill."""
    copy_root(start, work)
    done = attempts = 0
    while done < kills:
        attempts += 1
        assert attempts < kills * 4, f"only {done} of {kills} runs could be killed"
        if attempts % 2:
            name, hits = rng.choice(points)
            proc = run_cli(work, cmd, failpoint=f"{name}@{rng.randint(1, hits)}")
        else:
            proc = run_cli(work, cmd, kill_after=rng.uniform(0.2, 1.0) * clean_seconds)
        if killed(proc):
            done += 1
            check(work)
        else:
            copy_root(start, work)
    return done


def _seeded(request: pytest.FixtureRequest) -> random.Random:
    print(f"CITYLAKE_FAULT_SEED={SEED}")      # shown with the failure's captured output
    return random.Random(f"{SEED}:{request.node.name}")


def _old_or_new(roots: dict[str, Any], names: list[str]) -> tuple[dict, dict, Callable[[Path], None]]:
    """Each table's rows before and after the rebuild, and a check that a reader sees one of them."""
    before = {n: table_rows(roots["stale"], n) for n in names}
    after = {n: table_rows(roots["fresh"], n) for n in names}

    def readers_see_old_or_new(work: Path) -> None:
        for n in names:
            assert table_rows(work, n) in (before[n], after[n]), f"{n}: neither the old nor the new rows"

    return before, after, readers_see_old_or_new


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return prepared(tmp_path_factory)


def test_kill_gold_rebuild_again_and_again(roots: dict[str, Any], tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    rng = _seeded(request)
    names = gold_tables()
    before, after, readers_see_old_or_new = _old_or_new(roots, names)
    assert any(before[n] != after[n] for n in names)          # the late batch changed gold

    n = kill_repeatedly(rng, roots["stale"], tmp_path / "work", GOLD_CMD,
                        [("gold.model", len(names)), ("gold.commit", len(names))], roots["seconds"]["gold"], KILLS,
                        readers_see_old_or_new)
    final = run_cli(tmp_path / "work", GOLD_CMD)
    assert final.returncode == 0, final.tail
    figures.record("kills", n)
    for name in names:
        assert table_rows(tmp_path / "work", name) == after[name], name


def test_kill_quality_rebuild_again_and_again(roots: dict[str, Any], tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    rng = _seeded(request)
    names = quality_tables()
    before, after, readers_see_old_or_new = _old_or_new(roots, names)
    assert before != after

    n = kill_repeatedly(rng, roots["stale"], tmp_path / "work", QUALITY_CMD, [("quality.daily", 1), ("quality.health", 1)],
                        roots["seconds"]["quality"], KILLS, readers_see_old_or_new)
    final = run_cli(tmp_path / "work", QUALITY_CMD)
    assert final.returncode == 0, final.tail
    figures.record("kills", n)
    for name in names:
        assert table_rows(tmp_path / "work", name) == after[name], name


def publish_points(r1: dict[str, Any], r2: dict[str, Any], docs: int) -> list[tuple[str, int]]:
    """The publish failpoints and how often a whole R1 → R2 publish passes each."""
    new = [e for ds_id, e in r2["datasets"].items() if r1["datasets"].get(ds_id, {}).get("version") != e["version"]]
    files = sum(len(e["files"]) + 2 for e in new)      # + datapackage.json, dictionary.html
    return [("publish.file", files), ("publish.version", len(new)), ("publish.gate", 1),
            ("publish.metadata", docs + 1), ("publish.manifest", 1), ("publish.switch", 1),
            ("publish.after_switch", 1), ("publish.feeds", 1), ("publish.portal", 1)]


def test_kill_publish_again_and_again(roots: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    rng = _seeded(request)
    start = tmp_path / "start"                   # the lake moved on, R1 still live
    copy_root(roots["moved"], start)
    r1 = check_live(start / "public")
    r2 = check_live(roots["r2"] / "public")
    assert r1["release"] != r2["release"]
    docs = len([p for p in (roots["r2"] / "public" / "releases" / r2["release"] / "quality").rglob("*") if p.is_file()])
    seconds = roots["seconds"]["publish"]

    def release_whole(work: Path) -> None:
        assert check_live(work / "public")["release"] in (r1["release"], r2["release"])

    n = kill_repeatedly(rng, start, tmp_path / "work", PUBLISH_CMD, publish_points(r1, r2, docs), seconds, KILLS,
                        release_whole)
    final = run_cli(tmp_path / "work", PUBLISH_CMD)
    assert final.returncode == 0, final.tail
    figures.record("kills", n)
    figures.record("publish_cuts", n)
    assert check_live(tmp_path / "work" / "public")["release"] == r2["release"]
    assert tree(tmp_path / "work" / "public") == tree(roots["r2"] / "public")   # same files, same bytes


def test_gold_rebuild_gives_the_same_bits_every_time(roots: dict[str, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: DuckDB's parallel aggregation added float partial sums in a varying order, so
    rebuilding the same silver gave gold that differed in the last bits (1.307 against
    1.3070000000000002), and the next release marked the rows as revised."""
    from etl.aggregate import runner
    from etl.storage import lake

    copy_root(roots["fresh"], tmp_path)
    lake_environment(monkeypatch, tmp_path)
    names = [m.table for m in runner.models_for("waste_bins")]
    want = {n: table_rows(roots["fresh"], n) for n in names}
    for _ in range(3):
        runner.rebuild("waste_bins", ["2026-11-23", "2026-11-24", "2026-11-25"], lake())
        assert {n: table_rows(tmp_path, n) for n in names} == want
    clear_caches()
