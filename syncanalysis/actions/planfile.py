"""The plan-file backend: a plan as a reviewable change set an admin applies in BC (JSON, Markdown, CSV).

Steps are grouped the way an admin works through page 5333 (or 5339, or the table's list): per page,
mapping and table, action and direction, in batches of 100 with the filter to type in BC; each step says
what BC then shows. Nothing in the workspace data changes; the run is audited.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import bc
from ..html import render_markdown
from ..twin.state import twin_summary
from ..workspace import Workspace, project_root
from .audit import write_audit
from .backends import Backend, _counts, _initial_outcome, _Steps
from .base import ActionError, ActionResult, Plan, Progress, bc_notification

_PAGE_5333 = ("Coupled Data Synchronization Errors", 5333)
_PAGE_5339 = ("Integration Synchronization Errors", 5339)
_BC_ACTION_5333 = {"retry": "Retry", "retry-all": "Retry All", "synchronize": "Synchronize",
                   "remove-coupling": "Delete Couplings", "restore-records": "Restore Records",
                   "delete-records": "Delete Records", "find-for-deleted": "Find for Deleted",
                   "set-up-coupling": "Set Up Coupling"}
_BC_ACTION_5339 = {"synchronize": "Synchronize", "remove-coupling": "Coupling › Delete Coupling",
                   "set-up-coupling": "Coupling › Set Up Coupling"}
_CHOOSE = {"to-dataverse": "Send data update to Dataverse.", "from-dataverse": "Get data update from Dataverse.",
           "merge": "Merge data."}
BATCH = 100  # page 5333 loads 100 lines at a time
_FILTER_SPECIAL = re.compile(r"[&|()*@<>=.'\s]")


def bc_filter(values: list[str]) -> str:
    """A BC filter expression matching exactly ``values`` (``A|B|C``; values with operators quoted).

    Examples
    --------
    >>> bc_filter(["C00010", "C&D", "O'Neil"])
    "C00010|'C&D'|'O''Neil'"
    """
    out = []
    for v in values:
        v = str(v)
        out.append("'" + v.replace("'", "''") + "'" if _FILTER_SPECIAL.search(v) else v)
    return "|".join(out)


def default_plan_path(plan: Plan, ws: Workspace | None = None) -> Path:
    """``plans/<action>-<environment>-<company>-<UTC time>.json`` beside the workspace file.

    For the demo workspace ``build/demo.duckdb`` that is ``build/plans/``; for an in-memory workspace it is
    ``build/plans/`` under the project root.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    parts = [plan.action, plan.environment or "all", plan.company or "all", stamp]
    name = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p).strip("_") for p in parts)
    folder = ws.path.parent / "plans" if ws is not None and ws.path is not None else project_root() / "build" / "plans"
    return folder / f"{name}.json"


class PlanFileBackend(Backend):
    """Write the plan as a reviewable change set for an admin to apply in BC; the workspace data stays as is.

    Three files with the same stem: ``.json`` (machine-readable), ``.md`` (to read and follow) and
    ``.csv`` (every target). Steps are grouped the way an admin applies them: per page (Coupled Data
    Synchronization Errors 5333 / Integration Synchronization Errors 5339 / the table's list), per
    mapping and table, per action, in batches of 100 with the filter to type in BC, and the
    record descriptions BC shows (Description = the BC primary key, Coupled To = the Dataverse name).

    Parameters
    ----------
    path
        Where to write (any of the three suffixes, or none); default ``plans/`` beside the workspace file.
    """

    name = "plan"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None

    def evaluate(self, ws: Workspace, plan: Plan) -> None:
        """Nothing to add: loaded history has no field values (the plan says which fields are mapped)."""

    def files(self, plan: Plan, ws: Workspace | None = None) -> dict[str, Path]:
        """The json/md/csv paths this backend writes for ``plan`` (default: see :func:`default_plan_path`)."""
        base = self.path or default_plan_path(plan, ws)
        if base.suffix.lower() in (".json", ".md", ".csv"):
            base = base.with_suffix("")
        return {ext: base.with_name(base.name + "." + ext) for ext in ("json", "md", "csv")}

    def execute(self, ws: Workspace, plan: Plan, *, who: str, progress: Progress = False) -> ActionResult:
        """Write the plan files and the audit row (one transaction: a failed write leaves no audit row)."""
        t = plan.targets
        result, detail = _initial_outcome(t)
        change = (t["status"] == "change").to_numpy()
        result[change] = "planned"
        detail[change] = "in the plan file: " + t["outcome"].to_numpy(dtype=object)[change].astype(str)
        outcome = t.assign(result=result, detail=detail)
        counts = _counts(result, planned=int(change.sum()))
        paths = self.files(plan, ws)
        steps = _Steps(progress, 3, "writing plan")

        def audit(con: Any) -> int:
            return write_audit(con, plan=plan, who=who, dry_run=False, outcome=outcome, counts=counts,
                               plan_file=str(paths["json"]), notes=plan.notes)

        def texts(action_id: int) -> dict[Path, str]:
            document = plan_document(plan, action_id=action_id, who=who)
            # CRLF (RFC 4180) for the CSV: a field holding a line break of either kind is quoted
            return {paths["json"]: json.dumps(document, indent=1, default=str, ensure_ascii=False),
                    paths["md"]: plan_markdown(document),
                    paths["csv"]: plan_csv(document).to_csv(index=False, lineterminator="\r\n")}

        try:
            action_id = write_with_audit(ws, audit, texts, steps.step)
        finally:
            steps.close()
        return ActionResult(action_id, plan, False, outcome, counts, twin_summary([]), [], paths["json"],
                            [f"Apply the steps in {paths['md']} in Business Central; nothing was changed here."])


def write_with_audit(ws: Workspace, audit: Any, texts: Any, step: Any = None) -> int:
    """Write an action's audit row and its plan files so that neither exists without the other.

    ``audit(con)`` writes the row in the transaction and returns the action id; ``texts(action_id)`` gives
    each file's text. The files are written under temporary names inside the transaction and renamed
    into place once it committed: a failed write rolls the audit row back (and leaves no file), a failed
    commit leaves no plan file.

    Raises
    ------
    ActionError
        When a file cannot be written (nothing was recorded).
    """
    if ws.in_transaction:  # the files are published after the commit: it must be this function's own
        raise ActionError("A plan-file action runs in its own transaction; run it outside ws.transaction().")
    staged: list[tuple[Path, Path]] = []
    try:
        with ws.transaction() as con:
            action_id = audit(con)
            for path, text in texts(action_id).items():
                staged.append((_stage(path, text), path))
                if step is not None:
                    step()
    except BaseException as exc:
        for tmp, _ in staged:  # never published: the audit row was rolled back
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ActionError(f"Cannot write the plan file {exc.filename or ''} ({exc.strerror or exc}); nothing was "
                              "recorded. Choose a folder you can write to (plan_file=..., --plan-file).") from None
        raise
    for tmp, path in staged:
        try:
            os.replace(tmp, path)
        except OSError as exc:  # pragma: no cover - a rename in the folder just written to
            raise ActionError(f"Action #{action_id} is recorded, but its plan could not be published as {path} "
                              f"({exc.strerror or exc}); it is in {tmp}.") from None
    return action_id


def _stage(path: Path, text: str) -> Path:
    """Write ``text`` next to ``path`` under a temporary name (published by renaming it); return that name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")  # line ends as written (the CSV's CRLF on every OS)
    return tmp


def _page_of(plan: Plan, frame: pd.DataFrame) -> pd.Series:
    """Where an admin finds each target: page 5333 lists Skipped couplings; others via errors or the list page."""
    skipped = frame["skipped"].astype("boolean").fillna(False)
    if plan.action not in _BC_ACTION_5339:
        return pd.Series("5333", index=frame.index)
    has_error = frame["error_no"].notna()
    return pd.Series(np.where(skipped, "5333", np.where(has_error, "5339", "list")), index=frame.index)


def plan_document(plan: Plan, *, action_id: int | None = None, who: str | None = None) -> dict[str, Any]:
    """The plan file's content: steps grouped per page, mapping/table and action, in batches with BC filters."""
    t = plan.targets
    change = t[t["status"] == "change"].copy()
    change["description"] = bc.split_record_ids(change["bc_record_id"])[1].fillna("")
    change = change.sort_values(["description", "integration_id"], kind="stable")
    change["page"] = _page_of(plan, change)
    steps: list[dict[str, Any]] = []
    if plan.action in ("retry-all", "find-for-deleted") and len(change):
        steps.append({"page": _PAGE_5333[0], "page_id": 5333, "mapping": None, "table_id": None,
                      "table_caption": None, "bc_action": _BC_ACTION_5333[plan.action],
                      "how": f"Open page {_PAGE_5333[0]} and choose {_BC_ACTION_5333[plan.action]} (no selection"
                             + (", confirm the question" if plan.action == "find-for-deleted" else "") + ").",
                      "bc_shows": bc_notification(plan.action, total=len(change), done=len(change)),
                      "count": len(change), "batches": [_batch(change, None)]})
    else:
        for (page, role, mapping, table_id, direction), part in change.groupby(
                ["page", "role", "mapping_name", "table_id", change["direction"].astype(object).fillna("")], sort=False):
            steps.append(_step(plan, page, role, mapping, int(table_id), direction or None, part))
        order = {"5333": 0, "5339": 1, "list": 2}
        steps.sort(key=lambda s: (s["role"] != "parent", order[s["page_key"]]))
    others = t[t["status"] != "change"]
    not_applied = []
    for (status, reason, suggest), part in others.groupby(
            ["status", others["reason"].astype(object).fillna(""), others["suggest"].astype(object).fillna("")], sort=True):
        not_applied.append({"status": status, "reason": reason or None, "suggest": suggest or None,
                            "count": len(part), "records": _records(part)})
    return {
        "format": "syncanalysis-plan/1", "action_id": action_id, "action": plan.action, "caption": plan.caption,
        "environment": plan.environment, "company": plan.company, "created": plan.created.isoformat(), "who": who,
        "parameters": plan.parameters, "counts": plan.counts, "notes": plan.notes, "steps": steps,
        "not_applied": not_applied,
    }


def _records(part: pd.DataFrame) -> list[dict[str, Any]]:
    cols = {"bc_record_id": "record", "crm_description": "coupled_to", "bc_record_exists": "record_exists",
            "crm_record_exists": "coupled_record_exists", "error_no": "error_no", "table_id": "table_id",
            "integration_id": "integration_id", "crm_id": "crm_id", "couple_to": "couple_to", "outcome": "outcome"}
    frame = part[[c for c in cols if c in part.columns]].rename(columns=cols)
    if "description" in part.columns:
        frame.insert(0, "description", part["description"])
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


def _batch(part: pd.DataFrame, filter_text: str | None) -> dict[str, Any]:
    return {"filter": filter_text, "records": _records(part)}


def _step(plan: Plan, page: str, role: str, mapping: str, table_id: int, direction: str | None,
          part: pd.DataFrame) -> dict[str, Any]:
    caption = bc.BC_TABLES.get(table_id, f"table {table_id}")
    choose = _CHOOSE.get(direction or "")
    confirm = plan.action in ("remove-coupling", "restore-records", "delete-records")
    batches = []
    for lo in range(0, len(part), BATCH):
        chunk = part.iloc[lo:lo + BATCH]
        if page == "5333":
            text = f"Table ID: {table_id}; Description: {bc_filter(chunk['description'].tolist())}"
        elif page == "5339":
            text = "No.: " + bc_filter([str(int(n)) for n in chunk["error_no"]])
        else:
            text = f"No.: {bc_filter(chunk['description'].tolist())}"
        batches.append(_batch(chunk, text))
    if page == "5333":
        name, bc_action = _PAGE_5333[0], _BC_ACTION_5333[plan.action]
        how = (f"Open page {name} (Load More Errors until the lines appear), filter each batch below, select all "
               f"lines and choose {bc_action}")
    elif page == "5339":
        name, bc_action = _PAGE_5339[0], _BC_ACTION_5339[plan.action]
        how = (f"Open page {name}, filter each batch below on No. (the records' latest errors), select all lines "
               f"and choose {bc_action}")
    else:
        name = f"{caption} list"
        bc_action = {"synchronize": "Dataverse › Synchronize",
                     "remove-coupling": "Dataverse › Coupling › Delete Coupling",
                     "set-up-coupling": "Dataverse › Coupling › Set Up Coupling"}[plan.action]
        how = f"Open the {caption} list, filter each batch below on No., select all lines and choose {bc_action}"
    if plan.action == "set-up-coupling":  # DefineCoupling works on one record at a time
        how = how.replace("select all lines and choose", "then for each line on its own select it and choose")
        how += (" and in the CRM Coupling Record page pick, in Coupled To, the Dataverse row given for it below"
                + (f"; tick Synchronize After Coupling with {'To' if direction == 'to-dataverse' else 'From'} "
                   "Integration Table" if direction else "; leave Synchronize After Coupling off"))
        choose = None
    elif direction == "merge":  # BC offers Merge data only when one record is selected (spec §6.6)
        how = how.replace("select all lines and choose", "then for each line on its own select it and choose")
        how += f"; answer {choose!r} (BC offers it for one record at a time)"
    elif choose:
        how += f"; answer {choose!r}"
    if confirm:
        how += "; confirm the question"
    how += "."
    if plan.action in ("restore-records", "delete-records") and not part["skipped"].astype("boolean").fillna(False).all():
        how += (" Page 5333 lists only Skipped couplings: for the others run Find for Deleted first (unidirectional "
                "mappings), or wait until the failing synchronization marks them Skipped.")
    # the notification BC shows after a full batch (whether Delete Couplings schedules an uncoupling job
    # depends on the mapping's Uncouple Codeunit, which loaded history does not say: not predicted)
    first = min(len(part), BATCH)
    shows = bc_notification(plan.action, total=first, done=first, table=caption, uncoupling_job=False)
    return {"page": name, "page_id": {"5333": 5333, "5339": 5339}.get(page), "page_key": page, "role": role,
            "mapping": mapping, "table_id": table_id, "table_caption": caption, "bc_action": bc_action,
            "direction": direction, "choose": choose, "how": how, "bc_shows": shows, "count": len(part),
            "batches": batches}


def plan_markdown(document: dict[str, Any]) -> str:
    """The plan file as Markdown (``plan.md.j2``): steps with filters, the first batch's records, what is not applied."""
    not_applied = [{**g, "examples": ", ".join(str(r.get("record") or r.get("integration_id")) for r in g["records"][:3])}
                   for g in document["not_applied"]]
    return render_markdown("plan.md.j2", d={**document, "not_applied": not_applied}, batch=BATCH)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula, prefixed with ``'`` (OWASP's CSV injection advice).

    A record description such as ``=HYPERLINK(...)`` or ``=cmd|' /C calc'!A0`` becomes ``'=HYPERLINK(...)``:
    Excel shows the text and runs nothing.

    Examples
    --------
    >>> neutralise_formulas(pd.DataFrame({"d": ["=1+1", "C10000", "-x", "a=b"], "n": [1, 2, 3, 4]}))["d"].tolist()
    ["'=1+1", 'C10000', "'-x", 'a=b']
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            text = out[col].astype(object)
            risky = text.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START)).astype(bool)
            out[col] = text.where(~risky, "'" + text[risky].astype(str))
    return out


def plan_csv(document: dict[str, Any]) -> pd.DataFrame:
    """Every target of the plan file, one row each, with its step, batch and filter (formulas neutralised)."""
    rows = []
    for i, s in enumerate(document["steps"], 1):
        for j, b in enumerate(s["batches"], 1):
            for r in b["records"]:
                rows.append({"step": i, "page": s["page"], "mapping": s["mapping"], "bc_action": s["bc_action"],
                             "choose": s.get("choose"), "batch": j, "filter": b["filter"], "status": "change", **r})
    for g in document["not_applied"]:
        for r in g["records"]:
            rows.append({"step": None, "page": None, "mapping": None, "bc_action": None, "choose": None, "batch": None,
                         "filter": None, "status": g["status"], **r})
    return neutralise_formulas(pd.DataFrame(rows))


