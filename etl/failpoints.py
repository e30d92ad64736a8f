"""Crash injection for durability tests: ``CITYLAKE_FAILPOINT=<name>`` kills the process
(exit 137, like SIGKILL) when execution reaches that point. Unset, it does nothing."""
from __future__ import annotations

import os

POINTS = (
    "after_landing_data",       # data object written, envelope not yet
    "after_landing",            # batch landed; MQTT not acked, cursor not saved
    "after_silver_commit",      # silver committed; quarantine and ledger not yet
    "after_quarantine_commit",  # ledger not yet
    "publish.file",             # before each file of a new dataset version is written
    "publish.switch",           # release written, latest.json not yet switched
)


def hit(name: str) -> None:
    if os.environ.get("CITYLAKE_FAILPOINT") == name:
        os._exit(137)
