"""The ``citylake`` command line."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import date, datetime
from typing import Any


def _day(text: str) -> date:
    return date.fromisoformat(text)


def cmd_demo(args: argparse.Namespace) -> int:
    from etl import demo

    demo.run(day=args.day, fleet=args.fleet, faults=args.faults)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from etl.simulate import run as sim

    return sim.main(day=args.day, speed=args.speed, fleet=args.fleet, faults=args.faults, until=args.until)


def cmd_run_dag(args: argparse.Namespace) -> int:
    """Run one DAG once with dag.test() (local SQLite Airflow unless AIRFLOW_HOME is set)."""
    import os
    from pathlib import Path

    from etl import airflow_local

    if "AIRFLOW_HOME" not in os.environ:
        airflow_local.configure(airflow_local.REPO / "var" / "airflow")
        airflow_local.migrate()
    else:
        airflow_local.configure(Path(os.environ["AIRFLOW_HOME"]))
    dag = airflow_local.load_dags()[args.dag_id]
    conf = {"window_start": args.start, "window_end": args.end} if args.start else None
    from etl.timeutil import parse_iso

    logical = parse_iso(args.start) if args.start else datetime.now().astimezone()
    dr = airflow_local.run(dag, logical, conf)
    print(json.dumps({"dag_id": args.dag_id, "run_id": dr.run_id, "state": str(dr.state)}))
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    """Airflow for local use: api-server, scheduler, dag-processor, triggerer on dags/."""
    from pathlib import Path

    from etl import airflow_run

    components = airflow_run.CELERY if args.executor == "CeleryExecutor" else airflow_run.LOCAL
    home = Path(args.home).resolve() if args.home else airflow_run.DEFAULT_HOME
    setup = airflow_run.Setup(home=home, db=args.db, host=args.host, port=args.port,
                              executor=args.executor, parallelism=args.parallelism, user=args.user,
                              broker=args.broker, components=components)
    if args.env:
        print(airflow_run.shell_environment(setup))
        return 0
    return airflow_run.serve(setup, password=args.password, create_db=args.create_db)


def cmd_sources(args: argparse.Namespace) -> int:
    from etl.sources import load_sources

    for s in load_sources().values():
        print(f"{s.id:<20}{s.kind:<12}{s.schedule:<10}{','.join(s.domains):<18}{s.endpoint}")
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    from etl.registry.generate import generate
    from etl.registry.load import load_registry, write_csv

    if args.action == "generate":
        path = write_csv(generate(args.size, args.seed), args.out)
        print(f"wrote {path}")
    else:
        table = load_registry(args.path)
        counts = table.group_by(["domain", "kind"]).aggregate([("device_id", "count")]).to_pylist()
        for row in sorted(counts, key=lambda r: (r["domain"], r["kind"])):
            print(f"{row['domain']:<16}{row['kind']:<20}{row['device_id_count']:>7}")
        print(f"valid: {table.num_rows} devices")
    return 0


def cmd_batches(args: argparse.Namespace) -> int:
    import pyarrow.compute as pc

    from etl import tables
    from etl.storage import BATCHES, lake

    t = tables.read(lake(), BATCHES)
    if args.source:
        t = t.filter(pc.equal(t["source"], args.source))
    if args.day:
        t = t.filter(pc.equal(pc.strftime(t["window_start"], "%Y-%m-%d"), args.day.isoformat()))
    cols = ["batch_id", "received", "accepted", "quarantined", "duplicates"]
    rows = t.sort_by("window_start").select(cols).to_pylist()
    if args.json:
        print(json.dumps(rows, default=str, indent=1))
        return 0
    print(f"{'batch':<58}{'received':>9}{'accepted':>9}{'quarant.':>9}{'dupes':>7}  ok")
    bad = 0
    for r in rows:
        ok = r["received"] == r["accepted"] + r["quarantined"] + r["duplicates"]
        bad += not ok
        print(f"{r['batch_id']:<58}{r['received']:>9}{r['accepted']:>9}{r['quarantined']:>9}{r['duplicates']:>7}  {'yes' if ok else 'NO'}")
    return 1 if bad else 0


def cmd_sql(args: argparse.Namespace) -> int:
    """DuckDB over the lake: -c SQL, -f FILE, or an interactive prompt (statements end with ';')."""
    from etl import duck

    if args.db:
        import duckdb

        con = duckdb.connect(args.db, read_only=True, config={"autoinstall_known_extensions": False,
                                                              "autoload_known_extensions": False})
        duck.load_extension(con, "delta")
        if duck.lake().is_s3:
            duck.attach_s3(con, duck.lake())
    else:
        con = duck.analyst_session()
    if args.command or args.file:
        text = args.command or open(args.file, encoding="utf-8").read()
        for statement in _statements(text):
            _show(con, statement, args.max_rows)
        return 0
    print("citylake sql — DuckDB over the lake. Views: " + ", ".join(
        r[0] for r in con.sql("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall())
          + ". End statements with ';'. .tables, .describe VIEW, .quit")
    buffer = ""
    while True:
        try:
            line = input("citylake> " if not buffer else "       ...> ")
        except EOFError:
            print()
            return 0
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            cmd, _, arg = stripped.partition(" ")
            if cmd in (".quit", ".exit"):
                return 0
            sql = {".tables": "SELECT view_name AS name, comment FROM duckdb_views() WHERE NOT internal "
                              "UNION ALL SELECT table_name, comment FROM duckdb_tables() ORDER BY 1",
                   ".describe": "SELECT column_name, data_type, comment FROM duckdb_columns() "
                                f"WHERE table_name = '{arg.strip().replace(chr(39), '')}' ORDER BY column_index"}.get(cmd)
            if sql:
                _show(con, sql, args.max_rows)
            continue
        buffer += line + "\n"
        if stripped.endswith(";"):
            for statement in _statements(buffer):
                _show(con, statement, args.max_rows)
            buffer = ""


def _statements(text: str) -> list[str]:
    return [s.strip() for s in text.split(";") if s.strip()]


def _show(con: Any, sql: str, max_rows: int) -> None:
    try:
        rel = con.sql(sql)
        if rel is not None:
            rel.show(max_rows=max_rows)
    except Exception as exc:  # noqa: BLE001 - a bad statement is reported, the session goes on
        print(f"error: {exc}", file=sys.stderr)


def cmd_duckdb_file(args: argparse.Namespace) -> int:
    import os

    from etl import duck

    if os.path.exists(args.path):
        if not args.force:
            raise SystemExit(f"{args.path} exists (use --force to replace it)")
        os.remove(args.path)
    names = duck.write_database_file(args.path)
    print(f"wrote {args.path}: {', '.join(names)} (views over the lake's Delta tables; open with "
          f"`citylake sql --db {args.path}`)")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from etl import duck

    con = duck.connect()
    con.sql(args.sql).show(max_rows=args.max_rows)
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    import pyarrow.compute as pc

    from etl import tables
    from etl.storage import QUARANTINE, lake

    filters = [("date", "=", args.day.isoformat())] if args.day else None
    t = tables.read(lake(), QUARANTINE, filters)
    for col in ("source", "reason", "batch_id"):
        value = getattr(args, col, None)
        if value:
            t = t.filter(pc.equal(t[col], value))
    if args.action == "replay":
        return _replay(args, t)
    if args.rows:
        cols = ["batch_id", "device_id", "metric", "ts", "value", "unit", "reason", "detail"]
        rows = t.sort_by([("batch_id", "ascending"), ("frame", "ascending")]).select(cols).slice(0, args.rows).to_pylist()
        if args.json:
            print(json.dumps(rows, default=str, ensure_ascii=False, indent=1))
            return 0
        for r in rows:
            print(f"{r['batch_id']:<56} {r['device_id'] or '?':<16} {r['metric'] or '-':<12} {str(r['ts'] or '-'):<26} "
                  f"{r['reason']:<22} {r['detail'] or ''}")
        return 0
    summary = t.group_by(["source", "reason"]).aggregate([("batch_id", "count"), ("batch_id", "count_distinct")])
    rows = summary.sort_by([("source", "ascending"), ("reason", "ascending")]).to_pylist()
    if args.json:
        print(json.dumps(rows, default=str, indent=1))
        return 0
    print(f"{'source':<20}{'reason':<26}{'records':>9}{'batches':>9}")
    for r in rows:
        print(f"{r['source']:<20}{r['reason']:<26}{r['batch_id_count']:>9}{r['batch_id_count_distinct']:>9}")
    return 0


def _replay(args: argparse.Namespace, quarantined: Any) -> int:
    import pyarrow.compute as pc

    from etl import replay

    batches = sorted(pc.unique(quarantined["batch_id"]).to_pylist())
    if not batches:
        print("nothing quarantined matches: nothing to replay")
        return 0
    print(f"replaying {len(batches)} batch(es) from landing ...")
    done = replay.replay(batches)
    print(f"{'batch':<58}{'released':>9}{'still q.':>9}{'accepted':>9}{'dupes':>7}")
    for r in done:
        print(f"{r.batch_id:<58}{r.released:>9}{r.still_quarantined:>9}{r.accepted:>9}{r.duplicates:>7}")
    print(f"released {sum(r.released for r in done)} readings to silver; "
          f"{sum(r.still_quarantined for r in done)} stay quarantined")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from etl.storage import lake

    if args.action == "rebuild":
        from quality import daily, docs

        days = _days(args)
        result = daily.rebuild([d.isoformat() for d in days])
        rendered = docs.render_pending(lake(), result["dates"])
        print(f"rebuilt quality_daily ({result['quality_daily']} rows) and device_health "
              f"({result['device_health']} rows) for {len(days)} day(s); rendered Data Docs for {rendered} "
              f"batch(es); index: {lake().table_uri(docs.build_index(lake()))}")
        return 0
    if args.action == "docs":
        from quality import docs

        docs.render_pending(lake(), [d.isoformat() for d in _days(args)])
        key = docs.build_index(lake())
        print(lake().table_uri(key))
        return 0
    from quality import report

    days = _days(args)
    r = report.report(days[0], days[-1], worst=args.worst)
    print(json.dumps(r, default=str, ensure_ascii=False, indent=1) if args.json else report.render(r))
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from etl.aggregate import runner

    if args.action == "models":
        for m in runner.MODELS:
            print(f"{m.name:<32}{m.domain:<16}{m.title_en}")
        return 0
    days = [d.isoformat() for d in _days(args)]
    domains = args.domain or sorted({m.domain for m in runner.MODELS} - {"summary"}) + ["summary"]
    for domain in domains:
        dates = runner.with_followers(domain, days)
        result = runner.rebuild(domain, dates)
        print(f"{domain}: " + ", ".join(f"{t} {n}" for t, n in result["tables"].items()) + f" rows for {dates}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The open-data API (publish.api) under uvicorn, over the configured public side."""
    import uvicorn

    from publish.api.app import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from publish import changes, release
    from publish.catalog import load_catalogue, sources_of

    if args.action == "datasets":
        for ds in load_catalogue().datasets.values():
            print(f"{ds.id:<30}{ds.licence:<8}{ds.frequency:<8}{ds.title_ko} / {ds.title_en}  "
                  f"[{', '.join(sources_of(ds)) or 'registry'}]")
        return 0
    if args.action == "vendor":
        from publish.portal import vendor

        root = vendor.ensure()
        print(f"portal libraries in {root}: " + ", ".join(f"{p.name}@{p.version}" for p in vendor.PACKAGES))
        return 0
    from etl.storage import lake, public

    if args.action == "portal":
        from publish import privacy
        from publish.portal import publish_site

        current = release.live(public())
        if current is None:
            raise SystemExit("nothing is published yet: run `citylake publish` first")
        n = publish_site(public(), current, release.base_url_of(public()), privacy.load(lake()))
        print(f"portal: {n} files for release {current['release']} under {public().uri('portal')}/")
        return 0
    if args.action == "changes":
        history = changes.history(public())
        since = datetime.fromisoformat(args.since) if args.since else None
        if since is not None and since.tzinfo is None:
            from etl.timeutil import KST

            since = since.replace(tzinfo=KST)
        rows = changes.since(history, since) if since else changes.entries(history)
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    if args.action == "rebuild":
        result = release.rebuild(args.release or release.live(public())["release"])
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0 if result["identical"] else 1
    if args.action == "verify":
        result = release.verify()
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0 if result["ok"] else 1
    result = release.publish(as_of=args.as_of, datasets=args.dataset)
    print(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    return 0


def _days(args: argparse.Namespace) -> list[date]:
    """The KST days of --from/--to (default: yesterday and today in KST)."""
    from datetime import timedelta

    from datetime import timezone

    from etl.timeutil import kst_date

    today = kst_date(datetime.now(timezone.utc))
    start = args.start or (args.end or today) - timedelta(days=1)
    end = args.end or (today if args.start is None else start)
    if end < start:
        raise SystemExit("--to is before --from")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="citylake", description="Goyang smart-city open-data lake")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="simulate a day and run every ingest DAG end to end (file:// lake under var/)")
    d.add_argument("--day", type=_day, default=None, help="KST day to simulate (default 2026-11-24)")
    d.add_argument("--fleet", default="small", help="small | goyang | path to a registry CSV")
    d.add_argument("--faults", default="demo", choices=["none", "demo"])
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("simulate", help="run the simulated gateways on 127.0.0.1 with a simulated clock")
    s.add_argument("--day", type=_day, required=True)
    s.add_argument("--speed", type=float, default=1440.0, help="simulated seconds per wall second (1440: a day in a minute)")
    s.add_argument("--until", type=_day, default=None, help="stop after this KST day (default: --day)")
    s.add_argument("--fleet", default="small")
    s.add_argument("--faults", default="demo", choices=["none", "demo"])
    s.set_defaults(func=cmd_simulate)

    sub.add_parser("sources", help="list the gateway sources").set_defaults(func=cmd_sources)

    rd = sub.add_parser("run-dag", help="run one DAG once locally with dag.test()")
    rd.add_argument("dag_id")
    rd.add_argument("--start", help="window_start (ISO 8601)")
    rd.add_argument("--end", help="window_end (ISO 8601)")
    rd.set_defaults(func=cmd_run_dag)

    af = sub.add_parser("airflow", help="run Airflow locally on dags/ (api-server, scheduler, dag-processor, "
                                        "triggerer; LocalExecutor); prints the UI URL and login; Ctrl-C stops it")
    af.add_argument("--home", help="AIRFLOW_HOME (default: var/airflow in the repository)")
    af.add_argument("--db", help="metadata database URL, e.g. postgresql://postgres@127.0.0.1:5432/citylake_airflow "
                                 "(default: SQLite in --home, development only)")
    af.add_argument("--create-db", action="store_true", help="create the PostgreSQL database of --db if missing")
    af.add_argument("--host", default="127.0.0.1")
    af.add_argument("--port", type=int, default=8080)
    af.add_argument("--parallelism", type=int, default=4, help="task instances at once (default 4: a 2-core box)")
    af.add_argument("--user", default="admin", help="UI user (admin role)")
    af.add_argument("--password", help="set the UI password (default: keep the stored one, or generate one)")
    af.add_argument("--executor", default="LocalExecutor", choices=["LocalExecutor", "CeleryExecutor"],
                    help="CeleryExecutor also starts `airflow celery worker` (needs the celery provider and --broker)")
    af.add_argument("--broker", default="redis://127.0.0.1:6379/0", help="Celery broker URL")
    af.add_argument("--env", action="store_true",
                    help="print the export lines that point the `airflow` CLI at this setup, and exit")
    af.set_defaults(func=cmd_airflow)

    r = sub.add_parser("registry", help="generate or validate the device registry")
    r.add_argument("action", choices=["generate", "validate"])
    r.add_argument("--size", default="small", choices=["small", "goyang"])
    r.add_argument("--seed", type=int, default=20261125)
    r.add_argument("--out", default="fleet.csv")
    r.add_argument("--path", default=None, help="registry to validate (default: the configured fleet)")
    r.set_defaults(func=cmd_registry)

    b = sub.add_parser("batches", help="per-batch reconciliation: received = accepted + quarantined + duplicates")
    b.add_argument("--source")
    b.add_argument("--day", type=_day)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_batches)

    q = sub.add_parser("quarantine", help="list quarantined records, or replay their batches after a fix")
    q.add_argument("action", nargs="?", default="list", choices=["list", "replay"],
                   help="list (default): counts by source and reason (--rows N: the records); "
                        "replay: re-process the matching batches from landing")
    q.add_argument("--day", type=_day, help="KST date of the records")
    q.add_argument("--source")
    q.add_argument("--reason")
    q.add_argument("--batch", dest="batch_id")
    q.add_argument("--rows", type=int, default=0, help="list: show up to N records")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_quarantine)

    ql = sub.add_parser("quality", help="data quality: report for a date range, rebuild the daily tables, Data Docs")
    ql.add_argument("action", nargs="?", default="report", choices=["report", "rebuild", "docs"])
    ql.add_argument("--from", dest="start", type=_day, help="first KST day (default: yesterday)")
    ql.add_argument("--to", dest="end", type=_day, help="last KST day (default: today, or --from)")
    ql.add_argument("--worst", type=int, default=10, help="how many of the worst devices to list")
    ql.add_argument("--json", action="store_true")
    ql.set_defaults(func=cmd_quality)

    ag = sub.add_parser("aggregate", help="gold tables: rebuild them for KST dates, or list the models")
    ag.add_argument("action", choices=["rebuild", "models"])
    ag.add_argument("--domain", action="append", help="only this domain (repeatable; default: all, then the summary)")
    ag.add_argument("--from", dest="start", type=_day, help="first KST day (default: yesterday)")
    ag.add_argument("--to", dest="end", type=_day, help="last KST day (default: today, or --from)")
    ag.set_defaults(func=cmd_aggregate)

    pb = sub.add_parser("publish", help="open data: make a release (default), list the datasets, the changes "
                                        "feed, verify the live release, rebuild a release and compare its bytes, "
                                        "regenerate the portal, or fetch the portal's npm libraries")
    pb.add_argument("action", nargs="?", default="release",
                    choices=["release", "datasets", "changes", "verify", "rebuild", "portal", "vendor"])
    pb.add_argument("--release", help="rebuild: the release to rebuild and compare (default: the live one)")
    pb.add_argument("--as-of", dest="as_of", type=_day, help="release: KST date the release is as of (default today)")
    pb.add_argument("--dataset", action="append", help="release: only this dataset (repeatable; others stay as live)")
    pb.add_argument("--since", help="changes: only releases issued after this time (ISO 8601; KST if no offset)")
    pb.set_defaults(func=cmd_publish)

    qy = sub.add_parser("query", help="run SQL in DuckDB over the lake (views: silver, quarantine, batches, "
                                      "quality_checks, quality_daily, device_health, the gold tables)")
    qy.add_argument("sql")
    qy.add_argument("--max-rows", type=int, default=40)
    qy.set_defaults(func=cmd_query)

    sq = sub.add_parser("sql", help="a DuckDB session over the lake: views silver, quarantine, batches, quality "
                                    "and gold tables and devices, every column commented")
    sq.add_argument("-c", "--command", help="run these statements and exit")
    sq.add_argument("-f", "--file", help="run the statements in this file and exit")
    sq.add_argument("--db", help="open a .duckdb file written by `citylake duckdb-file` instead")
    sq.add_argument("--max-rows", type=int, default=40)
    sq.set_defaults(func=cmd_sql)

    dfile = sub.add_parser("duckdb-file", help="write a .duckdb file with the lake's views (for DuckDB clients)")
    dfile.add_argument("path")
    dfile.add_argument("--force", action="store_true", help="replace an existing file")
    dfile.set_defaults(func=cmd_duckdb_file)

    sv = sub.add_parser("serve", help="the read-only open-data API over the live release (public side)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8800)
    sv.set_defaults(func=cmd_serve)

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cmd == "demo" and args.day is None:
        from etl.demo import DEFAULT_DAY

        args.day = DEFAULT_DAY
    return int(args.func(args) or 0)


def run() -> None:
    """The ``citylake`` command: ``main``, then leave without interpreter finalisation.

    pyarrow's I/O threads (reading Delta files through delta-rs's Python file handler) can still
    be alive when the interpreter finalises; one calling into Python then is unwound and
    aborts the process (SIGABRT, "terminate called without an active exception") after the
    work is done. The exit handlers still run and the streams are flushed first.
    """
    import atexit

    code = main()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
