"""What a user can do to the twin, with BC's semantics (spec §5.1, §6.4-§6.6).

These are the engine operations the resolution actions build on: they change the simulated apps
and couplings; the effect shows in jobs, errors and couplings on the next run of the job queue.
Every function takes BC keys of one mapping and raises :class:`TwinError` for unknown keys.
"""

from __future__ import annotations

import numpy as np

from ..errors import TwinError
from .engine import Job, World, run_mapping, uncouple_job
from .model import BC, DV, FROM, TO


def _rows(world: World, mapping: str, keys: list[str] | np.ndarray) -> np.ndarray:
    return world.table(mapping).rows_by_key(list(keys))


def synchronize_now(world: World, mapping: str, keys: list[str], direction: int, at: int, *,
                    foreground: bool = False) -> list[Job]:
    """Synchronize: un-skip the couplings, then run a one-off job for those records in ``direction``.

    The one-off run uses a temporary mapping copy: ForceModify, Synch. Only Coupled Records off,
    empty watermarks, the parent mapping's name on the job row (spec §5.1, §6.6).
    """
    if direction not in (TO, FROM):
        raise TwinError(f"Direction must be TO ({TO}) or FROM ({FROM}); got {direction!r}.")
    rows = _rows(world, mapping, keys)
    t = world.table(mapping)
    t.skipped[rows] = False
    return run_mapping(world, mapping, at, rows=rows, direction=direction, force_modify=True,
                       ignore_only_coupled=True, job_queue_log_entry_no=0 if foreground else None)


def retry(world: World, mapping: str, keys: list[str]) -> np.ndarray:
    """Retry (page 5333 UpdateSkippedNow): un-skip skipped couplings whose BC record still exists.

    Last Synch. (CRM) Result stays Failure, so the next scheduled run retries the record.
    Returns the rows that were un-skipped.
    """
    rows = _rows(world, mapping, keys)
    t = world.table(mapping)
    rows = rows[t.coupled[rows] & t.skipped[rows] & t.exists[BC][rows]]
    t.skipped[rows] = False
    return rows


def retry_all(world: World) -> int:
    """Retry All (UpdateAllSkippedNow): un-skip every skipped coupling, without existence checks."""
    n = 0
    for t in world.tables.values():
        n += int(t.skipped.sum())
        t.skipped[:] = False
    return n


def remove_coupling(world: World, mapping: str, keys: list[str], at: int) -> Job:
    """Delete Couplings: remove the 5331 rows as an uncoupling job."""
    return uncouple_job(world, mapping, _rows(world, mapping, keys), at)


def delete_record(world: World, mapping: str, keys: list[str], side: int, at: int) -> np.ndarray:
    """Delete the records in one app (``side`` = BC or DV); couplings are left as they are (broken)."""
    if side not in (BC, DV):
        raise TwinError(f"side must be BC ({BC}) or DV ({DV}); got {side!r}.")
    rows = _rows(world, mapping, keys)
    t = world.table(mapping)
    rows = rows[t.exists[side][rows]]
    t.exists[side][rows] = False
    t.mod[side][rows] = at
    return rows


def restore_records(world: World, mapping: str, keys: list[str], at: int) -> list[Job]:
    """Restore Records: for couplings with exactly one side deleted, delete the coupling and re-create the
    missing record from the surviving side in a one-off job, which couples them again."""
    rows = _rows(world, mapping, keys)
    t = world.table(mapping)
    one = t.exists[BC][rows] ^ t.exists[DV][rows]
    rows = rows[one & t.coupled[rows]]
    jobs: list[Job] = []
    # split before running: the first job re-creates records, which would move them to the other part
    parts = [(rows[t.exists[side][rows]], direction) for side, direction in ((BC, TO), (DV, FROM))]
    for part, direction in parts:
        if len(part):
            t.uncouple(part)
            jobs += run_mapping(world, mapping, at, rows=part, direction=direction, ignore_only_coupled=True)
            at = jobs[-1].finish + 100
    return jobs


def delete_records(world: World, mapping: str, keys: list[str], at: int) -> np.ndarray:
    """Delete Records: for couplings with exactly one side deleted, delete the surviving record and the coupling."""
    rows = _rows(world, mapping, keys)
    t = world.table(mapping)
    rows = rows[t.coupled[rows] & (t.exists[BC][rows] ^ t.exists[DV][rows])]
    for side in (BC, DV):
        t.exists[side][rows] = False
        t.mod[side][rows] = at
    t.uncouple(rows)
    return rows
