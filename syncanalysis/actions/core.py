"""Plan, run and audit BC's resolution actions on a selection of couplings (spec §5.1, §6.4-§6.6).

:func:`plan` resolves the selection in SQL, applies BC's enablement per target (vectorised), lets
the backend refine it (on the twin: which fields differ, whether Merge is offered) and returns the
:class:`~syncanalysis.actions.base.Plan` - the dry run. :func:`execute` runs exactly that plan on its
backend in one transaction with its audit row; :func:`run` does both.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.causes import cause_info
from ..analysis.records import Selection, records_relation
from ..analysis.signatures import ensure_signatures
from ..sql import registered
from ..twin.state import twin_summary
from ..workspace import Workspace
from .audit import current_user, write_audit
from .backends import Backend, backend_for, scopes
from .base import (
    CAPTIONS,
    DIRECTION_TEXT,
    KEY,
    TARGET_COLUMNS,
    WHOLE_COMPANY,
    WINNERS,
    ActionError,
    ActionResult,
    Plan,
    Progress,
    check_action,
    check_direction,
)

_BI, _TO, _FROM = "Bidirectional", "ToIntegrationTable", "FromIntegrationTable"
_MAPPINGS_SQL = (
    "SELECT environment, company, name AS mapping_name, direction AS mapping_direction, "
    "integration_table_caption, table_caption FROM mappings"
)
_TARGET_SELECT = """
    SELECT r.environment, r.company, r.table_id, CAST(r.integration_id AS VARCHAR) AS integration_id,
           CAST(r.crm_id AS VARCHAR) AS crm_id, r.mapping_name, r.bc_record_id, r.crm_description, r.state,
           r.skipped, r.bc_record_exists, r.crm_record_exists, r.error_no, r.cause, r.latest_parent,
           {error_message} AS latest_error, m.mapping_direction, true AS found
    FROM ({sql}) r
    LEFT JOIN ({mappings}) m ON m.environment = r.environment AND m.company = r.company
                            AND m.mapping_name = r.mapping_name
"""


def _target_select(sql: str, with_errors: bool) -> str:
    # the latest error's text is only read for parents-first: 100,000 long strings cost time to fetch
    return _TARGET_SELECT.format(sql=sql, mappings=_MAPPINGS_SQL,
                                 error_message="r.latest_error" if with_errors else "CAST(NULL AS VARCHAR)")


# -- enablement ------------------------------------------------------------------------------
def _exists(col: pd.Series) -> np.ndarray:
    """Unknown existence (page exports) counts as existing, as records() does for the state."""
    return col.astype("boolean").fillna(True).to_numpy(dtype=bool)


def enabled_actions(rows: pd.DataFrame) -> dict[str, bool]:
    """BC's enablement of page 5333's actions for the selected ``rows`` (columns of ``records()``).

    Retry and Synchronize need a row where both records exist, Restore Records and Delete Records one
    where exactly one exists, Remove Coupling any row; Retry All and Find for Deleted take no selection.
    A mixed selection enables an action when some rows fit it (the rest is refused with a reason).

    Examples
    --------
    >>> rows = pd.DataFrame({"bc_record_exists": [True], "crm_record_exists": [False]})
    >>> enabled_actions(rows)["restore-records"], enabled_actions(rows)["retry"]
    (True, False)
    """
    if rows is None or len(rows) == 0:
        return {a: a in WHOLE_COMPANY for a in CAPTIONS}
    bc_ex, dv_ex = _exists(rows["bc_record_exists"]), _exists(rows["crm_record_exists"])
    both, one = bool((bc_ex & dv_ex).any()), bool((bc_ex ^ dv_ex).any())
    # Set Up Coupling (and the Synchronization Log) need the BC record (T170-T172); BC couples one record at
    # a time, so the panel offers it for one selected line
    return {"retry": both, "retry-all": True, "synchronize": both, "remove-coupling": True,
            "restore-records": one, "delete-records": one, "find-for-deleted": True,
            "set-up-coupling": len(rows) == 1 and bool(bc_ex.all())}


def _refusals(bc_ex: np.ndarray, dv_ex: np.ndarray, fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reason and suggested action for rows that do not ``fit`` the action, by which record exists."""
    reason = np.select(
        [~bc_ex & ~dv_ex, bc_ex & ~dv_ex, ~bc_ex & dv_ex, bc_ex & dv_ex],
        ["neither record exists", "the Dataverse row was deleted", "the Business Central record was deleted",
         "both records exist"], None).astype(object)
    suggest = np.select(
        [~bc_ex & ~dv_ex, bc_ex ^ dv_ex, bc_ex & dv_ex],
        ["Remove Coupling", "Restore Records or Delete Records", "Synchronize or Retry"], None).astype(object)
    reason[fit] = None
    suggest[fit] = None
    return reason, suggest


def _effective_direction(requested: str | None, mapping_direction: pd.Series, role: pd.Series) -> tuple:
    """Per row: the direction Synchronize runs in, or why it is refused (and what fits instead)."""
    md = mapping_direction.astype(object).fillna("").to_numpy(dtype=object)
    to_only, from_only, bi = md == _TO, md == _FROM, md == _BI
    parent = role.to_numpy(dtype=object) == "parent"
    n = len(md)
    eff = np.full(n, requested, dtype=object)
    reason = np.full(n, None, dtype=object)
    suggest = np.full(n, None, dtype=object)
    only = np.where(to_only, "to-dataverse", np.where(from_only, "from-dataverse", None)).astype(object)
    only_text = np.where(to_only, "only to Dataverse", "only from Dataverse").astype(object)
    uni = to_only | from_only
    if requested is None:
        eff[uni] = only[uni]
        need = ~uni
        reason[need] = "the mapping is Bidirectional (or unknown): choose a direction"
        suggest[need] = "Synchronize to-dataverse (BC wins) or from-dataverse (Dataverse wins)"
        eff[need] = None
        return eff, reason, suggest
    wrong = uni & (only != requested)
    if requested != "merge":
        # BC (UpdateMultipleNow, its test T122_SynchronizeMultipleBidirectionalRecords): the direction chosen
        # applies to Bidirectional mappings; a record of a one-way mapping is synchronized in the direction its
        # mapping runs, not refused (one one-off job per table, in that table's direction)
        eff[wrong] = only[wrong]
        return eff, reason, suggest
    # Merge is offered only on one record of a Bidirectional mapping (spec §6.6); a parent on a one-way
    # mapping is still synchronized in the one direction its mapping runs
    eff[wrong & parent] = only[wrong & parent]
    bad = wrong & ~parent
    if requested == "merge":
        reason[bad] = "Merge needs a Bidirectional mapping; this one synchronizes " + only_text[bad]
        unknown = ~uni & ~bi
        reason[unknown] = "Merge needs a Bidirectional mapping; this mapping's direction is unknown"
        suggest[unknown] = "Synchronize to-dataverse or from-dataverse"
        bad = bad | unknown
    else:
        reason[bad] = "the mapping synchronizes " + only_text[bad]
    suggest[wrong & ~parent] = "Synchronize " + only[wrong & ~parent]
    eff[bad] = None
    return eff, reason, suggest


def _couple_to_column(targets: pd.DataFrame, couple_to: str | dict[str, str] | None) -> np.ndarray:
    """Per target the Dataverse row (GUID text, lower case) Set Up Coupling couples it to, or ``None``."""
    n = len(targets)
    if couple_to is None:
        return np.full(n, None, dtype=object)
    if isinstance(couple_to, str):
        if n > 1:
            raise ActionError(f"Set Up Coupling couples each record to its own Dataverse row: give couple_to as "
                              f"{{integration_id: crm_id}} for the {n} selected records (one GUID fits one record).")
        couple_to = {str(targets["integration_id"].iloc[0]) if n else "": couple_to}
    cleaned: dict[str, str] = {}
    for key, value in couple_to.items():
        for what, text in (("integration id", key), ("Dataverse row id", value)):
            try:
                uuid.UUID(str(text).strip().strip("{}"))
            except ValueError:
                raise ActionError(f"Set Up Coupling: {what} {text!r} is not a GUID; give the record's Integration ID "
                                  "and the Dataverse row's id (e.g. 6f1c2a3e-…).") from None
        cleaned[str(key).strip().strip("{}").lower()] = str(value).strip().strip("{}").lower()
    ids = targets["integration_id"].astype(str).str.strip("{}").str.lower()
    return ids.map(cleaned).astype(object).where(ids.isin(list(cleaned)), None).to_numpy(dtype=object)


NO_SYNC = "none"  # Set Up Coupling's "Do Not Synchronize"
# Retry: BC clears Skipped only; Last Synch. (CRM) Result stays Failure, so the next scheduled run retries it
_UNSKIP = "will un-skip (the next scheduled run synchronizes it again)"


def classify(targets: pd.DataFrame, action: str, direction: str | None,
             couple_to: str | dict[str, str] | None = None) -> pd.DataFrame:
    """Apply BC's enablement and the action's rules to every target (vectorised); return the frame.

    Adds ``enabled``, ``status``, ``outcome``, ``reason``, ``suggest``, ``winner``, ``fields`` and
    ``direction``. The backend may refine these (e.g. the twin knows which fields differ).
    """
    t = targets
    n = len(t)
    found = t["found"].to_numpy(dtype=bool)
    bc_ex, dv_ex = _exists(t["bc_record_exists"]), _exists(t["crm_record_exists"])
    skipped = t["skipped"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    md = t["mapping_direction"].astype(object).fillna("").to_numpy(dtype=object)
    status = np.full(n, "change", dtype=object)
    outcome = np.full(n, None, dtype=object)
    winner = np.full(n, None, dtype=object)
    fields = np.full(n, None, dtype=object)
    destroyed = np.full(n, None, dtype=object)  # what a destructive action deletes, in which app
    eff = np.full(n, None, dtype=object)
    target = _couple_to_column(t, couple_to) if action == "set-up-coupling" else None
    both, one = bc_ex & dv_ex, bc_ex ^ dv_ex

    if action in ("retry", "synchronize"):
        enabled = both
    elif action in ("restore-records", "delete-records"):
        enabled = one
    elif action == "set-up-coupling":
        enabled = bc_ex
    else:
        enabled = np.ones(n, bool)
    reason, suggest = _refusals(bc_ex, dv_ex, enabled)
    status[~enabled] = "refused"

    if action == "retry":
        noop = enabled & ~skipped
        status[noop] = "no-op"
        reason[noop] = "not skipped"
        outcome[status == "change"] = _UNSKIP
    elif action == "retry-all":
        outcome[:] = _UNSKIP
    elif action == "synchronize":
        eff, why, alt = _effective_direction(direction, t["mapping_direction"], t["role"])
        bad = enabled & (eff == None)  # noqa: E711 - elementwise on an object array
        status[bad] = "refused"
        reason[bad], suggest[bad] = why[bad], alt[bad]
        ok = status == "change"
        for d, text in DIRECTION_TEXT.items():
            sel = ok & (eff == d)
            outcome[sel] = f"will synchronize {text}"
            winner[sel] = WINNERS[d]
            fields[sel] = {"to-dataverse": "fields mapped to Dataverse", "from-dataverse": "fields mapped from Dataverse",
                           "merge": "fields mapped each way"}[d] + " (field list unknown on loaded history)"
    elif action == "remove-coupling":
        outcome[:] = np.where(~bc_ex & ~dv_ex, "will delete the coupling row (neither record exists)",
                              "will remove the coupling")
        # the coupling row only: the records (those that still exist) stay as they are
        destroyed[:] = "the coupling of " + _names(t) + np.where(
            bc_ex & dv_ex, " (both records stay)", np.where(bc_ex, " (the Business Central record stays)", np.where(
                dv_ex, " (the Dataverse row stays)", " (neither record exists)")))
    elif action == "restore-records":
        # the one-off job writes the missing side: a one-way mapping cannot write the other one
        cannot = enabled & ((bc_ex & (md == _FROM)) | (dv_ex & (md == _TO)))
        status[cannot] = "refused"
        reason[cannot] = np.where(md[cannot] == _FROM, "the mapping synchronizes only from Dataverse, so it cannot "
                                  "re-create the Dataverse row", "the mapping synchronizes only to Dataverse, so it "
                                  "cannot re-create the Business Central record")
        suggest[cannot] = "Delete Records or Remove Coupling"
        ok = status == "change"
        outcome[ok & bc_ex] = "will re-create the Dataverse row from Business Central (a new row) and couple it"
        outcome[ok & dv_ex] = ("will re-create the Business Central record from Dataverse (a new record with the next "
                               "number of its No. Series) and couple it")
        winner[ok & bc_ex], winner[ok & dv_ex] = "Business Central", "Dataverse"
        # BC deletes the coupling row first, then couples the re-created record
        destroyed[ok] = "the coupling of " + _names(t)[ok] + " to its deleted counterpart (a new one is made)"
        fields[ok & bc_ex] = "all fields mapped to Dataverse"
        fields[ok & dv_ex] = "all fields mapped from Dataverse"
    elif action == "delete-records":
        ok = status == "change"
        # name what is destroyed, in full: the record (BC's Description) or the row (Coupled To)
        bc_name = t["bc_record_id"].astype(object).fillna("(no description)").astype(str).to_numpy(dtype=object)
        dv_name = t["crm_description"].astype(object).fillna("(no name)").astype(str).to_numpy(dtype=object)
        outcome[ok & bc_ex] = "will delete the Business Central record " + bc_name[ok & bc_ex] + " and its coupling"
        outcome[ok & dv_ex] = "will delete the Dataverse row " + dv_name[ok & dv_ex] + " and its coupling"
        destroyed[ok & bc_ex] = "Business Central record " + bc_name[ok & bc_ex]
        destroyed[ok & dv_ex] = "Dataverse row " + dv_name[ok & dv_ex]
    elif action == "set-up-coupling":
        none = enabled & pd.isna(target)
        status[none] = "refused"
        reason[none] = "no Dataverse row was given to couple it to"
        suggest[none] = "give its Integration ID and the Dataverse row's id in couple_to"
        same = enabled & ~none & (t["crm_id"].astype(object).fillna("").astype(str).str.lower().to_numpy() == target)
        status[same] = "no-op"
        reason[same] = "already coupled to that Dataverse row"
        ok = status == "change"
        if direction is None:
            # the page's default (Coupling Record Buffer.Initialize): synchronize after coupling, in the table's
            # default direction, unless the Dataverse row it is coupled to now still exists
            default = np.where(md == _FROM, "from-dataverse", "to-dataverse").astype(object)
            eff = np.where(ok & ~dv_ex, default, None).astype(object)
        else:
            eff = np.where(ok, None if direction == NO_SYNC else direction, None).astype(object)
        then = np.array(["" if e is None else f", then synchronize {DIRECTION_TEXT[e]}" for e in eff], dtype=object)
        outcome[ok] = "will couple it to Dataverse row " + target[ok].astype(str) + then[ok]
        synced = ok & (eff != None)  # noqa: E711 - elementwise
        winner[synced] = [WINNERS[e] for e in eff[synced]]
    elif action == "find-for-deleted":
        bi = md == _BI
        status[bi] = "no-op"
        reason[bi] = "Bidirectional mapping (Find for Deleted marks only unidirectional mappings)"
        outcome[(status == "change") & ~bc_ex] = "will mark Skipped (its Business Central record was deleted)"
        outcome[(status == "change") & bc_ex] = ("will mark Skipped (its Business Central record is outside the "
                                                 "mapping's Table Filter)")

    missing = ~found
    status[missing] = "no-op"
    reason[missing] = "no coupling with this key (already removed?)"
    suggest[missing] = None
    enabled = enabled & found
    noop = status == "no-op"
    refused = status == "refused"
    outcome[noop] = "no-op: " + reason[noop].astype(str)
    outcome[refused] = "refused: " + reason[refused].astype(str) + np.where(
        suggest[refused] == None, "", " – use " + suggest[refused].astype(str))  # noqa: E711
    for arr in (winner, fields, destroyed):
        arr[status != "change"] = None
    out = t.assign(enabled=enabled, status=status, outcome=outcome, reason=reason, suggest=suggest, winner=winner,
                   fields=fields, destroyed=destroyed,
                   direction=eff if action in ("synchronize", "set-up-coupling") else None, couple_to=target)
    return out


# causes whose record fails the same way until someone fixes the data or the setup (not a retry)
_PERSISTENT = frozenset({"field-length", "validation", "option-mapping", "configuration", "ownership", "company",
                         "duplicate", "permission", "dataverse-error"})
_PARENT_CAUSES = frozenset({"not-coupled", "currency", "uom"})


def predict(ws: Workspace, targets: pd.DataFrame, action: str) -> pd.Series:
    """The predicted outcome of Retry / Retry All / Synchronize per target that will change.

    From the latest error's cause (its signature), the dependency graph and the mapping's settings: a record
    whose error names a parent that is still not coupled (or coupled to a deleted record) *will fail again*
    until the parent is fixed; an update conflict fails a Retry again unless Resolve Update Conflicts is set
    now, and is settled by a Synchronize of that one record (a forced update; BC leaves it out of a
    Synchronize of several); a deleted record follows Resolve Deletion Conflicts; a data or setup
    cause *may fail again* (loaded history cannot tell whether someone fixed it since); a transient error,
    or a parent coupled since, *should synchronize*. Each text starts with its kind and a colon. ``None``
    for targets that will not change or actions this does not apply to.
    """
    out = pd.Series(None, index=targets.index, dtype=object)
    if action not in ("retry", "retry-all", "synchronize") or not len(targets):
        return out
    change = targets["status"].eq("change")
    cause = targets.get("cause", pd.Series(None, index=targets.index)).astype(object)
    parent = targets.get("latest_parent", pd.Series(None, index=targets.index)).astype(object)
    named = targets.loc[change & parent.notna(), ["environment", "company", "latest_parent"]].drop_duplicates()
    state = pd.Series(dtype=object)
    if len(named):
        with registered(ws.con, named, "predict_parents") as name:
            found = ws.con.execute(
                "SELECT p.environment, p.company, p.latest_parent, min(sa_coupling_state(c.bc_record_exists, "
                "c.crm_record_exists, c.skipped, c.last_synch_result, c.last_synch_crm_result)) AS state "
                f"FROM {name} p LEFT JOIN couplings c ON c.environment = p.environment AND c.company = p.company "
                "AND c.bc_record_id = p.latest_parent GROUP BY ALL").df()
        state = found.set_index(["environment", "company", "latest_parent"])["state"]
    keys = pd.MultiIndex.from_frame(targets[["environment", "company"]].assign(latest_parent=parent))
    pstate = pd.Series(state.reindex(keys).to_numpy(dtype=object) if len(state) else None, index=targets.index)
    has_parent = change & parent.notna() & cause.isin(_PARENT_CAUSES)
    # BC's lookup needs the parent coupled, not synchronized: a failing or skipped parent coupling is enough
    blocked = has_parent & (pstate.isna() | pstate.eq("broken"))
    label = pstate.astype(object).where(pstate.notna(), "not coupled").map(
        {"not coupled": "is still not coupled", "broken": "is coupled to a deleted record"})
    out[blocked] = "will fail again: " + parent[blocked].astype(str) + " " + label[blocked].astype(str) \
        + " (fix the parent first)"
    out[has_parent & ~blocked] = "should synchronize: " + parent[has_parent & ~blocked].astype(str) + " is coupled now"
    rest = change & ~has_parent
    conflict = rest & cause.eq("conflict")
    if action == "synchronize":
        # one record: BC asks who wins and forces it; several: BC leaves out those changed on both sides
        out[conflict] = ("should synchronize: the chosen side overwrites the other (a forced update settles the "
                         "conflict)" if int(change.sum()) == 1 else
                         "will be left out: changed in both apps, and BC's Synchronize of several records skips "
                         "such records (synchronize it alone, or set Resolve Update Conflicts and Retry)")
    else:  # a Retry settles a conflict only when the mapping now says which app wins (spec §6.3 step 6)
        _by_rule(ws, targets, out, conflict, "update_conflict_resolution", "Resolve Update Conflicts",
                 "the next run settles the conflict",
                 "will fail again: changed in both apps and Resolve Update Conflicts is blank; set it on the mapping "
                 "first, or Synchronize one record choosing the winning side")
    rest &= ~conflict
    deleted = rest & cause.eq("deleted")  # spec §6.3 step 3: the mapping's Resolve Deletion Conflicts decides
    _by_rule(ws, targets, out, deleted, "deletion_conflict_resolution", "Resolve Deletion Conflicts",
             "the next run settles it",
             "will fail again: coupled to a deleted record and Resolve Deletion Conflicts is blank; use Restore "
             "Records or Delete Records, or set it on the mapping")
    rest &= ~deleted
    persistent = rest & (cause.isin(_PERSISTENT) | cause.isin(_PARENT_CAUSES))
    titles = cause[persistent].map({c: cause_info(c).title.lower() for c in cause[persistent].unique()})
    out[persistent] = "may fail again: " + titles.astype(str) + np.where(
        cause[persistent].isin(_PARENT_CAUSES), " (its parent must be coupled first)",
        " (unless the data or setup was fixed since its last error)")
    transient = rest & cause.isin([c for c in cause.dropna().unique() if c and cause_info(c).transient])
    out[transient] = "should synchronize: its last error was transient"
    out[change & out.isna()] = np.where(cause[change & out.isna()].isna(), "should synchronize (no error recorded)",
                                        "unknown: its last error's cause does not tell")
    return out


def _names(t: pd.DataFrame) -> np.ndarray:
    """Each target's record as a reader knows it: BC's Description, else the Dataverse row's name."""
    bc_name = t["bc_record_id"].astype(object)
    return bc_name.where(bc_name.notna(), t["crm_description"].astype(object)).fillna("(no name)").astype(str) \
        .to_numpy(dtype=object)


def _by_rule(ws: Workspace, targets: pd.DataFrame, out: pd.Series, mask: pd.Series, setting: str, caption: str,
             settles: str, blank: str) -> None:
    """Predict ``mask``'s targets by their mapping's conflict ``setting``: settled when it is set, else ``blank``."""
    if not mask.any():
        return
    rule = _mapping_rules(ws, targets.loc[mask], setting)
    settled = mask & rule.reindex(targets.index).notna()
    out[settled] = f"should synchronize: {caption} is '" + rule[settled[settled].index] + f"' now, {settles}"
    out[mask & ~settled] = blank


def _mapping_rules(ws: Workspace, targets: pd.DataFrame, setting: str) -> pd.Series:
    """Per target (by index), its mapping's ``setting`` (a conflict resolution) when one is set, else missing."""
    if setting not in ("update_conflict_resolution", "deletion_conflict_resolution"):
        raise ValueError(f"not a conflict setting: {setting!r}")
    pairs = targets[["environment", "company", "mapping_name"]].drop_duplicates()
    with registered(ws.con, pairs, "predict_rules") as name:
        rules = ws.con.execute(
            f"SELECT p.*, m.{setting} AS rule FROM {name} p JOIN mappings m "
            "ON m.environment = p.environment AND m.company = p.company AND m.name = p.mapping_name "
            f"WHERE coalesce(m.{setting}, 'None') NOT IN ('None', '')").df()
    index = pd.MultiIndex.from_frame(targets[["environment", "company", "mapping_name"]])
    found = rules.set_index(["environment", "company", "mapping_name"])["rule"]
    return pd.Series(found.reindex(index).to_numpy(dtype=object), index=targets.index).dropna()


# -- target resolution -----------------------------------------------------------------------
def _scope_of(ws: Workspace, sel: Selection | None, frame: pd.DataFrame | None) -> tuple[str | None, str | None]:
    """The one environment/company of the plan: from the selection, the targets or the workspace."""
    env = sel.environment if sel is not None else None
    comp = sel.company if sel is not None else None
    if frame is not None and len(frame):
        pairs = frame[["environment", "company"]].drop_duplicates()
        if len(pairs) > 1:
            listed = ", ".join(f"{e!r}/{c!r}" for e, c in pairs.head(5).itertuples(index=False))
            raise ActionError(
                f"The selection spans {len(pairs)} environments/companies ({listed}); an action runs in one. "
                "Choose one with environment=/company= (CLI: --environment/--company).")
        return str(pairs.iloc[0, 0]), str(pairs.iloc[0, 1])
    if env is not None and comp is not None:
        return env, comp
    known = [s for s in scopes(ws) if (env is None or s[0] == env) and (comp is None or s[1] == comp)]
    if len(known) == 1:
        return known[0]
    return env, comp


def _resolve(ws: Workspace, sel: Selection, with_errors: bool = False) -> pd.DataFrame:
    """The couplings of ``sel`` (one SQL query), plus explicit keys that have no coupling."""
    sql, params = records_relation(ws, sel)
    frame = ws.con.execute(_target_select(sql, with_errors), params).df()
    if sel.keys:
        keys = pd.DataFrame(list(sel.keys), columns=KEY).astype({"table_id": "int64", "integration_id": str})
        keys["integration_id"] = keys["integration_id"].str.strip("{}").str.lower()
        with registered(ws.con, keys, "action_keys") as name:
            missing = ws.con.execute(
                "SELECT k.environment, k.company, k.table_id, k.integration_id, "
                "sa_mapping_name(m.name, k.table_id) AS mapping_name, false AS found "
                f"FROM {name} k LEFT JOIN (SELECT environment, company, table_id, min(name) AS name "
                "FROM mappings GROUP BY ALL) m USING (environment, company, table_id) "
                "WHERE NOT EXISTS (SELECT 1 FROM couplings c WHERE c.environment = k.environment "
                "AND c.company = k.company AND c.table_id = k.table_id "
                "AND c.integration_id = TRY_CAST(k.integration_id AS UUID))").df()
        if len(missing):
            missing = missing.reindex(columns=frame.columns)
            frame = pd.concat([frame, missing], ignore_index=True) if len(frame) else missing
    return frame


def _whole_company(ws: Workspace, action: str, env: str | None, comp: str | None) -> pd.DataFrame:
    """Targets of Retry All (every skipped coupling) or Find for Deleted (non-skipped, BC record gone)."""
    if env is None or comp is None:
        raise ActionError(f"{CAPTIONS[action]} acts on one environment/company; the workspace has several "
                          f"({', '.join('/'.join(s) for s in scopes(ws)) or 'none'}). Choose one with "
                          "environment=/company= (CLI: --environment/--company).")
    where = "c.skipped" if action == "retry-all" else "NOT coalesce(c.skipped, false) AND c.bc_record_exists IS false"
    sel = Selection(environment=env, company=comp)
    sql, params = records_relation(ws, sel)
    # records_relation's WHERE has only the scope; the action's own condition goes on top
    sql = f"SELECT * FROM ({sql}) c WHERE {where}"
    return ws.con.execute(_target_select(sql, False), params).df()


def _parents(ws: Workspace, targets: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Couplings of the parents named by the targets' latest errors (``signatures.parent_table/key``)."""
    msgs = targets.loc[targets["latest_error"].notna(), ["environment", "company", "latest_error"]] \
        .drop_duplicates().rename(columns={"latest_error": "error_message"})
    if msgs.empty:
        notes.append("Parents first: the selected records' errors name no parent record.")
        return targets.iloc[:0]
    _ensure_signatures(ws, msgs["error_message"], notes)
    with registered(ws.con, msgs, "action_msgs") as name:
        parents = ws.con.execute(
            "SELECT DISTINCT m.environment, m.company, s.parent_table, s.parent_key, "
            "sa_record_id(s.parent_table, s.parent_key) AS parent_record_id "
            f"FROM {name} m JOIN signatures s ON s.error_message = m.error_message "
            "WHERE s.parent_key IS NOT NULL AND s.parent_table IS NOT NULL").df()
    if parents.empty:
        notes.append("Parents first: the selected records' errors name no parent record.")
        return targets.iloc[:0]
    env, comp = parents.iloc[0]["environment"], parents.iloc[0]["company"]
    sql, params = records_relation(ws, Selection(environment=env, company=comp))
    with registered(ws.con, parents[["parent_record_id"]], "action_parents") as name:
        found = ws.con.execute(
            _target_select(f"SELECT * FROM ({sql}) p WHERE p.bc_record_id IN "
                           f"(SELECT parent_record_id FROM {name})", True),
            params).df()
    uncoupled = sorted(set(parents["parent_record_id"]) - set(found["bc_record_id"]))
    if uncoupled:
        shown = ", ".join(uncoupled[:5]) + (f" and {len(uncoupled) - 5:,} more" if len(uncoupled) > 5 else "")
        notes.append(f"Parents first: {shown} {'is' if len(uncoupled) == 1 else 'are'} not coupled at all – couple "
                     "them first (Set Up Coupling on the record, or match-based coupling); their children fail "
                     "again until then.")
    return found


def _ensure_signatures(ws: Workspace, messages: pd.Series, notes: list[str]) -> None:
    """Assign signatures when some of ``messages`` have none yet (the parent is read from them)."""
    with registered(ws.con, messages.to_frame("error_message"), "action_sig_msgs") as name:
        unknown = ws.con.execute(f"SELECT count(*) FROM {name} m WHERE NOT EXISTS "
                                 "(SELECT 1 FROM signatures s WHERE s.error_message = m.error_message)").fetchall()[0][0]
    if not unknown:
        return
    if ensure_signatures(ws) == 0 and ws.read_only:
        notes.append("Parents first: some errors have no signature yet and the workspace is read-only, so their "
                     "parents could not be read.")


def _selection_record(sel: Selection | None) -> dict[str, Any] | None:
    """The selection for the audit trail: the filter as given; explicit keys only counted (they are the targets)."""
    if sel is None:
        return None
    out = sel.to_dict()
    if "keys" in out:
        out["keys_count"] = len(out.pop("keys"))
    return out


def plan(ws: Workspace, action: str, selection: Selection | None = None, *, direction: str | None = None,
         backend: str | Backend | None = None, parents_first: bool = False,
         couple_to: str | dict[str, str] | None = None) -> Plan:
    """Plan ``action`` on ``selection``: per target what will change, who wins, what is refused and why.

    Nothing is written. The plan runs with :func:`execute`.

    Parameters
    ----------
    ws
        The workspace.
    action
        One of :data:`~syncanalysis.actions.ACTIONS`.
    selection
        Explicit keys, a filter, or a finding's selection. Retry All and Find for Deleted take none
        (only its environment/company).
    direction
        Synchronize only: ``to-dataverse`` (BC wins), ``from-dataverse`` (Dataverse wins) or ``merge``
        (where BC offers it) — the direction of records of Bidirectional mappings; records of one-way
        mappings always run in their mapping's direction (as BC's UpdateMultipleNow does). ``None`` runs
        one-way mappings in their direction and refuses the rest.
    backend
        ``"twin"``, ``"plan"``, a backend object, or ``None`` for the twin when the workspace holds one
        for the environment/company, else a plan file.
    parents_first
        Add the couplings of the parent records named by the targets' errors and act on them first.
    couple_to
        Set Up Coupling only: the Dataverse row (id) to couple the one selected record to, or
        ``{integration_id: crm_id}`` for several records. Its ``direction`` is the page's "Synchronize After
        Coupling": ``to-dataverse`` / ``from-dataverse``, ``"none"`` (Do Not Synchronize), or ``None`` for
        the page's default (synchronize in the table's default direction unless the Dataverse row the
        record is coupled to now still exists).

    Returns
    -------
    Plan
        The dry run.

    Raises
    ------
    ActionError
        Unknown action or direction, a direction given to another action, a selection given to an
        action of the whole company, or a selection spanning several environments/companies.
    """
    check_action(action)
    if not (action == "set-up-coupling" and direction == NO_SYNC):
        check_direction(direction)
    if direction is not None and action not in ("synchronize", "set-up-coupling"):
        raise ActionError(f"Only Synchronize and Set Up Coupling take a direction; {CAPTIONS[action]} was given "
                          f"{direction!r}.")
    if action == "set-up-coupling" and direction == "merge":
        raise ActionError("Set Up Coupling synchronizes after coupling to-dataverse or from-dataverse, not merge.")
    if couple_to is not None and action != "set-up-coupling":
        raise ActionError(f"Only Set Up Coupling takes couple_to; {CAPTIONS[action]} was given one.")
    if action == "set-up-coupling" and couple_to is None:
        raise ActionError("Set Up Coupling needs the Dataverse row to couple to: couple_to=<its id> for one record "
                          "(CLI: --couple-to), or {integration_id: crm_id} for several.")
    sel = selection
    notes: list[str] = []
    impl = backend if isinstance(backend, Backend) else None
    if action in WHOLE_COMPANY:
        if sel is not None and {k for k in sel.to_dict() if k not in ("environment", "company", "finding")}:
            raise ActionError(f"{CAPTIONS[action]} takes no selection: it acts on the whole environment/company "
                              f"(page 5333 runs it without one); got {sel.describe()}. Use Retry for a selection.")
        env, comp = _scope_of(ws, sel, None)
        frame = _whole_company(ws, action, env, comp)
        impl = impl or backend_for(ws, env, comp, kind=backend)
        extra = impl.extra_targets(ws, action, env, comp)
        if extra:  # what only the backend knows BC takes too (the twin: records outside the Table Filter)
            more = _resolve(ws, Selection(environment=env, company=comp, keys=tuple(extra)))
            frame = pd.concat([frame, more[~more["integration_id"].isin(frame["integration_id"])]], ignore_index=True)
        parents_first = False
    else:
        sel = sel or Selection()
        frame = _resolve(ws, sel, with_errors=parents_first)
        env, comp = _scope_of(ws, sel, frame)
    frame = frame.assign(role="target")
    if parents_first and len(frame):
        found = _parents(ws, frame[frame["found"]], notes)
        if len(found):
            is_parent = frame["bc_record_id"].isin(found["bc_record_id"])
            frame.loc[is_parent, "role"] = "parent"
            extra = found[~found["bc_record_id"].isin(frame["bc_record_id"])].assign(role="parent")
            frame = pd.concat([extra, frame], ignore_index=True) if len(extra) else frame
        frame = frame.sort_values("role", kind="stable", key=lambda s: s.ne("parent")).reset_index(drop=True)
    frame = classify(frame, action, direction, couple_to)
    impl = impl or backend_for(ws, env, comp, kind=backend)
    if impl.name == "plan":  # what BC decides on data loaded history does not have
        if action == "find-for-deleted":
            notes.append("BC also marks Skipped the couplings whose Business Central record exists but is outside the "
                         "mapping's Table Filter (e.g. blocked, when the filter leaves blocked records out); loaded "
                         "history cannot tell which, so they are not listed here.")
        if action == "synchronize" and int(frame["enabled"].sum()) > 1:
            notes.append("With several records selected, BC leaves out each record whose other side changed since its "
                         "last synchronization (it would be overwritten) and counts it as skipped in its "
                         "notification; loaded history cannot tell which. Synchronize those one at a time.")
    params: dict[str, Any] = {"direction": direction, "selection": _selection_record(sel),
                              "parents_first": parents_first}
    if action == "set-up-coupling":
        params["couple_to"] = {str(k): str(v) for k, v in zip(frame["integration_id"], frame["couple_to"])
                               if v is not None}
    p = Plan(action=action, selection=sel, parameters=params, backend=impl.name, targets=frame,
             environment=env, company=comp, notes=notes, backend_impl=impl)
    impl.evaluate(ws, p)
    p.targets["prediction"] = predict(ws, p.targets, action)
    p.targets = p.targets[[c for c in TARGET_COLUMNS if c in p.targets.columns]
                          + [c for c in p.targets.columns if c not in TARGET_COLUMNS]]
    return p


# -- running ---------------------------------------------------------------------------------
def execute(ws: Workspace, plan: Plan, *, who: str | None = None, progress: Progress = False) -> ActionResult:
    """Run exactly the planned targets on the plan's backend, with the audit row, in one transaction.

    Only targets planned as ``change`` are acted on; the backend checks each again (a target that
    changed since the plan reports a no-op). Any failure leaves the workspace and the stored twin as
    they were.

    Parameters
    ----------
    ws
        The workspace the plan was made on.
    plan
        The plan (from :func:`plan`).
    who
        Recorded in the audit trail (default: the operating-system user).
    progress
        ``True`` for a progress bar, or a callback ``f(done, total)``.

    Returns
    -------
    ActionResult
        The outcome per target, the jobs run at once and the audit row's id.
    """
    impl = plan.backend_impl if plan.backend_impl is not None else backend_for(ws, plan.environment, plan.company,
                                                                               kind=plan.backend)
    return impl.execute(ws, plan, who=who or current_user(), progress=progress)


def audit_dry_run(ws: Workspace, plan: Plan, *, who: str | None = None) -> ActionResult:
    """Record ``plan`` as a dry run (the audit row only) and return it as a result."""
    outcome = plan.targets.assign(result=plan.targets["status"].map({"change": "planned"}).fillna(
        plan.targets["status"]), detail=plan.targets["outcome"])
    c = plan.counts
    counts = {"targets": c["targets"], "changed": 0, "planned": c["will_change"], "no_op": c["no_op"],
              "refused": c["refused"], "failed": 0}
    with ws.transaction() as con:
        action_id = write_audit(con, plan=plan, who=who or current_user(), dry_run=True, outcome=outcome,
                                counts=counts, notes=plan.notes)
    return ActionResult(action_id=action_id, plan=plan, dry_run=True, outcome=outcome, counts=counts,
                        jobs=twin_summary([]))


def run(ws: Workspace, action: str, selection: Selection | None = None, *, direction: str | None = None,
        dry_run: bool = False, backend: str | Backend | None = None, who: str | None = None,
        parents_first: bool = False, progress: Progress = False,
        couple_to: str | dict[str, str] | None = None) -> ActionResult:
    """Plan ``action`` and execute it (or, with ``dry_run``, only audit the plan). See :func:`plan`."""
    p = plan(ws, action, selection, direction=direction, backend=backend, parents_first=parents_first,
             couple_to=couple_to)
    if dry_run:
        return audit_dry_run(ws, p, who=who)
    return execute(ws, p, who=who, progress=progress)
