"""The gold tables' reference for docs/AGGREGATES.md, rendered from the model files' header
comments (the same text the DuckDB views carry as comments; a test keeps the file in step)."""
from __future__ import annotations

from pathlib import Path

from etl.aggregate.runner import MODELS, model_doc


def models_markdown() -> str:
    out = ["| gold table | domain | what one row is | 한국어 |", "|---|---|---|---|"]
    out += [f"| `{m.name}` | {m.domain} | {m.title_en} | {m.title_ko} |" for m in MODELS]
    for m in MODELS:
        doc, columns = model_doc(m.name)
        out += ["", f"#### `{m.name}`", "", doc, "", "| column | meaning |", "|---|---|"]
        out += [f"| `{c}` | {text} |" for c, text in columns.items()]
    return "\n".join(out)


SECTIONS = {"gold-models": models_markdown}


if __name__ == "__main__":
    from quality.reference import update

    path = Path(__file__).resolve().parents[2] / "docs" / "AGGREGATES.md"
    print("updated" if update(path, SECTIONS) else "up to date")
