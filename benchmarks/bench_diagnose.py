"""Benchmark a full ``diagnose`` on a ``--scale 10`` workspace (about 630,000 error rows).

Set-up (not timed): the 90-day scenario at scale 10, published into a workspace file. Then, on that
file: the baseline, measured in the same run, is one pass of DuckDB over the history (a GROUP BY of
every error by job, record and text - the least any diagnosis must read); the figure is ``diagnose``
from a cold start (signatures not yet assigned), and again warm (signatures cached in the workspace).
Also reports whether the planted incidents were recovered.

Last line: one JSON object of the figures, each with its bound.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from syncanalysis import Workspace
from syncanalysis.analysis.findings import diagnose
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish


def recovered(ws: Workspace, findings: list) -> int:
    """How many planted incidents a finding of the same mapping matches within one job interval."""
    tol = pd.Timedelta(minutes=30)
    n = 0
    for inc in ws.sql('SELECT mapping, start, "end" FROM incidents').itertuples():
        n += any((f.mapping == inc.mapping or inc.mapping in f.evidence.get("per_mapping", {}))
                 and f.start is not None and f.end is not None
                 and abs(pd.Timestamp(f.start) - inc.start) <= tol and abs(pd.Timestamp(f.end) - inc.end) <= tol
                 for f in findings)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=10.0)
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diag.duckdb"
        t = time.perf_counter()
        sim = Simulation(ScenarioConfig(days=args.days, scale=args.scale, seed=7))
        sim.run()
        with Workspace(path) as ws:
            publish(ws, sim, scenario="bench-diagnose")
        del sim
        print(f"set-up: scale {args.scale}, {args.days} days ({time.perf_counter() - t:.0f} s)")
        with Workspace(path) as ws:
            errors = ws.count("job_errors")
            t = time.perf_counter()
            ws.sql("SELECT job_id, source_record_id, error_message, count(*) FROM job_errors GROUP BY ALL")
            scan_s = time.perf_counter() - t
            t = time.perf_counter()
            findings = diagnose(ws)
            cold_s = time.perf_counter() - t
            t = time.perf_counter()
            findings = diagnose(ws)
            warm_s = time.perf_counter() - t
            found = recovered(ws, findings)
            incidents = ws.count("incidents")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{errors:,} errors; one pass over them: {scan_s:.2f} s")
    print(f"diagnose: {cold_s:.1f} s cold (signatures assigned), {warm_s:.1f} s warm; {len(findings)} findings, "
          f"{found} of {incidents} planted incidents recovered; peak {peak:.0f} MB")
    print(json.dumps({
        "errors": errors, "diagnose_cold_s": round(cold_s, 2), "diagnose_cold_s_max": 120,
        "diagnose_warm_s": round(warm_s, 2), "diagnose_warm_s_max": 60,
        "diagnose_vs_scan": round(warm_s / max(scan_s, 1e-9), 1), "diagnose_vs_scan_max": 100,
        "incidents_recovered": found, "incidents_recovered_min": incidents,
        "peak_mb": round(peak), "peak_mb_max": 4096,
    }))


if __name__ == "__main__":
    main()
