"""What a user can do to the twin, with BC's semantics (spec §5.1, §6.4-§6.6).

These are the engine operations the resolution actions build on: they change the simulated apps
and couplings; the effect shows in jobs, errors and couplings on the next run of the job queue.
Every function takes the records of one mapping either as BC keys (``keys``) or as rows of the
mapping's :class:`~syncanalysis.twin.model.TableState` (``rows=``, for bulk callers that mapped
integration ids with :func:`rows_for_ids`), and raises :class:`TwinError` for unknown keys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import bc
from ..errors import TwinError
from .engine import Job, World, run_mapping, uncouple_job
from .model import BC, DV, FROM, TO, MappingConfig

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
    """Find for Deleted (MarkLocalDeletedAsSkipped): mark Skipped the non-skipped couplings whose BC
    record no longer exists, on every mapping that is not Bidirectional. Returns the rows per mapping.

    ``only`` limits it to the given rows per mapping.
    """
    out: dict[str, np.ndarray] = {}
    for name, t in world.tables.items():
        if t.config.direction == bc.BIDIRECTIONAL or (only is not None and name not in only):
            continue
        hit = t.coupled & ~t.skipped & ~t.exists[BC]
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
    """Restore Records: for couplings with exactly one side deleted, delete the coupling and re-create the
    missing record from the surviving side in a one-off job, which couples them again.

    Records whose missing side the mapping cannot write (e.g. a Dataverse row of a mapping that only
    synchronizes from Dataverse) are left as they are.
    """
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    one = t.exists[BC][rows] ^ t.exists[DV][rows]
    writable = np.where(t.exists[BC][rows], t.config.runs(TO), t.config.runs(FROM))
    rows = np.unique(rows[one & writable & t.coupled[rows]])
    jobs: list[Job] = []
    # split before running: the first job re-creates records, which would move them to the other part
    parts = [(rows[t.exists[side][rows]], direction) for side, direction in ((BC, TO), (DV, FROM))]
    for part, direction in parts:
        if len(part):
            t.uncouple(part)
            jobs += run_mapping(world, mapping, at, rows=part, direction=direction, ignore_only_coupled=True)
            at = jobs[-1].finish + 100
    return jobs


def delete_records(world: World, mapping: str, keys: list[str] | None, at: int, *,
                   rows: np.ndarray | None = None) -> np.ndarray:
    """Delete Records: for couplings with exactly one side deleted, delete the surviving record and the coupling."""
    rows = _rows(world, mapping, keys, rows)
    t = world.table(mapping)
    rows = np.unique(rows[t.coupled[rows] & (t.exists[BC][rows] ^ t.exists[DV][rows])])
    for side in (BC, DV):
        t.exists[side][rows] = False
        t.mod[side][rows] = at
    t.uncouple(rows)
    return rows
