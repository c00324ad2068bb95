"""Coupled records with their state and latest error: what the triage panel lists and actions act on.

A :class:`Selection` is a stored filter (or explicit keys) over couplings (table 5331). Each coupling gets
two errors: ``error_message`` / ``failed_on`` exactly as page 5333 shows "Error Message" / "Failed On"
(spec §5.1: the error of the coupling's Last Synch. CRM Job ID when it is set, else of its Last Synch. Job
ID, and blank when that job logged none for the record), and ``latest_error`` / ``latest_error_on``, the
newest error of the record in either of its last jobs, whose signature and cause triage groups by.
Selections are resolved in SQL, never as row positions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from ..errors import SchemaError
from ..schema import FIDELITY_PAGE
from ..sql import COUPLING_STATES, lit, scope
from ..workspace import Workspace
from .causes import CAUSES
from .signatures import error_text_sql

STATES = COUPLING_STATES
KEY = ("environment", "company", "table_id", "integration_id")

def local_record_sql(alias: str = "") -> str:
    """SQL of the BC record a ``job_errors`` row is about (the workspace macro ``sa_local_record``).

    The source, unless the source is a Dataverse table in any language (spec §2); blanks as NULL.

    Examples
    --------
    >>> local_record_sql("e")
    'sa_local_record(e.source_table, e.source_record_id, e.destination_record_id)'
    """
    a = f"{alias}." if alias else ""
    return f"sa_local_record({a}source_table, {a}source_record_id, {a}destination_record_id)"


LOCAL_RECORD_SQL = local_record_sql()  # unqualified, for queries over job_errors alone

_COLUMNS = """
    c.environment, c.company, c.table_id, c.integration_id, c.crm_id,
    sa_mapping_name(m.name, c.table_id) AS mapping_name,
    c.bc_record_id, c.crm_description, coalesce(c.skipped, false) AS skipped,
    c.bc_record_exists, c.crm_record_exists, c.last_synch_result, c.last_synch_crm_result,
    c.last_synch_job_id, c.last_synch_crm_job_id, c.inferred,
    sa_coupling_state(c.bc_record_exists, c.crm_record_exists, c.skipped, c.last_synch_result,
                      c.last_synch_crm_result) AS state,
    p.error_message, p.failed_on,
    e.error_no, e.logged_at AS latest_error_on, e.error_message AS latest_error, e.signature, e.cause,
    e.job_id AS error_job_id, e.parent AS latest_parent
"""


@dataclass(frozen=True)
class Selection:
    """Which coupled records to list or act on: explicit keys, or a filter kept as a filter.

    Parameters
    ----------
    environment, company
        Limit to one environment / company.
    mapping
        Integration table mapping name (e.g. ``CUSTOMER``).
    table_id
        BC table number (alternative to ``mapping``).
    state
        One state per coupling (the ``state`` column, so the states' counts add up): ``broken`` (one
        side's record no longer exists, skipped or not), ``skipped`` (Skipped = true, both records
        there), ``failed`` (last result Failure, not skipped) or ``ok``.
    cause, signature
        Of the record's latest error.
    since, until
        Inclusive bounds on the latest error's Date/Time.
    search
        Case-insensitive text in the record id, the Dataverse description, the latest error or the page's
        Error Message.
    parent
        The parent record the latest error names (``Salesperson/Purchaser: NEWSP``), as the dependency
        graph has it.
    keys
        Explicit ``(environment, company, table_id, integration_id)`` keys; combined with the filters.
    finding
        Code of the diagnosis finding this selection came from (kept for the audit trail).
    """

    environment: str | None = None
    company: str | None = None
    mapping: str | None = None
    table_id: int | None = None
    state: str | None = None
    cause: str | None = None
    signature: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    search: str | None = None
    parent: str | None = None
    keys: tuple[tuple[str, str, int, str], ...] | None = None
    finding: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in STATES:
            raise SchemaError(f"Unknown state {self.state!r}; use one of {STATES}.")

    def replace(self, **changes: Any) -> Selection:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The selection as JSON-ready data (for the audit trail and plan files)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        for k in ("since", "until"):
            if k in out:
                out[k] = pd.Timestamp(out[k]).isoformat()
        if "keys" in out:
            out["keys"] = [list(map(str, k)) for k in out["keys"]]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        for k in ("since", "until"):
            if data.get(k) is not None:
                data[k] = pd.Timestamp(data[k]).to_pydatetime()
        if data.get("keys") is not None:
            data["keys"] = tuple((e, c, int(t), str(i)) for e, c, t, i in data["keys"])
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SchemaError(f"Unknown selection field(s) {sorted(unknown)}.")
        return cls(**data)

    def describe(self) -> str:
        """A short human description, e.g. ``CUSTOMER, skipped, cause deleted``."""
        parts = [f"{k} {v}" if k not in ("mapping", "state") else str(v)
                 for k, v in self.to_dict().items() if k not in ("keys", "finding")]
        if self.keys is not None:
            parts.append(f"{len(self.keys)} chosen record(s)")
        return ", ".join(parts) or "all coupled records"


def ensure_latest_errors(ws: Workspace) -> tuple[str, str]:
    """Build (or reuse) the temp tables of each coupling's errors; return ``(latest, page)``, their names.

    *latest*: the newest error of the coupling's BC record in its Last Synch. CRM Job ID or Last Synch.
    Job ID (either direction), so a record that synchronized since has none; where neither job is known
    (history from page exports), the record's newest error. *page*: page 5333's Error Message / Failed
    On as BC's ``GetLatestError`` computes them (spec §5.1): only the Last Synch. CRM Job ID when it is
    set, else the Last Synch. Job ID; the 5339 Message (250 characters) of that job's latest error for
    the record; none once the job's source record is gone (BC looks it up first: the BC record for a job
    to Dataverse, the Dataverse row for one from it);
    where neither job is known, what a loaded page 5333 export showed. Rebuilt only when the workspace
    changed (:meth:`Workspace.memo`), so paging a panel over a million errors costs one join.
    """
    return ws.memo("latest_errors", None, lambda: _build_latest_errors(ws))


def _build_latest_errors(ws: Workspace) -> tuple[str, str]:
    """Create the two temp tables :func:`ensure_latest_errors` names (SQL over the whole history)."""
    text = error_text_sql("je")
    ws.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _page_errors AS
        SELECT c.environment, c.company, c.table_id, c.integration_id,
               arg_max(coalesce(je.message, left({text}, 250)), je.error_no) AS error_message,
               arg_max(je.logged_at, je.error_no) AS failed_on
        FROM couplings c JOIN job_errors je ON je.environment = c.environment AND je.company = c.company
         AND je.job_id = coalesce(c.last_synch_crm_job_id, c.last_synch_job_id)
         AND {local_record_sql("je")} = c.bc_record_id
        WHERE CASE WHEN c.last_synch_crm_job_id IS NOT NULL THEN c.bc_record_exists IS NOT false
                   ELSE c.crm_record_exists IS NOT false END
        GROUP BY ALL
        UNION ALL
        SELECT s.environment, s.company, s.table_id, s.integration_id,
               any_value(nullif(s.error_message, '')), any_value(s.failed_on)
        FROM skipped_records s JOIN couplings c ON c.environment = s.environment AND c.company = s.company
         AND c.table_id = s.table_id AND c.integration_id = s.integration_id
        WHERE c.last_synch_crm_job_id IS NULL AND c.last_synch_job_id IS NULL
        GROUP BY ALL""")
    # every error with its text, signature, cause and parent (both queries below read it)
    errors = f"""
            SELECT je.environment, je.company, je.error_no, je.logged_at, je.job_id, {text} AS error_message,
                   coalesce(je.signature, s.signature) AS signature, coalesce(je.cause, s.cause) AS cause,
                   sa_record_id(s.parent_table, s.parent_key) AS parent, {local_record_sql("je")} AS record_id
            FROM job_errors je LEFT JOIN signatures s ON s.error_message = {text}"""
    ws.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _latest_errors AS
        WITH e AS ({errors})
        SELECT c.environment, c.company, c.table_id, c.integration_id,
               max(e.error_no) AS error_no, arg_max(e.logged_at, e.error_no) AS logged_at,
               arg_max(e.error_message, e.error_no) AS error_message, arg_max(e.signature, e.error_no) AS signature,
               arg_max(e.cause, e.error_no) AS cause, arg_max(e.parent, e.error_no) AS parent,
               arg_max(e.job_id, e.error_no) AS job_id
        FROM couplings c JOIN e ON e.environment = c.environment AND e.company = c.company
         AND e.record_id = c.bc_record_id
         AND (e.job_id IN (c.last_synch_crm_job_id, c.last_synch_job_id)
              OR (c.last_synch_crm_job_id IS NULL AND c.last_synch_job_id IS NULL))
        GROUP BY ALL""")
    if ws.con.execute(f"SELECT count(*) FROM couplings WHERE fidelity = {FIDELITY_PAGE}").fetchall()[0][0]:
        # couplings made from page 5333 lines (no record ids, no job ids): the line's error, and the page 5339
        # error it shows (same second, same first 250 characters) for the full text and the job
        ws.con.execute(f"""
            INSERT INTO _latest_errors
            WITH pm AS (
                SELECT c.environment, c.company, c.table_id, c.integration_id, s.error_message AS text, s.failed_on
                FROM couplings c JOIN skipped_records s ON s.environment = c.environment AND s.company = c.company
                 AND s.table_id = c.table_id AND s.integration_id = c.integration_id
                WHERE c.fidelity = {FIDELITY_PAGE} AND coalesce(s.error_message, '') <> ''
                  AND NOT EXISTS (SELECT 1 FROM _latest_errors l WHERE l.environment = c.environment  -- (one each)
                                  AND l.company = c.company AND l.table_id = c.table_id
                                  AND l.integration_id = c.integration_id)),
            e AS (SELECT * FROM ({errors}) WHERE logged_at IN (SELECT failed_on FROM pm))
            SELECT pm.environment, pm.company, pm.table_id, pm.integration_id, max(e.error_no),
                   coalesce(arg_max(e.logged_at, e.error_no), any_value(pm.failed_on)),
                   coalesce(arg_max(e.error_message, e.error_no), any_value(pm.text)),
                   coalesce(arg_max(e.signature, e.error_no), any_value(g.signature)),
                   coalesce(arg_max(e.cause, e.error_no), any_value(g.cause)),
                   coalesce(arg_max(e.parent, e.error_no), any_value(sa_record_id(g.parent_table, g.parent_key))),
                   arg_max(e.job_id, e.error_no)
            FROM pm LEFT JOIN e ON e.environment = pm.environment AND e.company = pm.company
             AND e.logged_at = pm.failed_on AND left(e.error_message, 250) = left(pm.text, 250)
            LEFT JOIN signatures g ON g.error_message = pm.text
            GROUP BY ALL""")
    return "_latest_errors", "_page_errors"


def _where(sel: Selection) -> tuple[str, list[Any]]:
    """WHERE clause and parameters of a selection (couplings ``c``, latest errors ``e``, mappings ``m``)."""
    extra, params = [], []
    for col, value in (("c.table_id", sel.table_id), ("e.cause", sel.cause), ("e.signature", sel.signature),
                       ("e.parent", sel.parent), ("sa_mapping_name(m.name, c.table_id)", sel.mapping)):
        if value is not None:
            extra.append(f"{col} = ?")
            params.append(value)
    extra += [_STATE_FILTERS[sel.state]] if sel.state is not None else []
    if sel.search:
        # literal text, any case ('%' and '_' are characters here, not LIKE wildcards)
        extra.append("coalesce(contains(lower(c.bc_record_id), lower(?)) "
                     "OR contains(lower(c.crm_description), lower(?)) OR contains(lower(e.error_message), lower(?)) "
                     "OR contains(lower(p.error_message), lower(?)), false)")
        params += [sel.search] * 4
    cond, scoped = scope("c", environment=sel.environment, company=sel.company)
    times, timed = scope("e", time_column="logged_at", since=sel.since, until=sel.until)
    clauses = [c for c in (cond, times) if c != "true"] + extra
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", scoped + timed + params


# one state per coupling, as the state column shows it (so the state counts add up to the records)
_STATE_SQL = ("sa_coupling_state(c.bc_record_exists, c.crm_record_exists, c.skipped, c.last_synch_result, "
              "c.last_synch_crm_result)")
_STATE_FILTERS = {s: f"{_STATE_SQL} = '{s}'" for s in STATES}


def records_relation(ws: Workspace, sel: Selection | None = None) -> tuple[str, list[Any]]:
    """Return ``(sql, params)`` selecting the records of ``sel`` with their state and latest error.

    Explicit keys travel as list parameters of the SQL itself (one join, and a relation built from it
    keeps its own keys whatever is built after it).
    """
    sel = sel or Selection()
    latest, page = ensure_latest_errors(ws)
    where, params = _where(sel)
    keys_join, key_params = "", []
    if sel.keys is not None:
        columns = list(zip(*sel.keys)) if sel.keys else [(), (), (), ()]
        key_params = [[str(v) for v in columns[0]], [str(v) for v in columns[1]], [int(v) for v in columns[2]],
                      [str(v) for v in columns[3]]]
        keys_join = ("JOIN (SELECT unnest(?::VARCHAR[]) AS environment, unnest(?::VARCHAR[]) AS company, "
                     "unnest(?::INTEGER[]) AS table_id, TRY_CAST(unnest(?::VARCHAR[]) AS UUID) AS integration_id) k "
                     "ON k.environment = c.environment AND k.company = c.company "
                     "AND k.table_id = c.table_id AND k.integration_id = c.integration_id ")
        params = key_params + params
    sql = (
        f"SELECT {_COLUMNS} FROM couplings c {keys_join}"
        "LEFT JOIN (SELECT environment, company, table_id, min(name) AS name FROM mappings GROUP BY ALL) m "
        "ON m.environment = c.environment AND m.company = c.company AND m.table_id = c.table_id "
        f"LEFT JOIN {latest} e ON e.environment = c.environment AND e.company = c.company "
        f"AND e.table_id = c.table_id AND e.integration_id = c.integration_id "
        f"LEFT JOIN {page} p ON p.environment = c.environment AND p.company = c.company "
        f"AND p.table_id = c.table_id AND p.integration_id = c.integration_id{where}"
    )
    return sql, params


def records(ws: Workspace, sel: Selection | None = None, *, order_by: str = "-latest_error_on",
            limit: int | None = 100, offset: int = 0) -> pd.DataFrame:
    """Return one page of the records of ``sel``.

    Each with its state, page 5333's Error Message / Failed On, and the latest error with its signature
    and cause.

    Parameters
    ----------
    ws
        The workspace.
    sel
        The selection (default: every coupling).
    order_by
        A column of the result; ``-`` prefix for descending. The key is appended for stable pages.
    limit, offset
        The page; ``limit=None`` returns every row.
    """
    sql, params = records_relation(ws, sel)
    page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
    return ws.con.execute(f"SELECT * FROM ({sql}) ORDER BY {order_sql(order_by)}{page}", params).df()


ORDERABLE = ("failed_on", "latest_error_on", "bc_record_id", "mapping_name", "state", "signature", "cause",
             "crm_description", "error_no", "table_id")


def order_sql(order_by: str) -> str:
    """The ORDER BY of records by a column (``-`` prefix: descending), NULLs last, then the key.

    Causes are ordered by their titles, as the list and the exports show them, not by their codes.

    Examples
    --------
    >>> order_sql("-error_no")
    '"error_no" DESC NULLS LAST, environment, company, table_id, integration_id'
    """
    col = order_by.lstrip("-")
    if col not in ORDERABLE:
        raise SchemaError(f"Cannot order records by {col!r}; use one of {sorted(ORDERABLE)}.")
    expr = f'"{col}"'
    if col == "cause":
        by_title = sorted(CAUSES, key=lambda code: CAUSES[code].title.casefold())
        expr = f"list_position([{', '.join(lit(c) for c in by_title)}], cause)"
    return f'{expr} {"DESC" if order_by.startswith("-") else "ASC"} NULLS LAST, ' + ", ".join(KEY)


def count_records(ws: Workspace, sel: Selection | None = None) -> int:
    """Return how many records ``sel`` matches."""
    sql, params = records_relation(ws, sel)
    return ws.con.execute(f"SELECT count(*) FROM ({sql})", params).fetchall()[0][0]


def facet_counts(ws: Workspace, sel: Selection | None, column: str, *, limit: int = 50) -> pd.DataFrame:
    """Count the records of ``sel`` per value of ``column`` (e.g. ``cause``, ``signature``, ``state``)."""
    if column not in {"mapping_name", "state", "cause", "signature", "environment", "company"}:
        raise SchemaError(f"Cannot count records by {column!r}.")
    sql, params = records_relation(ws, sel)
    return ws.con.execute(
        f'SELECT "{column}" AS value, count(*) AS records FROM ({sql}) GROUP BY ALL ORDER BY records DESC, value '
        f"LIMIT {int(limit)}", params).df()


def selection_relation(ws: Workspace, sel: Selection) -> duckdb.DuckDBPyRelation:
    """The records of ``sel`` as a DuckDB relation of the workspace connection (for set-based actions)."""
    sql, params = records_relation(ws, sel)
    return ws.con.sql(sql, params=params)


def selection_json(sel: Selection) -> str:
    """The selection as a JSON string."""
    return json.dumps(sel.to_dict(), sort_keys=True)


def acted_on_sql() -> str:
    """SQL of the couplings an audited action really changed: one row per (action run, coupling).

    Columns: environment, company, acted_at, action, action_id, table_id, integration_id (text). Dry runs,
    plan-file runs (they change nothing until an admin applies them in BC) and refused or no-op targets
    are left out.
    """
    return """
        SELECT a.environment, a.company, a."at" AS acted_at, a.action, a.action_id, t.table_id,
               CAST(t.integration_id AS VARCHAR) AS integration_id
        FROM actions a JOIN action_targets t USING (action_id)
        WHERE NOT coalesce(a.dry_run, false) AND coalesce(a.backend, '') <> 'plan' AND t.result = 'changed'
    """
