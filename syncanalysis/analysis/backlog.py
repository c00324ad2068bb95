"""The skipped backlog over time, its age, and how long failing records take to heal.

A workspace holds only the *current* snapshot of the couplings (table 5331), so which records were
Skipped on a given day, and when a failing record was fixed, is reconstructed from the error history
(table 5339, one row per failed record and job) and the job order of each mapping and direction (table
5338), following BC's rules (spec §6.2, §6.4):

*Chains.* The errors of one record (its BC record id; the Dataverse id for a failed insert, which has
no BC record yet) in one mapping are ordered by their job. Several errors of one record in one job
count once (the latest, as ``GetErrorForRecordID`` picks it).

*Skipped.* BC marks a coupling Skipped when a record fails in direction D, its previous result in D
was already Failure, and the Message is the same (non-empty, and the record coupled). The previous
result in D is a Failure when nothing succeeded in D since the record's previous error in D. A
failing, not skipped record is retried by every job-queue run (§6.2), so that holds when (a) no
job-queue run of the mapping and direction started between the two errors (foreground runs, Job
Queue Log Entry No. 0, only process the records they were started for), or (b) the record was
Skipped when that next run started: a skipped record is processed in neither direction until Retry /
Retry All / Synchronize un-skip it, and Retry keeps the result Failure, so the same error after a
Retry skips the record again. (b) depends on the state the record's latest error before that run
left it in, so the rule is evaluated along the chain (pointer jumping in SQL).

*Skipped periods.* A record becomes skipped at the error that repeated and stays skipped until its
next error in any direction (which proves it was un-skipped and retried: ``retried``). Without a
later error it is ``still skipped`` when the snapshot says Skipped (ongoing); else ``synced`` when
the snapshot records a successful sync of the coupling after it (Last Synch. (CRM) Job ID with
result Success), at that job or at the first earlier evidence of an un-skip; else ``uncoupled`` at the
next uncoupling job of the mapping when the coupling is gone; else ``action`` at the first audited
action on the record (or Retry All); else ``un-skip wave`` at the next job of the mapping in which
other skipped records were retried (an unaudited Retry All); else ``unknown`` (counted as ending
when it started). Periods that follow each other without a gap (retried and at once skipped again)
share ``skipped_since``, the age of the backlog. Couplings Skipped in the snapshot without such a
period (skipped by Find for Deleted, or before the history starts) are added from their latest
error (``source = 'snapshot'``).

*Failure episodes.* An episode of a record in direction D is a run of its errors in D with no
success in D in between (the test above, without the message condition). It is resolved ``next
run`` at the end of the next job-queue run of the mapping and direction after its last error when
the record was not skipped then (it was retried and did not fail); when it was skipped, ``synced``
as above. Otherwise it is ``still failing`` / ``still skipped`` (ongoing), ``uncoupled`` (coupling
removed, time unknown) or ``unknown``. A failed insert (no coupling yet) is not retried by the next
run; it is ``coupled later`` (time unknown) when the snapshot has its coupling. An episode *heals by
itself* when it was resolved ``next run``, the record was never skipped during it and no audited
action named the record in its window. An episode counts for the signature (and cause) of its
first error.

Limits: BC never logs a success, so successes are inferred. A one-off job queue run (Synchronize,
Restore Records) cannot be told from a scheduled one and counts as one of its mapping's runs, which
can hide a repeat or fake a success; a record deleted or uncoupled while failing looks healed at the
next run; a record that succeeded after a Retry and later failed again with the same Message is seen
as still skipped; deleted job rows (Delete Entries Older Than 7 Days) leave holes in the chains.
``synced`` times are upper bounds (the un-skip happened before that job).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from ..errors import SchemaError
from ..workspace import Workspace
from .records import acted_on_sql
from .signatures import error_text_sql
from .trends import RECORD_SQL, cause_sql, check_freq, signature_sql, where

AGE_BUCKETS = ("< 1 day", "1-7 days", "7-30 days", "> 30 days")
BY = {None: "'all'", "mapping": "mapping_name", "cause": "cause", "signature": "signature", "direction": "direction"}
EPISODE_BY = {"signature": "signature", "cause": "cause", "mapping": "mapping_name", "direction": "direction"}
_UUID_RE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_MAX_JUMPS = 64  # pointer jumping halves every chain per round: 64 rounds cover any history


def _age_bucket_sql(days: str) -> str:
    return (f"CASE WHEN {days} < 1 THEN '{AGE_BUCKETS[0]}' WHEN {days} < 7 THEN '{AGE_BUCKETS[1]}' "
            f"WHEN {days} < 30 THEN '{AGE_BUCKETS[2]}' ELSE '{AGE_BUCKETS[3]}' END")


def _build(ws: Workspace, environment: str | None, company: str | None, mapping: str | None) -> None:
    """Build the temp tables ``_bk_ev`` (chained errors), ``_bk_skips`` and ``_bk_episodes`` for these filters.

    Reused while the workspace and the filters are unchanged (a panel or notebook asks many questions).
    """
    ws.memo("backlog", (environment, company, mapping), lambda: _build_tables(ws, environment, company, mapping))


def _build_tables(ws: Workspace, environment: str | None, company: str | None, mapping: str | None) -> bool:
    con = ws.con
    w, params = where(environment, company, mapping, time_col="start_datetime")
    # Jobs of each mapping and direction in run order. Only job-queue runs retry the failed records (§6.2): a
    # foreground run (Job Queue Log Entry No. 0) processes the records it was started for. seq counts the
    # job-queue runs so far, pos places a foreground run between two of them (seq + 0.5).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _bk_jobs AS
        SELECT *, seq + CASE WHEN foreground THEN 0.5 ELSE 0 END AS pos FROM (
            SELECT environment, company, job_id, mapping_name, synch_direction AS direction, start_datetime,
                   coalesce(finish_datetime, start_datetime) AS finish_datetime,
                   coalesce(job_queue_log_entry_no, 1) = 0 AS foreground,
                   sum(CASE WHEN coalesce(job_queue_log_entry_no, 1) = 0 THEN 0 ELSE 1 END) OVER (
                       PARTITION BY environment, company, mapping_name, synch_direction
                       ORDER BY start_datetime, job_id ROWS UNBOUNDED PRECEDING) AS seq
            FROM jobs
            WHERE type = 'Synchronization' AND mapping_name IS NOT NULL AND start_datetime IS NOT NULL{w})
    """, params)
    ew, eparams = where(environment, company, time_col="logged_at")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _bk_events AS
        WITH e AS (
            SELECT environment, company, job_id, error_no, logged_at,
                   coalesce(message, left(error_message, 250), '') AS msg,
                   {error_text_sql()} AS error_message,
                   {signature_sql()} AS signature, {cause_sql()} AS cause,
                   {RECORD_SQL} AS record_id,
                   -- a failed insert has no destination yet: no coupling, so never Skipped (§6.4)
                   coalesce(destination_record_id, '') <> '' AND coalesce(source_record_id, '') <> '' AS coupled,
                   -- the Dataverse row of a failed insert from Dataverse, to find the coupling it got later
                   CASE WHEN coalesce(destination_record_id, '') = '' THEN
                        nullif(lower(regexp_extract(source_key, '{_UUID_RE}', 0, 'i')), '') END AS crm_guid
            FROM job_errors WHERE logged_at IS NOT NULL{ew}),
        x AS (
            SELECT e.*, j.mapping_name, j.direction, j.pos
            FROM e JOIN _bk_jobs j USING (environment, company, job_id)
            QUALIFY row_number() OVER (PARTITION BY e.environment, e.company, e.job_id, e.record_id
                                       ORDER BY e.error_no DESC) = 1)
        SELECT x.*,
               row_number() OVER (ORDER BY x.environment, x.company, x.mapping_name, x.record_id, x.logged_at,
                                  x.error_no) AS id,
               lag(x.pos) OVER d AS prev_pos, lag(x.msg) OVER d AS prev_msg, lag(x.error_no) OVER d AS prev_error_no,
               lag(x.coupled) OVER d AS prev_coupled,
               lead(x.logged_at) OVER r AS next_any_at,
               nx.start_datetime AS next_job_start, nx.finish_datetime AS next_job_finish
        FROM x
        LEFT JOIN _bk_jobs nx ON nx.environment = x.environment AND nx.company = x.company
             AND nx.mapping_name = x.mapping_name AND nx.direction = x.direction AND NOT nx.foreground
             AND nx.seq = floor(x.pos) + 1
        WINDOW d AS (PARTITION BY x.environment, x.company, x.mapping_name, x.direction, x.record_id
                     ORDER BY x.pos, x.logged_at, x.error_no),
               r AS (PARTITION BY x.environment, x.company, x.mapping_name, x.record_id ORDER BY x.logged_at, x.error_no)
    """, eparams)
    # after(x): the record's latest error before the next job of x's direction — the state that job saw.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_after AS
        SELECT p.id, r.id AS after_id
        FROM _bk_events p ASOF LEFT JOIN _bk_events r
          ON r.environment = p.environment AND r.company = p.company AND r.mapping_name = p.mapping_name
         AND r.record_id = p.record_id AND r.logged_at < p.next_job_start
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_links AS
        SELECT e.id, e.prev_error_no IS NOT NULL AS has_prev,
               -- an uncoupled record (failed insert) is not retried, and cannot succeed without being coupled
               NOT e.coupled AND NOT coalesce(e.prev_coupled, true) AS uncoupled_again,
               coalesce(e.coupled AND e.msg <> '' AND e.msg = e.prev_msg, false) AS same_msg,
               -- no job-queue run of this direction between the previous error and this one
               coalesce(e.pos <= floor(e.prev_pos) + 1, false) AS consec, a.after_id AS dep
        FROM _bk_events e
        LEFT JOIN _bk_events p ON p.environment = e.environment AND p.company = e.company
             AND p.mapping_name = e.mapping_name AND p.direction = e.direction AND p.record_id = e.record_id
             AND p.error_no = e.prev_error_no
        LEFT JOIN _bk_after a ON a.id = p.id
    """)
    # repeat(e) = same_msg(e) AND (consec(e) OR repeat(dep(e))): follow dep pointers to the first link
    # that decides (pointer jumping, log2 of the longest chain rounds).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_jump AS
        SELECT id, CASE WHEN same_msg AND NOT consec AND dep IS NOT NULL THEN dep ELSE id END AS nxt,
               same_msg AND consec AS val
        FROM _bk_links
    """)
    for _ in range(_MAX_JUMPS):
        moving = con.execute("SELECT count(*) FROM _bk_jump a JOIN _bk_jump b ON b.id = a.nxt "
                             "WHERE b.nxt <> a.nxt").fetchall()[0][0]
        if not moving:
            break
        con.execute("CREATE OR REPLACE TEMP TABLE _bk_jump AS "
                    "SELECT a.id, b.nxt, a.val FROM _bk_jump a JOIN _bk_jump b ON b.id = a.nxt")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_flags AS
        SELECT l.id, r.val AS repeat, l.has_prev, l.consec, l.dep, l.uncoupled_again
        FROM _bk_links l JOIN _bk_jump j ON j.id = l.id JOIN _bk_jump r ON r.id = j.nxt
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_ev AS
        SELECT e.*, f.repeat,
               -- no success in this direction since the previous error: same episode
               f.has_prev AND (f.consec OR f.uncoupled_again OR coalesce(d.repeat, false)) AS continues,
               coalesce(sa.repeat, false) AS skipped_at_next_job
        FROM _bk_events e JOIN _bk_flags f ON f.id = e.id
        LEFT JOIN _bk_flags d ON d.id = f.dep
        LEFT JOIN _bk_after a ON a.id = e.id LEFT JOIN _bk_flags sa ON sa.id = a.after_id
    """)
    _build_snapshot(ws, environment, company, mapping)
    _build_skips(ws)
    _build_episodes(ws)
    for t in ("_bk_after", "_bk_links", "_bk_jump", "_bk_flags", "_bk_events"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return True


def _build_snapshot(ws: Workspace, environment: str | None, company: str | None, mapping: str | None) -> None:
    """Per coupling of the snapshot: its mapping, Skipped flag and when its last successful syncs started.

    Also the records audited actions named, and the end of the history per environment and company.
    """
    w, params = where(environment, company, time_col="start_datetime", prefix="c.")
    mw = " AND sa_mapping_name(m.name, c.table_id) = ?" if mapping is not None else ""
    ws.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _bk_couplings AS
        SELECT c.environment, c.company, c.bc_record_id AS record_id, sa_mapping_name(m.name, c.table_id) AS mapping_name,
               CAST(c.integration_id AS VARCHAR) AS integration_id, CAST(c.crm_id AS VARCHAR) AS crm_id,
               coalesce(c.skipped, false) AS skipped,
               least(CASE WHEN c.last_synch_result = 'Success' THEN jf.start_datetime END,
                     CASE WHEN c.last_synch_crm_result = 'Success' THEN jt.start_datetime END) AS success_start,
               greatest(CASE WHEN c.last_synch_result = 'Success' THEN jf.start_datetime END,
                        CASE WHEN c.last_synch_crm_result = 'Success' THEN jt.start_datetime END) AS last_success_start,
               greatest(jf.start_datetime, jt.start_datetime) AS last_job_start
        FROM couplings c
        LEFT JOIN (SELECT environment, company, table_id, min(name) AS name FROM mappings GROUP BY ALL) m
               ON m.environment = c.environment AND m.company = c.company AND m.table_id = c.table_id
        LEFT JOIN jobs jf ON jf.environment = c.environment AND jf.company = c.company AND jf.job_id = c.last_synch_job_id
        LEFT JOIN jobs jt ON jt.environment = c.environment AND jt.company = c.company
              AND jt.job_id = c.last_synch_crm_job_id
        WHERE c.bc_record_id IS NOT NULL{w}{mw}
    """, params + ([mapping] if mapping is not None else []))
    # Records an audited action really changed (not dry runs, plan files, refused or no-op targets).
    ws.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _bk_touched AS
        SELECT DISTINCT c.environment, c.company, c.record_id, a.acted_at
        FROM ({acted_on_sql()}) a JOIN _bk_couplings c
          ON c.environment = a.environment AND c.company = a.company AND c.integration_id = lower(a.integration_id)
    """)
    ws.con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_ends AS
        SELECT environment, company, max(t) AS history_end FROM (
            SELECT environment, company, max(finish_datetime) AS t FROM _bk_jobs GROUP BY ALL
            UNION ALL SELECT environment, company, max(logged_at) FROM _bk_ev GROUP BY ALL) GROUP BY ALL
    """)


def _build_skips(ws: Workspace) -> None:
    con = ws.con
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_skips0 AS
        SELECT e.environment, e.company, e.mapping_name, e.record_id, e.direction, e.logged_at AS start,
               e.next_any_at, e.error_no, e.msg AS message, e.error_message, e.signature, e.cause,
               c.record_id IS NOT NULL AS coupled_now, coalesce(c.skipped, false) AS skipped_now,
               CASE WHEN c.success_start > e.logged_at THEN c.success_start
                    WHEN c.last_success_start > e.logged_at THEN c.last_success_start END AS synced_at,
               u.start_datetime AS uncoupled_at
        FROM _bk_ev e
        LEFT JOIN _bk_couplings c ON c.environment = e.environment AND c.company = e.company
             AND c.record_id = e.record_id
        ASOF LEFT JOIN (SELECT environment, company, mapping_name, start_datetime FROM jobs
                        WHERE type = 'Uncoupling' AND start_datetime IS NOT NULL) u
             ON u.environment = e.environment AND u.company = e.company AND u.mapping_name = e.mapping_name
            AND u.start_datetime > e.logged_at
        WHERE e.repeat
    """)
    # Jobs in which skipped records were retried: evidence of an un-skip (e.g. an unaudited Retry All).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_waves AS
        SELECT DISTINCT s.environment, s.company, s.mapping_name, s.next_any_at AS wave_at
        FROM _bk_skips0 s WHERE s.next_any_at IS NOT NULL
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_skips AS
        WITH h AS (
            SELECT s.*, t.acted_at AS action_at, v.wave_at
            FROM (SELECT * FROM _bk_skips0 WHERE next_any_at IS NOT NULL OR NOT skipped_now) s
            ASOF LEFT JOIN _bk_touched t
                 ON t.environment = s.environment AND t.company = s.company AND t.record_id = s.record_id
                AND t.acted_at > s.start
            ASOF LEFT JOIN _bk_waves v ON v.environment = s.environment AND v.company = s.company
                 AND v.mapping_name = s.mapping_name AND v.wave_at > s.start),
        hist AS (
            SELECT environment, company, mapping_name, record_id, direction, start,
                   CASE WHEN next_any_at IS NOT NULL THEN next_any_at
                        WHEN synced_at IS NOT NULL THEN least(synced_at, action_at, wave_at)
                        WHEN NOT coupled_now AND uncoupled_at IS NOT NULL THEN uncoupled_at
                        WHEN action_at IS NOT NULL THEN action_at
                        WHEN wave_at IS NOT NULL THEN wave_at
                        ELSE start END AS "end",
                   CASE WHEN next_any_at IS NOT NULL THEN 'retried'
                        WHEN synced_at IS NOT NULL THEN 'synced'
                        WHEN NOT coupled_now AND uncoupled_at IS NOT NULL THEN 'uncoupled'
                        WHEN action_at IS NOT NULL THEN 'action'
                        WHEN wave_at IS NOT NULL THEN 'un-skip wave'
                        ELSE 'unknown' END AS end_reason,
                   error_no, message, error_message, signature, cause, 'history' AS source
            FROM h),
        open_ AS (
            SELECT environment, company, mapping_name, record_id, direction, start, NULL::TIMESTAMP AS "end",
                   'still skipped' AS end_reason, error_no, message, error_message, signature, cause,
                   'history' AS source
            FROM _bk_skips0 WHERE next_any_at IS NULL AND skipped_now),
        -- skipped in the snapshot with no open period from the history: from its latest error
        latest AS (
            SELECT environment, company, record_id, arg_max(mapping_name, logged_at) AS mapping_name,
                   arg_max(direction, logged_at) AS direction, max(logged_at) AS logged_at,
                   arg_max(error_no, logged_at) AS error_no, arg_max(msg, logged_at) AS message,
                   arg_max(error_message, logged_at) AS error_message, arg_max(signature, logged_at) AS signature,
                   arg_max(cause, logged_at) AS cause
            FROM _bk_ev GROUP BY ALL),
        snap AS (
            SELECT c.environment, c.company, coalesce(c.mapping_name, l.mapping_name) AS mapping_name, c.record_id,
                   l.direction,
                   coalesce(l.logged_at, c.last_job_start, (SELECT min(start_datetime) FROM _bk_jobs j
                             WHERE j.environment = c.environment AND j.company = c.company)) AS start,
                   NULL::TIMESTAMP AS "end", 'still skipped' AS end_reason, l.error_no, l.message, l.error_message,
                   coalesce(l.signature, 'unclassified') AS signature, coalesce(l.cause, 'unclassified') AS cause,
                   'snapshot' AS source
            FROM _bk_couplings c LEFT JOIN latest l USING (environment, company, record_id)
            WHERE c.skipped AND NOT EXISTS (
                SELECT 1 FROM open_ o WHERE o.environment = c.environment AND o.company = c.company
                   AND o.record_id = c.record_id)),
        allp AS (
            SELECT *, lag("end") OVER k AS prev_end FROM (
                SELECT * FROM hist UNION ALL SELECT * FROM open_ UNION ALL SELECT * FROM snap)
            WINDOW k AS (PARTITION BY environment, company, mapping_name, record_id ORDER BY start, error_no)),
        -- a retry that fails again at once re-skips the record: the record has been stuck since the first period
        isl AS (
            SELECT *, sum(CASE WHEN prev_end = start THEN 0 ELSE 1 END) OVER (
                       PARTITION BY environment, company, mapping_name, record_id ORDER BY start, error_no
                       ROWS UNBOUNDED PRECEDING) AS stuck
            FROM allp)
        SELECT * EXCLUDE (prev_end, stuck),
               min(start) OVER (PARTITION BY environment, company, mapping_name, record_id, stuck) AS skipped_since
        FROM isl
    """)
    con.execute("DROP TABLE IF EXISTS _bk_skips0")


def _build_episodes(ws: Workspace) -> None:
    ws.con.execute("""
        CREATE OR REPLACE TEMP TABLE _bk_episodes AS
        WITH n AS (
            SELECT *, sum(CASE WHEN continues THEN 0 ELSE 1 END) OVER (
                       PARTITION BY environment, company, mapping_name, direction, record_id
                       ORDER BY pos, logged_at, error_no ROWS UNBOUNDED PRECEDING) AS episode
            FROM _bk_ev),
        g AS (
            SELECT environment, company, mapping_name, direction, record_id, episode,
                   min(logged_at) AS first_failure, max(logged_at) AS last_failure, count(*) AS errors,
                   arg_min(signature, logged_at) AS signature, arg_min(cause, logged_at) AS cause,
                   arg_max(signature, logged_at) AS last_signature, arg_min(error_message, logged_at) AS example,
                   bool_or(repeat OR skipped_at_next_job) AS was_skipped,
                   arg_max(skipped_at_next_job, logged_at) AS skipped_at_end,
                   arg_max(next_job_start, logged_at) AS next_job_start,
                   arg_max(next_job_finish, logged_at) AS next_job_finish, arg_max(coupled, logged_at) AS coupled,
                   arg_max(crm_guid, logged_at) AS crm_guid
            FROM n GROUP BY ALL),
        r0 AS (
            SELECT g.*, coalesce(c.record_id, k.record_id) IS NOT NULL AS coupled_now,
                   coalesce(c.skipped, k.skipped, false) AS skipped_now,
                   coalesce(c.success_start, k.success_start) AS success_start,
                   coalesce(c.last_success_start, k.last_success_start) AS last_success_start
            FROM g
            LEFT JOIN _bk_couplings c ON c.environment = g.environment AND c.company = g.company
                 AND c.record_id = g.record_id
            LEFT JOIN _bk_couplings k ON k.environment = g.environment AND k.company = g.company
                 AND k.crm_id = g.crm_guid),
        r1 AS (
            SELECT r0.*, CASE WHEN success_start > last_failure THEN success_start
                              WHEN last_success_start > last_failure THEN last_success_start END AS synced_at,
                   least(t.acted_at, v.wave_at) AS unskip_at
            FROM r0
            ASOF LEFT JOIN _bk_touched t
                 ON t.environment = r0.environment AND t.company = r0.company AND t.record_id = r0.record_id
                AND t.acted_at > r0.last_failure
            ASOF LEFT JOIN _bk_waves v ON v.environment = r0.environment AND v.company = r0.company
                 AND v.mapping_name = r0.mapping_name AND v.wave_at > r0.last_failure),
        -- a skipped record that synced later was un-skipped first: the first un-skip evidence, if earlier
        r AS (SELECT * REPLACE (CASE WHEN skipped_at_end AND coupled THEN least(synced_at, unskip_at)
                                     ELSE synced_at END AS synced_at) FROM r1),
        s AS (
            SELECT r.*,
                   CASE WHEN NOT coupled THEN CASE WHEN coupled_now THEN 'coupled later' ELSE 'unknown' END
                        WHEN NOT skipped_at_end AND next_job_start IS NOT NULL THEN 'next run'
                        WHEN NOT skipped_at_end THEN 'still failing'
                        WHEN skipped_now THEN 'still skipped'
                        WHEN synced_at IS NOT NULL THEN 'synced'
                        WHEN NOT coupled_now THEN 'uncoupled'
                        ELSE 'unknown' END AS resolution
            FROM r)
        SELECT s.environment, s.company, s.mapping_name, s.direction, s.record_id, s.first_failure, s.last_failure,
               s.errors, s.signature, s.cause, s.last_signature, s.example, s.was_skipped, s.resolution,
               CASE s.resolution WHEN 'next run' THEN s.next_job_finish WHEN 'synced' THEN s.synced_at END
                 AS resolved_at,
               s.resolution IN ('still failing', 'still skipped') AS ongoing,
               EXISTS (SELECT 1 FROM _bk_touched t WHERE t.environment = s.environment AND t.company = s.company
                         AND t.record_id = s.record_id AND t.acted_at >= s.first_failure
                         AND t.acted_at <= coalesce(CASE s.resolution WHEN 'next run' THEN s.next_job_finish
                                                   WHEN 'synced' THEN s.synced_at END, TIMESTAMP '9999-12-31'))
                 AS acted
        FROM s
    """)


def _filters(environment: str | None, company: str | None, mapping: str | None) -> tuple[str, list[Any]]:
    return where(environment, company, mapping, time_col="start")


def skip_periods(ws: Workspace, *, environment: str | None = None, company: str | None = None,
                 since: dt.datetime | None = None, until: dt.datetime | None = None,
                 mapping: str | None = None) -> pd.DataFrame:
    """The reconstructed periods in which records were Skipped (see the module docstring for the rules).

    Parameters
    ----------
    ws
        The workspace.
    environment, company, mapping
        Filters (mapping = Integration Table Mapping Name).
    since, until
        Keep the periods that overlap this window.

    Returns
    -------
    pandas.DataFrame
        environment, company, mapping_name, record_id, direction (of the failure that set Skipped), start,
        end (NaT while still skipped), end_reason (``retried``, ``synced``, ``uncoupled``, ``action``,
        ``un-skip wave``, ``unknown``, ``still skipped``), ongoing, days (to the end, or to the end of the
        history while ongoing), error_no, message, error_message, signature, cause, source (``history`` or
        ``snapshot``); sorted by start.
    """
    _build(ws, environment, company, mapping)
    w, params = [], []
    if since is not None:
        w.append('coalesce(s."end", e.history_end) >= ?')
        params.append(since)
    if until is not None:
        w.append("s.start <= ?")
        params.append(until)
    return ws.con.execute(f"""
        SELECT s.environment, s.company, s.mapping_name, s.record_id, s.direction, s.start, s."end", s.skipped_since,
               s.end_reason,
               s."end" IS NULL AS ongoing,
               date_diff('second', s.start, coalesce(s."end", greatest(e.history_end, s.start))) / 86400.0 AS days,
               s.error_no, s.message, s.error_message, s.signature, s.cause, s.source
        FROM _bk_skips s LEFT JOIN _bk_ends e USING (environment, company)
        {"WHERE " + " AND ".join(w) if w else ""}
        ORDER BY s.start, s.environment, s.company, s.mapping_name, s.record_id
    """, params).df()


def _calendar(freq: str) -> str:
    step = "INTERVAL 1 DAY" if freq == "day" else "INTERVAL 7 DAY"
    return f"""
        bounds AS (SELECT min(start) AS lo, (SELECT max(history_end) FROM _bk_ends) AS hi FROM _bk_skips),
        cal AS (SELECT unnest(generate_series(date_trunc('{freq}', lo), date_trunc('{freq}', greatest(lo, hi)),
                                               {step})) AS period
                FROM bounds WHERE lo IS NOT NULL),
        cal2 AS (SELECT period, least(period + {step}, (SELECT hi FROM bounds)) AS at FROM cal)
    """


def backlog(ws: Workspace, *, by: str | None = None, freq: str = "day", environment: str | None = None,
            company: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
            mapping: str | None = None) -> pd.DataFrame:
    """The skipped backlog at the end of each day (or week), with what entered and left it.

    Parameters
    ----------
    by
        ``None`` (one key ``all``), ``mapping``, ``cause``, ``signature`` or ``direction`` (of the failure
        that set Skipped).
    freq
        ``day`` or ``week``.
    environment, company, since, until, mapping
        Filters; ``since``/``until`` select periods (the backlog itself is computed over the whole history).

    Returns
    -------
    pandas.DataFrame
        period, key, skipped (records skipped at the end of the period), became_skipped, cleared; one row
        per period of the history and key.
    """
    if by not in BY:
        raise SchemaError(f"Cannot split the backlog by {by!r}; use one of {[k for k in BY if k]} or None.")
    check_freq(freq)
    _build(ws, environment, company, mapping)
    w, params = where(since=since, until=until, time_col="period")
    key = BY[by]
    return ws.con.execute(f"""
        WITH {_calendar(freq)},
        p AS (SELECT {key} AS key, start, "end" FROM _bk_skips),
        keys AS (SELECT DISTINCT key FROM p),
        started AS (SELECT date_trunc('{freq}', start) AS period, key, count(*) AS n FROM p GROUP BY ALL),
        ended AS (SELECT date_trunc('{freq}', "end") AS period, key, count(*) AS n FROM p
                  WHERE "end" IS NOT NULL GROUP BY ALL),
        t AS (
            SELECT c.period, k.key, coalesce(s.n, 0) AS became_skipped, coalesce(x.n, 0) AS cleared,
                   sum(coalesce(s.n, 0) - coalesce(x.n, 0)) OVER (PARTITION BY k.key ORDER BY c.period) AS skipped
            FROM cal c CROSS JOIN keys k
            LEFT JOIN started s ON s.period = c.period AND s.key = k.key
            LEFT JOIN ended x ON x.period = c.period AND x.key = k.key)
        SELECT period, key, CAST(skipped AS BIGINT) AS skipped, CAST(became_skipped AS BIGINT) AS became_skipped,
               CAST(cleared AS BIGINT) AS cleared
        FROM t WHERE TRUE{w} ORDER BY period, key
    """, params).df()


def backlog_ageing(ws: Workspace, *, at: dt.datetime | None = None, by: str | None = "mapping",
                   environment: str | None = None, company: str | None = None,
                   mapping: str | None = None) -> pd.DataFrame:
    """How long the records skipped at ``at`` (default: the end of the history) have been skipped.

    Returns
    -------
    pandas.DataFrame
        key, bucket (one of :data:`AGE_BUCKETS`, every bucket listed per key), records, oldest_days.
    """
    if by not in BY:
        raise SchemaError(f"Cannot split the ageing by {by!r}; use one of {[k for k in BY if k]} or None.")
    _build(ws, environment, company, mapping)
    at_sql = "CAST(? AS TIMESTAMP)" if at is not None else "(SELECT max(history_end) FROM _bk_ends)"
    buckets = ", ".join(f"('{b}', {i})" for i, b in enumerate(AGE_BUCKETS))
    return ws.con.execute(f"""
        WITH t AS (SELECT {at_sql} AS at),
        p AS (
            SELECT {BY[by]} AS key, date_diff('second', s.skipped_since, t.at) / 86400.0 AS days
            FROM _bk_skips s, t WHERE s.start <= t.at AND (s."end" IS NULL OR s."end" > t.at)),
        b AS (SELECT * FROM (VALUES {buckets}) v(bucket, ord)),
        a AS (SELECT key, {_age_bucket_sql('days')} AS bucket, count(*) AS records, max(days) AS oldest_days
              FROM p GROUP BY ALL)
        SELECT k.key, b.bucket, coalesce(a.records, 0) AS records, a.oldest_days
        FROM (SELECT DISTINCT key FROM p) k CROSS JOIN b
        LEFT JOIN a ON a.key = k.key AND a.bucket = b.bucket
        ORDER BY k.key, b.ord
    """, [at] if at is not None else []).df()


def backlog_ageing_over_time(ws: Workspace, *, freq: str = "day", environment: str | None = None,
                             company: str | None = None, since: dt.datetime | None = None,
                             until: dt.datetime | None = None, mapping: str | None = None) -> pd.DataFrame:
    """The backlog at the end of each period split by how long its records had been skipped then.

    Returns
    -------
    pandas.DataFrame
        period, bucket (every bucket of :data:`AGE_BUCKETS` per period), records.
    """
    check_freq(freq)
    _build(ws, environment, company, mapping)
    w, params = where(since=since, until=until, time_col="period")
    buckets = ", ".join(f"('{b}', {i})" for i, b in enumerate(AGE_BUCKETS))
    return ws.con.execute(f"""
        WITH {_calendar(freq)},
        a AS (
            SELECT c.period, {_age_bucket_sql("date_diff('second', s.skipped_since, c.at) / 86400.0")} AS bucket,
                   count(*) AS records
            FROM cal2 c JOIN _bk_skips s ON s.start < c.at AND coalesce(s."end", TIMESTAMP '9999-12-31') >= c.at
            GROUP BY ALL),
        b AS (SELECT * FROM (VALUES {buckets}) v(bucket, ord))
        SELECT c.period, b.bucket, coalesce(a.records, 0) AS records
        FROM cal2 c CROSS JOIN b LEFT JOIN a ON a.period = c.period AND a.bucket = b.bucket
        WHERE TRUE{w.replace('period', 'c.period')}
        ORDER BY c.period, b.ord
    """, params).df()


def failure_episodes(ws: Workspace, *, environment: str | None = None, company: str | None = None,
                     since: dt.datetime | None = None, until: dt.datetime | None = None,
                     mapping: str | None = None) -> pd.DataFrame:
    """Time to resolution per record: one row per failure episode of a record in one direction.

    Parameters
    ----------
    since, until
        Keep the episodes whose first failure falls in this window.

    Returns
    -------
    pandas.DataFrame
        environment, company, mapping_name, direction, record_id, first_failure, last_failure, errors,
        signature and cause (of the first error), last_signature, example (first error text), was_skipped,
        resolution (``next run``, ``synced``, ``coupled later``, ``still failing``, ``still skipped``,
        ``uncoupled``, ``unknown``), resolved_at (NaT when unknown), ongoing, acted (an audited action named the record), hours_to_resolution,
        self_healed; sorted by first failure.
    """
    _build(ws, environment, company, mapping)
    w, params = where(since=since, until=until, time_col="first_failure")
    return ws.con.execute(f"""
        SELECT *, date_diff('second', first_failure, resolved_at) / 3600.0 AS hours_to_resolution,
               resolution = 'next run' AND NOT was_skipped AND NOT acted AS self_healed
        FROM _bk_episodes WHERE TRUE{w}
        ORDER BY first_failure, environment, company, mapping_name, record_id, direction
    """, params).df()


def resolution_summary(ws: Workspace, *, by: str = "signature", environment: str | None = None,
                       company: str | None = None, since: dt.datetime | None = None,
                       until: dt.datetime | None = None, mapping: str | None = None) -> pd.DataFrame:
    """Time to resolution and the share of records that heal by themselves, per signature (or cause, mapping).

    Parameters
    ----------
    by
        ``signature``, ``cause``, ``mapping`` or ``direction``; an episode counts for the key of its first
        error.
    environment, company, mapping
        Filters.
    since, until
        Keep the episodes whose first failure falls in this window.

    Returns
    -------
    pandas.DataFrame
        key, cause, episodes, records (distinct), resolved (episodes), median_hours and p90_hours (over the
        resolved episodes whose resolution time is known), self_healed (episodes), self_healed_records,
        self_heal_share (records whose every episode with this key healed by itself, over records),
        episode_self_heal_share, skipped_share (episodes in which the record was skipped), ongoing, example;
        sorted by episodes descending.
    """
    if by not in EPISODE_BY:
        raise SchemaError(f"Cannot summarise resolution by {by!r}; use one of {sorted(EPISODE_BY)}.")
    _build(ws, environment, company, mapping)
    w, params = where(since=since, until=until, time_col="first_failure")
    key = EPISODE_BY[by]
    return ws.con.execute(f"""
        WITH e AS (
            SELECT *, {key} AS key, environment || '|' || company || '|' || record_id AS rec,
                   date_diff('second', first_failure, resolved_at) / 3600.0 AS hours,
                   resolution = 'next run' AND NOT was_skipped AND NOT acted AS healed
            FROM _bk_episodes WHERE TRUE{w}),
        r AS (SELECT key, rec, bool_and(healed) AS healed FROM e GROUP BY ALL),
        rk AS (SELECT key, count(*) AS records, count(*) FILTER (healed) AS self_healed_records FROM r GROUP BY ALL)
        SELECT e.key, mode(e.cause) AS cause, count(*) AS episodes, any_value(rk.records) AS records,
               count(*) FILTER (e.resolution IN ('next run', 'synced', 'coupled later')) AS resolved,
               quantile_cont(e.hours, 0.5) AS median_hours, quantile_cont(e.hours, 0.9) AS p90_hours,
               count(*) FILTER (e.healed) AS self_healed, any_value(rk.self_healed_records) AS self_healed_records,
               any_value(rk.self_healed_records) / any_value(rk.records) AS self_heal_share,
               count(*) FILTER (e.healed) / count(*) AS episode_self_heal_share,
               count(*) FILTER (e.was_skipped) / count(*) AS skipped_share, count(*) FILTER (e.ongoing) AS ongoing,
               arg_max(e.example, e.first_failure) AS example
        FROM e JOIN rk USING (key) GROUP BY e.key ORDER BY episodes DESC, e.key
    """, params).df()
