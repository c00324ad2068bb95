"""The actions' vocabulary: names and captions, the plan of an action and the result of running it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.records import Selection
from ..errors import SyncAnalysisError

ACTIONS = ("retry", "retry-all", "synchronize", "remove-coupling", "restore-records", "delete-records",
           "find-for-deleted", "set-up-coupling")
CAPTIONS = {"retry": "Retry", "retry-all": "Retry All", "synchronize": "Synchronize",
            "remove-coupling": "Remove Coupling", "restore-records": "Restore Records",
            "delete-records": "Delete Records", "find-for-deleted": "Find for Deleted",
            "set-up-coupling": "Set Up Coupling"}
DESTRUCTIVE = frozenset({"remove-coupling", "restore-records", "delete-records"})  # need confirmation
DIRECTIONS = ("to-dataverse", "from-dataverse", "merge")
# Actions of the whole environment/company (page 5333 runs them without a selection).
WHOLE_COMPANY = frozenset({"retry-all", "find-for-deleted"})

KEY = ["environment", "company", "table_id", "integration_id"]
# Columns of Plan.targets, in display order.
TARGET_COLUMNS = [
    *KEY, "crm_id", "mapping_name", "bc_record_id", "crm_description", "state", "skipped", "bc_record_exists",
    "crm_record_exists", "role", "direction", "couple_to", "enabled", "status", "outcome", "prediction", "destroyed",
    "reason", "suggest", "winner", "fields", "cause", "latest_parent",
    "error_no", "latest_error",
]
STATUSES = ("change", "no-op", "refused")

BC_SIDE, DV_SIDE = "Business Central", "Dataverse"
WINNERS = {"to-dataverse": BC_SIDE, "from-dataverse": DV_SIDE, "merge": "both (merge)"}
DIRECTION_TEXT = {"to-dataverse": "to Dataverse (Business Central wins)",
                  "from-dataverse": "from Dataverse (Dataverse wins)",
                  "merge": "both ways (merge)"}

Progress = bool | Callable[[float, float | None], None]

# BC's notifications after page 5333's actions (codeunit 5330 labels, bc-integration-labels.csv)
_SYNC_SCHEDULED = "The synchronization has been scheduled."
_SYNC_MULTIPLE = ("The synchronization has been scheduled for %1 of %4 records. %2 records failed. "
                  "%3 records were skipped.")
_SYNC_SKIPPED = "The synchronization has been skipped."
_RECORD_SKIPPED = "The %1 record is marked as skipped."
_RESTORED = "The record has been restored for synchronization."
_RESTORED_MULTIPLE = "%1 records have been restored for synchronization."
_UNCOUPLE_SCHEDULED = "The uncoupling has been scheduled."
_UNCOUPLE_MULTIPLE = ("The uncoupling has been scheduled for %1 of %4 records. %2 records failed. "
                      "%3 records were skipped.")


def _fill(label: str, *values: object) -> str:
    for i in range(len(values), 0, -1):
        label = label.replace(f"%{i}", str(values[i - 1]))
    return label


def bc_notification(action: str, *, total: int, done: int, skipped: int = 0, failed: int = 0,
                    table: str = "", uncoupling_job: bool = True) -> str | None:
    """The notification BC shows after running ``action`` on ``total`` selected records, in BC's words.

    ``done`` records were acted on (un-skipped, scheduled), ``skipped`` were left out by BC's own rules,
    ``failed`` could not be scheduled. ``None`` where BC shows none (Delete Records, Find for Deleted,
    Delete Couplings that delete the rows at once).

    Examples
    --------
    >>> bc_notification("retry", total=3, done=2)
    '2 records have been restored for synchronization.'
    >>> bc_notification("synchronize", total=1, done=1)
    'The synchronization has been scheduled.'
    """
    if action in ("retry", "retry-all"):
        return _RESTORED if done == 1 else _fill(_RESTORED_MULTIPLE, done)
    if action in ("synchronize", "restore-records"):
        if total == 1 and done == 1:
            return _SYNC_SCHEDULED
        if done == 0 and skipped and not failed:
            return _SYNC_SKIPPED + " " + _fill(_RECORD_SKIPPED, table) if total == 1 else _SYNC_SKIPPED
        return _fill(_SYNC_MULTIPLE, done, failed, skipped, total) if total > 1 else _SYNC_SCHEDULED
    if action == "remove-coupling" and uncoupling_job:
        return _UNCOUPLE_SCHEDULED if total == 1 and done == 1 else _fill(_UNCOUPLE_MULTIPLE, done, failed, skipped, total)
    return None


class ActionError(SyncAnalysisError):
    """An action cannot be planned or run as asked (unknown action, direction, scope or unconfirmed)."""


def check_action(action: str) -> str:
    """Return ``action`` if it is one of :data:`ACTIONS`, else raise naming the valid ones."""
    if action not in ACTIONS:
        raise ActionError(f"Unknown action {action!r}; use one of {', '.join(ACTIONS)}.")
    return action


def check_direction(direction: str | None) -> str | None:
    """Return ``direction`` if it is ``None`` or one of :data:`DIRECTIONS`, else raise."""
    if direction is not None and direction not in DIRECTIONS:
        raise ActionError(f"Unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}.")
    return direction


def _status_counts(frame: pd.DataFrame, column: str = "status") -> dict[str, int]:
    vc = frame[column].value_counts() if len(frame) else pd.Series(dtype=int)
    return {k: int(vc.get(k, 0)) for k in vc.index}


def _top_reasons(frame: pd.DataFrame, status: str, n: int = 3) -> list[str]:
    part = frame[frame["status"] == status]
    if part.empty:
        return []
    grouped = part.groupby(["reason", "suggest"], dropna=False).size().sort_values(ascending=False).head(n)
    out = []
    for (reason, suggest), k in grouped.items():
        text = f"{k:,} {reason}" if isinstance(reason, str) else f"{k:,}"
        if isinstance(suggest, str) and suggest:
            text += f" → use {suggest}"
        out.append(text)
    return out


@dataclass
class Plan:
    """What an action will do, per target, before anything changes (the dry run).

    Attributes
    ----------
    action
        One of :data:`ACTIONS`.
    selection
        The selection as given (kept as a filter; ``None`` for Retry All / Find for Deleted).
    parameters
        Direction, parents first and the selection as JSON-ready data (what the audit row stores).
    backend
        ``"twin"`` or ``"plan"``: where :func:`~syncanalysis.actions.execute` will run it.
    targets
        One row per coupling: the key columns, ``mapping_name``, ``bc_record_id`` (BC's Description),
        ``crm_description`` (Coupled To), ``state``, ``role`` (``target`` or ``parent``),
        ``direction`` (Synchronize), ``enabled`` (BC's enablement), ``status`` (``change``, ``no-op``
        or ``refused``), ``outcome`` (text), ``reason`` and ``suggest`` (why not, and the action that
        fits), ``winner`` (the side whose data wins, or ``None``) and ``fields`` (what will be
        overwritten).
    environment, company
        The one environment/company the plan acts in.
    notes
        Plan-level remarks (e.g. parents that are not coupled at all).
    """

    action: str
    selection: Selection | None
    parameters: dict[str, Any]
    backend: str
    targets: pd.DataFrame
    environment: str | None = None
    company: str | None = None
    notes: list[str] = field(default_factory=list)
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    backend_impl: Any = field(default=None, repr=False, compare=False)

    @property
    def caption(self) -> str:
        """The action's caption in BC (e.g. ``Remove Coupling``)."""
        return CAPTIONS[self.action]

    @property
    def counts(self) -> dict[str, int]:
        """``targets``, ``will_change``, ``no_op`` and ``refused``."""
        c = _status_counts(self.targets)
        return {"targets": len(self.targets), "will_change": c.get("change", 0), "no_op": c.get("no-op", 0),
                "refused": c.get("refused", 0)}

    @property
    def predicted(self) -> dict[str, int]:
        """Targets per predicted outcome (``will fail again``, ``should synchronize``, …), most first."""
        if "prediction" not in self.targets.columns:
            return {}
        kind = self.targets["prediction"].dropna().astype(str).str.split(":").str[0]
        return {str(k): int(v) for k, v in kind.value_counts().items()}

    @property
    def destroys(self) -> dict[str, int]:
        """What a destructive plan deletes, per app: ``{"Business Central record": n, "Dataverse row": m, ...}``."""
        if "destroyed" not in self.targets.columns:
            return {}
        d = self.targets["destroyed"].dropna().astype(str)
        kind = np.where(d.str.startswith("Business Central"), "Business Central record",
                        np.where(d.str.startswith("Dataverse"), "Dataverse row", "coupling"))
        return {str(k): int(v) for k, v in pd.Series(kind).value_counts().items()} if len(d) else {}

    @property
    def scope(self) -> str:
        """``environment / company`` (or ``all`` when the plan has no target to tell)."""
        return f"{self.environment} / {self.company}" if self.environment is not None else "all environments"

    def summary(self) -> str:
        """A few readable lines: what, where, how many will change, and why the rest will not."""
        c = self.counts
        what = self.selection.describe() if self.selection is not None else "the whole company"
        direction = self.parameters.get("direction")
        head = f"{self.caption}{' ' + direction if direction else ''} on {what} ({self.scope}, backend {self.backend})"
        if not c["targets"]:
            return f"{head}: nothing to do – no coupled record matches."
        lines = [f"{head}: {c['targets']:,} target(s) – {c['will_change']:,} will change, {c['no_op']:,} no-op, "
                 f"{c['refused']:,} refused."]
        for status, label in (("refused", "Refused"), ("no-op", "No-op")):
            reasons = _top_reasons(self.targets, status)
            if reasons:
                lines.append(f"{label}: " + "; ".join(reasons) + ".")
        destroys = self.destroys
        if destroys:
            lines.append("Deletes, in full: " + ", ".join(f"{n:,} {k}(s)" for k, n in destroys.items())
                         + " — this cannot be undone from here.")
        predicted = self.predicted
        if predicted:
            lines.append("Predicted outcome: " + "; ".join(f"{n:,} {k}" for k, n in predicted.items()) + ".")
        if (self.targets["role"] == "parent").any():
            n = int((self.targets["role"] == "parent").sum())
            lines.append(f"Parents first: {n:,} parent coupling(s) run before their children.")
        lines += self.notes
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """The targets with the columns a reviewer reads (key columns last)."""
        cols = ["mapping_name", "bc_record_id", "crm_description", "state", "role", "enabled", "status", "outcome",
                "prediction", "destroyed", "winner", "fields", "direction", *KEY]
        return self.targets[[c for c in cols if c in self.targets.columns]].copy()


@dataclass
class ActionResult:
    """What running a plan did (or, for a dry run, what it would do), as audited.

    Attributes
    ----------
    action_id
        The ``actions`` row of this run.
    plan
        The plan that ran.
    dry_run
        Whether nothing but the audit row was written.
    outcome
        One row per target: the plan's columns plus ``result`` (``changed``, ``planned``, ``no-op``,
        ``refused`` or ``failed``) and ``detail`` (text), and for Restore Records the new ids.
    counts
        ``targets``, ``changed``, ``planned`` (written to a plan file), ``no_op``, ``refused``, ``failed``.
    jobs
        The twin jobs run at once (one-off synchronization, uncoupling), summed by :func:`twin_summary`.
    job_ids
        Their IDs (table 5338).
    plan_file
        The plan file written (plan backend), else ``None``.
    notes
        What to do next (e.g. when the next scheduled run will pick the records up).
    """

    action_id: int
    plan: Plan
    dry_run: bool
    outcome: pd.DataFrame
    counts: dict[str, int]
    jobs: pd.DataFrame
    job_ids: list[str] = field(default_factory=list)
    plan_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few readable lines about what happened."""
        p, c = self.plan, self.counts
        if self.dry_run:
            return f"Dry run #{self.action_id} (nothing changed):\n{p.summary()}"
        head = f"{p.caption} #{self.action_id} on {p.scope} ({p.backend})"
        if not c["targets"]:
            return f"{head}: nothing to do – no coupled record matched."
        parts = [f"{c[k]:,} {label}" for k, label in (("changed", "changed"), ("planned", "written to the plan file"),
                                                       ("failed", "failed"), ("no_op", "no-op"),
                                                       ("refused", "refused")) if c.get(k)]
        lines = [f"{head}: {c['targets']:,} target(s) – " + (", ".join(parts) or "nothing changed") + "."]
        failed = self.outcome[self.outcome["result"] == "failed"] if len(self.outcome) else self.outcome
        if len(failed):
            top = failed["detail"].value_counts().head(2)
            lines.append("Failed: " + "; ".join(f"{n:,} × {text}" for text, n in top.items()))
        if len(self.jobs):
            jobs = ", ".join(f"{r.mapping} {r.type.lower()} ×{r.jobs}" for r in self.jobs.itertuples())
            lines.append(f"Jobs run now: {jobs}.")
        if self.plan_file is not None:
            lines.append(f"Plan file: {self.plan_file}")
        lines += self.notes
        return "\n".join(lines)
