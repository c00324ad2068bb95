"""What a user can do to the twin, with BC's semantics (spec §5.1, §6.4-§6.6).

These are the engine operations the resolution actions build on: they change the simulated apps
and couplings; the effect shows in jobs, errors and couplings on the next run of the job queue.
Every function takes the records of one mapping either as BC keys (``keys``) or as rows of the
mapping's :class:`~syncanalysis.twin.model.TableState` (``rows=``, for bulk callers that mapped
integration ids with :func:`rows_for_ids`), and raises :class:`TwinError` for unknown keys.

Callers outside the twin read its state through :func:`records` (copies of what an action needs to know
about some couplings) and the few queries below it, never through the twin's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import bc
from ..errors import TwinError, TwinPermissionError
from .engine import Job, World, run_mapping, synchronize, uncouple_job
from .model import BC, BLANK, DV, FROM, TO, MappingConfig

# Dataverse tables that carry the CompanyId column of the base integration solution (spec §9): their
# mappings get Uncouple Codeunit 5337, so Delete Couplings schedules an uncoupling job (spec §4.1 field 27).
COMPANY_ID_TABLES = frozenset({"account", "contact", "opportunity", "quote", "salesorder", "invoice", "product",
                               "pricelevel"})


def _rows(world: World, mapping: str, keys: list[str] | np.ndarray | None, rows: np.ndarray | None) -> np.ndarray:
    """The rows of ``keys`` (BC primary keys) or ``rows`` itself; exactly one must be given."""
    if (keys is None) == (rows is None):
        raise TwinError("Give the records either as BC keys or as rows, not both or neither.")
    t = world.table(mapping)
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(t)):
            raise TwinError(f"Mapping {mapping} has {len(t)} records; rows out of range were given.")
        return rows
    keys = np.asarray(list(keys), dtype=object)
    found = pd.Index(t.key).get_indexer(keys)
    if (found < 0).any():
        raise TwinError(f"Mapping {mapping} has no record(s) with key {keys[found < 0][:5].tolist()}.")
    return found.astype(np.int64)


def rows_for_ids(world: World, mapping: str, integration_ids: np.ndarray | list[str]) -> np.ndarray:
    """Map BC SystemIds (coupling Integration IDs, GUID text in any case) to rows of ``mapping``; -1 if unknown.

    Vectorised: one hash index over the mapping's ids, one lookup for all of them.
    """
    t = world.table(mapping)
    index = pd.Index(t.ids[BC])
    ids = np.asarray(integration_ids, dtype=object)
    rows = index.get_indexer(ids).astype(np.int64)
    miss = rows < 0
    if miss.any():  # braces or upper case (e.g. BC's Format(Guid)): normalise only those
        norm = pd.Series(ids[miss], dtype=object).astype(str).str.strip("{}").str.lower().to_numpy(dtype=object)
        rows[miss] = index.get_indexer(norm)
    return rows


@dataclass(frozen=True)
class Records:
    """Rows of one mapping as the actions see them: copies, indexed like ``rows``; by side BC/DV or direction TO/FROM."""

    config: MappingConfig
    coupled: np.ndarray
    skipped: np.ndarray
    exists: tuple[np.ndarray, np.ndarray]  # by side
    ids: tuple[np.ndarray, np.ndarray]  # Integration ID, CRM ID
    key: np.ndarray  # the BC primary key
    name: np.ndarray  # the Dataverse row's name ("Coupled To")
    result: tuple[np.ndarray, np.ndarray]  # last synchronization result by direction
    job: tuple[np.ndarray, np.ndarray]  # its job
    message: tuple[np.ndarray, np.ndarray]  # its last error message
    changed: tuple[np.ndarray, np.ndarray]  # by side: modified since the last synchronization
    differs: np.ndarray  # rows x mapped fields: the two apps' values (or lengths) differ

    def take(self, mask: np.ndarray) -> Records:
        """The same facts for the rows where ``mask`` is true."""
        return Records(self.config, *(tuple(a[mask] for a in v) if isinstance(v, tuple) else v[mask]
                                      for v in (self.coupled, self.skipped, self.exists, self.ids, self.key, self.name,
                                                self.result, self.job, self.message, self.changed, self.differs)))


def records(world: World, mapping: str, rows: np.ndarray) -> Records:
    """What the twin knows of ``rows`` of ``mapping`` (see :class:`Records`)."""
    t = world.table(mapping)
    rows = np.asarray(rows, dtype=np.int64)
    pair = lambda a: (a[0][rows].copy(), a[1][rows].copy())  # noqa: E731
    return Records(t.config, t.coupled[rows].copy(), t.skipped[rows].copy(), pair(t.exists), pair(t.ids),
                   t.key[rows].copy(), t.name[rows].copy(), pair(t.result), pair(t.job), pair(t.last_msg),
                   (t.mod[BC][rows] > t.wm[BC][rows], t.mod[DV][rows] > t.wm[DV][rows]),
                   (t.vals[BC][rows] != t.vals[DV][rows]) | (t.lens[BC][rows] != t.lens[DV][rows]))


def dataverse_rows(world: World, mapping: str, crm_ids: np.ndarray) -> np.ndarray:
    """The row of each existing Dataverse row of ``mapping`` with these CRM IDs; -1 where none exists."""
    t = world.table(mapping)
    live = np.flatnonzero(t.exists[DV])
    pos = pd.Index(t.ids[DV][live]).get_indexer(np.asarray(crm_ids, dtype=object))
    return np.where(pos >= 0, live[np.maximum(pos, 0)], -1)


def outside_table_filter(world: World) -> list[tuple[int, str]]:
    """(table id, Integration ID) of couplings Find for Deleted also marks: BC record outside its Table Filter."""
    out: list[tuple[int, str]] = []
    for t in world.tables.values():
        if t.config.direction == bc.BIDIRECTIONAL:
            continue
        rows = np.flatnonzero(t.coupled & ~t.skipped & t.exists[BC] & ~t.in_filter)
        out += [(t.config.table_id, str(i)) for i in t.ids[BC][rows]]
    return out


def may_delete(world: World, config: MappingConfig) -> bool:
    """Whether the integration user may delete rows of the mapping's Dataverse table (else T163's error)."""
    return bc.CRM_TABLES.get(config.crm_table_id, ("", ""))[1] not in world.missing_delete_privilege


def error_texts(world: World, jobs: list[Any], keys: np.ndarray) -> np.ndarray:
    """The latest error text each BC key got in ``jobs`` (from the twin's error log); None where none."""
    log = world.errors
    if not jobs or not log.job or not len(keys):
        return np.full(len(keys), None, dtype=object)
    frame = pd.DataFrame({"job": np.concatenate(log.job), "key": np.concatenate(log.key),
                          "text": np.concatenate(log.text)})
    frame = frame[frame["job"].isin([j.index for j in jobs])].drop_duplicates("key", keep="last")
    return pd.Series(keys, dtype=object).map(frame.set_index("key")["text"]).to_numpy(dtype=object)


def uses_uncoupling_job(config: MappingConfig) -> bool:
    """Whether Delete Couplings runs as an uncoupling job for this mapping (Uncouple Codeunit 5337).

    BC sets it when the Dataverse table has a CompanyId field and the mapping writes to Dataverse;
    otherwise the coupling rows are deleted at once (spec §5.1 Delete Couplings).
    """
    logical = bc.CRM_TABLES.get(config.crm_table_id, ("", ""))[1]
    return logical in COMPANY_ID_TABLES and config.direction != bc.FROM_INTEGRATION


def synchronize_now(world: World, mapping: str, keys: list[str] | None, direction: int | None, at: int, *,
                    foreground: bool = False, rows: np.ndarray | None = None) -> list[Job]:
    """Synchronize: un-skip the couplings, then run a one-off job for those records in ``direction``.

    The one-off run uses a temporary mapping copy: ForceModify, Synch. Only Coupled Records off,
    empty watermarks, the parent mapping's name on the job row (spec §5.1, §6.6). ``direction=None``
    is Merge (Bidirectional mappings only): a job to Dataverse, then one from Dataverse.
    """
    cfg = world.table(mapping).config
    if direction is None:
        if cfg.direction != bc.BIDIRECTIONAL:
            raise TwinError(f"Merge needs a Bidirectional mapping; {mapping} is {cfg.direction}.")
    elif direction not in (TO, FROM):
        raise TwinError(f"Direction must be TO ({TO}), FROM ({FROM}) or None (merge); got {direction!r}.")
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    t.skipped[rows] = False
    return run_mapping(world, mapping, at, rows=rows, direction=direction, force_modify=True,
                       ignore_only_coupled=True, job_queue_log_entry_no=0 if foreground else None)


def retry(world: World, mapping: str, keys: list[str] | None = None, *, rows: np.ndarray | None = None) -> np.ndarray:
    """Retry (page 5333 UpdateSkippedNow): un-skip skipped couplings whose BC record still exists.

    Last Synch. (CRM) Result stays Failure, so the next scheduled run retries the record.
    Returns the rows that were un-skipped.
    """
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    rows = rows[t.coupled[rows] & t.skipped[rows] & t.exists[BC][rows]]
    t.skipped[rows] = False
    return rows


def retry_all(world: World, only: dict[str, np.ndarray] | None = None) -> int:
    """Retry All (UpdateAllSkippedNow): un-skip every skipped coupling, without existence checks.

    ``only`` limits it to the given rows per mapping (an action that runs exactly its plan).
    Returns how many couplings were un-skipped.
    """
    n = 0
    for name, t in world.tables.items():
        if only is None:
            n += int(t.skipped.sum())
            t.skipped[:] = False
        elif name in only:
            rows = np.asarray(only[name], dtype=np.int64)
            rows = rows[t.skipped[rows]]
            n += len(np.unique(rows))
            t.skipped[rows] = False
    return n


def find_for_deleted(world: World, only: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Find for Deleted (MarkLocalDeletedAsSkipped): mark Skipped the couplings without a BC record.

    That is, the non-skipped couplings that no BC record *within the mapping's Table Filter* has
    (deleted, or e.g. Blocked when the filter excludes blocked records), on every mapping that is not
    Bidirectional. Returns the rows per mapping.

    BC opens the mapping's table with its Table Filter and looks the coupling's Integration ID up in it
    (codeunit 5330 ``MarkLocalDeletedAsSkipped``). ``only`` limits it to the given rows per mapping.
    """
    out: dict[str, np.ndarray] = {}
    for name, t in world.tables.items():
        if t.config.direction == bc.BIDIRECTIONAL or (only is not None and name not in only):
            continue
        hit = t.coupled & ~t.skipped & ~(t.exists[BC] & t.in_filter)
        if only is not None:
            mask = np.zeros(len(t), bool)
            mask[np.asarray(only[name], dtype=np.int64)] = True
            hit &= mask
        rows = np.flatnonzero(hit)
        t.skipped[rows] = True
        if len(rows):
            out[name] = rows
    return out


def remove_coupling(world: World, mapping: str, keys: list[str] | None, at: int, *,
                    rows: np.ndarray | None = None) -> Job | None:
    """Delete Couplings: remove the 5331 rows.

    As an uncoupling job (Type Uncoupling, Uncoupled = n) when the mapping has the uncouple codeunit
    (:func:`uses_uncoupling_job`); otherwise, and for couplings where neither record exists, the rows
    are deleted at once. Returns the uncoupling job, or ``None`` when none ran.
    """
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    rows = rows[t.coupled[rows]]
    orphan = ~t.exists[BC][rows] & ~t.exists[DV][rows]
    if uses_uncoupling_job(t.config):
        t.uncouple(rows[orphan])
        rows = rows[~orphan]
        return uncouple_job(world, mapping, rows, at) if len(rows) else None
    t.uncouple(rows)
    return None


def delete_record(world: World, mapping: str, keys: list[str] | None, side: int, at: int, *,
                  rows: np.ndarray | None = None) -> np.ndarray:
    """Delete the records in one app (``side`` = BC or DV); couplings are left as they are (broken)."""
    if side not in (BC, DV):
        raise TwinError(f"side must be BC ({BC}) or DV ({DV}); got {side!r}.")
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    rows = rows[t.exists[side][rows]]
    t.exists[side][rows] = False
    t.mod[side][rows] = at
    return rows


def restore_records(world: World, mapping: str, keys: list[str] | None, at: int, *,
                    rows: np.ndarray | None = None) -> list[Job]:
    """Restore Records: re-create the missing side of couplings with exactly one side deleted.

    The couplings are deleted and the missing records re-created from the surviving side in **one**
    one-off job queue entry, which couples them again.

    As BC's ``RestoreDeletedRecords`` → ``CreateNewRecords``: one temporary mapping per mapping whose
    direction is To Integration Table when only BC records survive, From Integration Table when only
    Dataverse rows do, and the mapping's own (two jobs, to Dataverse first) when both do
    (CRMSynchSkippedRecords T165-T167). A record BC re-creates is a new record: it gets the next number
    of its No. Series (T165); a row Dataverse re-creates gets a new id (T166). Records whose missing side
    the mapping cannot write (e.g. a Dataverse row of a mapping that only synchronizes from Dataverse)
    are left as they are.
    """
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    one = t.exists[BC][rows] ^ t.exists[DV][rows]
    writable = np.where(t.exists[BC][rows], t.config.runs(TO), t.config.runs(FROM))
    rows = np.unique(rows[one & writable & t.coupled[rows]])
    if not len(rows):
        return []
    # split before running: the first job re-creates records, which would move them to the other part
    parts = [(rows[t.exists[side][rows]], direction) for side, direction in ((BC, TO), (DV, FROM))]
    t.uncouple(rows)  # BC deletes the couplings first, then creates the records
    jq = world.next_job_queue_log_entry()
    jobs: list[Job] = []
    for part, direction in parts:
        if len(part):
            jobs.append(synchronize(world, mapping, direction, at, job_queue_log_entry_no=jq, rows=part,
                                    ignore_only_coupled=True))
            at = jobs[-1].finish + 150
    return jobs


NO_DELETE_PERMISSION = "You do not have permission to delete entities in Dynamics 365 Sales."


def delete_records(world: World, mapping: str, keys: list[str] | None, at: int, *,
                   rows: np.ndarray | None = None) -> np.ndarray:
    """Delete Records: for couplings with exactly one side deleted, delete the surviving record and the coupling.

    When a Dataverse row cannot be deleted (the integration user lacks the delete privilege), BC stops
    with "You do not have permission to delete entities in Dynamics 365 Sales." and its transaction
    rolls back: nothing is deleted (CRMSynchSkippedRecords T163). Raises :class:`TwinPermissionError`.
    """
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    rows = np.unique(rows[t.coupled[rows] & (t.exists[BC][rows] ^ t.exists[DV][rows])])
    logical = bc.CRM_TABLES.get(t.config.crm_table_id, ("", ""))[1]
    if logical in world.missing_delete_privilege and t.exists[DV][rows].any():
        raise TwinPermissionError(NO_DELETE_PERMISSION)
    for side in (BC, DV):
        t.exists[side][rows] = False
        t.mod[side][rows] = at
    t.uncouple(rows)
    return rows


# -- page 5333 as BC builds it ------------------------------------------------------------------
PAGE_COLUMNS = ["mapping", "row", "table_id", "table_name", "description", "record_exists", "coupled_to",
                "coupled_record_exists", "error_message", "failed_on", "integration_id", "crm_id"]


def coupled_data_sync_errors(world: World, *, remove_orphans: bool = True) -> pd.DataFrame:
    """Open page 5333 Coupled Data Synchronization Errors: its lines as BC's buffer table 5374 fills them.

    One line per Skipped coupling (spec §5.1, table 5374 ``Fill``): a coupling whose BC record and Dataverse
    row are both gone is **deleted** instead of listed (``remove_orphans``; T180). Description is the BC
    record's key and blank when the record is gone (T160); Coupled To the Dataverse row's name, blank when
    the row is gone (T161). Error Message / Failed On come from ``GetLatestError``: the coupling's Last
    Synch. CRM Job ID when set, else its Last Synch. Job ID, and that job's error for the record — blank
    when that job logged none for it, when the job was deleted (T137), or when the job's source record is
    gone (the BC record of a job to Dataverse, the Dataverse row of one from it). BC loads 100 lines at a
    time; this returns all of them.

    Returns
    -------
    pandas.DataFrame
        :data:`PAGE_COLUMNS`; ``failed_on`` in ms (``-1`` when blank), ``row`` the record's row.
    """
    parts = []
    for name, t in world.tables.items():
        sk = np.flatnonzero(t.coupled & t.skipped)
        orphan = ~t.exists[BC][sk] & ~t.exists[DV][sk]
        if remove_orphans and orphan.any():
            t.uncouple(sk[orphan])
        sk = sk[~orphan]
        if not len(sk):
            continue
        cfg = t.config
        to_job, from_job = t.job[TO][sk], t.job[FROM][sk]
        d = np.where(to_job != -1, TO, FROM)
        job = np.where(d == TO, to_job, from_job)
        failed = np.where(d == TO, t.result[TO][sk], t.result[FROM][sk]) == bc.RESULT_FAILURE
        exists = ~np.isin(job, np.fromiter(world.deleted_jobs, np.int64, len(world.deleted_jobs)))
        # GetErrorForJobID looks the job's source record up first (the BC record for a job to Dataverse, the
        # Dataverse row for one from it): when it is gone, no error is found
        found = failed & (job != -1) & exists & np.where(d == TO, t.exists[BC][sk], t.exists[DV][sk])
        msg = np.where(d == TO, t.last_msg[TO][sk], t.last_msg[FROM][sk])
        when = np.where(d == TO, t.fail_at[TO][sk], t.fail_at[FROM][sk])
        parts.append(pd.DataFrame({
            "mapping": name, "row": sk, "table_id": cfg.table_id, "table_name": cfg.bc_caption,
            "description": np.where(t.exists[BC][sk], t.key[sk], ""),
            "record_exists": t.exists[BC][sk], "coupled_to": np.where(t.exists[DV][sk], t.name[sk], ""),
            "coupled_record_exists": t.exists[DV][sk],
            "error_message": np.where(found, msg, ""), "failed_on": np.where(found, when, -1),
            "integration_id": t.ids[BC][sk].astype(object), "crm_id": t.ids[DV][sk].astype(object)}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PAGE_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    out["error_message"] = out["error_message"].fillna("").astype(object)
    return out[PAGE_COLUMNS]


# -- Set Up Coupling --------------------------------------------------------------------------------
def set_up_coupling(world: World, mapping: str, keys: list[str] | None, crm_ids: list[str] | np.ndarray, at: int, *,
                    synchronize_direction: int | None = None, rows: np.ndarray | None = None) -> list[Job]:
    """Set Up Coupling (``DefineCoupling``, page "CRM Coupling Record"): couple records to given rows.

    Each BC record is coupled to the given Dataverse row instead of the row it is coupled to now.

    As BC: the BC record must exist (the action is disabled otherwise, T170); the Dataverse row must
    exist and not be coupled to another BC record that exists (``AssertRecordIDCanBeCoupled``: a
    coupling whose BC record is gone is removed first). The new coupling is not skipped — validating
    CRM ID resets Skipped (T175). With ``synchronize_direction`` (TO or FROM) the records are then
    synchronized at once in that direction, as the page's "Synchronize after coupling" does.

    The twin keeps one row per record pair, so the chosen Dataverse row moves into the record's row and
    the row it was coupled to before (if it still exists) takes the chosen row's place, uncoupled.
    Raises :class:`TwinError` (nothing changed) for a record or row that does not fit.
    """
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    targets = pd.Series(np.asarray(crm_ids, dtype=object), dtype=object).astype(str).str.strip("{}").str.lower()
    if len(targets) != len(rows):
        raise TwinError(f"Set Up Coupling needs one Dataverse row per record; got {len(targets)} for {len(rows)}.")
    if len(set(rows.tolist())) != len(rows) or targets.duplicated().any():
        raise TwinError("Set Up Coupling: each record and each Dataverse row may appear once.")
    gone = ~t.exists[BC][rows]
    if gone.any():
        raise TwinError(f"{t.config.bc_caption} {t.key[rows[gone]][0]} does not exist in Business Central; "
                        "Set Up Coupling needs it.")
    live = np.flatnonzero(t.exists[DV])
    src = pd.Index(t.ids[DV][live]).get_indexer(targets.to_numpy())
    if (src < 0).any():
        raise TwinError(f"The twin has no {t.config.dv_caption} row {targets[src < 0].iloc[0]} for mapping {mapping}.")
    src = live[src]
    taken = (src != rows) & t.coupled[src] & t.exists[BC][src]
    if taken.any():
        i = int(np.flatnonzero(taken)[0])
        raise TwinError(f"{t.config.dv_caption} {targets.iloc[i]} is already coupled to {t.config.bc_caption} "
                        f"{t.key[src[i]]}; remove that coupling first.")
    move = src != rows
    fresh = ~t.coupled[rows]  # no coupling yet: BC inserts a new 5331 row, every field blank
    a, b = rows[move], src[move]
    if len(a):
        # swap the Dataverse sides of each pair: the chosen row joins the record, its old row stays, uncoupled
        t.uncouple(b)
        for arr in (t.ids[DV], t.exists[DV], t.mod[DV], t.by_integration[DV], t.fault[DV], t.incident[DV],
                    t.vals[DV], t.lens[DV], t.name):
            arr[np.concatenate([a, b])] = arr[np.concatenate([b, a])]
    # coupled already to this very row: BC changes nothing. Otherwise validating CRM ID clears the Dataverse
    # side (Last Synch. CRM Job ID / Modified On / Result) and Skipped (table 5331 field 2 OnValidate)
    changed = rows[move | fresh]
    t.coupled[changed] = True
    t.skipped[changed] = False
    for d, side in ((TO, DV), (FROM, BC)):
        r = changed if d == TO else rows[fresh]
        t.wm[side][r] = BLANK
        t.result[d][r] = bc.RESULT_BLANK
        t.job[d][r] = BLANK
        t.last_msg[d][r] = None
        t.fail_at[d][r] = BLANK
    if synchronize_direction is None:
        return []
    return synchronize_now(world, mapping, None, synchronize_direction, at, rows=rows)


# -- Delete Entries (page 5338) -------------------------------------------------------------------
def delete_entries(world: World, days_old: int, now: int) -> list[int]:
    """Delete Entries Older Than N Days / Delete All Entries (table 5338 ``DeleteEntries(DaysOld)``, spec §1).

    Of the jobs that finished at least ``days_old`` days before ``now``: those with Failed = 0 are deleted
    at once (``DeleteAll`` without triggers, so any 5339 rows they have stay — a failure counted Skipped
    leaves one); a job with failures only when no Skipped coupling points at it in Last Synch. Job ID or
    Last Synch. CRM Job ID (``CanBeRemoved``, T138), and then with its 5339 rows (``Delete(true)``).
    Returns the job indexes deleted now.
    """
    cutoff = now - days_old * 86_400_000
    kept: set[int] = set()
    for t in world.tables.values():
        sk = t.coupled & t.skipped
        for d in (TO, FROM):
            kept.update(int(j) for j in np.unique(t.job[d][sk]) if j != -1)
    gone = [j.index for j in world.jobs
            if j.index not in world.deleted_jobs and j.finish != -1 and j.finish <= cutoff
            and (not j.counts.get("failed") or j.index not in kept)]
    world.deleted_jobs.update(gone)
    world.deleted_job_errors.update(j for j in gone if world.jobs[j].counts.get("failed"))
    return gone
