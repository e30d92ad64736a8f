"""Fault-injection suite: prints what it injected and reconciled at the end of the run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults import figures

REPO = Path(__file__).resolve().parents[2]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not figures.FIGURES:
        return
    terminalreporter.section("fault injection")
    terminalreporter.write_line(figures.summary())
    out = REPO / "var" / "faults-figures.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(figures.FIGURES), indent=1, sort_keys=True) + "\n")
