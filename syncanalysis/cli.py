"""The ``syncanalysis`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import SyncAnalysisError
from .workspace import Workspace


def _simulate(args: argparse.Namespace) -> int:
    from .demo import build

    with Workspace(args.workspace) as ws:
        sim, report = build(ws, days=args.days, scale=args.scale, seed=args.seed, out=args.out, progress=not args.quiet)
        print(f"Simulated {args.days} days at scale {args.scale} (seed {args.seed}): "
              f"{len(sim.world.jobs):,} jobs, {sim.world.errors.total:,} errors.")
        print(report.to_frame().to_string(index=False))
        if args.out:
            print(f"Sample files written to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .analysis.findings import diagnose
    from .demo import ensure_demo, summary
    from .report import write_report
    from .sources import format_report

    path = Path(args.workspace)
    if path.exists():
        print(f"Reusing the demo workspace {path} (delete it to build it again).")
    else:
        print(f"Building the demo workspace {path}: loading sample_data/ (table exports, English and French "
              "page exports) and the twin behind it...")
        ensure_demo(path, progress=True, on_built=lambda reports: print(format_report(reports)) if reports else None)
    with Workspace(path) as ws:
        s = summary(ws)
        info = ws.info()
        findings = diagnose(ws, progress=True)
        report = write_report(ws, args.report, findings=findings)
    print(f"\nHistory {info['first_job']} .. {info['last_job']}")
    print(f"{s['jobs']:,} synchronization jobs ({s['jobs_with_failures']:,} with failures), {s['errors']:,} errors, "
          f"{s['skipped_couplings']:,} of {s['couplings']:,} couplings skipped.\n")
    print("Per mapping:")
    print(s["by_mapping"].to_string(index=False))
    print("\nPlanted incidents (ground truth of the twin):")
    print(s["incidents"].to_string(index=False))
    print()
    print(format_top_fixes(findings, str(path)) + "\n")
    print(format_findings(findings))
    print(f"HTML report: {report}")
    print("Next: `make lab` and open notebooks/04_bulk_triage.ipynb, or "
          f"`syncanalysis act retry --workspace {path} --finding <ID> --dry-run` (ids as listed above).")
    return 0


def _load(args: argparse.Namespace) -> int:
    from .analysis.coverage import coverage
    from .sources import format_report, load_files, report_json

    with Workspace(args.workspace) as ws:
        reports = load_files(ws, args.paths, environment=args.environment, company=args.company, kind=args.kind,
                             progress=not args.json, timezone=args.timezone)
        scopes = dict.fromkeys((r.environment, r.company) for r in reports)
        covered = [c for e, k in scopes for c in coverage(ws, environment=e, company=k)]
    print(report_json(reports) if args.json else format_report(reports) + "\n\n" + format_coverage(covered))
    return 0


def format_coverage(covered: list) -> str:
    """Coverage (:func:`syncanalysis.analysis.coverage.coverage`) as text: what is loaded, missing, estimated."""
    return "\n".join(["Coverage:"] + [line for c in covered for line in c.lines()])


def _info(args: argparse.Namespace) -> int:
    with Workspace(args.workspace, read_only=True) as ws:
        info = ws.info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"Workspace {info['path']} (schema {info['schema_version']})")
    for table, n in info["rows"].items():
        print(f"  {table:<16} {n:>10,}")
    print(f"Loads: {info['loads']}; jobs from {info['first_job']} to {info['last_job']}")
    for e in info["environments"]:
        print(f"  environment {e['environment']!r}, company {e['company']!r}: {e['rows']:,} rows")
    return 0


def _when(ts: object) -> str:
    return "" if ts is None else str(ts)[:16]


def _diagnose(args: argparse.Namespace) -> int:
    from .analysis.coverage import coverage
    from .analysis.findings import diagnose

    with Workspace(args.workspace) as ws:
        findings = diagnose(ws, environment=args.environment, company=args.company, progress=not args.json)
        covered = coverage(ws, environment=args.environment, company=args.company)
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=2, default=str))
        return 0
    if any(not c.complete for c in covered):
        print(format_coverage(covered) + "\n")
    print(format_top_fixes(findings, args.workspace) + "\n")
    print(format_findings(findings))
    return 0


def format_top_fixes(findings: list, workspace: str | None = None) -> str:
    """The "top fixes" summary: at most five causes to fix first, what each blocks now, fix and action."""
    from .actions.base import CAPTIONS
    from .analysis.findings import top_fixes

    fixes = top_fixes(findings)
    if not fixes:
        return "Top fixes: nothing is blocking records now."
    names = {v: k for k, v in CAPTIONS.items()}
    lines = ["Top fixes (what to fix first; records blocked now, each counted under its first fix):"]
    for i, t in enumerate(fixes, 1):
        lines.append(f"{i}. {t.cause}{f' ({t.mapping})' if t.mapping else ''}: {t.blocked:,} records blocked now")
        lines.append(f"   Fix: {t.fix}.")
        if t.action:
            cmd = f"syncanalysis act {names.get(t.action, t.action)} --workspace {workspace or 'W'} --finding {t.finding}"
            lines.append(f"   Then: {t.action} ({cmd} --dry-run)")
    return "\n".join(lines)


def format_findings(findings: list) -> str:
    """Findings as readable text: what is happening now, then what is over, each with its id and counts."""
    if not findings:
        return "No findings: the history shows no problem the diagnosis knows about."
    now = sum(f.status == "now" for f in findings)
    lines = [f"{len(findings)} findings: {now} happening now, {len(findings) - now} over (what to fix first, first).",
             ""]
    for i, f in enumerate(findings, 1):
        if i == 1 or f.status != findings[i - 2].status:
            lines += ["Happening now:" if f.status == "now" else "Over (nothing failing any more):", ""]
        window = f"{_when(f.start)} .. {_when(f.end)} UTC{' (ongoing)' if f.ongoing else ''}"
        lines.append(f"{i:>2}. [{f.severity.upper()}] {f.code} {f.id} - {f.title}")
        lines.append(f"    {f.environment} / {f.company}{' / ' + f.mapping if f.mapping else ''}; {window}")
        lines.append(f"    {_affected(f)}")
        lines.append(f"    Remedy: {f.remedy}" + (f" Action: {f.action}." if f.action else ""))
        if f.evidence.get("merged"):
            lines.append("    One root cause, also: " + ", ".join(f"{c} {n:,}" for c, n in f.evidence["merged"].items()
                                                             if c != f.code))
        lines.append("")
    return "\n".join(lines)


def _affected(f: Any) -> str:
    """The "affected" line: records (and how many still fail now), errors per day, share of all errors."""
    if f.selection is None and not f.affected:
        return "Affected records: none (this is about the job queue, not records)"
    est = " (estimated: the exports name no records)" if "records" in f.evidence else ""
    out = f"Affected records: {f.affected:,}{est}, {f.now:,} still failing now"
    if f.evidence.get("uncoupled"):
        out += f" (+{f.evidence['uncoupled']:,} never coupled, on the errors page only)"
    if f.per_day:
        out += f"; {f.per_day:,.0f} errors a day over the last week"
    if f.evidence.get("share_of_errors"):
        out += f"; {f.evidence['share_of_errors']:.0%} of all errors"
    return out


def _classify(args: argparse.Namespace) -> int:
    from .analysis.signatures import local_templates, run_classify, use_templates

    if args.templates:
        use_templates(*local_templates(), *args.templates)

    messages = list(args.message)
    if not messages:
        text = sys.stdin.read()
        if text.lstrip().startswith("["):  # a JSON array keeps messages with line breaks whole
            try:
                messages = [str(m) for m in json.loads(text)]
            except json.JSONDecodeError as exc:
                raise SyncAnalysisError(f"stdin starts with '[' but is not a JSON array of messages: {exc}.") from exc
        else:
            messages = [line for line in text.splitlines() if line.strip()]
    if not messages:
        raise SyncAnalysisError("No message to classify: pass messages as arguments or one per line on stdin.")
    print(run_classify(messages, as_json=args.json))
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    with Workspace(args.workspace) as ws:
        path = write_report(ws, args.out, environment=args.environment, company=args.company)
    print(f"Report written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``syncanalysis`` command."""
    from .demo import DEFAULT_WORKSPACE

    parser = argparse.ArgumentParser(prog="syncanalysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("simulate", help="run the twin and load (and optionally export) its history")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", help="folder for sample files (table CSVs and EN/FR page xlsx)")
    p.add_argument("--workspace", default=":memory:", help="DuckDB file (default: in memory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_simulate)
    p = sub.add_parser("demo", help="build (or reuse) the demo workspace, diagnose it and write the report")
    p.add_argument("--workspace", default=str(DEFAULT_WORKSPACE))
    p.add_argument("--report", default=str(DEFAULT_WORKSPACE.parent / "report.html"), help="HTML report path")
    p.set_defaults(func=_demo)
    from .sources import KINDS

    p = sub.add_parser("load", help="load BC export files (page or table exports, xlsx/csv, any language)")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument("--workspace", required=True)
    p.add_argument("--environment", help="written on every row (default: from the file, else 'default')")
    p.add_argument("--company", help="written on every row (default: from the file, else 'default')")
    p.add_argument("--kind", default="auto", choices=list(KINDS), help="what the files are (default: recognise)")
    p.add_argument("--timezone", help="the BC user's time zone, in which page exports show date/times (IANA name, "
                   "e.g. Europe/Paris; default: read as UTC, as table exports are)")
    p.add_argument("--json", action="store_true", help="the load reports as JSON")
    p.set_defaults(func=_load)
    p = sub.add_parser("info", help="row counts, loads, date range, environments")
    p.add_argument("--workspace", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_info)
    p = sub.add_parser("diagnose", help="coded findings: causes, incidents, stops, backlog, remedies")
    p.add_argument("--workspace", required=True)
    p.add_argument("--environment")
    p.add_argument("--company")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_diagnose)
    p = sub.add_parser("classify", help="signature, template, cause and remedy of error messages")
    p.add_argument("message", nargs="*", help="messages (default: one per line, or a JSON array, on stdin)")
    p.add_argument("--json", action="store_true", help="one JSON object per message, with how it was matched")
    p.add_argument("--templates", action="append", metavar="CSV",
                   help="a local template file (template,source,category) to match too; repeatable "
                        "(or set SYNCANALYSIS_TEMPLATES)")
    p.set_defaults(func=_classify)
    p = sub.add_parser("report", help="one self-contained HTML report: KPIs, findings, signatures, charts")
    p.add_argument("--workspace", required=True)
    p.add_argument("--out", default="report.html")
    p.add_argument("--environment")
    p.add_argument("--company")
    p.set_defaults(func=_report)
    from .actions.cli import register as register_actions

    register_actions(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SyncAnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
