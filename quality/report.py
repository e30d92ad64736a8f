"""`citylake quality report`: a summary of a date range from quality_daily and device_health."""
from __future__ import annotations

from datetime import date
from typing import Any

from etl.storage import Store, lake

_TOTALS = """
SELECT domain, source, sum(received)::BIGINT AS received, sum(accepted)::BIGINT AS accepted,
       sum(flagged)::BIGINT AS flagged, sum(quarantined)::BIGINT AS quarantined,
       sum(duplicates)::BIGINT AS duplicates, sum(batches)::BIGINT AS batches,
       sum(batches_with_warnings)::BIGINT AS batches_with_warnings
FROM quality_daily WHERE date BETWEEN $start AND $end GROUP BY ALL ORDER BY domain, source
"""
_REASONS = """
SELECT r.reason, sum(r.n)::BIGINT AS n
FROM (SELECT unnest(quarantined_by) AS r FROM quality_daily WHERE date BETWEEN $start AND $end)
GROUP BY ALL ORDER BY n DESC, r.reason
"""
_CHECKS = """
SELECT c.suite, c.expectation, c.target, c.action, c.code, sum(c.evaluated)::BIGINT AS evaluated,
       sum(c.failed)::BIGINT AS failed,
       CASE WHEN sum(c.evaluated) > 0 THEN 1 - sum(c.failed) / sum(c.evaluated) END AS pass_rate
FROM (SELECT unnest(checks) AS c FROM quality_daily WHERE date BETWEEN $start AND $end)
GROUP BY ALL HAVING sum(c.failed) > 0 ORDER BY pass_rate, failed DESC
"""
_WORST = """
SELECT device_id, domain, source, district_en,
       count(*) FILTER (WHERE status = 'offline')::BIGINT AS days_offline,
       count(*) FILTER (WHERE status = 'degraded')::BIGINT AS days_degraded,
       avg(completeness) AS completeness, sum(stuck)::BIGINT AS stuck, sum(spikes)::BIGINT AS spikes,
       sum(quarantined)::BIGINT AS quarantined, arg_max(battery, date) AS battery, max(last_seen) AS last_seen
FROM device_health WHERE date BETWEEN $start AND $end
GROUP BY ALL
HAVING days_offline + days_degraded > 0
ORDER BY days_offline DESC, days_degraded DESC, avg(completeness) NULLS FIRST,
         sum(stuck) + sum(spikes) + sum(quarantined) DESC, device_id
LIMIT $worst
"""
_STATUS = """
SELECT status, count(*)::BIGINT AS devices FROM device_health WHERE date = $end GROUP BY ALL ORDER BY status
"""


def report(start: date, end: date, worst: int = 10, store: Store | None = None) -> dict[str, Any]:
    from etl import duck

    con = duck.connect(store or lake())
    have = {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    if not {"quality_daily", "device_health"} <= have:
        con.close()
        raise RuntimeError("no quality tables yet: run the quality_tables DAG or `citylake quality rebuild`")
    p = {"start": start.isoformat(), "end": end.isoformat()}
    out = {
        "from": p["start"], "to": p["end"],
        "totals": con.execute(_TOTALS, p).to_arrow_table().to_pylist(),
        "quarantine_reasons": con.execute(_REASONS, p).to_arrow_table().to_pylist(),
        "failing_checks": con.execute(_CHECKS, p).to_arrow_table().to_pylist(),
        "worst_devices": con.execute(_WORST, {**p, "worst": worst}).to_arrow_table().to_pylist(),
        "device_status": con.execute(_STATUS, {"end": p["end"]}).to_arrow_table().to_pylist(),
    }
    con.close()
    return out


def render(r: dict[str, Any]) -> str:
    lines = [f"Data quality {r['from']} .. {r['to']} (KST days)", ""]
    lines.append(f"{'domain':<16}{'source':<20}{'received':>10}{'accepted':>10}{'flagged':>9}{'quarant.':>10}"
                 f"{'dupes':>8}{'batches':>9}{'warned':>8}")
    for t in r["totals"]:
        lines.append(f"{t['domain']:<16}{t['source']:<20}{t['received']:>10}{t['accepted']:>10}{t['flagged']:>9}"
                     f"{t['quarantined']:>10}{t['duplicates']:>8}{t['batches']:>9}{t['batches_with_warnings']:>8}")
    if r["quarantine_reasons"]:
        lines += ["", "quarantined by reason: " + ", ".join(f"{x['reason']} {x['n']}" for x in r["quarantine_reasons"])]
    if r["failing_checks"]:
        lines += ["", "checks with failures (lowest pass rate first):"]
        for c in r["failing_checks"][:15]:
            lines.append(f"  {c['pass_rate']:>8.4%}  {c['failed']:>7} of {c['evaluated']:<9} {c['action']:<10} "
                         f"{c['suite']} {c['expectation']} {c['target']}" + (f" -> {c['code']}" if c["code"] else ""))
    if r["device_status"]:
        lines += ["", f"devices on {r['to']}: " + ", ".join(f"{s['status']} {s['devices']}" for s in r["device_status"])]
    if r["worst_devices"]:
        lines += ["", "worst devices:",
                  f"  {'device':<18}{'domain':<15}{'district':<14}{'offline':>8}{'degr.':>6}{'compl.':>8}"
                  f"{'stuck':>6}{'spike':>6}{'quar.':>6}{'batt.':>6}  last seen (UTC)"]
        for d in r["worst_devices"]:
            comp = f"{d['completeness']:.0%}" if d["completeness"] is not None else "-"
            batt = f"{d['battery']:.0f}" if d["battery"] is not None else "-"
            seen = f"{d['last_seen']:%Y-%m-%d %H:%M}" if d["last_seen"] else "never"
            lines.append(f"  {d['device_id']:<18}{d['domain']:<15}{(d['district_en'] or ''):<14}{d['days_offline']:>8}"
                         f"{d['days_degraded']:>6}{comp:>8}{d['stuck']:>6}{d['spikes']:>6}{d['quarantined']:>6}"
                         f"{batt:>6}  {seen}")
    else:
        lines += ["", "no offline or degraded devices"]
    return "\n".join(lines)
