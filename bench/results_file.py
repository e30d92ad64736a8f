"""Where a benchmark's figures go: one JSON file per benchmark and label under ``--results``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save(directory: str | Path, name: str, result: dict[str, Any]) -> Path:
    out = Path(directory) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"results: {out}")
    return out
