"""Job health: how the job queue really ran each mapping, and where the synchronization stopped.

BC writes one 5338 row per mapping and direction per run; the jobs of one job-queue run share a Job
Queue Log Entry No. (0 = foreground). A recurring entry runs every 30 minutes while there is work and
goes "On Hold with Inactivity Timeout" after an idle run (no record inserted, modified, deleted or
failed, spec §1 ``HaveJobsBeenIdle``) until a BC change or the timeout (720/1440 min) wakes it. So a
long pause after an idle run is normal; a pause after a busy run, or longer than the longest timeout,
means the sync stopped.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ..sql import registered
from ..workspace import Workspace
from .trends import where as trends_where

INTERVAL_MIN = 30  # BC's default recurring interval of the synchronization job queue entries
LONGEST_INACTIVITY_MIN = 1440  # the longest inactivity timeout BC sets on them (codeunit 7204)


def runs_sql(environment: str | None = None, company: str | None = None, mapping: str | None = None) -> tuple[str, list]:
    """SQL (and params) of one row per job-queue run of a mapping (foreground jobs are runs of their own).

    A job whose trigger is unknown (page exports) is a run of its own, taken for a job-queue run.

    Columns: environment, company, mapping_name, run_key, job_queue_log_entry_no, trigger, run_start,
    run_end, jobs, processed, written, failed, busy.
    """
    where, params = trends_where(environment, company, mapping, time_col="start_datetime")
    sql = f"""
        SELECT environment, company, mapping_name,
               CASE WHEN coalesce(job_queue_log_entry_no, 0) = 0 THEN CAST(job_id AS VARCHAR)
                    ELSE CAST(job_queue_log_entry_no AS VARCHAR) END AS run_key,
               -- page 5338 exports show no Job Queue Log Entry No.: each job is taken for a job-queue run
               any_value(job_queue_log_entry_no) AS job_queue_log_entry_no,
               coalesce(any_value(trigger), 'job queue') AS trigger,
               min(start_datetime) AS run_start, max(coalesce(finish_datetime, start_datetime)) AS run_end,
               count(*) AS jobs,
               sum(inserted + modified + deleted + unchanged + skipped + failed) AS processed,
               sum(inserted + modified + deleted) AS written, sum(failed) AS failed,
               sum(inserted + modified + deleted + failed) > 0 AS busy
        FROM jobs
        WHERE type = 'Synchronization' AND mapping_name IS NOT NULL{where}
        GROUP BY ALL
    """
    return sql, params


def job_health(ws: Workspace, *, environment: str | None = None, company: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None) -> pd.DataFrame:
    """Per mapping: runs, real cadence, durations, throughput, job queue vs foreground, failures.

    Returns
    -------
    pandas.DataFrame
        environment, company, mapping_name, runs, jobs, foreground_runs, busy_runs, cadence_min (median
        minutes between a busy run and the next), duration_p50_s, duration_p95_s, records_per_min
        (processed per minute of job time), failed, processed, failed_share, first_run, last_run.
    """
    runs, params = runs_sql(environment, company)
    where, wparams = trends_where(environment, company, time_col="start_datetime")
    time_where, tparams = "", []
    if since is not None:
        time_where += " AND start_datetime >= ?"
        tparams.append(since)
    if until is not None:
        time_where += " AND start_datetime <= ?"
        tparams.append(until)
    run_time = time_where.replace("start_datetime", "run_start")
    return ws.con.execute(f"""
        WITH r AS (SELECT * FROM ({runs}) WHERE TRUE{run_time}),
        seq AS (
            SELECT *, lead(run_start) OVER (PARTITION BY environment, company, mapping_name ORDER BY run_start)
                      AS next_start
            FROM r WHERE trigger = 'job queue'),
        cad AS (
            SELECT environment, company, mapping_name,
                   median(date_diff('second', run_start, next_start) / 60.0) AS cadence_min
            FROM seq WHERE busy AND next_start IS NOT NULL GROUP BY ALL),
        j AS (
            SELECT environment, company, mapping_name,
                   quantile_cont(duration_ms / 1000.0, 0.5) AS duration_p50_s,
                   quantile_cont(duration_ms / 1000.0, 0.95) AS duration_p95_s,
                   sum(inserted + modified + deleted + unchanged + skipped + failed) AS processed,
                   sum(failed) AS failed,
                   sum(duration_ms) / 60000.0 AS job_minutes, count(*) AS jobs
            FROM jobs WHERE type = 'Synchronization'{where}{time_where} GROUP BY ALL)
        SELECT r.environment, r.company, r.mapping_name, count(*) AS runs, any_value(j.jobs) AS jobs,
               count(*) FILTER (r.trigger = 'foreground') AS foreground_runs,
               count(*) FILTER (r.busy) AS busy_runs, any_value(cad.cadence_min) AS cadence_min,
               any_value(j.duration_p50_s) AS duration_p50_s, any_value(j.duration_p95_s) AS duration_p95_s,
               any_value(j.processed) / nullif(any_value(j.job_minutes), 0) AS records_per_min,
               any_value(j.failed) AS failed, any_value(j.processed) AS processed,
               any_value(j.failed) / nullif(any_value(j.processed), 0) AS failed_share,
               min(r.run_start) AS first_run, max(r.run_end) AS last_run
        FROM r LEFT JOIN cad USING (environment, company, mapping_name)
               LEFT JOIN j USING (environment, company, mapping_name)
        GROUP BY ALL ORDER BY r.environment, r.company, r.mapping_name
    """, params + tparams + wparams + tparams).df()


def gaps(ws: Workspace, *, environment: str | None = None, company: str | None = None,
         mapping: str | None = None, min_minutes: float = 2 * INTERVAL_MIN) -> pd.DataFrame:
    """Pauses between consecutive job-queue runs of each mapping, told apart by cause.

    ``kind`` is ``on-hold-inactivity`` when the run before was idle and the pause is not longer than the
    longest inactivity timeout plus one interval (BC put the entry on hold and nothing woke it);
    ``after-one-off-run`` when the run before was busy but came alone after a long pause (a one-off run
    or a single wake-up: the recurring entry may be on hold); ``stopped`` otherwise (the entry should
    have run again: it was set on hold, failed before writing a job, or the connection was disabled).
    Pauses shorter than ``min_minutes`` are not listed.

    Returns
    -------
    pandas.DataFrame
        environment, company, mapping_name, gap_start (end of the run before), gap_end (start of the run
        after), minutes, previous_busy, due (when a busy entry should have run again), kind.
    """
    runs, params = runs_sql(environment, company, mapping)
    return ws.con.execute(f"""
        WITH seq AS (
            SELECT *, lead(run_start) OVER w AS next_start, lag(run_end) OVER w AS prev_end
            FROM ({runs}) WHERE trigger = 'job queue'
            WINDOW w AS (PARTITION BY environment, company, mapping_name ORDER BY run_start))
        SELECT environment, company, mapping_name, run_end AS gap_start, next_start AS gap_end,
               date_diff('second', run_end, next_start) / 60.0 AS minutes, busy AS previous_busy,
               -- when the entry should have run again: one interval after a busy run on cadence
               CASE WHEN busy THEN run_start + INTERVAL {INTERVAL_MIN} MINUTE END AS due,
               CASE WHEN date_diff('second', run_end, next_start) / 60.0 > {LONGEST_INACTIVITY_MIN + INTERVAL_MIN}
                         THEN 'stopped'
                    WHEN NOT busy THEN 'on-hold-inactivity'
                    -- a busy run right after a long pause was a one-off run (or a wake-up that found work
                    -- once): the recurring entry may simply be on hold
                    WHEN prev_end IS NULL OR date_diff('second', prev_end, run_start) / 60.0
                         > {1.5 * INTERVAL_MIN} THEN 'after-one-off-run'
                    ELSE 'stopped' END AS kind
        FROM seq
        WHERE next_start IS NOT NULL AND date_diff('second', run_end, next_start) / 60.0 > ?
        ORDER BY environment, company, gap_start, mapping_name
    """, params + [min_minutes]).df()


def stopped_periods(ws: Workspace, *, environment: str | None = None, company: str | None = None) -> pd.DataFrame:
    """Periods in which no mapping ran while at least two mappings were stopped (not merely idle).

    Returns
    -------
    pandas.DataFrame
        environment, company, start, end, minutes, mappings (list of the stopped mappings).
    """
    g = gaps(ws, environment=environment, company=company)
    stopped = g[g["kind"] == "stopped"]
    if stopped.empty:
        return pd.DataFrame(columns=["environment", "company", "start", "end", "minutes", "mappings"])
    runs, params = runs_sql(environment, company)
    with registered(ws.con, stopped, "stopped_gaps") as stopped_name:
        out = ws.con.execute(f"""
            WITH r AS (SELECT * FROM ({runs})),
            g AS (SELECT * FROM {stopped_name}),
            -- overlap of stopped gaps: for each gap, the other stopped mappings whose gap covers its start
            o AS (
                SELECT a.environment, a.company, a.gap_start, a.gap_end,
                       list(DISTINCT b.mapping_name ORDER BY b.mapping_name) AS mappings,
                       max(b.gap_start) AS start, min(b.gap_end) AS "end"
                FROM g a JOIN g b ON a.environment = b.environment AND a.company = b.company
                 AND b.gap_start < a.gap_end AND b.gap_end > a.gap_start
                GROUP BY ALL HAVING count(DISTINCT b.mapping_name) >= 2)
            SELECT DISTINCT o.environment, o.company, o.start, o."end",
                   date_diff('second', o.start, o."end") / 60.0 AS minutes, o.mappings
            FROM o
            WHERE o."end" > o.start AND NOT EXISTS (
                SELECT 1 FROM r WHERE r.environment = o.environment AND r.company = o.company
                 AND r.run_start > o.start AND r.run_start < o."end")
            ORDER BY o.environment, o.company, o.start
        """, params).df()
    # several gaps describe the same stop: keep the widest window per start
    return out.sort_values("minutes", ascending=False).drop_duplicates(["environment", "company", "start"]) \
        .sort_values(["environment", "company", "start"]).reset_index(drop=True)
