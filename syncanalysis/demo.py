"""Build the demo workspace from the twin and summarise it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .twin.export import write_sample_data
from .twin.scenario import ScenarioConfig, Simulation
from .twin.state import publish
from .workspace import LoadReport, Workspace

DEFAULT_WORKSPACE = Path("build") / "demo.duckdb"


def build(workspace: Workspace, *, days: int = 90, scale: float = 1.0, seed: int = 7,
          out: str | Path | None = None, progress: bool = False) -> tuple[Simulation, LoadReport]:
    """Simulate the scenario, load its history into ``workspace`` and optionally write sample files to ``out``.

    Returns the simulation and the load report. Loading the same seed twice changes nothing.
    """
    sim = Simulation(ScenarioConfig(days=days, scale=scale, seed=seed), progress=progress)
    sim.run()
    if out is not None:
        write_sample_data(sim, out)
    scenario = f"demo?days={days}&scale={scale}&seed={seed}"
    report = publish(workspace, sim, scenario=scenario)
    return sim, report


def summary(workspace: Workspace) -> dict[str, Any]:
    """Headline figures of a workspace: jobs, errors, skipped couplings, top mappings by failures, incidents."""
    con = workspace.con
    jobs, failed_jobs = con.execute("SELECT count(*), count(*) FILTER (failed > 0) FROM jobs").fetchone()
    errors = con.execute("SELECT count(*) FROM job_errors").fetchone()[0]
    skipped = con.execute("SELECT count(*) FILTER (skipped), count(*) FROM couplings").fetchone()
    by_mapping = con.execute(
        "SELECT mapping_name, sum(failed) AS failed, sum(inserted + modified) AS written, count(*) AS jobs "
        "FROM jobs GROUP BY ALL ORDER BY failed DESC").df()
    incidents = con.execute('SELECT kind, mapping, start, "end", len(affected_keys) AS affected FROM incidents '
                            "ORDER BY start").df()
    return {"jobs": jobs, "jobs_with_failures": failed_jobs, "errors": errors, "skipped_couplings": skipped[0],
            "couplings": skipped[1], "by_mapping": by_mapping, "incidents": incidents}
