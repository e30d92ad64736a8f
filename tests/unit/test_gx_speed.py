"""quality.gx_speed patches GX for speed only: a patched and an unpatched process give the
same outcome, checks and GX results on a batch with every failure kind."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
sys.path[:0] = [{repo!r}, {bench!r}]
import quality.gx_speed
if sys.argv[1] == "plain":
    quality.gx_speed.install = lambda: None
from bench_quality import synthetic_batch
from etl.registry.load import load_registry
from quality.validate import limits_from_settings, validate_readings
table, registry, received = synthetic_batch(load_registry("small"))
out = validate_readings(table, table["src_flag"], registry, received, limits_from_settings())
results = [{{k: v for k, v in doc.items() if k not in ("meta", "statistics")}} for doc in out.results]
patched = hasattr(__import__("great_expectations.execution_engine.pandas_execution_engine",
                            fromlist=["x"]).PandasExecutionEngine, "_citylake_memo")
print(json.dumps({{"patched": patched, "reason": out.reason.tolist(), "flags": out.flags.tolist(),
                  "checks": [c.as_dict() for c in out.checks], "results": results}}, default=str, sort_keys=True))
"""


def _run(mode: str) -> dict:
    code = SCRIPT.format(repo=str(REPO), bench=str(REPO / "bench"))
    done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_patched_gx_gives_the_same_results_as_plain_gx() -> None:
    fast, plain = _run("fast"), _run("plain")
    assert fast.pop("patched") and not plain.pop("patched")
    assert sum(r is not None for r in fast["reason"]) > 0 and sum(f is not None for f in fast["flags"]) > 0
    assert {c["code"] for c in fast["checks"] if not c["success"]} >= {
        "unknown_device", "future_timestamp", "before_install", "outside_goyang", "source_flagged",
        "out_of_physical_range", "implausible", "stuck", "spike"}
    assert fast == plain


def test_expectation_configuration_cache_follows_field_changes() -> None:
    import great_expectations.expectations as gxe

    from quality import gx_speed

    gx_speed.install()
    e = gxe.ExpectColumnValuesToNotBeNull(column="a")
    assert e.configuration is e.configuration and e.configuration.kwargs["column"] == "a"
    e.column = "b"
    assert e.configuration.kwargs["column"] == "b"
