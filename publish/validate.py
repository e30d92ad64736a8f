"""Validate published metadata with the real validators users run (frictionless)."""
from __future__ import annotations

from typing import Any


def validate_package(path: str) -> dict[str, Any]:
    """Run the frictionless validator on a datapackage.json (as ``frictionless validate`` does)."""
    from frictionless import validate

    report = validate(path)
    errors = report.flatten(["type", "note"]) if not report.valid else []
    return {"valid": bool(report.valid), "errors": [f"{t}: {n}" for t, n in errors][:20]}
