"""Which parent records block which children: the "must be coupled" family as a graph.

Errors such as "Salesperson/Purchaser NEWSP must be coupled to a Dataverse row." or "Cannot find the
currency with the value 'NOK' in Dataverse." name the record that blocks the one being synchronized.
The signature catalogue extracts that parent (``signatures.parent_table/parent_key``); this module counts
the children each parent blocks and orders the fixes: parents of the mappings others depend on first
(the mappings' Dependency Filter, spec §4.1), then by how many records each unblocks.
"""

from __future__ import annotations

import pandas as pd

from ..sql import scope
from ..workspace import Workspace
from .records import local_record_sql
from .signatures import error_text_sql


def errors_with_signatures_sql(where: str = "") -> str:
    """SQL of job_errors joined to their signature and job: one row per error with mapping and record.

    Columns: environment, company, error_no, logged_at, job_id, mapping_name, synch_direction, job_start,
    job_queue_log_entry_no, record_id (the BC record, else the source), text, signature, template, cause,
    parent_table, parent_key.
    """
    return f"""
        SELECT je.environment, je.company, je.error_no, je.logged_at, je.job_id,
               coalesce(j.mapping_name, '(unknown)') AS mapping_name, j.synch_direction,
               j.start_datetime AS job_start, j.job_queue_log_entry_no,
               coalesce({local_record_sql("je")},
                        je.source_record_id, 'error ' || je.error_no) AS record_id,
               {error_text_sql("je")} AS text,
               coalesce(s.signature, je.signature, '(unclassified)') AS signature, s.template,
               coalesce(s.cause, je.cause, 'unclassified') AS cause, s.parent_table, s.parent_key
        FROM job_errors je
        LEFT JOIN signatures s ON s.error_message = {error_text_sql("je")}
        LEFT JOIN jobs j ON j.environment = je.environment AND j.company = je.company AND j.job_id = je.job_id
        {where}
    """


def dependency_graph(ws: Workspace, *, environment: str | None = None, company: str | None = None) -> pd.DataFrame:
    """Parents named by errors and the children they block, in the order to fix them.

    Returns
    -------
    pandas.DataFrame
        environment, company, parent_table, parent_key, parent_record_id, parent_mapping, child_mapping,
        blocked_records, errors, first_seen, last_seen, cause, parent_state (``not coupled``, ``broken``,
        ``skipped``, ``failed``, ``ok`` or ``unknown`` from the current couplings), still_blocking
        (children whose latest error still names this parent), fix_order (1 = first: parents still
        blocking before those fixed since, then parents of the mappings others depend on first).
    """
    cond, params = scope("je", environment=environment, company=company)
    where = f"WHERE {cond}"
    df = ws.con.execute(f"""
        WITH e AS ({errors_with_signatures_sql(where)}),
        p AS (
            SELECT environment, company, parent_table, parent_key,
                   sa_record_id(parent_table, parent_key) AS parent_record_id, mapping_name AS child_mapping,
                   count(DISTINCT record_id) AS blocked_records, count(*) AS errors,
                   min(logged_at) AS first_seen, max(logged_at) AS last_seen, mode(cause) AS cause
            FROM e
            WHERE parent_key IS NOT NULL AND record_id <> sa_record_id(parent_table, parent_key)
            GROUP BY ALL),
        latest AS (
            SELECT environment, company, record_id, arg_max(sa_record_id(parent_table, parent_key), error_no) AS names
            FROM e GROUP BY ALL),
        still AS (
            SELECT environment, company, names AS parent_record_id, count(*) AS still_blocking
            FROM latest WHERE names IS NOT NULL GROUP BY ALL),
        m AS (SELECT environment, company, table_caption, min(name) AS parent_mapping,
                     any_value(dependency_filter) AS dependency_filter
              FROM mappings GROUP BY ALL),
        c AS (SELECT environment, company, bc_record_id,
                     sa_coupling_state(bc_record_exists, crm_record_exists, skipped, last_synch_result,
                                       last_synch_crm_result) AS parent_state
              FROM couplings)
        SELECT p.*, m.parent_mapping,
               coalesce(c.parent_state, CASE WHEN m.parent_mapping IS NULL THEN 'unknown' ELSE 'not coupled' END)
                   AS parent_state,
               coalesce(still.still_blocking, 0) AS still_blocking
        FROM p
        LEFT JOIN m ON m.environment = p.environment AND m.company = p.company AND m.table_caption = p.parent_table
        LEFT JOIN c ON c.environment = p.environment AND c.company = p.company AND c.bc_record_id = p.parent_record_id
        LEFT JOIN still ON still.environment = p.environment AND still.company = p.company
                       AND still.parent_record_id = p.parent_record_id
    """, params).df()
    if df.empty:
        return df.assign(fix_order=pd.Series(dtype="int64"))
    depth = _mapping_depth(ws)
    df["_depth"] = [depth.get((e, c, m), 0) for e, c, m in zip(df["environment"], df["company"], df["parent_mapping"])]
    # a parent coupled since, or one no child's latest error names any more, is not the one to fix first
    df["_done"] = (df["parent_state"] == "ok") | (df["still_blocking"] == 0)
    df = df.sort_values(["_done", "_depth", "still_blocking", "blocked_records", "parent_record_id"],
                        ascending=[True, True, False, False, True], kind="stable")
    df["fix_order"] = range(1, len(df) + 1)
    return df.drop(columns=["_depth", "_done"]).reset_index(drop=True)


def _mapping_depth(ws: Workspace) -> dict[tuple[str, str, str], int]:
    """How deep each mapping sits in the Dependency Filter chains (0 = depends on nothing)."""
    rows = ws.con.execute("SELECT environment, company, name, coalesce(dependency_filter, '') FROM mappings").fetchall()
    deps = {(e, c, n): [d for d in f.split("|") if d] for e, c, n, f in rows}
    memo: dict[tuple[str, str, str], int] = {}

    def depth(key: tuple[str, str, str], seen: frozenset = frozenset()) -> int:
        if key in memo:
            return memo[key]
        if key in seen:  # a cycle in user-defined filters: stop counting
            return 0
        e, c, _ = key
        d = max((1 + depth((e, c, p), seen | {key}) for p in deps.get(key, []) if (e, c, p) in deps), default=0)
        memo[key] = d
        return d

    return {k: depth(k) for k in deps}
