"""Reference tables for the docs, rendered from the code's own tables (docs/QUALITY.md
embeds them between markers; a test keeps the file in step)."""
from __future__ import annotations

import re
from pathlib import Path

from quality.metrics import METRICS
from quality.reasons import FLAGS, REASONS


def metrics_markdown() -> str:
    from etl.registry.generate import KINDS

    rows = ["| domain | metric | unit | physical range (else quarantined) | plausible range (else flagged) | "
            "max step (spike) | stuck after | allowed values | 한국어 |", "|---|---|---|---|---|---|---|---|---|"]
    for m in METRICS:
        rows.append(f"| {m.domain} | `{m.metric}` | {m.unit} | {m.physical[0]:g} – {m.physical[1]:g} | "
                    f"{m.plausible[0]:g} – {m.plausible[1]:g} | {'' if m.max_step is None else f'{m.max_step:g}'} | "
                    f"{'' if m.stuck_run is None else f'{m.stuck_run} equal readings'} | "
                    f"{'' if m.values is None else ', '.join(f'{v:g}' for v in m.values)} | {m.description_ko} |")
    rows += ["", "| device kind | domain | gateway source | expected interval (Goyang fleet) |", "|---|---|---|---|"]
    for k in KINDS:
        interval = k.interval_s["goyang"]
        rows.append(f"| {k.kind} | {k.domain} | {k.source} | "
                    f"{'event-driven' if interval == 0 else f'{interval} s'} |")
    return "\n".join(rows)


def reasons_markdown() -> str:
    rows = ["| quarantine reason | meaning |", "|---|---|"]
    rows += [f"| `{k}` | {v} |" for k, v in REASONS.items()]
    rows += ["", "| quality flag (kept in silver) | meaning |", "|---|---|"]
    rows += [f"| `{k}` | {v} |" for k, v in FLAGS.items()]
    return "\n".join(rows)


SECTIONS = {"metrics": metrics_markdown, "reasons": reasons_markdown}


def render(text: str, sections: dict | None = None) -> str:
    """``text`` with every ``<!-- NAME:start -->...<!-- NAME:end -->`` block regenerated."""
    for name, fn in (SECTIONS if sections is None else sections).items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + fn() + "\n" + m.group(2), text)
    return text


def update(path: Path, sections: dict | None = None) -> bool:
    """Regenerate the blocks in a file; True if it changed."""
    old = path.read_text(encoding="utf-8")
    new = render(old, sections)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


if __name__ == "__main__":
    print("updated" if update(Path(__file__).resolve().parents[1] / "docs" / "QUALITY.md") else "up to date")
