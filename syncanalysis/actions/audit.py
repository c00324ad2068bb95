"""The audit trail (table ``actions``): one row per run or dry run, written in the run's transaction.

Targets and outcomes are stored grouped, so a run on 100,000 couplings is one compact row built in
SQL: ``targets`` = ``{"count", "tables": [{"table_id", "mapping", "integration_ids"}]}``; ``outcome`` =
``{"counts", "results": [{"table_id", "result", "detail", "integration_ids"}], "jobs", "plan_file",
"notes"}``. Parameters hold the direction, the selection (as a filter) and parents-first. Never a secret.
"""

from __future__ import annotations

import datetime as dt
import getpass
import itertools
import json
from typing import Any

import duckdb
import pandas as pd

from ..workspace import Workspace
from .base import CAPTIONS

_names = itertools.count()


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

    ``outcome`` needs the columns table_id, mapping_name, integration_id, result and detail; ``extra``
    adds keys to the outcome JSON (e.g. the twin's clock when the action ran).
    """
    n = next(_names)
    view = f"_audit_outcome_{n}"
    frame = outcome[["table_id", "mapping_name", "integration_id", "result", "detail"]].astype(
        {"table_id": "int64", "integration_id": str, "mapping_name": object, "result": str, "detail": object})
    con.register(view, frame)
    try:
        action_id = con.execute("SELECT coalesce(max(action_id), 0) + 1 FROM actions").fetchall()[0][0]
        meta = {"counts": counts, "jobs": job_ids or [], "plan_file": plan_file, "notes": notes or [], **(extra or {})}
        con.execute(
            f"""
            INSERT INTO actions
            SELECT ?, ?, ?, ?, ?, ?,
                   (SELECT to_json({{'count': (SELECT count(*) FROM {view}),
                                    'tables': coalesce(list({{'table_id': table_id, 'mapping': mapping,
                                                             'integration_ids': ids}} ORDER BY table_id), [])}})
                    FROM (SELECT table_id, any_value(mapping_name) AS mapping,
                                 list(integration_id ORDER BY integration_id) AS ids
                          FROM {view} GROUP BY table_id)),
                   ?, ?, ?,
                   (SELECT json_merge_patch(?::JSON, to_json({{'results': coalesce(list({{
                           'table_id': table_id, 'result': result, 'detail': detail, 'integration_ids': ids}}
                           ORDER BY table_id, result, detail), [])}}))
                    FROM (SELECT table_id, result, detail, list(integration_id ORDER BY integration_id) AS ids
                          FROM {view} GROUP BY ALL))
            """,
            [action_id, plan.environment, plan.company, dt.datetime.now(dt.UTC).replace(tzinfo=None), who,
             plan.action, json.dumps(plan.parameters, default=str), plan.backend, dry_run,
             json.dumps(meta, default=str)],
        )
    finally:
        con.unregister(view)
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
    clauses, params = [], []
    for col, value in (("environment", environment), ("company", company)):
        if value is not None:
            clauses.append(f"{col} = ?")
            params.append(value)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    page = f" LIMIT {int(limit)}" if limit is not None else ""
    df = ws.con.execute(
        f"""
        SELECT action_id, "at", who, environment, company, action, backend, dry_run,
               CAST(json_extract(targets, '$.count') AS BIGINT) AS targets,
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
