"""Two ingest runs of different days of one source, started together as separate processes,
leave each day's silver partitions exactly as two runs one after the other do: the same
readings per date, none twice, every landed batch in the ledger, and the Delta log whole."""
from __future__ import annotations

import dataclasses
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import DAY, _city_env
from tests.faults import figures, kills

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


@dataclasses.dataclass
class TwoDays:
    windows: list[tuple[Any, Any]]   # (start, end) of each KST day
    tmp: Path


@pytest.fixture
def two_days(lake_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoDays]:
    """Gateways serving two clean days (HTTP cursor, LoRaWAN HTTP, CSV drops of both days)."""
    from etl.registry.load import devices
    from etl.settings import get_settings
    from etl.simulate.clock import SimClock
    from etl.simulate.faults import FaultPlan
    from etl.simulate.gateways import Gateways
    from etl.timeutil import kst_day_bounds

    _city_env(monkeypatch)
    windows = [kst_day_bounds(DAY), kst_day_bounds(DAY + timedelta(days=1))]
    devs = [dataclasses.asdict(d) for d in devices("small")]
    with Gateways(devs, SimClock.frozen(windows[-1][1] + timedelta(hours=2)), get_settings(), FaultPlan.none()) as gw:
        gw.push(windows[0][0], windows[-1][1], mqtt=False)
        yield TwoDays(windows, lake_env)


def _together(cmds: list[list[str]], extra_env: dict[str, str] | None = None) -> list[kills.Outcome]:
    env = kills._env(None, extra_env)
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in cmds]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    return [kills.Outcome("parallel", p.returncode, 0.0, out[-3000:]) for p, out in zip(procs, outs)]


@pytest.mark.parametrize("source", ["weather_http", "water_csv"])
def test_two_days_in_parallel_equal_two_days_in_sequence(two_days: TwoDays, source: str) -> None:
    barrier = two_days.tmp / "barrier"
    barrier.mkdir()
    together = [kills.ingest_cmd(source, s, e, airflow=False, barrier=f"{barrier}:2") for s, e in two_days.windows]
    cmds = [kills.ingest_cmd(source, s, e, airflow=False) for s, e in two_days.windows]
    for o in _together(together):
        assert o.returncode == 0, o.tail
    figures.record("parallel_runs", len(cmds))
    kills.assert_lake_readable(f"{source} parallel")

    sequential = f"file://{two_days.tmp / 'sequential-lake'}"
    for c in cmds:
        o = kills.run(c, extra_env={"CITYLAKE_LAKE_URI": sequential})
        assert o.returncode == 0, o.tail

    together, one_by_one = kills.silver_by_date(source), kills.silver_by_date(source, sequential)
    days = [DAY.isoformat(), (DAY + timedelta(days=1)).isoformat()]
    assert set(days) <= set(one_by_one), f"the sequential runs did not fill both days: {sorted(one_by_one)}"
    for day in sorted(set(together) | set(one_by_one)):
        got, want = together.get(day, []), one_by_one.get(day, [])
        assert len(got) == len(set(got)), f"{source} {day}: {len(got) - len(set(got))} readings twice in silver"
        assert got == want, f"{source} {day}: {len(got)} readings in parallel, {len(want)} in sequence"
    print(source, kills.reconcile(source, f"{source} parallel"))


def _gold(table: str, root: str | None = None) -> dict[str, list[tuple]]:
    from etl import tables
    from etl.storage import Store, lake

    store = lake() if root is None else Store(root, lake().settings)
    tables._OPEN.clear()
    t = tables.read(store, table)
    tables._OPEN.clear()
    out: dict[str, list[tuple]] = {}
    for row in t.to_pylist():
        out.setdefault(row["date"], []).append(tuple(sorted((k, repr(v)) for k, v in row.items())))
    return {d: sorted(v) for d, v in out.items()}


def test_two_gold_rebuilds_of_different_dates_in_parallel(two_days: TwoDays) -> None:
    """``citylake aggregate rebuild`` of two dates at once, into gold tables that do not exist
    yet (both runs create them) and then again into existing ones (two overwrites of
    different partitions), equals the same rebuilds one after the other."""
    from etl.aggregate.runner import models_for

    sequential = f"file://{two_days.tmp / 'sequential-lake'}"
    for root in (None, sequential):
        extra = {"CITYLAKE_LAKE_URI": root} if root else None
        for s, e in two_days.windows:
            o = kills.run(kills.ingest_cmd("weather_http", s, e, airflow=False), extra_env=extra)
            assert o.returncode == 0, o.tail
    days = [DAY.isoformat(), (DAY + timedelta(days=1)).isoformat()]
    rebuild = [["aggregate", "rebuild", "--domain", "weather", "--from", d] for d in days]
    for round_ in ("create", "overwrite"):
        barrier = two_days.tmp / f"barrier-{round_}"
        barrier.mkdir()
        for o in _together([kills.cli_cmd(a, f"{barrier}:2") for a in rebuild]):
            assert o.returncode == 0, f"{round_}: {o.tail}"
        figures.record("parallel_runs", len(rebuild))
        kills.assert_lake_readable(f"gold {round_}")
    for a in rebuild:
        o = kills.run(kills.cli_cmd(a), extra_env={"CITYLAKE_LAKE_URI": sequential})
        assert o.returncode == 0, o.tail
    for m in models_for("weather"):
        together, one_by_one = _gold(m.table), _gold(m.table, sequential)
        assert set(days) <= set(one_by_one), f"{m.name}: sequential rebuild wrote {sorted(one_by_one)}"
        assert together == one_by_one, f"{m.name}: parallel rebuilds differ from sequential ones"


def test_one_batch_of_a_source_normalised_at_a_time(lake_env: Path) -> None:
    """The lock behind the parallel-runs fix: a second normalisation of the same source waits
    for the first; another source's does not."""
    import threading

    from etl.ingest import source_lock
    from etl.storage import lake

    store, order = lake(), []

    def second(source: str) -> None:
        with source_lock(store, source):
            order.append(source)

    with source_lock(store, "weather_http"):
        same, other = (threading.Thread(target=second, args=(s,)) for s in ("weather_http", "water_csv"))
        same.start()
        other.start()
        other.join(10)
        same.join(0.5)
        assert same.is_alive() and order == ["water_csv"]
        order.append("first done")
    same.join(10)
    assert order == ["water_csv", "first done", "weather_http"]
