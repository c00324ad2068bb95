"""The audit trail (table ``actions``): one row per run or dry run, written in the run's transaction.

Each target and its outcome is a row of ``action_targets`` (action_id, table_id, integration_id,
mapping_name, result, detail), inserted by one statement; the ``actions`` row holds what is about
the run as a whole: ``parameters`` (the direction, the selection as a filter, parents-first) and
``outcome`` = ``{"counts", "jobs", "plan_file", "notes"}``. Never a secret.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from typing import Any

import duckdb
import pandas as pd

from ..sql import registered, scope
from ..workspace import Workspace
from .base import CAPTIONS


def current_user() -> str:
    """Who runs the action (the audit's default ``who``).

    ``SYNCANALYSIS_USER`` when set (a consultant's name, e.g. ``"Ana Lopez (Contoso)"``), else the
    operating-system account and the machine, ``root@host``: a container's ``root`` alone says nothing.
    """
    named = os.environ.get("SYNCANALYSIS_USER", "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user database entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname() or 'localhost'}"


def describe_selection(text: Any) -> str:
    """An audit row's selection (JSON) as a readable line, e.g. ``CUSTOMER, skipped, 432 chosen record(s)``."""
    if text is None or (isinstance(text, float) and pd.isna(text)) or str(text) in ("", "null"):
        return "the whole company"
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return str(text)
    if not isinstance(data, dict):
        return str(text)
    n = data.pop("keys_count", None)
    finding = data.pop("finding", None)
    data.pop("environment", None), data.pop("company", None)
    parts = [str(v) if k in ("mapping", "state") else f"{k} {v}" for k, v in data.items() if k != "keys"]
    if n is not None or "keys" in data:
        parts.append(f"{n if n is not None else len(data['keys']):,} chosen record(s)")
    if finding:
        parts.append(f"finding {finding}")
    return ", ".join(parts) or "the whole company"  # Retry All / Find for Deleted: what BC runs them on


def write_audit(con: duckdb.DuckDBPyConnection, *, plan: Any, who: str, dry_run: bool, outcome: pd.DataFrame,
                counts: dict[str, int], job_ids: list[str] | None = None, plan_file: str | None = None,
                notes: list[str] | None = None, extra: dict[str, Any] | None = None) -> int:
    """Insert the ``actions`` row of one run on ``con`` (inside the caller's transaction); return its id.

    ``outcome`` needs the columns table_id, mapping_name, integration_id, result and detail (one
    ``action_targets`` row each); ``extra`` adds keys to the outcome JSON (e.g. the twin's clock).
    """
    frame = outcome[["table_id", "mapping_name", "integration_id", "result", "detail"]].astype(
        {"table_id": "int64", "integration_id": str, "mapping_name": object, "result": str, "detail": object})
    action_id = con.execute("SELECT coalesce(max(action_id), 0) + 1 FROM actions").fetchall()[0][0]
    meta = {"counts": counts, "jobs": job_ids or [], "plan_file": plan_file, "notes": notes or [], **(extra or {})}
    con.execute("INSERT INTO actions BY NAME SELECT ? AS action_id, ? AS environment, ? AS company, ? AS \"at\", "
                "? AS who, ? AS action, ? AS parameters, ? AS backend, ? AS dry_run, ? AS outcome",
                [action_id, plan.environment, plan.company, dt.datetime.now(dt.UTC).replace(tzinfo=None), who,
                 plan.action, json.dumps(plan.parameters, default=str), plan.backend, dry_run,
                 json.dumps(meta, default=str)])
    with registered(con, frame, "audit_targets") as view:
        con.execute(f"INSERT INTO action_targets SELECT ?, table_id, CAST(integration_id AS UUID), mapping_name, "
                    f"result, detail FROM {view}", [action_id])
    return int(action_id)


def audit_trail(ws: Workspace, *, environment: str | None = None, company: str | None = None,
                limit: int | None = 50) -> pd.DataFrame:
    """Return the newest audited actions of ``ws`` (newest first), one row per run or dry run.

    Parameters
    ----------
    ws
        The workspace.
    environment, company
        Only actions in this environment / company.
    limit
        Rows to return (``None``: all).

    Returns
    -------
    pandas.DataFrame
        action_id, at, who, environment, company, action, caption, backend, dry_run, targets (count),
        changed, planned, no_op, refused, failed, direction, selection (text), plan_file.
    """
    cond, params = scope(environment=environment, company=company)
    where = f" WHERE {cond}"
    page = f" LIMIT {int(limit)}" if limit is not None else ""
    df = ws.con.execute(
        f"""
        SELECT action_id, "at", who, environment, company, action, backend, dry_run,
               (SELECT count(*) FROM action_targets t WHERE t.action_id = actions.action_id) AS targets,
               {", ".join(f"coalesce(CAST(json_extract(outcome, '$.counts.{k}') AS BIGINT), 0) AS {k}"
                          for k in ("changed", "planned", "no_op", "refused", "failed"))},
               json_extract_string(parameters, '$.direction') AS direction,
               CAST(json_extract(parameters, '$.selection') AS VARCHAR) AS selection,
               json_extract_string(outcome, '$.plan_file') AS plan_file
        FROM actions{where} ORDER BY action_id DESC{page}
        """,
        params,
    ).df()
    captions = {**CAPTIONS, "delete-entries": "Delete Entries"}
    df.insert(df.columns.get_loc("action") + 1, "caption", df["action"].map(captions).fillna(df["action"]))
    df["selection_json"] = df["selection"]
    df["selection"] = df["selection"].map(describe_selection)
    return df


def action_targets(ws: Workspace, action_id: int) -> pd.DataFrame:
    """The targets of audited action ``action_id`` with their result and the coupling's state now.

    Columns: environment, company, table_id, integration_id, mapping_name, result, detail, bc_record_id,
    crm_description and state (``None`` where the coupling is gone, e.g. after Delete Records).
    """
    return ws.con.execute("""
        SELECT a.environment, a.company, t.table_id, CAST(t.integration_id AS VARCHAR) AS integration_id,
               t.mapping_name, t.result, t.detail, c.bc_record_id, c.crm_description,
               sa_coupling_state(c.bc_record_exists, c.crm_record_exists, c.skipped, c.last_synch_result,
                                 c.last_synch_crm_result) AS state
        FROM actions a JOIN action_targets t USING (action_id)
        LEFT JOIN couplings c ON c.environment = a.environment AND c.company = a.company
         AND c.table_id = t.table_id AND c.integration_id = t.integration_id
        WHERE a.action_id = ? ORDER BY t.table_id, t.integration_id""", [int(action_id)]).df()
