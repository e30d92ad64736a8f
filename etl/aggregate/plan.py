"""Which (domain, date) partitions an aggregate run rebuilds."""
from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Mapping


def partitions_to_rebuild(domains: Iterable[str], params: Mapping[str, Any],
                          events: Mapping[Any, Iterable[Any]]) -> dict[str, list[str]]:
    """domain -> sorted KST dates: from the silver asset events' ``extra.dates`` (asset name
    ``silver_<domain>``), plus the ``dates`` param for the ``domains`` param (default: all),
    plus the days after them that read them as lookback (runner.with_followers)."""
    known = set(domains)
    out: dict[str, set[str]] = {}
    for asset, asset_events in events.items():
        name = getattr(asset, "name", str(asset))
        domain = name.removeprefix("silver_")
        if domain not in known:
            continue
        for event in asset_events:
            out.setdefault(domain, set()).update((getattr(event, "extra", None) or {}).get("dates") or [])
    hand = [date.fromisoformat(d).isoformat() for d in params.get("dates") or []]
    if hand:
        for domain in params.get("domains") or sorted(known):
            if domain not in known:
                raise ValueError(f"no gold models for domain {domain!r}")
            out.setdefault(domain, set()).update(hand)
    from etl.aggregate.runner import with_followers

    return {d: with_followers(d, sorted(v)) for d, v in sorted(out.items()) if v}
