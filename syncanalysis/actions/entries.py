"""Delete Entries on the job log (page 5338 Integration Synchronization Jobs), with BC's rule (spec §1).

BC's ``DeleteEntries(DaysOld)`` deletes the jobs that finished at least *DaysOld* days ago and had no
failures — with ``DeleteAll`` and no triggers, so 5339 rows such a job has (a failure counted Skipped
writes one) stay behind — and a job with failures only when no Skipped coupling still points at it in
Last Synch. Job ID or Last Synch. CRM Job ID (codeunit 5340's ``OnCanBeRemoved`` subscriber; BC's test
T138 ``CannotRemoveReferencedJobEntry``), then with its errors. "Delete Entries Older Than 7 Days" is
``days_old=7``, "Delete All Entries" ``days_old=0``.

On the twin the jobs go from the twin and from the workspace's history in one transaction with the audit
row; for loaded history a plan file says what BC will delete and keep (nothing here changes).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..html import render_markdown
from ..sql import registered
from ..twin import operations as ops
from ..twin.state import forget_twin, load_twin, publish
from ..workspace import Workspace
from .audit import current_user, write_audit
from .backends import backend_for
from .base import ActionError
from .planfile import default_plan_path, write_with_audit

ACTION = "delete-entries"
CAPTION = {7: "Delete Entries Older Than 7 Days", 0: "Delete All Entries"}
_CONFIRM = "Are you sure that you want to delete the %1 entries?"


@dataclass
class _AuditPlan:
    """What :func:`write_audit` reads of a plan."""

    environment: str
    company: str
    parameters: dict[str, Any]
    backend: str
    action: str = ACTION


@dataclass
class DeleteEntriesResult:
    """What Delete Entries did (or, as a dry run or plan file, will do).

    Attributes
    ----------
    jobs
        The jobs BC deletes: job_id, mapping_name, synch_direction, type, start/finish, failed, errors.
    kept
        Jobs old enough but kept because a Skipped coupling points at them (with how many couplings).
    """

    action_id: int
    environment: str
    company: str
    days_old: int
    as_of: dt.datetime
    backend: str
    dry_run: bool
    jobs: pd.DataFrame
    kept: pd.DataFrame
    errors_deleted: int
    plan_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One readable paragraph."""
        verb = "will delete" if self.dry_run or self.backend == "plan" else "deleted"
        text = (f"{CAPTION.get(self.days_old, f'Delete Entries older than {self.days_old} days')} "
                f"({self.environment} / {self.company}, as of {self.as_of:%Y-%m-%d %H:%M} UTC): {verb} "
                f"{len(self.jobs):,} job(s) and their {self.errors_deleted:,} error(s); kept {len(self.kept):,} "
                "job(s) with failures that Skipped couplings still point at.")
        return "\n".join([text, *self.notes])


def _scope(ws: Workspace, environment: str | None, company: str | None) -> tuple[str, str]:
    pairs = ws.con.execute("SELECT DISTINCT environment, company FROM jobs WHERE (? IS NULL OR environment = ?) "
                           "AND (? IS NULL OR company = ?) ORDER BY ALL",
                           [environment, environment, company, company]).fetchall()
    if len(pairs) != 1:
        listed = ", ".join("/".join(map(str, p)) for p in pairs) or "none"
        raise ActionError(f"Delete Entries acts on one environment/company; the job log has {len(pairs)} matching "
                          f"({listed}). Choose one with environment=/company= (CLI: --environment/--company).")
    return str(pairs[0][0]), str(pairs[0][1])


def entries_to_delete(ws: Workspace, environment: str, company: str, days_old: int,
                      as_of: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(deleted, kept)``: the jobs BC's DeleteEntries(days_old) deletes at ``as_of``, and those it keeps.

    A job is kept because a Skipped coupling points at it (set-based over the workspace's jobs and couplings).
    """
    cutoff = as_of - dt.timedelta(days=days_old)
    frame = ws.con.execute("""
        WITH ref AS (
            SELECT job_id, count(*) AS skipped_couplings FROM (
                SELECT last_synch_job_id AS job_id FROM couplings
                WHERE environment = ? AND company = ? AND skipped AND last_synch_job_id IS NOT NULL
                UNION ALL
                SELECT last_synch_crm_job_id FROM couplings
                WHERE environment = ? AND company = ? AND skipped AND last_synch_crm_job_id IS NOT NULL)
            GROUP BY ALL),
        errs AS (SELECT job_id, count(*) AS errors FROM job_errors WHERE environment = ? AND company = ?
                 GROUP BY ALL)
        SELECT CAST(j.job_id AS VARCHAR) AS job_id, j.mapping_name, j.synch_direction, j.type, j.start_datetime,
               j.finish_datetime, coalesce(j.failed, 0) AS failed, coalesce(e.errors, 0) AS errors,
               coalesce(r.skipped_couplings, 0) AS skipped_couplings
        FROM jobs j LEFT JOIN ref r ON r.job_id = j.job_id LEFT JOIN errs e ON e.job_id = j.job_id
        WHERE j.environment = ? AND j.company = ? AND j.finish_datetime IS NOT NULL AND j.finish_datetime <= ?
        ORDER BY j.start_datetime, j.job_id""",
        [environment, company] * 4 + [cutoff]).df()
    keep = (frame["failed"] > 0) & (frame["skipped_couplings"] > 0)
    # a job without failures goes by DeleteAll without triggers: its 5339 rows (if any) stay
    frame["errors"] = frame["errors"].where(frame["failed"] > 0, 0)
    return frame[~keep].reset_index(drop=True), frame[keep].reset_index(drop=True)


def _preview(ws: Workspace, days_old: int, environment: str | None, company: str | None, backend: str | None,
             plan_file: str | Path | None, as_of: dt.datetime | None, dry_run: bool) -> tuple[DeleteEntriesResult, Any]:
    if days_old < 0:
        raise ActionError(f"days_old must be 0 or more (BC: 7 or 0); got {days_old}.")
    env, comp = _scope(ws, environment, company)
    impl = backend_for(ws, env, comp, plan_file, kind=backend)
    sim = load_twin(ws, env, comp, cached=True) if impl.name == "twin" else None
    if as_of is None:
        as_of = (dt.datetime.fromtimestamp(sim.clock / 1000, dt.UTC).replace(tzinfo=None) if sim is not None
                 else dt.datetime.now(dt.UTC).replace(tzinfo=None))
    deleted, kept = entries_to_delete(ws, env, comp, days_old, as_of)
    notes = [f"BC asks first: “{_CONFIRM.replace('%1', 'Integration Synch. Job')}”"]
    return DeleteEntriesResult(0, env, comp, days_old, as_of, impl.name, dry_run, deleted, kept,
                               int(deleted["errors"].sum()), None, notes), sim


def preview_entries(ws: Workspace, days_old: int = 7, *, environment: str | None = None, company: str | None = None,
                    backend: str | None = None, as_of: dt.datetime | None = None) -> DeleteEntriesResult:
    """What :func:`delete_entries` would delete and keep, without changing or auditing anything."""
    return _preview(ws, days_old, environment, company, backend, None, as_of, True)[0]


def delete_entries(ws: Workspace, days_old: int = 7, *, environment: str | None = None, company: str | None = None,
                   backend: str | None = None, dry_run: bool = False, who: str | None = None,
                   as_of: dt.datetime | None = None, plan_file: str | Path | None = None) -> DeleteEntriesResult:
    """Run Delete Entries on the job log of one environment/company, as BC does (see the module docstring).

    Parameters
    ----------
    ws
        The workspace.
    days_old
        7 for "Delete Entries Older Than 7 Days", 0 for "Delete All Entries".
    environment, company
        The job log to act on (needed when the workspace holds several).
    backend
        ``"twin"``, ``"plan"`` or ``None`` (the twin when the workspace holds one there, else a plan file).
    dry_run
        Only compute and audit what would be deleted.
    who
        Recorded in the audit trail (default: the operating-system user).
    as_of
        BC's "now" (default: the twin's clock, or the current UTC time for a plan file).
    plan_file
        Where the plan backend writes (default: ``plans/`` beside the workspace).

    Returns
    -------
    DeleteEntriesResult
        The jobs deleted and kept, and the audit row's id.
    """
    preview, sim = _preview(ws, days_old, environment, company, backend, plan_file, as_of, dry_run)
    env, comp, as_of, deleted, kept = preview.environment, preview.company, preview.as_of, preview.jobs, preview.kept
    impl_name = preview.backend
    who = who or current_user()
    params = {"days_old": days_old, "as_of": as_of.isoformat(), "caption": CAPTION.get(days_old)}
    audit_plan = _AuditPlan(env, comp, params, impl_name)
    notes = preview.notes
    outcome = pd.DataFrame({"table_id": 5338, "mapping_name": deleted["mapping_name"], "integration_id":
                            deleted["job_id"], "result": "planned" if dry_run or impl_name == "plan" else "changed",
                            "detail": "job deleted with its errors"})
    counts = {"targets": len(deleted) + len(kept), "changed": 0 if dry_run or impl_name == "plan" else len(deleted),
              "planned": len(deleted) if dry_run or impl_name == "plan" else 0, "no_op": len(kept), "refused": 0,
              "failed": 0}
    result = preview
    if dry_run:
        with ws.transaction() as con:
            result.action_id = write_audit(con, plan=audit_plan, who=who, dry_run=True, outcome=outcome,
                                           counts=counts, notes=notes)
        return result
    if impl_name == "plan":
        path = Path(plan_file) if plan_file else default_plan_path(audit_plan, ws)  # type: ignore[arg-type]
        path = path.with_suffix(".md")

        def texts(action_id: int) -> dict[Path, str]:
            result.action_id = action_id
            return {path: _markdown(result), path.with_suffix(".json"): json.dumps(
                {"format": "syncanalysis-delete-entries/1", "action_id": action_id, **params,
                 "environment": env, "company": comp, "delete": deleted.to_dict("records"),
                 "keep": kept.to_dict("records")}, indent=1, default=str)}

        result.action_id = write_with_audit(ws, lambda con: write_audit(
            con, plan=audit_plan, who=who, dry_run=False, outcome=outcome, counts=counts, plan_file=str(path),
            notes=notes), texts)
        result.plan_file = path
        result.notes.append(f"Apply it in Business Central ({path}); nothing was changed here.")
        return result
    # the twin: BC's rule on the twin itself decides; the workspace mirrors the twin's job log
    w = sim.world
    at = int(as_of.replace(tzinfo=dt.UTC).timestamp() * 1000)
    gone = ops.delete_entries(w, days_old, at)
    ids = np.array([w.jobs[i].id for i in gone], dtype=object)
    try:
        def apply(load: Any) -> None:
            purged = np.array([w.jobs[i].id for i in gone if i in w.deleted_job_errors], dtype=object)
            for table, chosen in (("job_errors", purged), ("jobs", ids)):
                with registered(load.con, pd.DataFrame({"job_id": chosen.astype(str)}), "deleted_jobs") as name:
                    n = load.con.execute(
                        f"DELETE FROM {table} WHERE environment = ? AND company = ? AND job_id IN "
                        f"(SELECT CAST(job_id AS UUID) FROM {name})", [env, comp]).fetchall()[0][0]
                load.count_deleted(table, n)
            frame = outcome[outcome["integration_id"].isin(set(ids))]
            result.action_id = write_audit(load.con, plan=audit_plan, who=who, dry_run=False, outcome=frame,
                                           counts=counts | {"changed": len(frame)}, notes=notes,
                                           extra={"twin_clock": as_of.isoformat()})

        publish(ws, sim, before=[apply], couplings=pd.DataFrame({"table_id": pd.Series(dtype="int64"),
                                                                  "integration_id": pd.Series(dtype=str)}))
    except BaseException:
        forget_twin(ws, env, comp)  # the twin changed but was not stored: reload it next time
        raise
    result.jobs = deleted[deleted["job_id"].isin(set(ids))].reset_index(drop=True)  # the twin decided
    result.errors_deleted = int(result.jobs["errors"].sum())
    return result


def _markdown(r: DeleteEntriesResult) -> str:
    return render_markdown("delete-entries.md.j2", r=r, title=CAPTION.get(r.days_old, f"Delete Entries older than "
                           f"{r.days_old} days"), confirm=_CONFIRM.replace("%1", "Integration Synch. Job"),
                           as_of=f"{r.as_of:%Y-%m-%d %H:%M}", kept=list(r.kept.head(100).itertuples()))
