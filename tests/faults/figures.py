"""Counts the fault-injection tests report: what was injected, what was survived, what was
reconciled. The suite's conftest prints the totals at the end of a run (CI's log keeps them)
and writes them to ``var/faults-figures.json`` for the README."""
from __future__ import annotations

from collections import Counter

# kind -> count; kinds used by the suite:
#   kills            processes killed (kill -9 or a failpoint exit 137) and then re-run
#   s3_faults        S3 requests the proxy failed (5xx, cut connection, slow answer)
#   gateway_faults   gateway failures (timeouts, 5xx, broker restarts, malformed bursts)
#   publish_cuts     publishes interrupted at a step
#   parallel_runs    runs of different dates started side by side
#   readings         readings reconciled: received = silver + quarantine + duplicates
#   lost, duplicated readings lost or duplicated (must stay 0)
FIGURES: Counter[str] = Counter()


def record(kind: str, n: int = 1) -> None:
    FIGURES[kind] += int(n)


def summary() -> str:
    order = ["kills", "s3_faults", "gateway_faults", "publish_cuts", "parallel_runs", "readings", "lost", "duplicated"]
    keys = [k for k in order if k in FIGURES] + sorted(k for k in FIGURES if k not in order)
    return ", ".join(f"{k} {FIGURES[k]:,}" for k in keys)
