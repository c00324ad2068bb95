"""Synchronization Log of one record (page 5333's action), with the whole history instead of the last job.

BC's Synchronization Log opens page 5338 filtered to the coupling's two Last Synch. Job IDs. Here:
every job that touched the record, every error logged for it, its coupling's state over time
(reconstructed from the errors, the skip rule of spec §6.4, the last successful jobs and the actions
audited in this workspace) and, on the twin, both apps' field values side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import bc
from ..analysis.records import Selection, local_record_sql, records_relation
from ..analysis.signatures import error_text_sql
from ..sql import registered
from ..twin import operations as ops
from ..twin.model import BC, DV
from ..twin.state import has_twin, load_twin
from ..workspace import Workspace
from .base import CAPTIONS, ActionError

_DIRECTION = {bc.TO_INTEGRATION: "to Dataverse", bc.FROM_INTEGRATION: "from Dataverse"}
# State of the coupling after an audited action that changed it.
_STATE_AFTER = {"retry": "failed", "retry-all": "failed", "synchronize": "ok", "remove-coupling": "uncoupled",
                "restore-records": "ok", "delete-records": "uncoupled", "find-for-deleted": "skipped"}


@dataclass
class SyncLog:
    """One record's Synchronization Log.

    Attributes
    ----------
    record
        The coupling row (records() columns incl. ``state``), or the record id alone when it is not
        coupled; on the twin also both apps' modified-on times.
    jobs
        Every job that touched it: jobs that logged an error for it, its Last Synch. (CRM) Job IDs and
        the jobs of audited actions on it (column ``why``).
    errors
        Every error logged for it (its BC record or its Dataverse row), newest first.
    timeline
        time, event, direction, detail, state: the coupling's state over time (reconstructed).
    versions
        On the twin: field, dataverse_field, direction, bc_value, dataverse_value, bc_length,
        dataverse_length, differs. ``None`` for loaded history.
    """

    record: dict[str, Any]
    jobs: pd.DataFrame
    errors: pd.DataFrame
    timeline: pd.DataFrame
    versions: pd.DataFrame | None


def _coupling(ws: Workspace, environment: str, company: str, bc_record_id: str | None, table_id: int | None,
              integration_id: str | None) -> pd.DataFrame:
    sql, params = records_relation(ws, Selection(environment=environment, company=company))
    clauses, extra = [], []
    if integration_id is not None:
        clauses.append("r.integration_id = TRY_CAST(? AS UUID)")
        extra.append(str(integration_id).strip("{}"))
    if table_id is not None:
        clauses.append("r.table_id = ?")
        extra.append(int(table_id))
    if bc_record_id is not None:
        clauses.append("r.bc_record_id = ?")
        extra.append(bc_record_id)
    frame = ws.con.execute(
        f"SELECT r.*, m.integration_table_caption FROM ({sql}) r LEFT JOIN mappings m ON m.environment = r.environment "
        f"AND m.company = r.company AND m.name = r.mapping_name WHERE {' AND '.join(clauses)}", params + extra).df()
    return frame


def sync_log(ws: Workspace, *, environment: str, company: str, bc_record_id: str | None = None,
             table_id: int | None = None, integration_id: str | None = None) -> SyncLog:
    """Return the Synchronization Log of one record.

    Parameters
    ----------
    ws
        The workspace.
    environment, company
        Where the record lives.
    bc_record_id
        The BC record as BC formats it (``Customer: 10000``); or give ``integration_id`` (and ``table_id``).
    table_id, integration_id
        The coupling's key.

    Raises
    ------
    ActionError
        When neither a record id nor a coupling key is given, or the key matches no coupling.
    """
    if bc_record_id is None and integration_id is None:
        raise ActionError("Say which record: bc_record_id (e.g. 'Customer: 10000') or table_id and integration_id.")
    found = _coupling(ws, environment, company, bc_record_id, table_id, integration_id)
    if found.empty and bc_record_id is None:
        raise ActionError(f"No coupling with table {table_id} and Integration ID {integration_id} in "
                          f"{environment}/{company}.")
    if found.empty:
        # BC's ShowLog needs the table's mapping (CRMSynchSkippedRecords T132); only checkable when mappings are loaded
        caption = bc.split_record_id(bc_record_id)[0] or bc_record_id
        known = ws.con.execute("SELECT list(DISTINCT table_caption) FROM mappings WHERE environment = ? AND company = ?",
                               [environment, company]).fetchall()[0][0] or []
        if known and caption not in known:
            raise ActionError(f"No Integration Table Mapping was found for table {caption}. (BC's Synchronization "
                              f"Log works on records of the mapped tables: {', '.join(sorted(known))}.)")
    if len(found):
        record = found.iloc[0].to_dict()
        record["integration_id"] = str(record["integration_id"])
        record["crm_id"] = None if pd.isna(record.get("crm_id")) else str(record["crm_id"])
    else:
        record = {"environment": environment, "company": company, "bc_record_id": bc_record_id, "state": "not coupled"}
    record = {k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in record.items()}
    bc_rid = record.get("bc_record_id")
    dv_rid = None
    if record.get("crm_id") and record.get("integration_table_caption"):
        dv_rid = f"{record['integration_table_caption']}: {bc.format_guid(record['crm_id'])}"
    # for §6.4 (see _timeline): whether a run of the mapping in that direction came between two failures
    errors = ws.con.execute(
        f"""
        WITH e AS (
            SELECT e.error_no, e.logged_at, e.job_id, j.mapping_name, j.synch_direction, e.source_record_id,
                   e.destination_record_id, e.message, {error_text_sql("e")} AS error_message,
                   e.signature, e.cause, j.start_datetime AS job_start
            FROM job_errors e LEFT JOIN jobs j ON j.environment = e.environment AND j.company = e.company
                                              AND j.job_id = e.job_id
            WHERE e.environment = ? AND e.company = ?
              AND ({local_record_sql("e")} = ?
                   OR e.source_record_id = ? OR e.destination_record_id = ?
                   -- a record of page exports: the page 5339 error its latest error is (page 5333's, matched by
                   -- second and text); page errors name no record, so its earlier ones are unknown
                   OR (e.source_record_id IS NULL AND e.destination_record_id IS NULL AND e.error_no = ?))),
        p AS (
            SELECT *, lag(message) OVER w AS prev_message, lag(job_start) OVER w AS prev_start
            FROM e WINDOW w AS (PARTITION BY synch_direction ORDER BY error_no))
        SELECT * EXCLUDE (prev_message, prev_start),
               coalesce(message = prev_message, false) AS same_as_previous,
               coalesce(EXISTS (
                   SELECT 1 FROM jobs r WHERE r.environment = ? AND r.company = ? AND r.mapping_name = p.mapping_name
                      AND r.synch_direction = p.synch_direction AND coalesce(r.job_queue_log_entry_no, 1) > 0
                      AND r.start_datetime > p.prev_start AND r.start_datetime < p.job_start), true) AS run_between
        FROM p ORDER BY error_no DESC
        """, [environment, company, bc_rid, dv_rid, dv_rid, record.get("error_no") if record.get("inferred") else None,
              environment, company]).df()
    actions = _actions(ws, environment, company, record.get("integration_id"))
    why = pd.DataFrame({"job_id": errors["job_id"].astype(str), "why": "error for this record"})
    extra = [(record.get("last_synch_job_id"), "Last Synch. Job ID"),
             (record.get("last_synch_crm_job_id"), "Last Synch. CRM Job ID")]
    extra += [(j, f"action #{a['action_id']} ({CAPTIONS.get(a['action'], a['action'])})")
              for a in actions for j in a["jobs"]]
    extra_frame = pd.DataFrame([(str(j), w) for j, w in extra if j is not None], columns=["job_id", "why"])
    why = pd.concat([why, extra_frame], ignore_index=True) if len(extra_frame) else why
    why = why.groupby("job_id", as_index=False)["why"].agg(lambda s: "; ".join(dict.fromkeys(s)))
    with registered(ws.con, why, "synclog_jobs") as name:
        jobs = ws.con.execute(
            "SELECT j.job_id, j.start_datetime, j.finish_datetime, j.mapping_name, j.synch_direction, j.type, "
            "j.trigger, j.job_queue_log_entry_no, j.inserted, j.modified, j.unchanged, j.skipped, j.failed, "
            f"j.uncoupled, j.coupled, j.message, w.why FROM jobs j JOIN {name} w "
            "ON CAST(j.job_id AS VARCHAR) = w.job_id WHERE j.environment = ? AND j.company = ? "
            "ORDER BY j.start_datetime DESC", [environment, company]).df()
    timeline = _timeline(record, errors, jobs, actions)
    versions = _versions(ws, environment, company, record)
    return SyncLog(record=record, jobs=jobs, errors=errors, timeline=timeline, versions=versions)


def _actions(ws: Workspace, environment: str, company: str, integration_id: str | None) -> list[dict[str, Any]]:
    """Audited actions whose targets include the coupling, with this coupling's result (few rows)."""
    if not integration_id:
        return []
    rows = ws.con.execute(
        "SELECT a.action_id, a.\"at\", a.who, a.action, a.dry_run, a.backend, t.result, t.detail, "
        "CAST(a.outcome AS VARCHAR) FROM actions a JOIN action_targets t USING (action_id) "
        "WHERE a.environment = ? AND a.company = ? AND t.table_id <> 5338 AND t.integration_id = TRY_CAST(? AS UUID) "
        "ORDER BY a.action_id", [environment, company, str(integration_id)]).fetchall()
    out = []
    for action_id, at, who, action, dry_run, backend, result, detail, outcome in rows:
        data = json.loads(outcome or "{}")
        when = pd.Timestamp(data["twin_clock"]).to_pydatetime() if data.get("twin_clock") else at  # twin time
        out.append({"action_id": action_id, "at": when, "who": who, "action": action, "dry_run": dry_run,
                    "backend": backend, "result": result, "detail": detail,
                    "jobs": [] if dry_run else data.get("jobs", [])})
    return out


def _timeline(record: dict[str, Any], errors: pd.DataFrame, jobs: pd.DataFrame,
              actions: list[dict[str, Any]]) -> pd.DataFrame:
    """The coupling's state over time, reconstructed (spec §6.4/§6.5)."""
    events: list[dict[str, Any]] = []
    finish = dict(zip(jobs["job_id"].astype(str), jobs["finish_datetime"])) if len(jobs) else {}
    for col, result_col, direction, caption in (
            ("last_synch_job_id", "last_synch_result", "from Dataverse", "Last Synch. Job ID"),
            ("last_synch_crm_job_id", "last_synch_crm_result", "to Dataverse", "Last Synch. CRM Job ID")):
        job = record.get(col)
        if job is not None and record.get(result_col) == "Success" and str(job) in finish:
            events.append({"time": finish[str(job)], "event": "synchronized", "direction": direction,
                           "detail": f"last successful job ({caption})", "state": "ok"})
    # §6.4: a failure with the same Message as the previous one in that direction makes the coupling Skipped
    # when nothing succeeded in between: no run came between (a failing coupling is retried by every run,
    # so a run without an error for it succeeded), or the coupling was Skipped then (Retry keeps Failure)
    errs = errors.sort_values("error_no").assign(direction=errors["synch_direction"].map(_DIRECTION))
    skipped_now: dict[object, bool] = {}
    for time, msg, direction, same, between in zip(
            errs["logged_at"], errs["message"], errs["direction"].astype(object).fillna("(unknown)"),
            errs["same_as_previous"], errs["run_between"]):
        repeat = bool(same) and (not between or skipped_now.get(direction, False))
        skipped_now[direction] = repeat
        events.append({"time": time, "event": "failed, Skipped" if repeat else "failed", "direction": direction,
                       "detail": ("same failure as the previous run in this direction → Skipped (§6.4, "
                                  "reconstructed): " if repeat else "") + str(msg),
                       "state": "skipped" if repeat else "failed"})
    for a in actions:
        caption = CAPTIONS.get(a["action"], a["action"])
        if a["dry_run"]:
            events.append({"time": a["at"], "event": f"dry run: {caption}", "direction": None,
                           "detail": f"#{a['action_id']} by {a['who']}: {a['detail']}", "state": None})
            continue
        state = _STATE_AFTER.get(a["action"]) if a["result"] == "changed" else None
        if a["result"] == "failed":
            state = "skipped" if "Skipped again" in str(a["detail"]) else "failed"
        events.append({"time": a["at"], "event": f"action: {caption}", "direction": None,
                       "detail": f"#{a['action_id']} by {a['who']} ({a['backend']}): {a['detail']}", "state": state})
    frame = pd.DataFrame(events, columns=["time", "event", "direction", "detail", "state"])
    if len(frame):
        frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
        frame["state"] = frame["state"].ffill()
    now = {"time": frame["time"].max() if len(frame) else None, "event": "now", "direction": None,
           "detail": f"state {record.get('state')}" + (", Skipped" if record.get("skipped") and
                                                         record.get("state") != "skipped" else ""),
           "state": record.get("state")}
    return pd.concat([frame, pd.DataFrame([now])], ignore_index=True) if len(frame) else pd.DataFrame([now])


def _versions(ws: Workspace, environment: str, company: str, record: dict[str, Any]) -> pd.DataFrame | None:
    """Both apps' field values side by side (twin only)."""
    if not has_twin(ws, environment, company):
        return None
    sim = load_twin(ws, environment, company)
    w = sim.world
    mapping = record.get("mapping_name")
    rid = record.get("bc_record_id") or ""
    if mapping not in w.tables:
        caption = bc.split_record_id(rid)[0]
        mapping = next((n for n, t in w.tables.items() if t.config.bc_caption == caption), None)
        if mapping is None:
            return None
    tb = w.table(mapping)
    row = -1
    if record.get("integration_id"):
        row = int(ops.rows_for_ids(w, mapping, [record["integration_id"]])[0])
    if row < 0 and bc.split_record_id(rid)[1] is not None:
        hit = np.flatnonzero(tb.key == bc.split_record_id(rid)[1])
        row = int(hit[-1]) if len(hit) else -1
    cols = ["field", "dataverse_field", "direction", "bc_value", "dataverse_value", "bc_length", "dataverse_length",
            "differs"]
    if row < 0 or not (tb.exists[BC][row] or tb.exists[DV][row]):
        return pd.DataFrame(columns=cols)
    ms = [tb.mod[BC][row], tb.mod[DV][row]]
    record["twin_bc_exists"], record["twin_dataverse_exists"] = bool(tb.exists[BC][row]), bool(tb.exists[DV][row])
    record["twin_bc_modified_at"], record["twin_dataverse_modified_on"] = (
        pd.Timestamp(int(m), unit="ms") if m >= 0 else None for m in ms)
    rows = []
    for c, f in enumerate(tb.config.fields):
        bv = int(tb.vals[BC][row, c]) if tb.exists[BC][row] else None
        dv = int(tb.vals[DV][row, c]) if tb.exists[DV][row] else None
        bl = int(tb.lens[BC][row, c]) if tb.exists[BC][row] else None
        dl = int(tb.lens[DV][row, c]) if tb.exists[DV][row] else None
        differs = bool(tb.exists[BC][row] and tb.exists[DV][row] and (bv != dv or bl != dl))
        rows.append((f.bc_field, f.dv_field, f.direction, bv, dv, bl, dl, differs))
    return pd.DataFrame(rows, columns=cols)
