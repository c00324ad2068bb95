"""BC's synchronization engine (spec §6) over a :class:`World`, deciding a whole run set-wise.

One call of :func:`synchronize` is one row of table 5338: one mapping, one direction. Records are
selected as codeunit 5340 does (§6.2), decided by the steps of §6.3 as boolean masks, written, and
their couplings updated by §3/§6.4 (success raises both watermarks; a failure with the same
Message as the previous failure in that direction sets Skipped).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

from .. import bc
from ..errors import TwinError
from . import messages as m
from .model import (
    BC,
    BLANK,
    DIRECTION_NAMES,
    DV,
    FAULT_NO_EXCHANGE_RATE,
    FAULT_NO_RELATION,
    FAULT_UOM_SETUP,
    FROM,
    TO,
    MappingConfig,
    TableState,
)

# The engine rules that fail a record, recorded with each error (ground truth of the twin only).
RULES = ("parent", "fault", "length", "privilege", "throttling", "deleted", "conflict")
# Outcome codes of one record in one run (the counter of table 5338 it increments).
UNCOUNTED, INSERTED, MODIFIED, UNCHANGED, SKIPPED, FAILED = range(6)
OUTCOME_NAMES = ("none", "inserted", "modified", "unchanged", "skipped", "failed")
# Milliseconds one record of each outcome takes inside a job (drives durations and timestamps).
_COST_MS = np.array([2, 260, 180, 35, 4, 220])
_JOB_OVERHEAD_MS = 1800


@dataclass
class Job:
    """One row of table 5338."""

    index: int
    id: str
    mapping: str
    direction: int  # TO or FROM; BLANK for couple/uncouple runs, which carry the mapping's direction
    start: int
    finish: int = BLANK
    job_queue_log_entry_no: int = 0
    type: str = "Synchronization"
    counts: dict[str, int] = field(default_factory=dict)
    message: str = ""
    one_off: bool = False


@dataclass
class ErrorLog:
    """Rows of table 5339, accumulated as arrays per job."""

    job: list[np.ndarray] = field(default_factory=list)
    at: list[np.ndarray] = field(default_factory=list)
    source: list[np.ndarray] = field(default_factory=list)
    destination: list[np.ndarray] = field(default_factory=list)
    text: list[np.ndarray] = field(default_factory=list)
    family: list[np.ndarray] = field(default_factory=list)
    rule: list[np.ndarray] = field(default_factory=list)  # which engine rule failed (RULES)
    incident: list[np.ndarray] = field(default_factory=list)
    mapping: list[np.ndarray] = field(default_factory=list)
    key: list[np.ndarray] = field(default_factory=list)
    base: int = 0  # errors already handed over (exported) and dropped; the next one is No. base + 1

    def __len__(self) -> int:
        return sum(len(a) for a in self.job)

    @property
    def total(self) -> int:
        """All errors ever logged, including those already dropped."""
        return self.base + len(self)

    def copy(self) -> ErrorLog:
        """A copy whose lists can be dropped without touching this log's."""
        return ErrorLog(**{f: (list(v) if isinstance(v, list) else v) for f, v in vars(self).items()})

    def drop(self) -> None:
        """Forget the logged rows once exported (keeps the numbering going on)."""
        self.base += len(self)
        for name in ("job", "at", "source", "destination", "text", "family", "rule", "incident", "mapping", "key"):
            getattr(self, name).clear()


class World:
    """A BC company and a Dataverse org: the records of every mapping, jobs, errors and faults.

    Parameters
    ----------
    configs
        The integration table mappings.
    seed
        Seed of every random choice, so a world replays identically.
    environment, company
        Written on every history row.
    """

    def __init__(self, configs: list[MappingConfig], *, seed: int = 0, environment: str = "PRODUCTION",
                 company: str = "CRONUS International Ltd.") -> None:
        self.configs = {c.name: c for c in configs}
        self.tables = {c.name: TableState(c, len(c.fields)) for c in configs}
        self.rng = np.random.default_rng(seed)
        self.environment = environment
        self.company = company
        self.jobs: list[Job] = []
        self.errors = ErrorLog()
        self.connection_enabled = True
        self.disable_reason = ""
        self.missing_create_privilege: dict[str, int] = {}  # Dataverse logical name -> incident id
        # Dataverse logical names whose rows the integration user may not delete (prvDelete<Table>)
        self.missing_delete_privilege: set[str] = set()
        self.deleted_jobs: set[int] = set()  # job indexes removed by Delete Entries
        self.deleted_job_errors: set[int] = set()  # of those, the ones whose 5339 rows went with them
        self.throttling: tuple[float, int] | None = None  # (failure probability, incident id)
        self.job_queue_log_entry_no = 0
        self.integration_user_id = self.new_ids(1)[0]

    def new_ids(self, n: int) -> np.ndarray:
        """Return ``n`` new GUIDs (lower-case text) drawn from the world's generator."""
        raw = self.rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        return np.array([str(uuid.UUID(bytes=bytes(r), version=4)) for r in raw], dtype=object)

    def table(self, name: str) -> TableState:
        """The records of mapping ``name``; raises :class:`TwinError` for a mapping the twin does not have."""
        try:
            return self.tables[name]
        except KeyError:
            raise TwinError(f"The twin has no mapping {name!r}; it has {sorted(self.tables)}.") from None

    def next_job_queue_log_entry(self) -> int:
        """Return the next Job Queue Log Entry No. (the first is 1)."""
        self.job_queue_log_entry_no += 1
        return self.job_queue_log_entry_no


def _record_ids(t: TableState, side: int, idx: np.ndarray) -> np.ndarray:
    cfg = t.config
    if side == BC:
        return np.array([bc.record_id(cfg.bc_caption, k) for k in t.key[idx]], dtype=object)
    return np.array([bc.record_id(cfg.dv_caption, bc.format_guid(g)) if g else "" for g in t.ids[DV][idx]],
                    dtype=object)


def _checks(world: World, t: TableState, d: int, idx: np.ndarray, insert: np.ndarray):
    """Yield (fails, texts, family, rule, incident) for each failure rule of a write, in BC's order.

    ``fails`` is a mask over ``idx``; texts and incidents are given for the failing rows only.
    """
    cfg = t.config
    src, dst = d, 1 - d
    n = len(idx)
    # Related records (Salesperson Code, Currency Code, the contact's company, Base Unit of Measure).
    for p in cfg.parents:
        template = p.to_message if d == TO else p.from_message
        if not template:
            continue
        parent_rows = t.parents[p.role][idx]
        pt = world.table(p.mapping)
        has = parent_rows >= 0
        safe = np.where(has, parent_rows, 0)
        ok = pt.coupled[safe] & pt.exists[BC][safe] & pt.exists[DV][safe] if len(pt) else np.zeros(n, bool)
        fails = has & ~ok
        if fails.any():
            texts = np.array([template.format(caption=pt.config.bc_caption, key=k, service=m.SERVICE)
                              for k in pt.key[safe[fails]]], dtype=object)
            # the planted cause sits where the parent is broken: a new uncoupled parent carries it on its
            # BC side, a coupled parent deleted in Dataverse on its Dataverse side
            pr = safe[fails]
            deleted = pt.coupled[pr] & ~pt.exists[DV][pr]
            yield fails, texts, p.family, "parent", np.where(deleted, pt.incident[DV][pr], pt.incident[BC][pr])
    # Faults planted on the source record.
    codes = t.fault[src][idx]
    if codes.any():
        fails = codes != 0
        texts = []
        for code, key, name in zip(codes[fails], t.key[idx][fails], t.name[idx][fails]):
            if code == FAULT_NO_RELATION:
                texts.append(m.fill(m.CONTACT_NO_RELATION, key))
            elif code == FAULT_NO_EXCHANGE_RATE:
                texts.append(m.fill(m.CURRENCY_NO_RATE, key, m.SERVICE))
            elif code == FAULT_UOM_SETUP:
                texts.append(m.fill(m.UOM_WRONG_NAME, key, key, str(name).title()))
            else:
                raise TwinError(f"Unknown fault code {code} on {cfg.name} {key}.")
        yield fails, np.array(texts, dtype=object), "subscriber", "fault", t.incident[src][idx][fails]
    # Text longer than the destination field (BC platform runtime error).
    for c, fm in enumerate(cfg.fields):
        limit = fm.bc_length if dst == BC else fm.dv_length
        if not limit or not fm.transfers(d):
            continue
        lengths = t.lens[src][idx, c].astype(np.int64)
        fails = lengths > limit
        if fails.any():
            texts = []
            for row, length, ins in zip(idx[fails], lengths[fails], insert[fails]):
                inner = m.fill(m.STRING_LENGTH, length, limit, m.long_value(int(row) * 7 + int(t.vals[src][row, c]), int(length)))
                texts.append(inner if ins else m.fill(m.MODIFY_FAILED, cfg.caption(dst), inner))
            yield fails, np.array(texts, dtype=object), "platform", "length", t.incident[src][idx][fails]
    logical = bc.CRM_TABLES[cfg.crm_table_id][1]
    # The integration user lost the Create privilege on the Dataverse table.
    if d == TO and logical in world.missing_create_privilege and insert.any():
        privilege = "prvCreate" + logical.capitalize()
        text = (f"{m.COMMUNICATION} Detailed description: CrmCreate failed. "
                + m.fill(m.PRIVILEGE, world.integration_user_id, privilege))
        k = int(insert.sum())
        yield insert, np.full(k, text, dtype=object), "dataverse", "privilege", np.full(k, world.missing_create_privilege[logical])
    # Service protection limits / time-outs: every call may fail, each with its own request id.
    if world.throttling is not None:
        p, incident = world.throttling
        fails = world.rng.random(n) < p
        if fails.any():
            k = int(fails.sum())
            ids = world.new_ids(k)
            kinds = world.rng.random(k) < 0.5
            texts = np.array([
                m.fill(m.TIMEOUT, f"Request ID: {rid}") if tmo else
                f"{m.COMMUNICATION} Detailed description: Number of requests exceeded the limit of 6000 over time "
                f"window of 300 seconds. Request ID: {rid}"
                for rid, tmo in zip(ids, kinds)], dtype=object)
            yield fails, texts, "dataverse", "throttling", np.full(k, incident)


def synchronize(
    world: World,
    mapping: str,
    direction: int,
    start: int,
    *,
    job_queue_log_entry_no: int = 0,
    rows: np.ndarray | None = None,
    force_modify: bool = False,
    ignore_only_coupled: bool = False,
) -> Job:
    """Run one mapping in one direction, as one 5338 job, and return it.

    Parameters
    ----------
    world
        The twin.
    mapping
        Mapping name (the parent name is written on the job for one-off runs too).
    direction
        ``TO`` (BC -> Dataverse) or ``FROM``.
    start
        Job start, ms since the epoch.
    job_queue_log_entry_no
        0 for a foreground run, else the job queue log entry.
    rows
        Explicit records (a one-off run on a temporary mapping): no watermark selection, and the
        mapping watermarks are left alone.
    force_modify
        Skip the deletion- and update-conflict checks and write (Synchronize, §6.6). Skipped
        couplings are still skipped.
    ignore_only_coupled
        Behave as if Synch. Only Coupled Records were off (one-off runs, Restore Records).
    """
    t = world.table(mapping)
    cfg = t.config
    if direction not in (TO, FROM):
        raise TwinError(f"direction must be TO ({TO}) or FROM ({FROM}); got {direction!r}.")
    src, dst = direction, 1 - direction
    job = Job(len(world.jobs), world.new_ids(1)[0], mapping, direction, start,
              job_queue_log_entry_no=job_queue_log_entry_no, one_off=rows is not None)
    world.jobs.append(job)
    if not cfg.runs(direction):
        # BeginIntegrationSynchJob: a run against the mapping's direction is a finished job that processed
        # nothing, with BC's message (IntegrationTableSynchTest.CannotSynchAgainstMappingDirection)
        job.finish = start
        job.counts = {name: 0 for name in OUTCOME_NAMES[1:]}
        job.message = m.fill(m.DIRECTION_NOT_CONFIGURED, "Integration Table Mapping", mapping,
                             DIRECTION_NAMES[direction])
        return job
    if not any(f.transfers(direction) for f in cfg.fields):
        # BuildTempIntegrationFieldMapping errors: the job row stays unfinished (IntegrationTableSynchTest
        # MissingFieldMappingFailsHard)
        raise TwinError(m.fill(m.NO_FIELD_MAPPING, "Integration Field Mapping", "Integration Table Mapping Name",
                               mapping))

    # §6.2 selection: failed-not-skipped couplings first, then records modified after the watermark.
    if rows is None:
        retry = t.coupled & (t.result[direction] == bc.RESULT_FAILURE) & ~t.skipped & t.exists[src]
        slack = 999 if src == DV else 0
        changed = t.exists[src] & (t.mod[src] > t.mapping_wm[src] - slack)
        # only records within the mapping's Table Filter / Integration Table Filter
        changed &= t.in_filter if src == BC else t.in_int_filter
        if src == DV and cfg.echo_suppressed:
            changed &= ~t.by_integration[DV]
        if cfg.only_coupled and not ignore_only_coupled:
            # uncoupled records are not selected at all, in both directions (§6.3 step 4 correction)
            changed &= t.coupled
        later = np.flatnonzero(changed & ~retry)
        idx = np.concatenate([np.flatnonzero(retry), later[np.argsort(t.mod[src][later], kind="stable")]])
    else:
        idx = np.unique(np.asarray(rows, dtype=np.int64))
        idx = idx[t.exists[src][idx]]
    n = len(idx)
    outcome = np.zeros(n, np.int8)
    texts = np.full(n, None, dtype=object)
    family = np.full(n, None, dtype=object)
    rule = np.full(n, None, dtype=object)
    incident = np.zeros(n, np.int16)
    coupled = t.coupled[idx].copy()

    def fail(mask: np.ndarray, text: object, fam: str, why: str, inc: object) -> None:
        outcome[mask] = FAILED
        texts[mask] = text
        family[mask] = fam
        rule[mask] = why
        incident[mask] = inc

    # 1. Skipped coupling.
    open_ = np.ones(n, bool)
    skip = coupled & t.skipped[idx]
    outcome[skip] = SKIPPED
    open_ &= ~skip
    # 3. Coupled, but the destination was deleted: Resolve Deletion Conflicts.
    gone = open_ & coupled & ~t.exists[dst][idx]
    restore = np.zeros(n, bool)
    remove = np.zeros(n, bool)
    if gone.any():
        if force_modify or cfg.deletion_resolution == "None":
            fail(gone, m.fill(m.DELETED, cfg.caption(src)), "engine", "deleted", t.incident[dst][idx][gone])
        elif cfg.deletion_resolution == "Remove Coupling":
            remove = gone
            outcome[remove] = UNCHANGED  # the coupling goes before change detection: the record is unchanged
        else:  # Restore Records
            restore = gone
        open_ &= ~gone
    # 4. Not coupled: skipped when only coupled records synchronize, else inserted.
    not_found = open_ & ~coupled
    if cfg.only_coupled and not ignore_only_coupled:
        outcome[not_found] = SKIPPED
        insert = restore
    else:
        insert = not_found | restore
    modify = open_ & coupled
    both_changed = np.zeros(n, bool)
    if not force_modify:
        # 5. Change detection against the coupling's watermark of the source side.
        retried = (t.result[direction][idx] == bc.RESULT_FAILURE) & ~t.skipped[idx]
        src_changed = (t.mod[src][idx] > t.wm[src][idx]) | retried
        outcome[modify & ~src_changed] = UNCHANGED
        modify &= src_changed
        # 6. Update conflict: Bidirectional mapping, destination changed too, a bidirectional field differs.
        if cfg.direction == bc.BIDIRECTIONAL:
            dst_retried = (t.result[1 - direction][idx] == bc.RESULT_FAILURE) & ~t.skipped[idx]
            both_changed = modify & ((t.mod[dst][idx] > t.wm[dst][idx]) | dst_retried)
            bi = [c for c, f in enumerate(cfg.fields) if f.direction == bc.BIDIRECTIONAL]
            if bi and both_changed.any():
                diff = t.vals[src][idx][:, bi] != t.vals[dst][idx][:, bi]
                conflict = both_changed & diff.any(axis=1)
                winner = {"Send Update to Integration": TO, "Get Update from Integration": FROM}.get(cfg.update_resolution)
                if winner is None:
                    first = np.argmax(diff, axis=1)
                    inc = np.maximum(t.incident[src][idx], t.incident[dst][idx])
                    for c in np.unique(first[conflict]):
                        fm = cfg.fields[bi[c]]
                        # BC names both fields by their captions (the Dataverse one too: "Account Name")
                        names = (fm.bc_field, fm.dv_label) if src == BC else (fm.dv_label, fm.bc_field)
                        sel = conflict & (first == c)
                        fail(sel, m.fill(m.CONFLICT, cfg.caption(src), cfg.caption(dst), *names), "engine", "conflict", inc[sel])
                    modify &= ~conflict
                elif winner != direction:
                    outcome[conflict] = SKIPPED
                    modify &= ~conflict
    # 7-9. Field transfer and write; any error inside the record's transaction fails it.
    write = (insert | modify) & (outcome == UNCOUNTED)
    w_idx = np.flatnonzero(write)
    if len(w_idx):
        for fails, txt, fam, why, inc in _checks(world, t, direction, idx[w_idx], insert[w_idx]):
            hit = w_idx[fails]
            still = outcome[hit] == UNCOUNTED
            fail(hit[still], txt[still], fam, why, np.asarray(inc)[still])
    cols = [c for c, f in enumerate(cfg.fields) if f.transfers(direction)]
    ok_insert = insert & (outcome == UNCOUNTED)
    ok_modify = modify & (outcome == UNCOUNTED)
    if cols:
        differs = (t.vals[src][idx][:, cols] != t.vals[dst][idx][:, cols]).any(axis=1) | (
            t.lens[src][idx][:, cols] != t.lens[dst][idx][:, cols]).any(axis=1)
    else:
        differs = np.zeros(n, bool)
    # a ForceModify write (Synchronize, a one-off run) counts Modified even when no field changed (§6.3 step 8)
    same = ok_modify & ~differs
    outcome[same] = MODIFIED if force_modify else UNCHANGED
    outcome[ok_modify & differs] = MODIFIED
    outcome[ok_insert] = INSERTED

    # Timing: records are processed one after another; each write or error carries its own time.
    at = start + _JOB_OVERHEAD_MS + np.cumsum(_COST_MS[outcome] + world.rng.integers(0, 40, n))
    job.finish = int(at[-1] + 400) if n else start + _JOB_OVERHEAD_MS
    # codeunit 5340 raises the mapping's watermark to the latest modified-on of the records Synchronize did
    # not fail (skipped and unchanged ones count; failed ones do not, even when the failure makes them
    # Skipped), with no cap (CRMSynchJobScenarios.SynchUpdatesLastSynchModifiedOnWhenDataChanges)
    not_failed = outcome != FAILED
    select_mod_max = int(t.mod[src][idx][not_failed].max()) if not_failed.any() else BLANK

    # Writes.
    written = np.flatnonzero((outcome == INSERTED) | (outcome == MODIFIED))
    rows_w = idx[written]
    if len(rows_w):
        if cols:
            vals = t.vals[dst][rows_w]
            vals[:, cols] = t.vals[src][rows_w][:, cols]
            t.vals[dst][rows_w] = vals
            lens = t.lens[dst][rows_w]
            lens[:, cols] = t.lens[src][rows_w][:, cols]
            t.lens[dst][rows_w] = lens
        t.mod[dst][rows_w] = at[written]
        t.by_integration[dst][rows_w] = True
    ins = idx[outcome == INSERTED]
    if len(ins):
        t.uncouple(ins)
        t.exists[dst][ins] = True
        t.ids[dst][ins] = world.new_ids(len(ins))
        t.coupled[ins] = True
        if dst == BC:
            # a record BC re-creates (Restore Records) is a new record: it takes the next number of the
            # table's No. Series, never the deleted record's (CRMSynchSkippedRecords T165)
            used = t.key_used
            again = ins[used[ins]] if t.config.no_series_step else ins[:0]
            if len(again):
                t.key[again] = t.next_keys(len(again))
            used[ins] = True
    if remove.any():
        t.uncouple(idx[remove])
    # Couplings: success raises both watermarks (kept as max) and records the job.
    success = np.flatnonzero(np.isin(outcome, (INSERTED, MODIFIED, UNCHANGED)) & t.coupled[idx])
    rows_s = idx[success]
    t.result[direction][rows_s] = bc.RESULT_SUCCESS
    t.job[direction][rows_s] = job.index
    t.last_msg[direction][rows_s] = None
    # whatever planted problem these records had, it no longer stops them (ground truth ends here)
    for side in (BC, DV):
        t.incident[side][rows_s] = 0
    for side in (BC, DV):
        t.wm[side][rows_s] = np.maximum(t.wm[side][rows_s], t.mod[side][rows_s])
    # After a write on a record changed on both sides, lower the destination watermark so the
    # opposite direction still runs (−999 ms Dataverse, −10 ms BC).
    both_written = idx[both_changed & ((outcome == MODIFIED) | (outcome == UNCHANGED))]
    t.wm[dst][both_written] = t.mod[dst][both_written] - (999 if dst == DV else 10)
    # Failures: mark the coupling failed; the same Message twice in a row sets Skipped (§6.4).
    failed = np.flatnonzero(outcome == FAILED)
    if len(failed):
        message = np.array([s[: m.MESSAGE_LEN] for s in texts[failed]], dtype=object)
        has_coupling = t.coupled[idx[failed]]
        rows_f = idx[failed][has_coupling]
        msg_f = message[has_coupling]
        repeat = (t.result[direction][rows_f] == bc.RESULT_FAILURE) & (t.last_msg[direction][rows_f] == msg_f)
        if world.deleted_job_errors:  # the previous job's errors were deleted with it: nothing to compare with
            repeat &= ~np.isin(t.job[direction][rows_f], np.fromiter(world.deleted_job_errors, np.int64))
        t.skipped[rows_f[repeat]] = True
        # a failure that makes its coupling Skipped counts Skipped, not Failed, in this job; its 5339 row
        # is still written (§6.3 step 9, BC's T105/T107 in CRMSynchSkippedRecords)
        outcome[failed[np.flatnonzero(has_coupling)[repeat]]] = SKIPPED
        t.result[direction][rows_f] = bc.RESULT_FAILURE
        t.job[direction][rows_f] = job.index
        t.last_msg[direction][rows_f] = msg_f
        t.fail_at[direction][rows_f] = at[failed][has_coupling]
        # 5339 rows: source and destination record ids as BC formats them.
        rows_all = idx[failed]
        src_ids = _record_ids(t, src, rows_all)
        dst_ids = _record_ids(t, dst, rows_all)
        dst_ids[~coupled[failed]] = ""  # the destination does not exist yet on a failed insert
        log = world.errors
        log.job.append(np.full(len(failed), job.index))
        log.at.append(at[failed])
        log.source.append(src_ids)
        log.destination.append(dst_ids)
        log.text.append(np.array([s[: m.ERROR_MESSAGE_LEN] for s in texts[failed]], dtype=object))
        log.family.append(family[failed])
        log.rule.append(rule[failed])
        log.incident.append(incident[failed])
        log.mapping.append(np.full(len(failed), mapping, dtype=object))
        log.key.append(t.key[rows_all])
        # CRM subscriber on OnAfterLogSynchError: a missing create privilege disables the connection.
        if any("CrmCreate" in s and "prvCreate" in s for s in texts[failed]):
            world.connection_enabled = False
            world.disable_reason = (f"The connection to {m.SERVICE} was disabled because integration user "
                                    f"{world.integration_user_id} has insufficient privileges to run the synchronization.")
    # Mapping watermark (§6.2): raised, never lowered; one-off runs use a temporary mapping and leave it alone.
    if rows is None and select_mod_max != BLANK:
        t.mapping_wm[src] = max(t.mapping_wm[src], select_mod_max)

    counts = np.bincount(outcome, minlength=6)
    job.counts = {name: int(counts[i]) for i, name in enumerate(OUTCOME_NAMES) if i}
    return job


def run_mapping(world: World, mapping: str, start: int, *, job_queue_log_entry_no: int | None = None,
                rows: np.ndarray | None = None, direction: int | None = None, force_modify: bool = False,
                ignore_only_coupled: bool = False) -> list[Job]:
    """Run a mapping as the job queue does: Bidirectional writes two jobs, to Dataverse first, then from.

    ``job_queue_log_entry_no=None`` takes the next job queue log entry; pass 0 for a foreground run.
    """
    cfg = world.table(mapping).config
    if job_queue_log_entry_no is None:
        job_queue_log_entry_no = world.next_job_queue_log_entry()
    directions = [direction] if direction is not None else [d for d in (TO, FROM) if cfg.runs(d)]
    jobs = []
    at = start
    for d in directions:
        job = synchronize(world, mapping, d, at, job_queue_log_entry_no=job_queue_log_entry_no, rows=rows,
                          force_modify=force_modify, ignore_only_coupled=ignore_only_coupled)
        jobs.append(job)
        at = job.finish + 150
    return jobs


def uncouple_job(world: World, mapping: str, rows: np.ndarray, start: int, *, job_queue_log_entry_no: int | None = None) -> Job:
    """Remove the couplings of ``rows`` as an uncoupling job (Type = Uncoupling, Uncoupled++)."""
    t = world.table(mapping)
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[t.coupled[rows]]
    t.uncouple(rows)
    jq = world.next_job_queue_log_entry() if job_queue_log_entry_no is None else job_queue_log_entry_no
    job = Job(len(world.jobs), world.new_ids(1)[0], mapping, BLANK, start,
              job_queue_log_entry_no=jq, type="Uncoupling", one_off=True)
    job.finish = start + _JOB_OVERHEAD_MS + 40 * len(rows)
    job.counts = {name: 0 for name in OUTCOME_NAMES[1:]} | {"uncoupled": len(rows)}
    world.jobs.append(job)
    return job


def couple_job(world: World, mapping: str, rows: np.ndarray, start: int, *, job_queue_log_entry_no: int | None = None) -> Job:
    """Couple ``rows`` whose records exist in both apps as a match-based coupling job (Coupled++)."""
    t = world.table(mapping)
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[~t.coupled[rows] & t.exists[BC][rows] & t.exists[DV][rows]]
    t.couple(rows, start)
    jq = world.next_job_queue_log_entry() if job_queue_log_entry_no is None else job_queue_log_entry_no
    job = Job(len(world.jobs), world.new_ids(1)[0], mapping, BLANK, start,
              job_queue_log_entry_no=jq, type="Coupling", one_off=True)
    job.finish = start + _JOB_OVERHEAD_MS + 60 * len(rows)
    job.counts = {name: 0 for name in OUTCOME_NAMES[1:]} | {"coupled": len(rows)}
    world.jobs.append(job)
    return job
