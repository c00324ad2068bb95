"""Linking what page exports leave unlinked (they carry no GUIDs), in SQL over one environment/company.

* page 5338 rows get the job ID of the job they show (same mapping, direction, type and start second,
  counters as tie-break) or a deterministic uuid5 marked ``jobs.inferred``; when the real rows arrive
  from a table export, matching inferred rows are deleted and their errors re-pointed
  (:func:`resolve_inferred_jobs`);
* page 5339 rows are linked to the one job that spans their time (``job_errors.job_inferred``);
* couplings of a table 5331 export learn their BC record id from table 5339 errors whose Dataverse-side
  record id carries their CRM ID (``couplings.inferred``);
* page 5333 lines are linked to couplings by table and description (``skipped_records.link_inferred``),
  and fill the couplings' Skipped / record-exists flags that are still empty;
* page 5333 lines of a table no table 5331 export has couplings of become couplings themselves (page
  fidelity, a uuid5 Integration ID, ``inferred``), so the triage lists them; they give way to the table's
  couplings once an export of table 5331 is loaded (:func:`couple_skipped_records`).

Every statement only fills what is empty, so running the linking again changes nothing.
"""

from __future__ import annotations

import uuid

import duckdb

from ..schema import FIDELITY_PAGE, FIDELITY_TABLE
from ..sql import lit, scope
from . import captions as cap

# Namespace of the job IDs made up for page 5338 rows (uuid5 of environment|company|mapping|direction|
# type|start second|ordinal): the same page row always gets the same ID, in any language.
JOB_NAMESPACE = uuid.UUID("6f1b1c2e-1f3a-5e0b-9a57-3c5e1d1a7b10")

# Namespace of the Integration IDs made up for page 5333 lines (uuid5 of environment|company|table|description|
# coupled to): reloading the page gives the same records.
RECORD_NAMESPACE = uuid.UUID("2c9d4b7e-8a61-5f3c-b0d2-71e5a9c3f4d8")

_COUNTERS = ("inserted", "modified", "deleted", "unchanged", "failed", "skipped", "uncoupled", "coupled")



def scope_sql(env: str, company: str, alias: str = "") -> str:
    """The predicate limiting a table (``alias``) to one environment and company, values inlined.

    Inlined rather than parameters as it goes into view-like SQL texts that are composed and nested.
    """
    return scope(alias, environment=env, company=company, inline=True)[0]

def uuid5_sql(name_sql: str, namespace: uuid.UUID = JOB_NAMESPACE) -> str:
    """SQL computing ``uuid.uuid5(namespace, name)`` of a VARCHAR expression (same value as Python)."""
    h = f"sha1(unhex('{namespace.hex}') || encode({name_sql}))"
    return ("list_transform([" + h + "], lambda _h: CAST(substr(_h, 1, 8) || '-' || substr(_h, 9, 4) || '-5' || "
            "substr(_h, 14, 3) || '-' || substr('89ab', ((strpos('0123456789abcdef', substr(_h, 17, 1)) - 1) & 3) + 1, 1)"
            " || substr(_h, 18, 3) || '-' || substr(_h, 21, 12) AS UUID))[1]")


def _order(alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return ", ".join([f"{a}{c} NULLS FIRST" for c in _COUNTERS] + [f"date_trunc('second', {a}finish_datetime) NULLS FIRST"])


def pair_jobs_sql(rows: str, jobs: str) -> str:
    """SQL pairing each row of ``rows`` with at most one job of ``jobs`` (both relations or subqueries).

    ``rows`` has ``_pid``, ``mapping_name``, ``synch_direction``, ``type``, ``start_datetime`` and the
    counters; ``jobs`` the same with ``job_id``. Rows and jobs are grouped by type and start second, and
    by mapping and direction where the row knows them (page 5338 shows no mapping for coupling runs);
    within a group they are paired in counter order. Returns ``(_pid, job_id)``.
    """
    passes = [
        ("mapping_name IS NOT NULL AND synch_direction IS NOT NULL", ["mapping_name", "synch_direction"]),
        ("mapping_name IS NOT NULL AND synch_direction IS NULL", ["mapping_name"]),
        ("mapping_name IS NULL", []),
    ]
    ctes, parts = [], []
    for i, (cond, extra) in enumerate(passes):
        key = ["type", "date_trunc('second', start_datetime)"] + extra
        part = ", ".join(key)
        jkey = " AND ".join(f"r.{k} IS NOT DISTINCT FROM j.{k}" for k in ["type", "_sec"] + extra + ["_k"])
        used = " UNION ALL ".join(f"SELECT job_id FROM _pair{k}" for k in range(i)) or "SELECT NULL::UUID LIMIT 0"
        ctes.append(
            f"_pr{i} AS (SELECT *, date_trunc('second', start_datetime) AS _sec, "
            f"row_number() OVER (PARTITION BY {part} ORDER BY {_order()}, _pid) AS _k FROM {rows} WHERE {cond}), "
            f"_pj{i} AS (SELECT *, date_trunc('second', start_datetime) AS _sec, "
            f"row_number() OVER (PARTITION BY {part} ORDER BY {_order()}, coalesce(inferred, false), job_id) AS _k "
            f"FROM {jobs} WHERE {'mapping_name IS NOT NULL AND ' if extra else ''}"
            f"job_id NOT IN ({used})), "
            f"_pair{i} AS (SELECT r._pid, j.job_id FROM _pr{i} r JOIN _pj{i} j ON {jkey})"
        )
        parts.append(f"SELECT * FROM _pair{i}")
    return "WITH " + ", ".join(ctes) + " " + " UNION ALL ".join(parts)


def resolve_inferred_jobs(con: duckdb.DuckDBPyConnection, env: str, company: str) -> tuple[int, int]:
    """Delete inferred (page) jobs that a table export now provides, re-pointing their errors.

    Returns ``(jobs deleted, job_errors re-pointed)``.
    """
    scope = scope_sql(env, company)
    n_inf, n_real = con.execute(
        f"SELECT count(*) FILTER (inferred), count(*) FILTER (inferred IS NOT TRUE) FROM jobs WHERE {scope}"
    ).fetchall()[0]
    if not n_inf or not n_real:
        return 0, 0
    rows = f"(SELECT job_id AS _pid, * EXCLUDE (job_id) FROM jobs WHERE {scope} AND inferred)"
    real = f"(SELECT * FROM jobs WHERE {scope} AND inferred IS NOT TRUE)"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _job_swap AS {pair_jobs_sql(rows, real)}")
    try:
        moved = con.execute(
            f"UPDATE job_errors e SET job_id = s.job_id FROM _job_swap s WHERE {scope_sql(env, company, 'e')} "
            "AND e.job_id = s._pid").fetchall()[0][0]
        deleted = con.execute(
            f"DELETE FROM jobs WHERE {scope} AND inferred AND job_id IN (SELECT _pid FROM _job_swap)").fetchall()[0][0]
    finally:
        con.execute("DROP TABLE IF EXISTS _job_swap")
    return int(deleted), int(moved)


def jobs_spanning_sql(errors: str, env: str, company: str) -> str:
    """SQL of ``(error_no, job_id)`` for errors (``error_no``, ``logged_at``) that exactly one job spans."""
    return (
        f"SELECT e.error_no, any_value(j.job_id) AS job_id FROM {errors} e JOIN jobs j "
        f"ON {scope_sql(env, company, 'j')} "
        "AND date_trunc('second', j.start_datetime) <= e.logged_at AND e.logged_at <= j.finish_datetime "
        "GROUP BY e.error_no HAVING count(*) = 1"
    )


def link_errors_to_jobs(con: duckdb.DuckDBPyConnection, env: str, company: str) -> int:
    """Fill the job of errors without one (page 5339 rows) where exactly one job spans their time."""
    scope = scope_sql(env, company)
    errors = f"(SELECT error_no, logged_at FROM job_errors WHERE {scope} AND job_id IS NULL AND logged_at IS NOT NULL)"
    if not con.execute(f"SELECT count(*) FROM {errors}").fetchall()[0][0]:
        return 0
    return int(con.execute(
        f"UPDATE job_errors t SET job_id = m.job_id, job_inferred = true FROM ({jobs_spanning_sql(errors, env, company)}) m "
        f"WHERE {scope_sql(env, company, 't')} AND t.error_no = m.error_no "
        "AND t.job_id IS NULL").fetchall()[0][0])


def caption_table_sql() -> str:
    """SQL VALUES of (normalized caption, table id) for the known BC tables in every language."""
    rows = [(k, v) for k, v in cap.caption_to_table().items() if not cap.is_dataverse_table(v)]
    return "(SELECT * FROM (VALUES " + ", ".join(f"({lit(k)}, {v})" for k, v in rows) + ") t(caption, table_id))"


def derive_bc_record_ids(con: duckdb.DuckDBPyConnection, env: str, company: str) -> int:
    """Fill ``couplings.bc_record_id`` (and mark ``inferred``) from table 5339 errors of the coupling's CRM ID.

    An error whose Dataverse-side record id is ``<Dataverse table>: {CRM ID}`` names the BC record on its
    other side; the latest such error wins. Returns the number of couplings filled.
    """
    scope = scope_sql(env, company)
    todo = con.execute(f"SELECT count(*) FROM couplings WHERE {scope} AND bc_record_id IS NULL").fetchall()[0][0]
    if not todo:
        return 0
    src_dv, dst_dv = "sa_is_dataverse_caption(source_table)", "sa_is_dataverse_caption(destination_table)"
    sql = f"""
        WITH e AS (
            SELECT error_no,
                   CASE WHEN {src_dv} THEN source_key ELSE destination_key END AS dv_key,
                   CASE WHEN {src_dv} THEN destination_record_id ELSE source_record_id END AS bc_rec,
                   CASE WHEN {src_dv} THEN destination_table ELSE source_table END AS bc_table
            FROM job_errors
            WHERE {scope} AND ({src_dv} OR {dst_dv}) AND NOT ({src_dv} AND {dst_dv})
        ), d AS (
            SELECT TRY_CAST(trim(e.dv_key, '{{}} ') AS UUID) AS crm_id, e.bc_rec, t.table_id, e.error_no
            FROM e LEFT JOIN {caption_table_sql()} t ON t.caption = lower(e.bc_table)
            WHERE e.bc_rec IS NOT NULL AND e.bc_rec <> ''
        ), best AS (
            SELECT crm_id, table_id, arg_max(bc_rec, error_no) AS bc_rec FROM d WHERE crm_id IS NOT NULL GROUP BY ALL
        )
        UPDATE couplings c SET bc_record_id = b.bc_rec, inferred = true FROM best b
        WHERE {scope_sql(env, company, 'c')} AND c.bc_record_id IS NULL AND c.crm_id = b.crm_id
          AND (b.table_id IS NULL OR b.table_id = c.table_id)
    """
    return int(con.execute(sql).fetchall()[0][0])


# a coupling of a table 5331 export (or the twin), not one made from a page 5333 line
_FROM_TABLE = f"coalesce(fidelity, {FIDELITY_TABLE}) <> {FIDELITY_PAGE}"


def couplings_by_description_sql(env: str, company: str) -> str:
    """SQL of couplings unique per (table_id, key of bc_record_id): ``(table_id, description, integration_id, crm_id)``."""
    return (
        "SELECT table_id, sa_record_key(bc_record_id) AS description, "
        "any_value(integration_id) AS integration_id, any_value(crm_id) AS crm_id FROM couplings "
        f"WHERE {scope_sql(env, company)} AND {_FROM_TABLE} AND bc_record_id IS NOT NULL "
        "AND sa_record_key(bc_record_id) IS NOT NULL GROUP BY ALL HAVING count(*) = 1"
    )


def couplings_by_coupled_to_sql(env: str, company: str) -> str:
    """SQL of couplings unique per (table_id, crm_description): ``(table_id, coupled_to, integration_id, crm_id)``.

    Links a page 5333 line whose BC record is gone (blank Description) by its Coupled To name.
    """
    return (
        "SELECT table_id, crm_description AS coupled_to, any_value(integration_id) AS integration_id, "
        "any_value(crm_id) AS crm_id FROM couplings "
        f"WHERE {scope_sql(env, company)} AND {_FROM_TABLE} AND coalesce(crm_description, '') <> '' "
        "GROUP BY ALL HAVING count(*) = 1"
    )


def link_skipped_records(con: duckdb.DuckDBPyConnection, env: str, company: str) -> tuple[int, int]:
    """Link page 5333 lines to couplings and fill the couplings' empty flags from them.

    Returns ``(skipped_records linked, couplings filled)``.
    """
    scope = scope_sql(env, company)
    linked = 0
    if con.execute(f"SELECT count(*) FROM skipped_records WHERE {scope} AND integration_id IS NULL").fetchall()[0][0]:
        linked = con.execute(
            f"UPDATE skipped_records s SET integration_id = c.integration_id, crm_id = c.crm_id, link_inferred = true "
            f"FROM ({couplings_by_description_sql(env, company)}) c WHERE {scope_sql(env, company, 's')} "
            "AND s.integration_id IS NULL AND s.table_id = c.table_id AND s.description = c.description"
        ).fetchall()[0][0]
        linked += con.execute(  # a line whose BC record is gone has a blank Description: link it by Coupled To
            f"UPDATE skipped_records s SET integration_id = c.integration_id, crm_id = c.crm_id, link_inferred = true "
            f"FROM ({couplings_by_coupled_to_sql(env, company)}) c WHERE {scope_sql(env, company, 's')} "
            "AND s.integration_id IS NULL AND s.description = '' AND s.table_id = c.table_id "
            "AND s.coupled_to = c.coupled_to"
        ).fetchall()[0][0]
    filled = con.execute(f"""
        UPDATE couplings c SET skipped = coalesce(c.skipped, true),
               bc_record_exists = coalesce(c.bc_record_exists, s.record_exists),
               crm_record_exists = coalesce(c.crm_record_exists, s.coupled_record_exists),
               crm_description = coalesce(c.crm_description, nullif(s.coupled_to, '')),
               inferred = true
        FROM skipped_records s
        WHERE {scope_sql(env, company, 's')} AND c.environment = s.environment AND c.company = s.company
          AND c.table_id = s.table_id AND c.integration_id = s.integration_id
          AND (c.skipped IS NULL OR (c.bc_record_exists IS NULL AND s.record_exists IS NOT NULL)
               OR (c.crm_record_exists IS NULL AND s.coupled_record_exists IS NOT NULL)
               OR (c.crm_description IS NULL AND nullif(s.coupled_to, '') IS NOT NULL))
    """).fetchall()[0][0]
    return int(linked), int(filled)


def page_coupling_id_sql(env: str, company: str, table_id: str, description: str, coupled_to: str) -> str:
    """SQL of the Integration ID made up for a page 5333 line (uuid5 of its scope, table, description, coupled to)."""
    name = f"concat_ws('|', {lit(env)}, {lit(company)}, CAST({table_id} AS VARCHAR), {description}, {coupled_to})"
    return uuid5_sql(name, RECORD_NAMESPACE)


def tables_with_couplings_sql(env: str, company: str) -> str:
    """SQL of the table ids that have couplings of a table export (page lines of the others make their own)."""
    return f"(SELECT DISTINCT table_id FROM couplings WHERE {scope_sql(env, company)} AND {_FROM_TABLE})"


def couple_skipped_records(con: duckdb.DuckDBPyConnection, env: str, company: str) -> dict[str, int]:
    """Link page 5333 lines to couplings; make couplings of the lines of tables no table export has.

    A page line stands for a coupling BC has (Skipped, or one side deleted) but the page shows no GUIDs:
    where no table 5331 export has couplings of its table, the line becomes a coupling of page fidelity
    (Integration ID a uuid5 of the line, ``crm_id`` unknown, BC record id from table and description,
    Skipped, the page's record-exists flags, ``inferred``). Such couplings are made again on each load,
    so a table export loaded later replaces them: its couplings take the lines over and the made-up
    ones are deleted. Returns the counts of what changed: lines ``linked`` to table couplings, table
    couplings ``filled`` from lines, couplings ``made`` and ``replaced`` (net of those made again).
    """
    scope = scope_sql(env, company)
    made_before = con.execute(f"SELECT count(*) FROM couplings WHERE {scope} AND NOT {_FROM_TABLE}").fetchall()[0][0]
    if made_before:  # release the lines of made-up couplings, so they link to table couplings where there are some now
        con.execute(f"""
            UPDATE skipped_records s SET integration_id = NULL, crm_id = NULL, link_inferred = NULL FROM couplings c
            WHERE {scope_sql(env, company, 's')} AND {scope_sql(env, company, 'c')} AND c.fidelity = {FIDELITY_PAGE}
              AND c.table_id = s.table_id AND c.integration_id = s.integration_id""")
        con.execute(f"DELETE FROM couplings WHERE {scope} AND NOT {_FROM_TABLE}")
    linked, filled = link_skipped_records(con, env, company)
    made_id = page_coupling_id_sql(env, company, "s.table_id", "s.description", "s.coupled_to")
    lonely = (f"WHERE {scope_sql(env, company, 's')} AND coalesce(s.integration_id = {made_id}, true) "
              f"AND s.table_id NOT IN {tables_with_couplings_sql(env, company)}")
    made = con.execute(f"""
        INSERT INTO couplings BY NAME
        SELECT s.environment, s.company, s.table_id, {made_id} AS integration_id,
               CASE WHEN s.description <> '' THEN sa_record_id(coalesce(s.table_name, 'Table ' || s.table_id),
                                                               s.description) END AS bc_record_id,
               nullif(s.coupled_to, '') AS crm_description, true AS skipped, s.record_exists AS bc_record_exists,
               s.coupled_record_exists AS crm_record_exists, true AS inferred,
               CAST({FIDELITY_PAGE} AS SMALLINT) AS fidelity FROM skipped_records s {lonely}""").fetchall()[0][0]
    if made:
        con.execute(f"UPDATE skipped_records s SET integration_id = {made_id} {lonely} AND s.integration_id IS NULL")
    # made again each time: what changed is the difference
    return {"linked": int(linked), "filled": int(filled), "made": max(int(made) - int(made_before), 0),
            "replaced": max(int(made_before) - int(made), 0)}
