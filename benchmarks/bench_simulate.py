"""Benchmark the twin: the default demo and --scale 10, wall time and peak memory.

Each size runs in a child process so peak RSS is its own. The baseline, measured in the same run,
is the time to publish the result into a DuckDB workspace (history plus the stored twin), so the
ratio shows how simulation compares to a load.
Last line: one JSON object of the figures, each with its bound.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
from syncanalysis.twin.scenario import simulate
from syncanalysis.twin.state import publish
from syncanalysis import Workspace
scale = float(sys.argv[1])
t = time.perf_counter(); sim = simulate(90, scale, 7); sim_s = time.perf_counter() - t
errors = sim.world.errors.total
t = time.perf_counter(); publish(Workspace(), sim, scenario="bench"); load_s = time.perf_counter() - t
print(json.dumps({"sim_s": sim_s, "load_s": load_s, "jobs": len(sim.world.jobs), "errors": errors,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(scale: float) -> dict:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(scale)], check=True, capture_output=True, text=True)
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    fig["wall_s"] = time.perf_counter() - t
    return fig


def main() -> None:
    scales = [1.0, 10.0] if "--quick" not in sys.argv else [1.0]
    figures: dict[str, float] = {}
    for scale in scales:
        f = run(scale)
        tag = "demo" if scale == 1 else f"scale{int(scale)}"
        print(f"scale {scale:>4}: simulate {f['sim_s']:.1f} s, load {f['load_s']:.1f} s, {f['jobs']:,} jobs, "
              f"{f['errors']:,} errors, peak {f['peak_mb']:.0f} MB")
        figures[f"{tag}_wall_s"] = round(f["wall_s"], 1)
        figures[f"{tag}_wall_s_max"] = 60 if scale == 1 else 600
        figures[f"{tag}_peak_mb"] = round(f["peak_mb"])
        figures[f"{tag}_peak_mb_max"] = 4096
        figures[f"{tag}_sim_vs_load"] = round(f["sim_s"] / max(f["load_s"], 1e-9), 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
