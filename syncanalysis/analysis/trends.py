"""Error trends: errors per day or week by cause, signature, mapping and direction; failure rates; new signatures.

Everything is one DuckDB query over the whole history (tables 5338 ``jobs`` and 5339 ``job_errors``),
returned as pandas. An error belongs to the mapping and direction of its job (``job_errors.job_id`` ->
``jobs``); errors whose job is not in the workspace count under ``unknown``. Until the signatures
are assigned (:func:`syncanalysis.analysis.signatures.assign_signatures`) an error's cause is
``unclassified`` and its signature is its raw Message.

All functions take ``ws`` first and the keyword filters ``environment``, ``company``, ``mapping``
(the job's Integration Table Mapping Name), ``since`` and ``until`` (inclusive bounds on the error's
Date/Time, or on the job's Start Date/Time for job figures).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from ..errors import SchemaError
from ..sql import scope
from ..workspace import Workspace
from .records import LOCAL_RECORD_SQL

FREQS = ("day", "week")  # weeks start on Monday (ISO), as DuckDB's date_trunc('week') does
BY = {
    "cause": "cause",
    "signature": "signature",
    "mapping": "mapping_name",
    "direction": "direction",
}

# The record an error is about: its BC record, or (a failed insert from Dataverse has no BC record yet)
# the Dataverse source record.
RECORD_SQL = f"coalesce(nullif({LOCAL_RECORD_SQL}, ''), nullif(source_record_id, ''), '#' || error_no)"


def cause_sql(prefix: str = "") -> str:
    """SQL of an error's cause (``unclassified`` until signatures are assigned); ``prefix`` = table alias + '.'."""
    return f"coalesce({prefix}cause, 'unclassified')"


def signature_sql(prefix: str = "") -> str:
    """SQL of an error's signature (its raw Message until signatures are assigned)."""
    return f"coalesce({prefix}signature, {prefix}message, {prefix}error_message, '')"

# processed records of a synchronization job (the denominator of the failure rate)
PROCESSED_SQL = ("coalesce(inserted, 0) + coalesce(modified, 0) + coalesce(deleted, 0) + coalesce(unchanged, 0)"
                 " + coalesce(skipped, 0) + coalesce(failed, 0)")


def check_freq(freq: str) -> str:
    """Return ``freq`` if it is a supported period (``day`` or ``week``), else raise :class:`SchemaError`."""
    if freq not in FREQS:
        raise SchemaError(f"Unknown period {freq!r}; use one of {FREQS}.")
    return freq


def where(environment: str | None = None, company: str | None = None, mapping: str | None = None,
          since: dt.datetime | None = None, until: dt.datetime | None = None, *, time_col: str,
          prefix: str = "", mapping_col: str = "mapping_name") -> tuple[str, list[Any]]:
    """SQL `` AND ...`` (empty when no filter) and parameters of the common filters.

    This is :func:`syncanalysis.sql.scope` for SQL that appends them to a WHERE of its own; the columns are
    those of alias ``prefix`` (``"j."``).
    """
    cond, params = scope(prefix.rstrip("."), environment=environment, company=company, mapping=mapping,
                         mapping_column=mapping_col, time_column=time_col, since=since, until=until)
    return ("" if not params else f" AND {cond}"), params


def errors_sql(environment: str | None = None, company: str | None = None, mapping: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None) -> tuple[str, list[Any]]:
    """SQL (and parameters) of one row per error with its mapping, direction, cause, signature and record.

    Columns: environment, company, error_no, logged_at, job_id, mapping_name, direction, cause, signature,
    record_id, message, error_message.
    """
    w, params = where(environment, company, None, since, until, time_col="logged_at", prefix="e.")
    if mapping is not None:
        w += " AND j.mapping_name = ?"
        params.append(mapping)
    sql = f"""
        SELECT e.environment, e.company, e.error_no, e.logged_at, e.job_id,
               coalesce(j.mapping_name, 'unknown') AS mapping_name,
               coalesce(j.synch_direction, 'unknown') AS direction,
               {cause_sql('e.')} AS cause, {signature_sql('e.')} AS signature,
               e.record_id, e.message, e.error_message
        FROM (SELECT *, {RECORD_SQL} AS record_id FROM job_errors) e
        LEFT JOIN jobs j ON j.environment = e.environment AND j.company = e.company AND j.job_id = e.job_id
        WHERE e.logged_at IS NOT NULL{w}
    """
    return sql, params


def errors_over_time(ws: Workspace, *, by: str = "cause", freq: str = "day", environment: str | None = None,
                     company: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
                     mapping: str | None = None) -> pd.DataFrame:
    """Errors per period and key, as a long frame.

    Parameters
    ----------
    ws
        The workspace.
    by
        ``cause``, ``signature``, ``mapping`` (the job's mapping) or ``direction`` (the job's Synch.
        Direction: ``ToIntegrationTable`` = BC -> Dataverse, ``FromIntegrationTable`` = Dataverse -> BC).
    freq
        ``day`` or ``week`` (ISO weeks, starting on Monday).
    environment, company, since, until, mapping
        Filters (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        period (start of the day or week), key, errors (rows of table 5339), records (distinct records
        with an error in the period); only periods and keys with errors, sorted by period and key.
    """
    if by not in BY:
        raise SchemaError(f"Cannot count errors by {by!r}; use one of {sorted(BY)}.")
    check_freq(freq)
    sql, params = errors_sql(environment, company, mapping, since, until)
    return ws.con.execute(f"""
        SELECT date_trunc('{freq}', logged_at) AS period, {BY[by]} AS key,
               count(*) AS errors, count(DISTINCT environment || '|' || company || '|' || record_id) AS records
        FROM ({sql}) GROUP BY ALL ORDER BY period, key
    """, params).df()


def error_totals(ws: Workspace, *, by: str = "cause", environment: str | None = None, company: str | None = None,
                 since: dt.datetime | None = None, until: dt.datetime | None = None,
                 mapping: str | None = None) -> pd.DataFrame:
    """Errors per key over the whole window (the input of a Pareto chart).

    Returns
    -------
    pandas.DataFrame
        key, errors, records, first_seen, last_seen, share (of all errors), cumulative_share; sorted by
        errors descending.
    """
    if by not in BY:
        raise SchemaError(f"Cannot count errors by {by!r}; use one of {sorted(BY)}.")
    sql, params = errors_sql(environment, company, mapping, since, until)
    return ws.con.execute(f"""
        SELECT *, errors / sum(errors) OVER () AS share,
               sum(errors) OVER (ORDER BY errors DESC, key ROWS UNBOUNDED PRECEDING) / sum(errors) OVER ()
                 AS cumulative_share
        FROM (SELECT {BY[by]} AS key, count(*) AS errors,
                     count(DISTINCT environment || '|' || company || '|' || record_id) AS records,
                     min(logged_at) AS first_seen, max(logged_at) AS last_seen
              FROM ({sql}) GROUP BY ALL)
        ORDER BY errors DESC, key
    """, params).df()


def failure_rate(ws: Workspace, *, freq: str = "day", environment: str | None = None, company: str | None = None,
                 since: dt.datetime | None = None, until: dt.datetime | None = None,
                 mapping: str | None = None) -> pd.DataFrame:
    """Failed over processed records per mapping and period (synchronization jobs only).

    Processed = Inserted + Modified + Deleted + Unchanged + Skipped + Failed of the jobs that started in
    the period (table 5338 counters).

    Returns
    -------
    pandas.DataFrame
        period, mapping_name, jobs, processed, failed, failure_rate (NaN when nothing was processed).
    """
    check_freq(freq)
    w, params = where(environment, company, mapping, since, until, time_col="start_datetime")
    return ws.con.execute(f"""
        SELECT date_trunc('{freq}', start_datetime) AS period, mapping_name, count(*) AS jobs,
               CAST(sum({PROCESSED_SQL}) AS BIGINT) AS processed, CAST(sum(coalesce(failed, 0)) AS BIGINT) AS failed,
               sum(coalesce(failed, 0)) / nullif(sum({PROCESSED_SQL}), 0) AS failure_rate
        FROM jobs
        WHERE type = 'Synchronization' AND mapping_name IS NOT NULL AND start_datetime IS NOT NULL{w}
        GROUP BY ALL ORDER BY period, mapping_name
    """, params).df()


def signature_history(ws: Workspace, *, environment: str | None = None, company: str | None = None,
                      since: dt.datetime | None = None, until: dt.datetime | None = None,
                      mapping: str | None = None) -> pd.DataFrame:
    """One row per signature: when it was first and last seen (over the whole history), how often, where.

    ``first_seen`` ignores ``since`` so that a signature seen before the window is not called new.

    Returns
    -------
    pandas.DataFrame
        signature, cause, mappings (list), errors and records in the window, first_seen, last_seen, example
        (the Error Message of its latest error); sorted by errors descending.
    """
    sql, params = errors_sql(environment, company, mapping, None, until)
    w, wparams = where(since=since, time_col="logged_at")
    return ws.con.execute(f"""
        WITH e AS ({sql}),
        f AS (SELECT signature, min(logged_at) AS first_seen FROM e GROUP BY ALL)
        SELECT e.signature, mode(e.cause) AS cause, list(DISTINCT e.mapping_name ORDER BY e.mapping_name) AS mappings,
               count(*) AS errors, count(DISTINCT e.environment || '|' || e.company || '|' || e.record_id) AS records,
               any_value(f.first_seen) AS first_seen, max(e.logged_at) AS last_seen,
               arg_max(coalesce(e.error_message, e.message), e.logged_at) AS example
        FROM e JOIN f USING (signature)
        WHERE TRUE{w}
        GROUP BY ALL ORDER BY errors DESC, e.signature
    """, params + wparams).df()


def signature_novelty(ws: Workspace, *, freq: str = "week", environment: str | None = None,
                      company: str | None = None, since: dt.datetime | None = None,
                      until: dt.datetime | None = None, mapping: str | None = None) -> pd.DataFrame:
    """New versus recurring signatures per period.

    A signature is *new* in the period of its first error in the whole history (filters on environment,
    company and mapping apply, ``since`` does not), and *recurring* in every later period it shows up in.

    Returns
    -------
    pandas.DataFrame
        period, new_signatures, recurring_signatures, new_errors, recurring_errors, new_examples (up to
        three new signatures of the period).
    """
    check_freq(freq)
    sql, params = errors_sql(environment, company, mapping, None, until)
    w, wparams = where(since=since, time_col="period")
    return ws.con.execute(f"""
        WITH e AS (SELECT date_trunc('{freq}', logged_at) AS period, signature FROM ({sql})),
        f AS (SELECT signature, min(period) AS first_period FROM e GROUP BY ALL),
        p AS (SELECT e.period, e.signature, count(*) AS errors, f.first_period = e.period AS new
              FROM e JOIN f USING (signature) GROUP BY e.period, e.signature, f.first_period)
        SELECT period,
               count(*) FILTER (new) AS new_signatures, count(*) FILTER (NOT new) AS recurring_signatures,
               CAST(coalesce(sum(errors) FILTER (new), 0) AS BIGINT) AS new_errors,
               CAST(coalesce(sum(errors) FILTER (NOT new), 0) AS BIGINT) AS recurring_errors,
               (list(signature ORDER BY errors DESC, signature) FILTER (new))[1:3] AS new_examples
        FROM p WHERE TRUE{w} GROUP BY period ORDER BY period
    """, params + wparams).df()


def job_activity(ws: Workspace, *, environment: str | None = None, company: str | None = None,
                 since: dt.datetime | None = None, until: dt.datetime | None = None,
                 mapping: str | None = None) -> pd.DataFrame:
    """One row per synchronization job: when it ran, how long, what it did (for timelines and durations).

    Returns
    -------
    pandas.DataFrame
        environment, company, mapping_name, direction, start, finish, duration_s (NaN while running or
        crashed), processed, failed, trigger (``job queue`` / ``foreground``); sorted by start.
    """
    w, params = where(environment, company, mapping, since, until, time_col="start_datetime")
    return ws.con.execute(f"""
        SELECT environment, company, mapping_name, synch_direction AS direction, start_datetime AS start,
               finish_datetime AS finish, duration_ms / 1000.0 AS duration_s, {PROCESSED_SQL} AS processed,
               coalesce(failed, 0) AS failed, trigger
        FROM jobs
        WHERE type = 'Synchronization' AND mapping_name IS NOT NULL AND start_datetime IS NOT NULL{w}
        ORDER BY start, mapping_name
    """, params).df()


def history_range(ws: Workspace, *, environment: str | None = None,
                  company: str | None = None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """First job start and last job end (or error) of the history: the time range the analysis covers."""
    w, params = where(environment, company, time_col="start_datetime")
    row = ws.con.execute(f"""
        SELECT min(t0), max(t1) FROM (
            SELECT min(start_datetime) AS t0, max(greatest(start_datetime, finish_datetime)) AS t1
            FROM jobs WHERE TRUE{w}
            UNION ALL
            SELECT min(logged_at), max(logged_at) FROM job_errors WHERE TRUE{w.replace('start_datetime', 'logged_at')})
    """, params + params).fetchall()[0]
    return (pd.Timestamp(row[0]) if row[0] is not None else None, pd.Timestamp(row[1]) if row[1] is not None else None)
