"""The ``act`` and ``twin`` subcommands of the ``syncanalysis`` command line.

``syncanalysis act ACTION --workspace W [filters] [--direction D] [--dry-run] [--yes]`` prints the plan,
asks before anything destructive (refusing without a terminal unless ``--yes``), runs it and prints
the result. ``syncanalysis twin advance --workspace W --hours H`` runs the twin's job queue forward.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from .. import bc
from ..analysis.records import STATES, Selection
from ..sql import registered
from ..workspace import Workspace
from .backends import advance_twin, scopes
from .base import ACTIONS, CAPTIONS, DESTRUCTIVE, DIRECTIONS, WHOLE_COMPANY, ActionError
from .core import audit_dry_run, execute, plan
from .planfile import PlanFileBackend

_SHOWN = 15  # plan rows printed before running


def register(subparsers: Any) -> None:
    """Add the ``act`` and ``twin`` subcommands to the ``syncanalysis`` parser's ``subparsers``."""
    p = subparsers.add_parser(
        "act", help="run a resolution action (Retry, Synchronize, Remove Coupling, ...) on coupled records",
        description="Plan a BC resolution action on the selected couplings, print the plan, then run it on the "
                    "twin (or write a plan file for loaded history). Every run and dry run is audited.")
    p.add_argument("action", choices=ACTIONS, help="the action (BC captions: "
                   + ", ".join(f"{a} = {c}" for a, c in CAPTIONS.items()) + ")")
    p.add_argument("--workspace", required=True, help="the DuckDB workspace file")
    p.add_argument("--environment", help="environment (needed when the workspace holds several)")
    p.add_argument("--company", help="company (needed when the workspace holds several)")
    p.add_argument("--table", help="mapping name, BC table caption or number (e.g. CUSTOMER, Customer, 18)")
    p.add_argument("--signature", help="the latest error's signature")
    p.add_argument("--cause", help="the latest error's cause")
    p.add_argument("--state", choices=STATES, help="coupling state")
    p.add_argument("--finding", help="a finding of `syncanalysis diagnose` (its id, e.g. no-08bad0, or its rank): "
                                     "act on exactly its records")
    p.add_argument("--keys", help="CSV file with table_id,integration_id or bc_record_id columns")
    p.add_argument("--direction", choices=[*DIRECTIONS, "none"],
                   help="Synchronize: which side wins (merge where BC offers it); Set Up Coupling: synchronize after "
                        "coupling this way, or none (default: as BC's page proposes)")
    p.add_argument("--couple-to", help="Set Up Coupling: the Dataverse row id for the one selected record, or a CSV "
                   "file with integration_id,crm_id columns (one row per record)")
    p.add_argument("--parents-first", action="store_true", help="also act on the parents named by the errors, first")
    p.add_argument("--dry-run", action="store_true", help="print and audit the plan; change nothing")
    p.add_argument("--yes", action="store_true", help="confirm a destructive action without asking")
    p.add_argument("--plan-file", help="write a plan file there instead of changing the twin")
    p.set_defaults(func=_act)

    t = subparsers.add_parser("twin", help="the embedded twin behind a workspace")
    tsub = t.add_subparsers(dest="twin_command", required=True)
    a = tsub.add_parser("advance", help="run the twin's job queue forward and publish what the runs did")
    a.add_argument("--workspace", required=True)
    a.add_argument("--hours", type=float, required=True, help="how far to run the job queue clock")
    a.add_argument("--activity", action="store_true", help="users keep editing both apps meanwhile")
    a.add_argument("--environment")
    a.add_argument("--company")
    a.set_defaults(func=_advance)

    d = subparsers.add_parser(
        "delete-entries", help="Delete Entries on the job log (page 5338), keeping jobs Skipped couplings point at",
        description="BC's Delete Entries Older Than 7 Days (--days 7, the default) or Delete All Entries (--days 0): "
                    "jobs without failures, and jobs with failures no Skipped coupling points at, go with their "
                    "errors. On the twin they are deleted; for loaded history a plan file says what BC will do.")
    d.add_argument("--workspace", required=True)
    d.add_argument("--days", type=int, default=7, help="older than this many days (0 = Delete All Entries)")
    d.add_argument("--environment")
    d.add_argument("--company")
    d.add_argument("--dry-run", action="store_true", help="print and audit what would go; change nothing")
    d.add_argument("--yes", action="store_true", help="confirm without asking")
    d.add_argument("--plan-file", help="write a plan file there instead of changing the twin")
    d.set_defaults(func=_delete_entries)


def _open(path: str) -> Workspace:
    if path not in (":memory:",) and not Path(path).exists():
        raise ActionError(f"Workspace {path} does not exist. Build it first, e.g. `syncanalysis demo`.")
    return Workspace(path)


def resolve_table(ws: Workspace, value: str) -> dict[str, Any]:
    """``--table``: a mapping name, a BC table caption or a table number -> Selection fields."""
    text = value.strip()
    if text.isdigit():
        return {"table_id": int(text)}
    names = [r[0] for r in ws.con.execute("SELECT DISTINCT name FROM mappings ORDER BY 1").fetchall()]
    for name in names:
        if name.lower() == text.lower():
            return {"mapping": name}
    captions = dict(ws.con.execute("SELECT DISTINCT lower(table_caption), table_id FROM mappings "
                                   "WHERE table_caption IS NOT NULL").fetchall())
    captions.update({c.lower(): t for t, c in bc.BC_TABLES.items() if c.lower() not in captions})
    if text.lower() in captions:
        return {"table_id": int(captions[text.lower()])}
    raise ActionError(f"--table {value!r} is neither a mapping ({', '.join(names) or 'none loaded'}), a BC table "
                      "caption nor a table number.")


def _scope(ws: Workspace, environment: str | None, company: str | None, what: str) -> tuple[str, str]:
    if environment is not None and company is not None:
        return environment, company
    fits = [s for s in scopes(ws) if (environment is None or s[0] == environment) and (company is None or s[1] == company)]
    if len(fits) != 1:
        raise ActionError(f"{what} needs one environment/company; the workspace has "
                          f"{', '.join('/'.join(s) for s in fits) or 'none'}. Give --environment and --company.")
    return fits[0]


def keys_from_file(ws: Workspace, path: str, environment: str | None = None,
                   company: str | None = None) -> tuple[tuple[str, str, int, str], ...]:
    """Read ``--keys`` and return its coupling keys.

    The file is a CSV with ``table_id,integration_id`` or ``bc_record_id`` (optionally environment, company).
    Record ids without a coupling are reported on stderr and left out.
    """
    file = Path(path)
    if not file.exists():
        raise ActionError(f"Keys file {file} does not exist.")
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ActionError(f"Keys file {file} is not a readable CSV: {exc}") from exc
    frame.columns = [c.strip().lower() for c in frame.columns]
    has_ids = "integration_id" in frame.columns
    if not has_ids and "bc_record_id" not in frame.columns:
        raise ActionError(f"Keys file {file} needs the columns table_id,integration_id or bc_record_id; "
                          f"it has {list(frame.columns)}.")
    if "environment" not in frame.columns or "company" not in frame.columns:
        env, comp = _scope(ws, environment, company, f"Keys file {file} (no environment/company columns)")
        frame["environment"], frame["company"] = env, comp
    frame["row"] = range(2, len(frame) + 2)  # the header is line 1
    if has_ids:
        if "table_id" in frame.columns:
            bad = frame[~frame["table_id"].str.strip().str.fullmatch(r"\d+")]
            if len(bad):
                r = bad.iloc[0]
                raise ActionError(f"Keys file {file}, row {r['row']}, column table_id: {r['table_id']!r} is not a "
                                  "table number.")
        ids = frame["integration_id"].str.strip().str.strip("{}").str.lower()
        bad = frame[~ids.str.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}")]
        if len(bad):
            r = bad.iloc[0]
            raise ActionError(f"Keys file {file}, row {r['row']}, column integration_id: {r['integration_id']!r} is "
                              "not a GUID.")
        frame["integration_id"] = ids
        if "table_id" not in frame.columns:
            lookup = "SELECT k.*, c.table_id FROM {keys} k JOIN couplings c ON c.environment = k.environment " \
                     "AND c.company = k.company AND c.integration_id = CAST(k.integration_id AS UUID)"
        else:
            lookup = "SELECT * FROM {keys}"
    else:
        lookup = ("SELECT k.*, c.table_id, CAST(c.integration_id AS VARCHAR) AS integration_id FROM {keys} k "
                  "LEFT JOIN couplings c ON c.environment = k.environment AND c.company = k.company "
                  "AND c.bc_record_id = trim(k.bc_record_id)")
    with registered(ws.con, frame, "keys_file") as name:
        out = ws.con.execute(lookup.replace("{keys}", name)).df()
    if has_ids and len(out) < len(frame):
        print(f"warning: {len(frame) - len(out):,} Integration ID(s) in {file} have no coupling; left out.",
              file=sys.stderr)
    if not has_ids:
        missing = out[out["integration_id"].isna()]
        if len(missing):
            first = missing.sort_values("row").iloc[0]
            print(f"warning: {len(missing):,} record id(s) in {file} have no coupling (first: row {first['row']}, "
                  f"{first['bc_record_id']!r}); left out.", file=sys.stderr)
        out = out[out["integration_id"].notna()]
    out = out.drop_duplicates(["environment", "company", "table_id", "integration_id"])
    return tuple((str(e), str(c), int(t), str(i)) for e, c, t, i in
                 out[["environment", "company", "table_id", "integration_id"]].itertuples(index=False))


def _finding_selection(ws: Workspace, ref: str, environment: str | None, company: str | None) -> Selection:
    """The records of the finding ``ref`` (its id or rank in ``syncanalysis diagnose``), exactly."""
    from ..analysis.findings import diagnose, find

    findings = diagnose(ws, environment=environment, company=company)
    try:
        f = find(findings, ref)
    except KeyError as exc:
        raise ActionError(exc.args[0]) from None
    if f.selection is None:
        raise ActionError(f"Finding {f.id} ({f.code}) is about the job queue, not records: there is nothing to act "
                          "on; follow its remedy in BC.")
    return f.selection


def selection_from_args(ws: Workspace, args: argparse.Namespace) -> Selection | None:
    """The Selection the ``act`` arguments describe (``None`` for Retry All / Find for Deleted without filters)."""
    table = resolve_table(ws, args.table) if args.table else {}
    filters = {"environment": args.environment, "company": args.company, "signature": args.signature,
               "cause": args.cause, "state": args.state, **table}
    filters = {k: v for k, v in filters.items() if v is not None}
    if args.finding:
        # exactly the finding's records; further filters narrow them
        sel = _finding_selection(ws, args.finding, args.environment, args.company)
        if args.action in WHOLE_COMPANY:  # BC runs Retry All / Find for Deleted on a company: the finding's
            return Selection(environment=sel.environment, company=sel.company)
        sel = sel.replace(**filters)
    else:
        sel = Selection(**filters)
    if args.keys:
        sel = sel.replace(keys=keys_from_file(ws, args.keys, args.environment, args.company))
    if args.action in WHOLE_COMPANY and not args.finding and not args.keys and set(filters) <= {"environment",
                                                                                                  "company"}:
        return sel if filters else None
    return sel


def _confirm(action: str, n: int, yes: bool) -> bool:
    if yes or action not in DESTRUCTIVE or n == 0:
        return True
    if not sys.stdin.isatty():
        raise ActionError(f"{CAPTIONS[action]} is destructive and would change {n:,} record(s); re-run with --yes to "
                          "confirm (there is no terminal to ask on).")
    answer = input(f"{CAPTIONS[action]} will change {n:,} record(s) and cannot be undone. Proceed? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _couple_to(value: str | None) -> str | dict[str, str] | None:
    """``--couple-to``: a GUID, or a CSV file of ``integration_id,crm_id`` pairs."""
    if value is None or not Path(value).is_file():
        return value
    frame = pd.read_csv(value, dtype=str)
    missing = {"integration_id", "crm_id"} - set(frame.columns)
    if missing:
        raise ActionError(f"{value}: --couple-to needs the columns integration_id and crm_id; it lacks "
                          f"{', '.join(sorted(missing))} (it has {', '.join(frame.columns)}).")
    blank = frame[["integration_id", "crm_id"]].isna().any(axis=1)
    if blank.any():
        raise ActionError(f"{value}: row {int(blank.idxmax()) + 2} has an empty integration_id or crm_id.")
    return dict(zip(frame["integration_id"], frame["crm_id"]))


def _act(args: argparse.Namespace) -> int:
    with _open(args.workspace) as ws:
        sel = selection_from_args(ws, args)
        backend = PlanFileBackend(args.plan_file) if args.plan_file else None
        p = plan(ws, args.action, sel, direction=args.direction, backend=backend, parents_first=args.parents_first,
                 couple_to=_couple_to(args.couple_to))
        print(p.summary())
        shown = p.to_frame()[["mapping_name", "bc_record_id", "crm_description", "state", "outcome", "fields"]]
        shown = shown.astype(object).where(shown.notna(), "")
        if len(shown):
            print(shown.head(_SHOWN).to_string(index=False, max_colwidth=70))
            if len(shown) > _SHOWN:
                print(f"... and {len(shown) - _SHOWN:,} more")
        if args.dry_run:
            r = audit_dry_run(ws, p)
            print(f"\nDry run recorded as action #{r.action_id}; nothing was changed.")
            return 0
        if not _confirm(args.action, p.counts["will_change"], args.yes):
            print("Cancelled; nothing was changed.")
            return 1
        r = execute(ws, p, progress=sys.stderr.isatty())
        print()
        print(r.summary())
    return 0


def _delete_entries(args: argparse.Namespace) -> int:
    from .entries import delete_entries, preview_entries

    backend = "plan" if args.plan_file else None
    with _open(args.workspace) as ws:
        if args.dry_run:
            print(delete_entries(ws, args.days, environment=args.environment, company=args.company, dry_run=True,
                                 backend=backend).summary())
            return 0
        preview = preview_entries(ws, args.days, environment=args.environment, company=args.company, backend=backend)
        print(preview.summary())
        if preview.backend == "twin" and not _confirm_text(f"Delete {len(preview.jobs):,} job(s) and their errors",
                                                            args.yes):
            print("Nothing was changed.")
            return 1
        r = delete_entries(ws, args.days, environment=preview.environment, company=preview.company,
                           backend=backend, plan_file=args.plan_file, as_of=preview.as_of)
    print(r.summary())
    return 0


def _confirm_text(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ActionError(f"{question}: re-run with --yes to confirm (there is no terminal to ask on).")
    return input(f"{question}? [y/N] ").strip().lower() in ("y", "yes")


def _advance(args: argparse.Namespace) -> int:
    with _open(args.workspace) as ws:
        r = advance_twin(ws, args.hours, activity=args.activity, environment=args.environment, company=args.company)
    print(r.summary())
    return 0
