"""The demo workspace: the twin's exported files loaded like a customer's, with the twin kept behind them.

``sample_data/`` holds what the twin (seed 7) exports: table CSVs and English/French page exports. The
demo loads them through the file loaders, exactly as a consultant loads a customer's exports, then
simulates the same twin again and stores it beside that history (:func:`~syncanalysis.twin.state.attach_twin`),
so that resolution actions act on it and ``twin advance`` shows their effect.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from .schema import SCHEMA_VERSION
from .twin.export import write_sample_data
from .twin.scenario import ScenarioConfig, Simulation
from .twin.state import attach_twin, publish
from .workspace import LoadReport, Workspace, project_root

DEFAULT_WORKSPACE = project_root() / "build" / "demo.duckdb"


DEMO = ScenarioConfig()  # the scenario sample_data/ was written from (90 days, scale 1, seed 7)
DEMO_SCENARIO = f"demo?days={DEMO.days}&scale={DEMO.scale}&seed={DEMO.seed}"


def build_demo(workspace: Workspace, *, sample_data: str | Path | None = None, progress: bool = False) -> list:
    """Load ``sample_data/`` into ``workspace`` through the file loaders and attach the twin behind it.

    Falls back to publishing the twin's history directly when there is no ``sample_data/`` folder (an
    installed package without the repository). Returns the file load reports (empty on the fallback).
    """
    folder = Path(sample_data) if sample_data is not None else project_root() / "sample_data"
    if not (folder / "tables").is_dir():
        build(workspace, progress=progress)
        return []
    from .sources import load_sample_data

    sim = Simulation(DEMO, progress=progress)
    reports = load_sample_data(workspace, folder, environment=DEMO.environment, company=DEMO.company,
                               progress=progress)
    sim.run()
    attach_twin(workspace, sim, scenario=DEMO_SCENARIO)
    return reports


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


def _is_current(path: Path) -> bool:
    """Whether the workspace file has this version's schema (a file in use elsewhere counts as current)."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return True  # locked by another process: leave it to it
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        return bool(row) and row[0][0] == str(SCHEMA_VERSION)
    except duckdb.Error:
        return False
    finally:
        con.close()


def ensure_demo(path: str | Path = DEFAULT_WORKSPACE, *, progress: bool = False,
                on_built: Callable[[list], None] | None = None) -> Path:
    """Return the path of the demo workspace, building it first when it does not exist yet.

    It is built too when it was built by an older syncanalysis (another schema version): the demo is
    generated, so it is rebuilt.

    The build writes to a temporary file that is renamed at the end, so a build interrupted halfway
    never leaves a half-filled demo behind (and two notebooks starting at once do not share one).
    ``on_built`` receives the file load reports of a build.
    """
    path = Path(path)
    if path.exists() and _is_current(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.building")
    try:
        with Workspace(tmp) as ws:
            reports = build_demo(ws, progress=progress)
        if on_built is not None:
            on_built(reports)
        if not path.exists() or not _is_current(path):
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def scratch_workspace(name: str, *, source: str | Path = DEFAULT_WORKSPACE, fresh: bool = True) -> Workspace:
    """Open ``build/<name>.duckdb``, a copy of the demo workspace that actions may change freely.

    Parameters
    ----------
    name
        File stem of the copy.
    source
        The workspace to copy (built first when it is the missing demo).
    fresh
        Copy again even if the scratch file exists (start over from the demo).
    """
    source = ensure_demo(source) if Path(source) == DEFAULT_WORKSPACE else Path(source)
    target = Path(source).parent / f"{name}.duckdb"
    if fresh or not target.exists():
        Path(f"{target}.wal").unlink(missing_ok=True)  # left by a killed kernel: it belongs to the old copy
        shutil.copyfile(source, target)
        if Path(f"{source}.wal").exists():  # changes of the source not checkpointed yet
            shutil.copyfile(f"{source}.wal", f"{target}.wal")
    return Workspace(target)
