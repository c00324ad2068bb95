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
from typing import Any

import duckdb
import pandas as pd

from ..sql import registered, scope
from ..workspace import Workspace
from .base import CAPTIONS


def current_user() -> str:
    """The operating-system user name (the audit's default ``who``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user database entry (some containers)
        return "unknown"


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
    return df
