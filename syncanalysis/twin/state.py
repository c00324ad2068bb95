"""Keep a twin beside its history: the simulation is stored in the workspace (table ``twin_state``).

Resolution actions and ``syncanalysis twin advance`` load the twin of an environment/company, change
it, and :func:`publish` writes what happened since the last publish (new jobs and errors, the couplings
and mappings as they are now) together with the updated twin, in one transaction, so the history and
the twin never disagree.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd

from ..errors import TwinError
from ..sql import registered, scope
from ..workspace import Load, LoadReport, Workspace
from . import operations as ops
from . import store
from .export import canonical_frames
from .scenario import Simulation

KIND = "twin"
CHUNK_ROWS = 50_000


def _now(sim: Simulation) -> dt.datetime:
    return dt.datetime.fromtimestamp(sim.clock / 1000, dt.UTC).replace(tzinfo=None)


def has_twin(ws: Workspace, environment: str | None = None, company: str | None = None) -> bool:
    """Whether the workspace holds a twin (for ``environment``/``company`` when given)."""
    return bool(_rows(ws, environment, company))


def _rows(ws: Workspace, environment: str | None, company: str | None) -> list[tuple]:
    cond, params = scope(environment=environment, company=company)
    return ws.con.execute(f"SELECT environment, company FROM twin_state WHERE {cond} ORDER BY ALL", params).fetchall()


def load_twin(ws: Workspace, environment: str | None = None, company: str | None = None, *,
              cached: bool = False) -> Simulation:
    """Return the twin stored for ``environment``/``company`` (either may be omitted when only one twin fits).

    Parameters
    ----------
    ws
        The workspace.
    environment, company
        Which twin.
    cached
        Reuse the twin this workspace object last loaded or published when the stored one has not
        changed since (no reading). The caller then owns that object: it must :func:`publish` its
        changes or call :func:`forget_twin` — otherwise later cached loads see unpublished changes.

    Raises
    ------
    TwinError
        When no twin, or more than one, fits.
    """
    rows = _rows(ws, environment, company)
    if not rows:
        raise TwinError(
            f"The workspace holds no twin for environment {environment!r}, company {company!r}. "
            "Build one with `syncanalysis demo` or `syncanalysis simulate --workspace ...`; "
            "for loaded customer history use the plan backend."
        )
    if len(rows) > 1:
        raise TwinError(f"Several twins fit ({rows}); say which with --environment and --company.")
    key = tuple(rows[0])
    revision = ws.con.execute(
        "SELECT revision FROM twin_state WHERE environment = ? AND company = ?", list(key)).fetchall()[0][0]
    def read() -> Simulation:
        return _read(ws, key)

    if cached:  # the workspace object keeps it while the stored revision is the same
        return ws.memo(_memo_name(*key), revision, read, across_writes=True)
    return read()


def _memo_name(environment: str, company: str) -> str:
    """The twin's name among the workspace's memo values (no other name starts with it)."""
    return f"twin\x1f{environment}\x1f{company}\x1e"


def _read(ws: Workspace, key: tuple[str, str]) -> Simulation:
    blob, digests = ws.con.execute(
        "SELECT state, buffers FROM twin_state WHERE environment = ? AND company = ?", list(key)).fetchall()[0]
    stored = dict(ws.con.execute(
        "SELECT digest, data FROM twin_buffers WHERE environment = ? AND company = ?", list(key)).fetchall())
    missing = [d for d in digests or [] if d not in stored]
    if missing:
        raise TwinError(f"The stored twin of {key[0]}/{key[1]} lacks {len(missing)} of its buffers; rebuild the "
                        "workspace (`syncanalysis demo`, or `syncanalysis simulate --workspace FILE`).")
    return store.loads(blob, [stored[d] for d in digests or []], _encodings(ws))


def _encodings(ws: Workspace) -> store.Encodings:
    """The encodings of the text arrays this workspace read or stored last (kept until a rollback)."""
    return ws.memo("twin-encodings", None, dict, across_writes=True)


def forget_twin(ws: Workspace, environment: str | None = None, company: str | None = None) -> None:
    """Drop the cached twin(s) of ``ws`` (after a change that will not be published)."""
    if environment is not None and company is not None:
        ws.forget(_memo_name(environment, company))
    elif environment is not None:
        ws.forget(f"twin\x1f{environment}\x1f")
    else:  # every twin (also when only the company is named: a rare call, and forgetting more is safe)
        ws.forget("twin\x1f")


def _check_finished(sim: Simulation) -> None:
    # pending planted events are closures, and the ground truth is known only at the end
    if sim._events or not hasattr(sim, "affected"):
        raise TwinError("Only a twin whose scenario has run to its end can be stored: call Simulation.run() first.")


def _save(load: Load, sim: Simulation, scenario: str) -> int:
    """Store ``sim`` (inside the load's transaction) and return its new revision."""
    w = sim.world
    _check_finished(sim)
    # The twin as data (twin.store: JSON and raw arrays, read back into its own classes only). Arrays are
    # stored by content: after an action that un-skips 100,000 couplings only the Skipped arrays are new,
    # not the 60 MB of the whole twin.
    blob, buffers = store.dumps(sim, _encodings(load.workspace))
    digests = [hashlib.sha1(b).hexdigest() for b in buffers]  # noqa: S324 - content identity, not security
    scope = [w.environment, w.company]
    old = load.con.execute("SELECT revision FROM twin_state WHERE environment = ? AND company = ?", scope).fetchall()
    revision = (old[0][0] or 0) + 1 if old else 1
    have = {d for (d,) in load.con.execute(
        "SELECT digest FROM twin_buffers WHERE environment = ? AND company = ?", scope).fetchall()}
    new = {d: b for d, b in zip(digests, buffers) if d not in have}
    # a bytes parameter is bound slowly (~50 MB/s); registered frames are several times faster
    state_row = pd.DataFrame({
        "environment": [w.environment], "company": [w.company], "scenario": [scenario], "clock": [_now(sim)],
        "jobs_exported": [len(w.jobs)], "errors_exported": [w.errors.base], "revision": [revision],
        "state": [blob], "buffers": [digests]})
    new_buffers = pd.DataFrame({"environment": w.environment, "company": w.company, "digest": list(new),
                                "data": list(new.values())}, columns=["environment", "company", "digest", "data"])
    with registered(load.con, state_row, "twin_state_row") as row, \
            registered(load.con, new_buffers, "twin_new_buffers") as added:
        load.con.execute(f"INSERT OR REPLACE INTO twin_state SELECT * FROM {row}")
        load.con.execute(f"INSERT INTO twin_buffers SELECT * FROM {added}")
        load.con.execute("DELETE FROM twin_buffers WHERE environment = ? AND company = ? AND NOT list_contains(?, digest)",
                         [*scope, digests])
    return revision


def publish(ws: Workspace, sim: Simulation, *, scenario: str | None = None, source: str | None = None,
            before: list | None = None, couplings: pd.DataFrame | None = None) -> LoadReport:
    """Write the twin's new history and its state into ``ws``, in one transaction.

    New jobs (since the last publish), the errors still in the twin's log, the couplings and mappings as
    they are now (couplings the twin no longer has are deleted) and the stored twin itself.

    Parameters
    ----------
    ws
        The workspace.
    sim
        The twin (a finished or advanced simulation).
    scenario
        A name for the stored twin (kept from the previous publish when omitted).
    source
        The ``loads.source`` text (default ``twin:<scenario>``).
    before
        Callables ``f(load)`` run first in the same transaction (e.g. an action's audit row).
    couplings
        Keys (``table_id``, ``integration_id``) of the only couplings that may have changed since the
        last publish (an action on few records): only these are written or deleted, instead of
        comparing every coupling of the twin.

    Returns
    -------
    LoadReport
        What changed in each table.
    """
    w = sim.world
    _check_finished(sim)
    row = ws.con.execute(
        "SELECT scenario, jobs_exported FROM twin_state WHERE environment = ? AND company = ?",
        [w.environment, w.company],
    ).fetchone()
    scenario = scenario or (row[0] if row else "twin")
    since = row[1] if row else 0
    if couplings is None:  # a full snapshot: couplings the twin no longer has are deleted
        frames = canonical_frames(sim, since_job=since)
        keys = frames["couplings"][["table_id", "integration_id"]].astype({"table_id": "int64", "integration_id": str})
        gone_sql = "NOT EXISTS"
    else:  # only these couplings may have changed: write them, delete those the twin no longer couples
        touched = couplings[["table_id", "integration_id"]].astype({"table_id": "int64", "integration_id": str})
        by_table = {c.table_id: name for name, c in w.configs.items()}
        rows: dict[str, np.ndarray] = {}
        still: list[np.ndarray] = []
        for table_id, part in touched.groupby("table_id", sort=False):
            name = by_table.get(int(table_id))
            r = ops.rows_for_ids(w, name, part["integration_id"].to_numpy()) if name else np.full(len(part), -1)
            rows[name] = r
            coupled = (r >= 0) & w.table(name).coupled[np.maximum(r, 0)] if name else np.zeros(len(part), bool)
            still.append(part.index.to_numpy()[coupled])
        frames = canonical_frames(sim, since_job=since, coupling_rows=rows)
        keys = touched.drop(index=np.concatenate(still) if still else [])
        gone_sql = "EXISTS"
    if row:  # the ground truth was written with the scenario
        frames.pop("incidents")
    key = (w.environment, w.company)
    forget_twin(ws, *key)  # if anything below fails, no stale object stays cached
    log = w.errors
    w.errors = log.copy()  # dropped once written; on failure the unwritten history stays in the twin's log
    try:
        with ws.loading(source=source or f"twin:{scenario}", kind=KIND, environment=w.environment,
                        company=w.company) as load:
            for fn in before or []:
                fn(load)
            for table, frame in frames.items():
                if table == "couplings" and couplings is not None:
                    # the twin knows exactly which couplings it changed: write them over, no value comparison
                    load.report.tables["couplings"] = ws.replace("couplings", frame)
                    continue
                # in slices: DuckDB's copies of a whole 600k-row error frame would double the peak memory
                for lo in range(0, max(len(frame), 1), CHUNK_ROWS):
                    load.upsert(table, frame.iloc[lo : lo + CHUNK_ROWS])
            del frames
            with registered(load.con, keys, "twin_keys") as name:
                gone = load.con.execute(
                    f"DELETE FROM couplings c WHERE environment = ? AND company = ? AND {gone_sql} "
                    f"(SELECT 1 FROM {name} k WHERE k.table_id = c.table_id "
                    "AND CAST(k.integration_id AS UUID) = c.integration_id)",
                    [w.environment, w.company],
                ).fetchall()[0][0]
            load.count_deleted("couplings", gone)
            w.errors.drop()
            revision = _save(load, sim, scenario)
            load.watermark = _now(sim)
    except BaseException:
        w.errors = log
        raise
    ws.remember(_memo_name(*key), revision, sim)  # committed: this object is the stored twin
    return load.report


def attach_twin(ws: Workspace, sim: Simulation, *, scenario: str) -> LoadReport:
    """Store ``sim`` as the twin behind history that is already in ``ws`` (e.g. loaded from its exported files).

    The twin's jobs and errors so far count as published, so later actions and :func:`publish` add only
    what happens from now on. Its couplings are merged in (table fidelity), so that what the exports
    could not say (whether each side still exists, the BC record of couplings that never failed) is
    the twin's from the start rather than after the first action.
    """
    w = sim.world
    _check_finished(sim)
    forget_twin(ws, w.environment, w.company)
    w.errors.drop()  # already in the workspace
    frames = canonical_frames(sim, since_job=len(w.jobs))
    with ws.loading(source=f"twin:{scenario}", kind=KIND, environment=w.environment, company=w.company) as load:
        load.upsert("couplings", frames["couplings"])
        revision = _save(load, sim, scenario)
    ws.remember(_memo_name(w.environment, w.company), revision, sim)
    return load.report


def twin_summary(jobs: list) -> pd.DataFrame:
    """Sum the counters of ``jobs`` (twin Job objects) per mapping and type, for a readable report."""
    if not jobs:
        return pd.DataFrame(columns=["mapping", "type", "jobs", "inserted", "modified", "unchanged", "skipped",
                                     "failed", "uncoupled", "coupled"])
    df = pd.DataFrame([{"mapping": j.mapping, "type": j.type, **j.counts} for j in jobs]).fillna(0)
    cols = [c for c in ("inserted", "modified", "unchanged", "skipped", "failed", "uncoupled", "coupled") if c in df]
    out = df.groupby(["mapping", "type"], as_index=False).agg(jobs=("mapping", "size"), **{c: (c, "sum") for c in cols})
    return out.astype({c: int for c in cols})
