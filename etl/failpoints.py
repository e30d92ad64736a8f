"""Crash injection for durability tests.

``CITYLAKE_FAILPOINT=<name>`` kills the process (exit 137, like SIGKILL) the first time
execution reaches that point; ``<name>@N`` kills it on the N-th time (so a test can die in the
middle of a loop: the 3rd file of a publish, the 5th batch of a run). Unset, it does nothing.
"""
from __future__ import annotations

import os
from collections import Counter

# Named points. Tests pick among them; new stages add theirs under their heading.
POINTS = (
    # ingest
    "after_landing_data",       # data object written, envelope not yet
    "after_landing",            # batch landed; MQTT not acked, cursor not saved
    "after_silver_commit",      # silver committed; quarantine and ledger not yet
    "after_quarantine_commit",  # quality checks and ledger not yet
    "after_checks_commit",      # quality checks committed; ledger not yet
    "after_ack",                # MQTT batch landed and acked, not normalised
    "after_cursor",             # pull batch landed and cursor saved, not normalised
    "before_batch",             # before each batch of a run's normalisation (@N: between batches)
    # publish
    "publish.file",             # before each file of a new dataset version is written
    "publish.version",          # a version's files written, its manifest.json not yet
    "publish.gate",             # every dataset built and scanned, before the gate's verdict
    "publish.metadata",         # before each release metadata file (Data Docs, catalog.jsonld)
    "publish.manifest",         # release files written, its manifest.json not yet
    "publish.switch",           # release written, latest.json not yet switched
    "publish.after_switch",     # latest.json switched; history, changes, catalogue not yet
    "publish.feeds",            # history, changes and catalogue written; feeds not yet
    "publish.portal",           # feeds written; the portal not yet
    # gold
    "gold.model",               # before each model's Delta write (@N: between models)
    "gold.commit",              # after each model's Delta commit
    # quality
    "quality.daily",            # daily tables computed, quality_daily not yet written
    "quality.health",           # quality_daily committed, device_health not yet
)

_HITS: Counter[str] = Counter()


def hit(name: str) -> None:
    spec = os.environ.get("CITYLAKE_FAILPOINT")
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _HITS[name] += 1
    if _HITS[name] >= int(nth or 1):
        os._exit(137)
