"""Where an action runs: the twin (changes the simulated apps) or a plan file.

The plan file (``actions.planfile``) is a change set to apply in BC.

Both take a :class:`~syncanalysis.actions.base.Plan` and return an
:class:`~syncanalysis.actions.base.ActionResult`; both write the audit row in the same transaction
as what they change. :func:`backend_for` picks the twin when the workspace holds one for the
environment/company, else a plan file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import bc
from ..errors import TwinError, TwinPermissionError
from ..twin import operations as ops
from ..twin.model import BC, DV, FROM, TO
from ..twin.scenario import Simulation
from ..twin.state import forget_twin, has_twin, load_twin, publish, twin_summary
from ..workspace import LoadReport, Workspace
from .audit import write_audit
from .base import CAPTIONS, DIRECTION_TEXT, ActionError, ActionResult, Plan, Progress, bc_notification

_DIR = {"to-dataverse": TO, "from-dataverse": FROM, "merge": None}
_RESULT_OF_STATUS = {"no-op": "no-op", "refused": "refused"}


def scopes(ws: Workspace) -> list[tuple[str, str]]:
    """The (environment, company) pairs the workspace holds couplings, mappings or a twin for."""
    rows = ws.con.execute(
        "SELECT DISTINCT environment, company FROM (SELECT environment, company FROM couplings UNION ALL "
        "SELECT environment, company FROM mappings UNION ALL SELECT environment, company FROM twin_state) "
        "WHERE environment IS NOT NULL ORDER BY ALL").fetchall()
    return [(str(e), str(c)) for e, c in rows]


class _Steps:
    """Progress over the groups an action runs: a tqdm bar, a callback ``f(done, total)``, or nothing."""

    def __init__(self, progress: Progress, total: int, desc: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.callback: Callable[[float, float | None], None] | None = progress if callable(progress) else None
        self.bar = tqdm(total=self.total, desc=desc, disable=progress is not True)

    def step(self) -> None:
        self.done += 1
        self.bar.update(1)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        self.bar.close()


BC_SKIPS = "BC skips it"  # reason prefix of records BC's own rules leave out (its notification counts them)


def bc_message(plan: Plan, done: np.ndarray, *, uncoupling_job: bool = True) -> str | None:
    """BC's notification for ``plan`` when the targets marked in ``done`` were acted on (or scheduled)."""
    t = plan.targets
    skipped = t["reason"].astype(object).fillna("").astype(str).str.startswith(BC_SKIPS).to_numpy()
    total = int((t["enabled"].to_numpy(dtype=bool) & t["found"].to_numpy(dtype=bool)).sum()) \
        if plan.action in ("synchronize", "retry") else int(done.sum() + skipped.sum())
    table = bc.BC_TABLES.get(int(t["table_id"].iloc[0]), "") if len(t) else ""
    return bc_notification(plan.action, total=max(total, int(done.sum())), done=int(done.sum()),
                           skipped=int(skipped.sum()), table=table, uncoupling_job=uncoupling_job)


def _counts(result: np.ndarray, *, planned: int = 0) -> dict[str, int]:
    vc = pd.Series(result, dtype=object).value_counts()
    return {"targets": len(result), "changed": int(vc.get("changed", 0)), "planned": planned,
            "no_op": int(vc.get("no-op", 0)), "refused": int(vc.get("refused", 0)), "failed": int(vc.get("failed", 0))}


def _initial_outcome(targets: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Result/detail before running: no-op and refused targets keep their planned outcome."""
    result = targets["status"].map(_RESULT_OF_STATUS).to_numpy(dtype=object)
    detail = targets["outcome"].to_numpy(dtype=object).copy()
    return result, detail


class Backend:
    """Interface of an action backend: refine a plan, then run it."""

    name = "backend"

    def evaluate(self, ws: Workspace, plan: Plan) -> None:  # pragma: no cover - interface
        """Refine ``plan.targets`` in place with what this backend knows (nothing by default)."""

    def extra_targets(self, ws: Workspace, action: str, environment: str | None,
                      company: str | None) -> list[tuple[str, str, int, str]]:
        """Keys a whole-company action takes beyond what the loaded data shows (none by default)."""
        return []

    def execute(self, ws: Workspace, plan: Plan, *, who: str, progress: Progress = False) -> ActionResult:
        """Run the plan's ``change`` targets and write the audit row in the same transaction."""
        raise NotImplementedError  # pragma: no cover - interface


# ============================================================================================
class TwinBackend(Backend):
    """Run actions on the twin stored in the workspace, with BC's semantics (``twin.operations``).

    The twin is loaded, changed, and published together with the audit row in one transaction:
    the changed couplings, the jobs run at once (one-off synchronization, uncoupling) and their
    errors, and the twin itself. The next scheduled runs show after ``twin advance``.
    """

    name = "twin"

    def __init__(self, environment: str | None = None, company: str | None = None) -> None:
        self.environment = environment
        self.company = company

    def extra_targets(self, ws: Workspace, action: str, environment: str | None,
                      company: str | None) -> list[tuple[str, str, int, str]]:
        """Find for Deleted: couplings whose BC record exists but is outside its mapping's Table Filter.

        BC's MarkLocalDeletedAsSkipped marks them Skipped too (the workspace has no column for it).
        """
        if action != "find-for-deleted":
            return []
        w = self.simulation(ws, environment, company).world
        return [(w.environment, w.company, table_id, i) for table_id, i in ops.outside_table_filter(w)]

    def simulation(self, ws: Workspace, environment: str | None = None, company: str | None = None) -> Simulation:
        """The stored twin, kept loaded by the workspace while its stored revision is unchanged."""
        return load_twin(ws, environment or self.environment, company or self.company, cached=True)

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, ws: Workspace, plan: Plan) -> None:
        """Refine the plan on the twin.

        The fields that differ, whether Merge is offered, the recommended direction, whether Remove
        Coupling runs an uncoupling job, and couplings the twin does not have.
        """
        t = plan.targets
        if plan.action not in ("synchronize", "remove-coupling", "restore-records", "set-up-coupling", "delete-records"):
            return  # nothing the twin adds to the plan; execute checks each target again
        live = t["found"].to_numpy(dtype=bool) & (t["status"] != "no-op").to_numpy()
        if not live.any():
            return
        sim = self.simulation(ws, plan.environment, plan.company)
        w = sim.world
        out = {c: t[c].to_numpy(dtype=object).copy() for c in ("status", "outcome", "reason", "suggest", "winner",
                                                             "fields")}
        for mapping, idx in _groups(t, live):
            if mapping not in w.tables:
                out["status"][idx] = "no-op"
                out["reason"][idx] = f"the twin has no mapping {mapping}"
                continue
            rows = ops.rows_for_ids(w, mapping, t["integration_id"].to_numpy()[idx])
            rec = ops.records(w, mapping, np.maximum(rows, 0))
            gone = (rows < 0) | ~rec.coupled
            out["status"][idx[gone]] = "no-op"
            out["reason"][idx[gone]] = "not coupled in the twin (publish the twin again?)"
            idx, rows, rec = idx[~gone], rows[~gone], rec.take(~gone)
            if plan.action == "synchronize":
                # BC's RecordCounter[Total]: the selected lines whose both records exist (SetSelectionFilter, T123)
                _evaluate_sync(rec, t, idx, out, several=int(t["enabled"].sum()) > 1)
            elif plan.action == "remove-coupling":
                change = idx[out["status"][idx] == "change"]
                if ops.uses_uncoupling_job(rec.config):
                    out["outcome"][change] = np.where(out["outcome"][change] == "will remove the coupling",
                                                      "will remove the coupling (uncoupling job)", out["outcome"][change])
                else:
                    out["outcome"][change] = "will delete the coupling row (the mapping has no uncoupling job)"
            elif plan.action == "set-up-coupling":
                _evaluate_coupling(w, mapping, t, idx, rows, out)
            elif plan.action == "delete-records":
                logical = bc.CRM_TABLES.get(rec.config.crm_table_id, ("", ""))[1]
                sel = (out["status"][idx] == "change") & rec.exists[DV]
                if not ops.may_delete(w, rec.config) and sel.any():
                    # BC stops at the first such row and rolls back the whole run (T163): say so on all
                    live_all = np.flatnonzero(out["status"] == "change")  # one transaction: every mapping
                    out["status"][live_all] = "refused"
                    out["reason"][live_all] = ("BC stops with “" + ops.NO_DELETE_PERMISSION + "” (the integration "
                                               f"user may not delete {rec.config.dv_caption} rows) and deletes "
                                               "nothing of this run")
                    out["suggest"][live_all] = ("grant the integration user the delete privilege on "
                                                f"{logical}, or Remove Coupling")
            elif plan.action == "restore-records":
                sel = out["status"][idx] == "change"
                bc_alive = rec.exists[BC][sel]
                names_to = _field_names(rec.config, TO)
                names_from = _field_names(rec.config, FROM)
                out["fields"][idx[sel]] = np.where(bc_alive, names_to, names_from)
        _finish_texts(out)
        for c, values in out.items():
            t[c] = values

    # -- execution -------------------------------------------------------------------------
    def execute(self, ws: Workspace, plan: Plan, *, who: str, progress: Progress = False) -> ActionResult:
        """Run the plan's ``change`` targets on the twin and publish it with the audit row (one transaction)."""
        t = plan.targets
        result, detail = _initial_outcome(t)
        extra = {"new_integration_id": np.full(len(t), None, object), "new_crm_id": np.full(len(t), None, object),
                 "released_integration_id": np.full(len(t), None, object)}
        change = (t["status"] == "change").to_numpy()
        if not change.any():
            outcome = t.assign(result=result, detail=detail)
            counts = _counts(result)
            with ws.transaction() as con:
                action_id = write_audit(con, plan=plan, who=who, dry_run=False, outcome=outcome, counts=counts,
                                        notes=plan.notes)
            return ActionResult(action_id, plan, False, outcome, counts, twin_summary([]))
        sim = self.simulation(ws, plan.environment, plan.company)
        try:
            return self._execute(ws, plan, sim, who=who, progress=progress, result=result, detail=detail,
                                 extra=extra, change=change)
        except BaseException:
            forget_twin(ws, sim.world.environment, sim.world.company)  # changed but not stored: reload next time
            raise

    def _execute(self, ws: Workspace, plan: Plan, sim: Simulation, *, who: str, progress: Progress,
                 result: np.ndarray, detail: np.ndarray, extra: dict[str, np.ndarray],
                 change: np.ndarray) -> ActionResult:
        t = plan.targets
        notes: list[str] = []
        jobs: list = []
        w = sim.world
        at = sim.clock
        # when the action happened in the twin's world (its Synchronization Log places it there)
        twin_clock = dt.datetime.fromtimestamp(at / 1000, dt.UTC).replace(tzinfo=None).isoformat()
        order = {name: i for i, name in enumerate(w.tables)}
        groups = sorted(_groups(t, change, by_role=True), key=lambda g: (g[0][0] != "parent", order.get(g[0][1], 99)))
        steps = _Steps(progress, len(groups), CAPTIONS[plan.action])
        try:
            if plan.action in ("retry-all", "find-for-deleted"):
                only = {}
                for (_, mapping), idx in groups:
                    if mapping in w.tables:
                        only[mapping] = (idx, ops.rows_for_ids(w, mapping, t["integration_id"].to_numpy()[idx]))
                    else:
                        result[idx], detail[idx] = "no-op", f"no-op: the twin has no mapping {mapping}"
                _run_whole_company(w, plan.action, only, result, detail)
                for _ in groups:
                    steps.step()
            else:
                for (_, mapping), idx in groups:
                    if mapping not in w.tables:
                        result[idx], detail[idx] = "no-op", f"no-op: the twin has no mapping {mapping}"
                        steps.step()
                        continue
                    rows = ops.rows_for_ids(w, mapping, t["integration_id"].to_numpy()[idx])
                    known = rows >= 0
                    result[idx[~known]] = "no-op"
                    detail[idx[~known]] = "no-op: not in the twin"
                    idx, rows = idx[known], rows[known]
                    new = _run_group(w, plan.action, mapping, t, idx, rows, at, result, detail, extra)
                    if new:
                        jobs += new
                        at = max(at, max(j.finish for j in new) + 1000)
                    steps.step()
        finally:
            steps.close()
        result[change & (result == None)] = "no-op"  # noqa: E711 - elementwise
        # what BC shows afterwards: a one-off job is "scheduled" whether its records then succeed or fail
        acted = (result == "changed") | ((result == "failed") & (plan.action in ("synchronize", "restore-records")))
        uncoupled = any(j.type == "Uncoupling" for j in jobs)
        if plan.action == "set-up-coupling":  # BC notifies only the synchronization it schedules after coupling
            synced = int((acted & pd.notna(t["direction"]).to_numpy()).sum())
            message = bc_notification("synchronize", total=synced, done=synced) if synced else None
        else:
            message = bc_message(plan, acted, uncoupling_job=uncoupled or plan.action != "remove-coupling")
        if message:
            notes.append(f"BC shows: “{message}”")
        if plan.action in ("retry", "retry-all"):
            notes += _next_runs(sim, t.loc[result == "changed", "mapping_name"].unique())
        outcome = t.assign(result=result, detail=detail, **extra)
        counts = _counts(result)
        job_ids = [j.id for j in jobs]

        written: dict[str, int] = {}

        def audit(load: Any) -> None:  # runs inside publish's transaction, before the history is written
            written["id"] = write_audit(load.con, plan=plan, who=who, dry_run=False, outcome=outcome, counts=counts,
                                        job_ids=job_ids, notes=plan.notes + notes, extra={"twin_clock": twin_clock})

        publish(ws, sim, before=[audit], **_changed_couplings(outcome, change))
        return ActionResult(written["id"], plan, False, outcome, counts, twin_summary(jobs), job_ids, None,
                            plan.notes + notes)


def _changed_couplings(outcome: pd.DataFrame, change: np.ndarray) -> dict[str, pd.DataFrame]:
    """``publish(couplings=...)``: the coupling keys the action may have changed.

    The twin's operations touch only the targets' rows, so writing those couplings (and the new keys of
    re-created records) is enough.
    """
    acted = outcome.loc[change]
    extra = [acted.dropna(subset=[c])[["table_id", c]].rename(columns={c: "integration_id"})
             for c in ("new_integration_id", "released_integration_id") if c in acted.columns]
    keys = pd.concat([acted[["table_id", "integration_id"]], *extra], ignore_index=True).drop_duplicates()
    return {"couplings": keys.astype({"table_id": "int64", "integration_id": str})}


def _groups(t: pd.DataFrame, mask: np.ndarray, *, by_role: bool = False) -> Iterator[tuple[Any, np.ndarray]]:
    """Positions of the masked targets grouped by mapping (and role), as integer arrays."""
    pos = np.flatnonzero(mask)
    keys = [t["role"].to_numpy()[pos], t["mapping_name"].to_numpy()[pos]] if by_role else \
        [t["mapping_name"].to_numpy()[pos]]
    frame = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)})
    for key, part in frame.groupby(list(frame.columns), sort=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        yield (key if by_role else key[0]), pos[part]


def _field_names(config: Any, direction: int) -> str:
    names = [f.bc_field for f in config.fields if f.transfers(direction)]
    return ", ".join(names) if names else "(no field mapped this way)"


def _mask_texts(config: Any, masks: np.ndarray, suffix: dict[int, str] | None = None) -> np.ndarray:
    """Field-name lists for bitmasks over the mapping's fields, computed once per distinct mask."""
    fields = config.fields
    uniq, inv = np.unique(masks, return_inverse=True)
    texts = []
    for m in uniq:
        names = [f.bc_field + ((suffix or {}).get(c, "")) for c, f in enumerate(fields) if m >> c & 1]
        texts.append(", ".join(names) if names else "nothing (no mapped field differs)")
    return np.array(texts, dtype=object)[inv] if len(masks) else np.empty(0, object)


def _evaluate_sync(rec: ops.Records, t: pd.DataFrame, idx: np.ndarray, out: dict[str, np.ndarray], *,
                   several: bool = False) -> None:
    """Synchronize on the twin: fields to overwrite per direction, Merge offered or not, no-ops, recommendation.

    With ``several`` records selected, BC's ``UpdateMultipleNow`` skips each record whose destination
    changed since its last synchronization (``WasRecordModifiedAfterLastSynch``: the destination's
    modified-on is later than its coupling's, or the coupling failed in the other direction), so a
    bulk Synchronize never overwrites newer data; such records are refused here with that reason.
    """
    cfg = rec.config
    bits = np.left_shift(1, np.arange(len(cfg.fields), dtype=np.int64))
    differs = rec.differs
    to_cols = np.array([f.transfers(TO) for f in cfg.fields], bool)
    from_cols = np.array([f.transfers(FROM) for f in cfg.fields], bool)
    bi_cols = np.array([f.direction == bc.BIDIRECTIONAL for f in cfg.fields], bool)
    # §6.6: the side that changed since the last synchronization is the recommended one (To when both)
    bc_changed, dv_changed = rec.changed
    recommend = np.where(dv_changed & ~bc_changed, "from-dataverse", "to-dataverse").astype(object)
    status = out["status"][idx]
    eff = t["direction"].to_numpy(dtype=object)[idx]
    skipped = rec.skipped
    # refused for want of a direction: say which one BC would recommend
    need = (status == "refused") & (out["reason"][idx] == "the mapping is Bidirectional (or unknown): choose a direction")
    out["suggest"][idx[need]] = "Synchronize to-dataverse or from-dataverse (recommended: " + recommend[need] + ")"
    change = status == "change"
    if several:
        # the page un-skips the selection first, so a failure in the other direction counts as a change
        dv_newer = dv_changed | (rec.result[FROM] == bc.RESULT_FAILURE)
        bc_newer = bc_changed | (rec.result[TO] == bc.RESULT_FAILURE)
        skip = change & (((eff == "to-dataverse") & dv_newer) | ((eff == "from-dataverse") & bc_newer))
        if skip.any():
            out["status"][idx[skip]] = "refused"
            out["reason"][idx[skip]] = np.where(
                eff[skip] == "to-dataverse",
                "BC skips it in a Synchronize of several records: its Dataverse row changed since the last "
                "synchronization (or failed coming from Dataverse), and this would overwrite it",
                "BC skips it in a Synchronize of several records: its Business Central record changed since the "
                "last synchronization (or failed going to Dataverse), and this would overwrite it")
            out["suggest"][idx[skip]] = "Synchronize this record alone (BC then asks which side wins)"
            change = change & ~skip
    for name, d in (("to-dataverse", TO), ("from-dataverse", FROM)):
        sel = change & (eff == name)
        if not sel.any():
            continue
        over = differs[sel] & (to_cols if d == TO else from_cols)
        masks = (over * bits).sum(axis=1)
        failed_before = rec.result[d][sel] == bc.RESULT_FAILURE
        in_sync = ~skipped[sel] & (masks == 0) & ~failed_before
        out["fields"][idx[sel]] = _mask_texts(cfg, masks)
        sel_idx = idx[sel]
        # BC still runs the one-off job for a record already in sync, and its ForceModify write counts it
        # Modified (CRMSynchSkippedRecords / IntegrationTableSynchTest; spec §6.3 step 8): not a no-op
        out["outcome"][sel_idx[in_sync]] = (f"will synchronize {name} (already in sync: no field changes, "
                                            "but BC runs the job and counts it Modified)")
    sel = change & (eff == "merge")
    if sel.any():
        bi_diff = differs[sel] & bi_cols
        refuse = bi_diff.any(axis=1)
        sel_idx = idx[sel]
        bi_masks = (bi_diff * bits).sum(axis=1)
        out["status"][sel_idx[refuse]] = "refused"
        out["reason"][sel_idx[refuse]] = ("Merge not offered: the bidirectional field(s) "
                                          + _mask_texts(cfg, bi_masks[refuse])
                                          + " differ between Business Central and Dataverse")
        out["suggest"][sel_idx[refuse]] = ("Synchronize to-dataverse or from-dataverse (recommended: "
                                           + recommend[sel][refuse] + ")")
        one_way = differs[sel] & ~bi_cols & (to_cols | from_cols)
        suffix = {c: (" → Dataverse" if to_cols[c] else " → Business Central") for c in range(len(cfg.fields))}
        masks = (one_way * bits).sum(axis=1)
        out["fields"][sel_idx] = _mask_texts(cfg, masks, suffix)
        failed_before = (rec.result[TO][sel] == bc.RESULT_FAILURE) | (rec.result[FROM][sel] == bc.RESULT_FAILURE)
        in_sync = ~refuse & ~skipped[sel] & (masks == 0) & ~failed_before
        out["outcome"][sel_idx[in_sync]] = ("will synchronize both ways (merge; already in sync: no field changes, "
                                            "but BC runs the job and counts it Modified)")


def _evaluate_coupling(w: Any, mapping: str, t: pd.DataFrame, idx: np.ndarray, rows: np.ndarray,
                       out: dict[str, np.ndarray]) -> None:
    """Set Up Coupling on the twin: the chosen Dataverse row must exist and not be coupled to a BC record that exists."""
    sel = out["status"][idx] == "change"
    if not sel.any():
        return
    want = pd.Series(t["couple_to"].to_numpy(dtype=object)[idx], dtype=object).fillna("").astype(str).to_numpy()
    src = ops.dataverse_rows(w, mapping, want)
    other = ops.records(w, mapping, np.maximum(src, 0))  # the chosen rows' couplings
    cfg = other.config
    missing = sel & (src < 0)
    out["status"][idx[missing]] = "refused"
    out["reason"][idx[missing]] = f"the {cfg.dv_caption} row does not exist in Dataverse"
    taken = sel & ~missing & (src != rows) & other.coupled & other.exists[BC]
    out["status"][idx[taken]] = "refused"
    out["reason"][idx[taken]] = (f"that {cfg.dv_caption} row is already coupled to {cfg.bc_caption} "
                                 + other.key[taken].astype(str))
    out["suggest"][idx[taken]] = "Remove Coupling on that record first"
    ok = sel & ~missing & ~taken
    names = other.name[ok].astype(str)
    out["outcome"][idx[ok]] = [f"will couple it to {cfg.dv_caption} “{nm}” ({g})" + (text.split(g, 1)[1] if g in text else "")
                               for nm, g, text in zip(names, want[ok], out["outcome"][idx[ok]].astype(str))]


def _finish_texts(out: dict[str, np.ndarray]) -> None:
    """Rewrite outcome texts of targets whose status the backend changed."""
    status, reason, suggest = out["status"], out["reason"], out["suggest"]
    noop, refused = status == "no-op", status == "refused"
    out["outcome"][noop] = "no-op: " + reason[noop].astype(str)
    has = np.array([isinstance(s, str) for s in suggest[refused]], bool) if refused.any() else np.zeros(0, bool)
    out["outcome"][refused] = "refused: " + reason[refused].astype(str) + np.where(
        has, " – use " + suggest[refused].astype(str), "")
    for c in ("winner", "fields"):
        out[c][status != "change"] = None


def _run_whole_company(w: Any, action: str, only: dict[str, tuple[np.ndarray, np.ndarray]],
                       result: np.ndarray, detail: np.ndarray) -> None:
    """Retry All / Find for Deleted on exactly the planned couplings."""
    rows_by_mapping = {m: rows[rows >= 0] for m, (_, rows) in only.items()}
    before = {m: ops.records(w, m, np.maximum(rows, 0)).skipped for m, (_, rows) in only.items()}
    if action == "retry-all":
        ops.retry_all(w, only=rows_by_mapping)
    else:
        ops.find_for_deleted(w, only=rows_by_mapping)
    for mapping, (idx, rows) in only.items():
        flipped = (rows >= 0) & (before[mapping] != ops.records(w, mapping, np.maximum(rows, 0)).skipped)
        result[idx[flipped]] = "changed"
        detail[idx[flipped]] = "un-skipped" if action == "retry-all" else "marked Skipped"
        result[idx[~flipped]] = "no-op"
        detail[idx[~flipped]] = "no-op: " + ("not skipped any more" if action == "retry-all"
                                             else "already Skipped, or its BC record exists") + " (changed since the plan)"


def _run_group(w: Any, action: str, mapping: str, t: pd.DataFrame, idx: np.ndarray, rows: np.ndarray, at: int,
               result: np.ndarray, detail: np.ndarray, extra: dict[str, np.ndarray]) -> list:
    """Apply one action to the rows of one mapping; fill result/detail per target; return the jobs run."""
    # the couplings before the action, for the actions that compare (Retry and Synchronize do not)
    rec = ops.records(w, mapping, rows) if action not in ("retry", "synchronize") else None
    if action == "retry":
        done = ops.retry(w, mapping, rows=rows)
        hit = np.isin(rows, done)
        result[idx[hit]] = "changed"
        detail[idx[hit]] = "un-skipped (the next scheduled run retries it)"
        result[idx[~hit]] = "no-op"
        detail[idx[~hit]] = "no-op: not skipped, or its BC record is gone (changed since the plan)"
        return []
    if action == "synchronize":
        eff = t["direction"].to_numpy(dtype=object)[idx]
        jobs: list = []
        for name in ("to-dataverse", "from-dataverse", "merge"):
            sel = eff == name
            if not sel.any():
                continue
            new = ops.synchronize_now(w, mapping, None, _DIR[name], at, rows=rows[sel])
            jobs += new
            at = max(j.finish for j in new) + 1000
            _sync_outcome(w, mapping, new, idx[sel], rows[sel], name, t, result, detail)
        return jobs
    if action == "remove-coupling":
        job = ops.remove_coupling(w, mapping, None, at, rows=rows)
        hit = rec.coupled & ~ops.records(w, mapping, rows).coupled
        result[idx[hit]] = "changed"
        detail[idx[hit]] = "coupling removed" + (" (uncoupling job)" if job is not None else " (row deleted)")
        result[idx[~hit]] = "no-op"
        detail[idx[~hit]] = "no-op: not coupled any more"
        return [job] if job is not None else []
    if action == "restore-records":
        bc_alive = rec.exists[BC]
        eligible = rec.coupled & (rec.exists[BC] ^ rec.exists[DV])
        jobs = ops.restore_records(w, mapping, None, at, rows=rows)
        now = ops.records(w, mapping, rows)
        ok = eligible & now.coupled & now.exists[BC] & now.exists[DV]
        result[idx[ok]] = "changed"
        # BC gives a record it re-creates the next number of its No. Series (T165), so say which
        new_no = now.config.bc_caption + " " + now.key[ok].astype(str)
        detail[idx[ok]] = np.where(bc_alive[ok], "re-created in Dataverse and coupled",
                                   "re-created in Business Central as " + new_no + " and coupled")
        extra["new_crm_id"][idx[ok]] = now.ids[DV][ok]
        extra["new_integration_id"][idx[ok]] = now.ids[BC][ok]
        bad = eligible & ~ok
        result[idx[bad]] = "failed"
        texts = pd.Series(ops.error_texts(w, jobs, now.key[bad]), dtype=object).fillna("see the job's errors")
        detail[idx[bad]] = "failed: " + texts.to_numpy(dtype=object)
        result[idx[~eligible]] = "no-op"
        detail[idx[~eligible]] = "no-op: not exactly one record exists any more"
        return jobs
    if action == "set-up-coupling":
        crm = pd.Series(t["couple_to"].to_numpy(dtype=object)[idx], dtype=object).astype(str).to_numpy()
        eff = t["direction"].to_numpy(dtype=object)[idx]
        src = ops.dataverse_rows(w, mapping, crm)
        chosen = ops.records(w, mapping, np.maximum(src, 0))
        # a broken coupling the chosen row still had goes (its BC record is gone): the workspace must drop it
        released = np.where((src >= 0) & (src != rows) & chosen.coupled, chosen.ids[BC].astype(object), None)
        jobs = []
        for name in pd.unique(pd.Series(eff, dtype=object).fillna("")):
            sel = pd.Series(eff, dtype=object).fillna("").to_numpy() == name
            try:
                new = ops.set_up_coupling(w, mapping, None, crm[sel], at, rows=rows[sel],
                                          synchronize_direction=_DIR.get(name) if name else None)
            except TwinError as exc:
                result[idx[sel]], detail[idx[sel]] = "failed", f"failed: {exc}"
                continue
            result[idx[sel]] = "changed"
            detail[idx[sel]] = "coupled to " + rec.config.dv_caption + " " + crm[sel].astype(object)
            extra["new_crm_id"][idx[sel]] = crm[sel]
            extra["released_integration_id"][idx[sel]] = released[sel]
            if new:
                _sync_outcome(w, mapping, new, idx[sel], rows[sel], name, t, result, detail)
                detail[idx[sel]] = "coupled, then " + detail[idx[sel]].astype(str)
                jobs += new
                at = max(j.finish for j in new) + 1000
        return jobs
    if action == "delete-records":
        bc_alive = rec.exists[BC]
        try:
            done = ops.delete_records(w, mapping, None, at, rows=rows)
        except TwinPermissionError as exc:  # BC rolls the whole run back: nothing of this mapping deleted
            result[idx], detail[idx] = "failed", f"failed: {exc}"
            return []
        hit = np.isin(rows, done)
        result[idx[hit]] = "changed"
        detail[idx[hit]] = np.where(bc_alive[hit], "deleted the Business Central record and the coupling",
                                    "deleted the Dataverse row and the coupling")
        result[idx[~hit]] = "no-op"
        detail[idx[~hit]] = "no-op: not exactly one record exists any more"
        return []
    raise ActionError(f"The twin backend cannot run {action!r}.")  # pragma: no cover - guarded by ACTIONS


def _sync_outcome(w: Any, mapping: str, jobs: list, idx: np.ndarray, rows: np.ndarray, name: str, t: pd.DataFrame,
                  result: np.ndarray, detail: np.ndarray) -> None:
    """Per target of a one-off Synchronize: synchronized, or failed (and Skipped again) with the message."""
    new = np.array([j.index for j in jobs])
    directions = [TO, FROM] if name == "merge" else [_DIR[name]]
    failed = np.zeros(len(rows), bool)
    message = np.full(len(rows), None, dtype=object)
    rec = ops.records(w, mapping, rows)  # after the jobs
    for d in directions:
        f = (rec.result[d] == bc.RESULT_FAILURE) & np.isin(rec.job[d], new)
        message[f & ~failed] = rec.message[d][f & ~failed]
        failed |= f
    ran = np.zeros(len(rows), bool)
    for d in directions:
        ran |= np.isin(rec.job[d], new)
    fields = t["fields"].to_numpy(dtype=object)[idx]
    ok = ran & ~failed
    result[idx[ok]] = "changed"
    detail[idx[ok]] = "synchronized " + DIRECTION_TEXT[name] + np.where(
        pd.isna(fields[ok]), "", "; overwritten: " + fields[ok].astype(str))
    again = rec.skipped
    result[idx[failed]] = "failed"
    detail[idx[failed]] = np.where(again[failed], "failed and Skipped again: ", "failed: ") + message[failed].astype(str)
    result[idx[~ran]] = "no-op"
    detail[idx[~ran]] = "no-op: the one-off job did not process it"


def _next_runs(sim: Simulation, mappings: Any) -> list[str]:
    """When the job queue retries un-skipped records (Retry synchronizes nothing at once)."""
    out = []
    for mapping in mappings:
        entry = sim.entries.get(mapping)
        if entry is None:
            continue
        when = dt.datetime.fromtimestamp(max(entry.next_run, sim.clock) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
        hours = max(entry.next_run - sim.clock, 0) / 3_600_000
        out.append(f"{mapping}: the next scheduled run ({when} UTC, job queue entry {entry.status}) retries them; "
                   f"`syncanalysis twin advance --hours {max(1, int(np.ceil(hours + 0.5)))}` shows it.")
    return out


# ============================================================================================
def backend_for(ws: Workspace, environment: str | None, company: str | None, plan_file: str | Path | None = None,
                *, kind: str | None = None) -> Backend:
    """The backend for an environment/company: the twin when the workspace holds one, else a plan file.

    Parameters
    ----------
    ws
        The workspace.
    environment, company
        Where the action runs.
    plan_file
        Write a plan file there (implies the plan backend).
    kind
        ``"twin"`` or ``"plan"`` to choose explicitly.
    """
    if kind not in (None, "twin", "plan"):
        raise ActionError(f"Unknown backend {kind!r}; use 'twin' or 'plan'.")
    from .planfile import PlanFileBackend  # planfile builds on this module's Backend: imported when needed

    if kind == "plan" or (kind is None and plan_file is not None):
        return PlanFileBackend(plan_file)
    twin = has_twin(ws, environment, company) and (
        environment is not None and company is not None or len(ws.con.execute(
            "SELECT 1 FROM twin_state").fetchall()) == 1)
    if kind == "twin" and not twin:
        raise ActionError(f"The workspace holds no twin for {environment!r}/{company!r}; use the plan backend "
                          "(loaded customer history becomes a plan file to apply in BC).")
    return TwinBackend(environment, company) if twin else PlanFileBackend(plan_file)


@dataclass
class TwinAdvance:
    """What ``twin advance`` did: the runs (summed per mapping and type) and the backlog before and after."""

    environment: str
    company: str
    hours: float
    clock_before: dt.datetime
    clock_after: dt.datetime
    jobs: pd.DataFrame
    before: dict[str, int]
    after: dict[str, int]
    report: LoadReport | None = field(default=None, repr=False)

    def summary(self) -> str:
        """Readable lines: the period, the runs, and skipped/failed/broken before → after."""
        lines = [f"Twin {self.environment} / {self.company}: advanced {self.hours:g} h, "
                 f"{self.clock_before:%Y-%m-%d %H:%M} → {self.clock_after:%Y-%m-%d %H:%M} UTC."]
        lines.append(self.jobs.to_string(index=False) if len(self.jobs) else "No job ran.")
        lines.append("Couplings " + ", ".join(f"{k} {self.before[k]:,} → {self.after[k]:,}" for k in self.before) + ".")
        return "\n".join(lines)


def backlog_counts(ws: Workspace, environment: str, company: str) -> dict[str, int]:
    """Skipped, failed (not skipped) and broken couplings of one environment/company."""
    row = ws.con.execute(
        "SELECT count(*) FILTER (skipped), count(*) FILTER (NOT coalesce(skipped, false) AND "
        "(last_synch_result = 'Failure' OR last_synch_crm_result = 'Failure')), "
        "count(*) FILTER (bc_record_exists IS false OR crm_record_exists IS false) "
        "FROM couplings WHERE environment = ? AND company = ?", [environment, company]).fetchall()[0]
    return {"skipped": int(row[0]), "failed": int(row[1]), "broken": int(row[2])}


def advance_twin(ws: Workspace, hours: float, *, activity: bool = False, environment: str | None = None,
                 company: str | None = None) -> TwinAdvance:
    """Run the twin's job queue forward by ``hours`` and publish what happened (one transaction).

    Parameters
    ----------
    ws
        A workspace holding a twin.
    hours
        How far to run the clock.
    activity
        Let users keep editing both apps meanwhile (default: only the job queue runs).
    environment, company
        Which twin (needed when the workspace holds several).
    """
    if not hours or hours <= 0:
        raise ActionError(f"--hours must be positive; got {hours}.")
    sim = load_twin(ws, environment, company, cached=True)
    env, comp = sim.world.environment, sim.world.company
    before = backlog_counts(ws, env, comp)
    start = sim.clock
    try:
        jobs = sim.advance(hours, activity=activity)
        report = publish(ws, sim)
    except BaseException:
        forget_twin(ws, env, comp)
        raise
    after = backlog_counts(ws, env, comp)

    def ts(ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)

    return TwinAdvance(env, comp, hours, ts(start), ts(sim.clock), twin_summary(jobs), before, after, report)
