"""The ``syncanalysis`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
    from .demo import build, summary

    path = Path(args.workspace)
    with Workspace(path) as ws:
        if ws.count("jobs") == 0:
            print(f"Building the demo workspace {path} (90 days of a simulated company)...")
            build(ws, progress=True)
        else:
            print(f"Reusing the demo workspace {path}.")
        s = summary(ws)
        info = ws.info()
    print(f"\nHistory {info['first_job']} .. {info['last_job']}")
    print(f"{s['jobs']:,} synchronization jobs ({s['jobs_with_failures']:,} with failures), {s['errors']:,} errors, "
          f"{s['skipped_couplings']:,} of {s['couplings']:,} couplings skipped.\n")
    print("Per mapping:")
    print(s["by_mapping"].to_string(index=False))
    print("\nPlanted incidents (ground truth of the twin):")
    print(s["incidents"].to_string(index=False))
    return 0


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
    p = sub.add_parser("demo", help="build (or reuse) the demo workspace and summarise it")
    p.add_argument("--workspace", default=str(DEFAULT_WORKSPACE))
    p.set_defaults(func=_demo)
    p = sub.add_parser("info", help="row counts, loads, date range, environments")
    p.add_argument("--workspace", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_info)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (SyncAnalysisError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
