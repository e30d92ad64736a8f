"""A publish interrupted at every step: the previous release stays live and complete.

From a lake whose gold moved on since release R1 (so R2 is due), publish is cut at every
failpoint of its path (each N for a point hit once or twice a run, a fixed sample of N for the
per-file ones): in-process, by making ``etl.failpoints.hit`` raise, and for a few steps as a
real process that exits 137 there. After the cut R1 is still live and complete, and nothing
R1's readers see changed (before the switch), or R2 is live and complete (after it); the
next publish makes R2 live with exactly the files and bytes of an uninterrupted publish, so
nothing of the interrupted attempt is left referenced or half-written.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest

from etl import failpoints
from tests.conftest import clear_caches
from tests.faults import figures
from tests.faults.test_kill_gold_publish import (AS_OF, BASE_URL, PUBLISH_CMD, check_live, prepared,
                                                 publish_points, run_cli, tree)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# Points passed after latest.json names the new release.
AFTER_SWITCH = ("publish.after_switch", "publish.feeds", "publish.portal")


class Cut(BaseException):
    """The process stops here (a BaseException: no ``except Exception`` cleans up after it)."""


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return prepared(tmp_path_factory)


@pytest.fixture
def work(roots: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The moved-on lake (read only) and a public side where R1 is live; the environment points at them."""
    from publish.catalog import load_catalogue

    public = tmp_path / "public"
    shutil.copytree(roots["stale"] / "public", public)
    monkeypatch.setenv("CITYLAKE_LAKE_URI", f"file://{roots['moved'] / 'lake'}")
    monkeypatch.setenv("CITYLAKE_PUBLIC_URI", f"file://{public}")
    monkeypatch.setenv("CITYLAKE_PUBLIC_BASE_URL", BASE_URL)
    monkeypatch.setenv("CITYLAKE_FLEET", "small")
    monkeypatch.delenv("CITYLAKE_FAILPOINT", raising=False)
    clear_caches()
    load_catalogue.cache_clear()
    yield public
    load_catalogue.cache_clear()
    clear_caches()


def _publish(as_of: str = AS_OF) -> dict[str, Any]:
    from publish.release import publish

    return publish(as_of=date.fromisoformat(as_of))


def _cut_at(monkeypatch: pytest.MonkeyPatch, name: str, nth: int) -> None:
    seen: Counter[str] = Counter()

    def hit(point: str) -> None:
        seen[point] += 1
        if point == name and seen[point] == nth:
            raise Cut(f"{name}@{nth}")

    monkeypatch.setattr(failpoints, "hit", hit)


def _steps(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Every (point, N): each N of a point passed up to 3 times, else the first, middle and last."""
    out = []
    for name, n in counts.items():
        ns = range(1, n + 1) if n <= 3 else sorted({1, (n + 1) // 2, n})
        out += [(name, i) for i in ns]
    return out


def _untouched(public: Path, before: dict[str, str]) -> None:
    """Everything R1's readers reach is as it was: every file of the public side keeps its
    bytes; new files are only new dataset versions and the new release's own folder."""
    now = tree(public)
    assert {k: now.get(k) for k in before} == before
    for key in set(now) - set(before):
        assert key.startswith(("datasets/", "releases/")) and key != "releases/index.json", key


def test_publish_interrupted_at_every_step(roots: dict[str, Any], work: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    r1_tree = tree(work)
    r1 = check_live(work)
    reference = tree(roots["r2"] / "public")
    r2 = check_live(roots["r2"] / "public")
    docs = len([p for p in (roots["r2"] / "public" / "releases" / r2["release"] / "quality").rglob("*") if p.is_file()])
    counts = dict(publish_points(r1, r2, docs))
    assert set(counts) == {p for p in failpoints.POINTS if p.startswith("publish.")}   # a new point: add it there
    for name, nth in _steps(counts):
        shutil.rmtree(work)
        shutil.copytree(roots["stale"] / "public", work)
        _cut_at(monkeypatch, name, nth)
        with pytest.raises(Cut):
            _publish()
        figures.record("publish_cuts")
        live = check_live(work)
        if name in AFTER_SWITCH:
            assert live["release"] == r2["release"], (name, nth)
        else:
            assert live["release"] == r1["release"], (name, nth)
            _untouched(work, r1_tree)
        monkeypatch.setattr(failpoints, "hit", lambda name: None)
        _publish()
        live = check_live(work)
        assert live["release"] == r2["release"], (name, nth)
        assert live["privacy_gate"] == r2["privacy_gate"], (name, nth)   # the resumed part is not all it counts
        assert tree(work) == reference, (name, nth)         # no leftovers, no half versions, same bytes


@pytest.mark.parametrize("point", ["publish.version@2", "publish.after_switch"])
def test_publish_killed_as_a_process(roots: dict[str, Any], work: Path, point: str) -> None:
    r1 = check_live(work)
    root = work.parent
    (root / "lake").symlink_to(roots["moved"] / "lake")
    proc = run_cli(root, PUBLISH_CMD, failpoint=point)
    assert proc.returncode == 137, proc.tail
    figures.record("kills")
    figures.record("publish_cuts")
    live = check_live(work)
    if point.startswith("publish.after_switch"):
        assert live["release"] != r1["release"]
    else:
        assert live["release"] == r1["release"]
    proc = run_cli(root, PUBLISH_CMD)
    assert proc.returncode == 0, proc.tail
    assert tree(work) == tree(roots["r2"] / "public")


def test_history_keeps_a_release_whose_run_died_after_the_switch(roots: dict[str, Any], work: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: R2 went live, the run died before recording it in releases/index.json, and
    the next publish was of another release R3: R2 and its changes were missing from the history
    and the changes feed for good."""
    r1 = check_live(work)
    _cut_at(monkeypatch, "publish.after_switch", 1)
    with pytest.raises(Cut):
        _publish()
    r2 = check_live(work)
    assert r2["release"] != r1["release"]
    monkeypatch.setattr(failpoints, "hit", lambda name: None)
    r3 = _publish("2026-11-30")
    history = json.loads((work / "releases/index.json").read_text())["releases"]
    assert [r["release"] for r in history] == [r1["release"], r2["release"], r3["release"]]
    feed = json.loads((work / "changes.json").read_text())
    assert r2["release"] in {e["release"] for e in feed["entries"]}
    check_live(work)


def test_a_resumed_release_counts_every_file_it_publishes_in_the_gate(roots: dict[str, Any], work: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: versions an interrupted run had finished were reused unscanned, so the
    release manifest's privacy_gate reported only the files of the resumed part."""
    r2 = check_live(roots["r2"] / "public")
    _cut_at(monkeypatch, "publish.version", 2)               # the first new version is complete
    with pytest.raises(Cut):
        _publish()
    monkeypatch.setattr(failpoints, "hit", lambda name: None)
    _publish()
    live = check_live(work)
    assert live["release"] == r2["release"]
    assert live["privacy_gate"]["files_scanned"] == r2["privacy_gate"]["files_scanned"] > 0
    assert live["privacy_gate"] == r2["privacy_gate"]
