"""The diagnosis: coded findings with a time window, evidence, a remedy and the selection to triage.

:func:`diagnose` classifies the error texts (signatures), then looks for:

===========================  =================================================================================
code                         what it means
===========================  =================================================================================
``CONNECTION_DISABLED``      every mapping stopped right after a privilege error: BC disabled the connection
``SYNC_STOPPED_ALL``         every mapping stopped, with no privilege error to explain it (job queue down)
``SYNC_STOPPED``             one mapping's job queue entry stopped running (e.g. set On Hold by someone)
``PARENT_NOT_COUPLED``       parent records (salesperson, currency, unit, company…) block their children: one
                             finding per parent table and parent state, its children in every mapping
``DELETED_BURST``            a burst of "coupled to a deleted record" failures (mass deletion in one app)
``CONFLICT_BURST``           a burst of update conflicts (the same records edited in both apps)
``FIELD_LENGTH_BURST``       a burst of values too long for the other app's field (an import)
``TRANSIENT_ERRORS``         Dataverse time-outs or service protection limits; heals by itself
``PERMISSION_ERRORS``        the integration user lacks a privilege
``ERROR_BURST``              any other cause failing many records at once
``CHRONIC_ERRORS``           a cause that fails records steadily, week after week
``NO_DELETION_RULE``         deletions keep failing because Resolve Deletion Conflicts is blank
``NO_CONFLICT_RULE``         conflicts keep failing because Resolve Update Conflicts is blank
``SKIPPED_BACKLOG``          couplings excluded from synchronization (Skipped) waiting for an admin (per company)
``BROKEN_COUPLINGS``         couplings whose record in one app no longer exists (per company)
``RETRY_WITHOUT_FIX``        records retried again and again that fail the same way each time
``HIGH_FAILURE_RATE``        a mapping fails a large share of what it processes (where no other finding explains it)
``SLOW_RUNS``                a mapping's runs are much slower than usual at times
``UNFINISHED_JOBS``          jobs with no finish time (crashed or still running)
===========================  =================================================================================

Bursts are found on *onsets* (the first failure of each record for a cause) counted per job-queue run:
steady background failures give runs with zero or one onset, an incident gives runs with several. The
window starts at the first run of the burst (one run earlier when that run already had an onset) and
ends at the last error of the records that started failing in it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..sql import scope
from ..workspace import Workspace
from .causes import cause_info
from .dependencies import dependency_graph, errors_with_signatures_sql
from .health import INTERVAL_MIN, gaps, job_health, runs_sql, stopped_periods
from .records import Selection, records_relation
from .signatures import ensure_signatures

SEVERITIES = ("critical", "high", "medium", "low", "info")
# BC actions the actions layer runs (syncanalysis.actions.CAPTIONS); findings suggest only these
_ACTIONS = frozenset({"Retry", "Retry All", "Synchronize", "Remove Coupling", "Restore Records", "Delete Records",
                      "Find for Deleted"})
_PARENT_STATE = {"ok": "coupled since", "not coupled": "still not coupled", "broken": "deleted in one app",
                 "skipped": "itself skipped", "failed": "itself failing", "unknown": "not in a mapping"}
MIN_STOP_MINUTES = 180  # shorter pauses are listed by health.gaps but are not worth a finding
_SYMPTOMS = {"HIGH_FAILURE_RATE", "SLOW_RUNS", "UNFINISHED_JOBS"}  # findings that name no cause of failures
_NO_RECORD = "error "  # record_id of an error that names no record (errors_with_signatures_sql)
_EPISODE_CODES = {"deleted": "DELETED_BURST", "conflict": "CONFLICT_BURST", "field-length": "FIELD_LENGTH_BURST",
                  "permission": "PERMISSION_ERRORS"}


@dataclass
class Finding:
    """One coded finding of the diagnosis (see the module docstring for the codes)."""

    code: str
    severity: str
    title: str
    environment: str
    company: str
    mapping: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    ongoing: bool
    affected: int
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""
    action: str | None = None
    selection: Selection | None = None
    #: short stable id (``syncanalysis act --finding <id>``; the same data gives the same id)
    id: str = ""
    #: ``now`` (records still failing, or still going on at the end of the history) or ``over``
    status: str = ""
    #: of the ``affected`` records, how many are still not synchronized (failed, skipped or broken) now
    now: int = 0
    #: errors per day of its records over the last 7 days of the history
    per_day: float = 0.0
    #: the BC record ids behind the finding (internal: for counting their errors)
    record_ids: Any = field(default=None, repr=False, compare=False)
    now_keys: Any = field(default=None, repr=False, compare=False)  # the keys counted in ``now``

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (selection as a dict, times as ISO text)."""
        out = dataclasses.asdict(dataclasses.replace(self, record_ids=None, now_keys=None))
        out.pop("record_ids")
        out.pop("now_keys")
        out["selection"] = self.selection.to_dict() if self.selection else None
        for k in ("start", "end"):
            out[k] = pd.Timestamp(out[k]).isoformat() if out[k] is not None else None
        out["evidence"] = _jsonable(self.evidence)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _ts(value: Any) -> dt.datetime | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


# ------------------------------------------------------------------------------------------------
def diagnose(ws: Workspace, *, environment: str | None = None, company: str | None = None,
             progress: bool = False) -> list[Finding]:
    """Diagnose the history of ``ws`` and return the findings, what to fix first first.

    One finding per root cause; those happening now (records still failing of their cause, or the job
    queue still stopped) before those that are over, then causes before symptoms, most records blocked
    now, most errors per day.

    Parameters
    ----------
    ws
        A workspace (writable, so that error signatures can be assigned and cached; a read-only one
        works when they already are).
    environment, company
        Limit the diagnosis to one environment / company.
    progress
        Show a progress bar over the steps.
    """
    steps = [_signatures, _stops, _parents, _episodes, _configuration, _backlog, _retries, _job_health]
    findings: list[Finding] = []
    ctx = _Context(ws, environment, company)
    for step in tqdm(steps, desc="diagnosing", disable=not progress):
        findings += step(ctx)
    # a mapping's failure rate is a symptom: said only where no finding gives a cause of that mapping's failures
    explained = {(f.environment, f.company, m) for f in findings if f.code not in _SYMPTOMS
                 for m in [f.mapping, *f.evidence.get("per_mapping", {}), *f.evidence.get("children", {})]}
    findings = [f for f in findings if f.code != "HIGH_FAILURE_RATE"
                or (f.environment, f.company, f.mapping) not in explained]
    findings = _within_parents(_one_per_cause(_merge_transient(findings)))
    _measure(ctx, findings)
    findings.sort(key=_rank)
    _name(findings)
    return findings


#: findings that describe a state or a symptom rather than a cause to fix (ranked after the causes)
_SYMPTOM_RANK = _SYMPTOMS | {"SKIPPED_BACKLOG", "BROKEN_COUPLINGS", "RETRY_WITHOUT_FIX"}
# what fixes a cause once and for all: the mapping setting (spelt as BC's Integration Table Mapping has it)
_RULE_CAUSE = {"NO_CONFLICT_RULE": "conflict", "NO_DELETION_RULE": "deleted"}
_CAUSE_CODES = {"CONFLICT_BURST", "DELETED_BURST", "FIELD_LENGTH_BURST", "ERROR_BURST", "PERMISSION_ERRORS",
                "CHRONIC_ERRORS", "RETRY_WITHOUT_FIX"}
_BURSTS = {"CONFLICT_BURST", "DELETED_BURST", "FIELD_LENGTH_BURST", "ERROR_BURST", "PERMISSION_ERRORS"}


def _root_cause(f: Finding) -> str | None:
    if f.code in _RULE_CAUSE:
        return _RULE_CAUSE[f.code]
    if f.code in _CAUSE_CODES and f.selection is not None and f.selection.keys is not None:
        cause = f.evidence.get("cause")
        return None if cause is None or cause_info(cause).transient else cause
    return None


def _one_per_cause(findings: list[Finding]) -> list[Finding]:
    """One root cause, one finding (a mapping's burst, steady failures, retries and blank setting).

    A mapping's burst, its steady failures, its retries without a fix and the blank setting behind them
    become one finding (the setting's, when there is one). The finding keeps the burst's window (when the incident began and its records' last error); what
    was merged is listed in ``evidence["merged"]`` with each part's count, and its records are the union.
    Several bursts of one cause stay separate incidents; the rest joins the largest.
    """
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        cause = _root_cause(f)
        if cause is not None:
            groups.setdefault((f.environment, f.company, f.mapping, cause), []).append(f)
    merged_away: set[int] = set()
    out: list[Finding] = []
    for (_env, _comp, mapping, cause), g in groups.items():
        if len(g) < 2:
            continue
        bursts = sorted((f for f in g if f.code in _BURSTS), key=lambda f: -f.affected)
        rest = [f for f in g if f.code not in _BURSTS]
        parts = [*bursts[:1], *rest]
        if len(parts) < 2:
            continue
        rule = next((f for f in rest if f.code in _RULE_CAUSE), None)
        lead = rule or (bursts[0] if bursts else max(rest, key=lambda f: (f.code == "CHRONIC_ERRORS", f.affected)))
        window = bursts[0] if bursts else None
        sel = _union(parts)
        ids = set().union(*(f.record_ids or set() for f in parts))
        n = len(sel.keys)
        info = cause_info(cause)
        title = {
            "NO_CONFLICT_RULE": f"{mapping}: Resolve Update Conflicts is blank, so {n:,} records edited in both apps "
                                "fail on every run",
            "NO_DELETION_RULE": f"{mapping}: Resolve Deletion Conflicts is blank, so {n:,} records coupled to deleted "
                                "rows fail on every run",
        }.get(lead.code, f"{n:,} {mapping} records fail with {info.title.lower()}")
        evidence = {**lead.evidence, **{k: v for f in parts if f is not lead for k, v in f.evidence.items()
                                        if k in ("per_week", "median_days", "signature", "examples")},
                    "cause": cause, "merged": {f.code: f.affected for f in parts},
                    "first_seen": min((f.start for f in parts if f.start), default=None),
                    "last_seen": max((f.end for f in parts if f.end), default=None)}
        if any(f.code == "RETRY_WITHOUT_FIX" for f in parts):
            evidence["retried_without_fix"] = next(f.affected for f in parts if f.code == "RETRY_WITHOUT_FIX")
        start = window.start if window else evidence["first_seen"]
        end = window.end if window else evidence["last_seen"]
        out.append(dataclasses.replace(
            # "ongoing" is the window's (the incident's); records still failing make the finding "now"
            lead, title=title, start=start, end=end, ongoing=window.ongoing if window else any(f.ongoing for f in parts),
            affected=n,
            severity=min((f.severity for f in parts), key=SEVERITIES.index), evidence=evidence,
            action=lead.action or next((f.action for f in parts if f.action), None),
            selection=sel, record_ids=ids))
        merged_away |= {id(f) for f in parts}
    return [f for f in findings if id(f) not in merged_away] + out


def _within_parents(findings: list[Finding]) -> list[Finding]:
    """Steady failures, retries or a burst whose records all are the children of one parent finding: that one.

    The parents not coupled are the root cause; the same records again under another code would count
    them twice (what is merged is listed in the parent finding's ``evidence["merged"]``).
    """
    parents = [f for f in findings if f.code == "PARENT_NOT_COUPLED" and f.selection is not None
               and f.selection.keys]
    if not parents:
        return findings
    keys = {id(p): set(p.selection.keys) for p in parents}
    out = []
    for f in findings:
        home = None
        if (f.code in ("RETRY_WITHOUT_FIX", "CHRONIC_ERRORS", "ERROR_BURST") and f.selection is not None
                and f.selection.keys and f.evidence.get("cause")):
            home = next((p for p in parents if (p.environment, p.company) == (f.environment, f.company)
                         and p.evidence.get("cause") == f.evidence["cause"]
                         and keys[id(p)].issuperset(f.selection.keys)), None)
        if home is None:
            out.append(f)
        else:
            merged = home.evidence.setdefault("merged", {})
            merged[f.code] = merged.get(f.code, 0) + f.affected
    return out


def _measure(ctx: _Context, findings: list[Finding]) -> None:
    """Set each finding's ``now`` (its records still failing of its cause), ``per_day`` and ``status``.

    Also ``evidence["share_of_errors"]``: the share of all errors of the history that are its records'
    errors of its cause (of any cause when it names none).
    """
    end = ctx.history_end
    e = _error_frame(ctx)
    total = len(e)
    recent_from = pd.Timestamp(end) - pd.Timedelta(days=7) if end is not None else None
    recent = (e["logged_at"] >= recent_from) if recent_from is not None else pd.Series(False, index=e.index)
    per_record = e[["environment", "company", "record_id", "cause"]].assign(errors=1, recent=recent.astype(int)) \
        .groupby(["environment", "company", "record_id", "cause"], sort=False)[["errors", "recent"]].sum() \
        .reset_index()
    # the couplings not synchronized now, each with the cause of its record's latest error ("" for none): a
    # finding blocks now the records still failing of its own cause, not those failing since for another
    latest = (e.sort_values(["logged_at", "error_no"], kind="stable")
              .drop_duplicates(["environment", "company", "record_id"], keep="last")
              .set_index(["environment", "company", "record_id"])["cause"])
    failing = ctx.couplings[ctx.couplings["state"] != "ok"]
    by_record = pd.MultiIndex.from_frame(failing[["environment", "company", "bc_record_id"]])
    failing_cause = pd.Series(latest.reindex(by_record).fillna("").to_numpy(dtype=object),
                              index=pd.MultiIndex.from_frame(failing[["environment", "company", "table_id",
                                                                      "integration_id"]]))
    for f in findings:
        sel = f.selection
        if sel is not None and sel.keys is not None:
            cause = f.evidence.get("cause") if f.code != "HIGH_FAILURE_RATE" else None
            now = failing_cause.reindex(pd.MultiIndex.from_tuples(sel.keys, names=failing_cause.index.names)) \
                if sel.keys else pd.Series(dtype=object)
            hit = now.notna() if cause is None else now.eq(cause)
            f.now = int(hit.sum())
            f.now_keys = frozenset(now.index[hit.to_numpy()])
        elif sel is not None and f.code in ("SKIPPED_BACKLOG", "BROKEN_COUPLINGS"):
            f.now = f.affected  # a state now, by definition
        if f.record_ids:
            cause = f.evidence.get("cause") if f.code != "HIGH_FAILURE_RATE" else None
            r = per_record[(per_record["environment"] == f.environment) & (per_record["company"] == f.company)
                           & per_record["record_id"].isin(f.record_ids)]
            if cause is not None:
                r = r[r["cause"] == cause]
            f.per_day = round(float(r["recent"].sum()) / 7, 1)
            if total:
                f.evidence["share_of_errors"] = round(float(r["errors"].sum()) / total, 4)
        # a finding about records is happening now while some of them still fail of its cause; one about the
        # job queue (no records) or a mapping's failure rate while its window is open
        about_records = sel is not None and sel.keys is not None and f.code != "HIGH_FAILURE_RATE"
        f.status = "now" if (f.now > 0 if about_records else f.ongoing or f.now > 0) else "over"


def _rank(f: Finding) -> tuple:
    """What to fix first.

    What is happening now, causes before symptoms, most records blocked now, most errors per day, then
    the worst and the oldest.
    """
    return (f.status != "now", f.code in _SYMPTOM_RANK, -f.now, -f.per_day, -f.affected,
            SEVERITIES.index(f.severity), f.start or dt.datetime.max, f.code, f.mapping or "")


def _name(findings: list[Finding]) -> None:
    """Give each finding a short id from what it is about (the same data gives the same ids)."""
    seen: dict[str, int] = {}
    for f in findings:
        what = [f.code, f.environment, f.company, f.mapping or "", str(f.evidence.get("cause", "")),
                str(f.evidence.get("parent_table", "")), str(f.evidence.get("parent_state", "")),
                pd.Timestamp(f.start).isoformat() if f.start is not None else ""]
        base = f"{f.code.split('_')[0].lower()}-{hashlib.sha1('|'.join(what).encode()).hexdigest()[:6]}"
        seen[base] = seen.get(base, 0) + 1
        f.id = base if seen[base] == 1 else f"{base}-{seen[base]}"
        if f.selection is not None:
            f.selection = f.selection.replace(finding=f.id)


def find(findings: list[Finding], ref: str) -> Finding:
    """The finding ``ref`` names: its id, or its rank (``1`` = the first listed).

    Raises
    ------
    KeyError
        No finding has that id or rank (the message lists the ids).
    """
    ref = str(ref).strip()
    if ref.isdigit() and 1 <= int(ref) <= len(findings):
        return findings[int(ref) - 1]
    for f in findings:
        if f.id == ref:
            return f
    listed = ", ".join(f"{f.id} ({f.code})" for f in findings[:12])
    raise KeyError(f"No finding {ref!r}; use an id or rank of `syncanalysis diagnose`: {listed or 'none'}")


@dataclass(frozen=True)
class TopFix:
    """One line of the "top fixes" summary: a cause, what it blocks now, the fix and the action after it."""

    finding: str
    cause: str
    blocked: int
    fix: str
    action: str | None
    mapping: str | None


def top_fixes(findings: list[Finding], limit: int = 5) -> list[TopFix]:
    """At most ``limit`` causes to fix first: findings happening now that block records, in rank order.

    A record blocked by two findings (a burst of a cause and the parents behind it) is counted under the
    first; a finding that blocks no record beyond those of the fixes above it is left out.
    """
    out = []
    counted: set = set()
    for f in findings:
        # (getattr: findings made elsewhere, e.g. loaded from JSON, may lack the ranking fields)
        if getattr(f, "status", "") != "now" or f.code in _SYMPTOM_RANK or getattr(f, "now", 0) <= 0:
            continue
        keys = getattr(f, "now_keys", None)
        blocked = len(keys - counted) if keys is not None else f.now
        if blocked <= 0:
            continue
        counted |= keys or set()
        cause = f.evidence.get("cause")
        label = cause_info(cause).title if cause else f.code.replace("_", " ").capitalize()
        fix = cause_info(cause).action if cause else f.remedy
        if f.code == "PARENT_NOT_COUPLED":
            table, state = f.evidence.get("parent_table"), f.evidence.get("parent_state")
            label = f"{table} parents {_PARENT_STATE.get(state, state)}"
            where = f" in {f.evidence['parent_mapping']}" if f.evidence.get("parent_mapping") else ""
            fix = (f"Retry the children: their {table} parents are coupled now" if state == "ok" else
                   f"Couple or synchronize the {table} parents first (Set Up Coupling / Synchronize{where})")
        elif f.code in _RULE_CAUSE:
            label = f"{f.evidence.get('setting')} is blank"
            fix = f"On the {f.mapping} Integration Table Mapping, set {_RULE_FIX[f.code]}"
        if f.action and fix.endswith(f"then {f.action}"):  # the action is said once, after the fix
            fix = fix[: -len(f"then {f.action}")].rstrip(" ,")
        out.append(TopFix(f.id, label, blocked, fix, f.action, f.mapping))
        if len(out) == limit:
            break
    return out


# the fix of a blank mapping setting, in the captions page 5335 shows for its options
_RULE_FIX = {"NO_CONFLICT_RULE": "Resolve Update Conflicts to 'Send data update to integration table' (BC wins) or "
                                 "'Get data update from integration table' (Dataverse wins)",
             "NO_DELETION_RULE": "Resolve Deletion Conflicts to 'Restore records' or 'Delete coupling'"}


def _merge_transient(findings: list[Finding]) -> list[Finding]:
    """Dataverse time-outs / limits hitting several mappings at once: one finding (one cause, one window)."""
    transient = sorted((f for f in findings if f.code == "TRANSIENT_ERRORS" and f.start and f.end),
                       key=lambda f: (f.environment, f.company, f.start))
    groups: list[list[Finding]] = []
    for f in transient:
        g = groups[-1] if groups else None
        if g and (g[0].environment, g[0].company) == (f.environment, f.company) and f.start <= max(x.end for x in g):
            g.append(f)
        else:
            groups.append([f])
    out = [f for f in findings if f not in transient]
    for g in groups:
        if len(g) == 1:
            out.append(g[0])
            continue
        n = sum(f.affected for f in g)
        if _union(g) is not None:
            n = len(_union(g).keys)
        start, end = min(f.start for f in g), max(f.end for f in g)
        hours = (end - start).total_seconds() / 3600
        per = {f.mapping: f.affected for f in sorted(g, key=lambda f: -f.affected)}
        first = g[0]
        out.append(dataclasses.replace(
            first, mapping=None, start=start, end=end, ongoing=any(f.ongoing for f in g), affected=n,
            title=f"{n} records of {len(g)} mappings hit Dataverse time-outs or service limits for {hours:.1f} h "
                  f"({', '.join(f'{m} {k}' for m, k in per.items())})",
            evidence={**first.evidence, "per_mapping": per, "errors": sum(f.evidence.get("errors", 0) for f in g)},
            record_ids=set().union(*(f.record_ids or set() for f in g)),
            selection=_union(g) or (dataclasses.replace(first.selection, mapping=None) if first.selection else None)))
    return out


def _union(findings: list[Finding]) -> Selection | None:
    """The keys of all of ``findings`` as one selection (``None`` unless each has keys)."""
    if not findings or any(f.selection is None or f.selection.keys is None for f in findings):
        return None
    first = findings[0]
    keys = tuple(sorted({k for f in findings for k in f.selection.keys}))
    return Selection(environment=first.environment, company=first.company, keys=keys)


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """One row per finding (selection and evidence as dicts), for display and export."""
    cols = [f.name for f in dataclasses.fields(Finding) if f.name not in ("record_ids", "now_keys")]
    return pd.DataFrame([f.to_dict() for f in findings], columns=cols)


def kpis(ws: Workspace, *, environment: str | None = None, company: str | None = None,
         since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict[str, Any]:
    """Headline figures: jobs, errors, failing and skipped records, failure rate, time range."""
    cond, params = scope(environment=environment, company=company)
    jcond, jp = scope(environment=environment, company=company, time_column="start_datetime", since=since,
                      until=until)
    jwhere = f" WHERE {jcond}"
    ewhere = jwhere.replace("start_datetime", "logged_at")
    cwhere = f" WHERE {cond}"
    jobs = ws.con.execute(
        "SELECT count(*), coalesce(sum(failed), 0), coalesce(sum(inserted + modified + deleted + unchanged + skipped"
        f" + failed), 0), min(start_datetime), max(start_datetime), count(DISTINCT mapping_name) FROM jobs{jwhere}",
        jp).fetchall()[0]
    errors, signatures = ws.con.execute(
        f"SELECT count(*), count(DISTINCT signature) FROM job_errors{ewhere}", jp).fetchall()[0]
    coup = ws.con.execute(
        "SELECT count(*), count(*) FILTER (skipped), count(*) FILTER (bc_record_exists IS false OR "
        "crm_record_exists IS false), count(*) FILTER (NOT coalesce(skipped, false) AND (last_synch_result = "
        f"'Failure' OR last_synch_crm_result = 'Failure')) FROM couplings{cwhere}", params).fetchall()[0]
    return {
        "jobs": jobs[0], "failed": int(jobs[1]), "processed": int(jobs[2]),
        "failure_rate": (jobs[1] / jobs[2]) if jobs[2] else 0.0,
        "first_job": _ts(jobs[3]), "last_job": _ts(jobs[4]), "mappings": jobs[5],
        "errors": errors, "signatures": signatures, "couplings": coup[0], "skipped": coup[1], "broken": coup[2],
        "failing": coup[3],
    }


# ------------------------------------------------------------------------------------------------
@dataclass
class _Context:
    ws: Workspace
    environment: str | None
    company: str | None
    _errors: pd.DataFrame | None = None
    _couplings: pd.DataFrame | None = None
    _index: dict | None = None

    def scope(self, prefix: str = "") -> tuple[str, list]:
        """The environment/company condition (``true`` when neither is set) of columns of alias ``prefix``."""
        return scope(prefix.rstrip("."), environment=self.environment, company=self.company)

    @property
    def history_end(self) -> dt.datetime | None:
        where, params = self.scope()
        row = self.ws.con.execute(
            f"SELECT max(coalesce(finish_datetime, start_datetime)) FROM jobs WHERE {where}",
            params).fetchall()[0]
        return _ts(row[0])

    @property
    def couplings(self) -> pd.DataFrame:
        """Every coupling with its BC record id and state now (what a finding's records resolve to)."""
        if self._couplings is None:
            where, params = self.scope()
            self._couplings = self.ws.con.execute(f"""
                SELECT environment, company, bc_record_id, table_id, CAST(integration_id AS VARCHAR) AS integration_id,
                       sa_coupling_state(bc_record_exists, crm_record_exists, skipped, last_synch_result,
                                         last_synch_crm_result) AS state
                FROM couplings WHERE bc_record_id IS NOT NULL AND {where}""", params).df()
        return self._couplings

    def resolve(self, env: str, comp: str, record_ids: Any) -> tuple[Selection | None, int, set[str], int]:
        """The selection of exactly the couplings of ``record_ids``, their count, the ids, the uncoupled ones.

        ``None`` when the errors name no record (page 5339 exports): the finding then keeps its filter and
        its count is an estimate. Records that were never coupled are not listed by the triage, so they are
        not counted here (the finding says how many there are).
        """
        ids = {r for r in pd.unique(pd.Series(list(record_ids), dtype=object)) if isinstance(r, str)}
        named = {r for r in ids if not r.startswith(_NO_RECORD)}
        if not named:
            return None, 0, ids, 0
        index = self._coupling_index()
        hits = [index[(env, comp, r)] for r in named if (env, comp, r) in index]
        rows = np.concatenate(hits) if hits else np.array([], dtype=np.int64)
        c = self.couplings
        keys = tuple(sorted(zip(c["environment"].to_numpy(dtype=object)[rows], c["company"].to_numpy(dtype=object)[rows],
                                c["table_id"].to_numpy()[rows].astype(int).tolist(),
                                c["integration_id"].to_numpy(dtype=object)[rows])))
        return Selection(environment=env, company=comp, keys=keys), len(keys), named, len(named) - len(hits)

    def _coupling_index(self) -> dict[tuple[str, str, str], np.ndarray]:
        """Rows of :attr:`couplings` per (environment, company, BC record id), grouped once by pandas."""
        if self._index is None:
            self._index = self.couplings.groupby(["environment", "company", "bc_record_id"], sort=False).indices
        return self._index


def _signatures(ctx: _Context) -> list[Finding]:
    ensure_signatures(ctx.ws)
    return []


def _stops(ctx: _Context) -> list[Finding]:
    """CONNECTION_DISABLED / SYNC_STOPPED_ALL from global stops, SYNC_STOPPED from one mapping's."""
    ws = ctx.ws
    out: list[Finding] = []
    periods = stopped_periods(ws, environment=ctx.environment, company=ctx.company)
    for p in periods.itertuples():
        # the privilege error that made BC disable the connection comes just before the stop
        perm = ws.con.execute(f"""
            SELECT min(logged_at), count(*), arg_min(text, logged_at), arg_min(mapping_name, logged_at)
            FROM ({errors_with_signatures_sql()})
            WHERE environment = ? AND company = ? AND cause = 'permission'
              AND logged_at BETWEEN ? - INTERVAL 2 HOUR AND ?""",
            [p.environment, p.company, p.start, p.end]).fetchall()[0]
        evidence = {"mappings": list(p.mappings), "hours": round(p.minutes / 60, 1)}
        if perm[0] is not None:
            evidence.update(first_error=perm[2], errors=perm[1])
            e = _error_frame(ctx)
            hit = e.loc[(e["environment"] == p.environment) & (e["company"] == p.company)
                        & (e["cause"] == "permission") & (e["logged_at"] >= p.start - pd.Timedelta(hours=2))
                        & (e["logged_at"] <= p.end), "record_id"]
            sel, n, ids, uncoupled = ctx.resolve(p.environment, p.company, hit)
            if uncoupled:  # never coupled: on the errors page only, not in the triage
                evidence["uncoupled"] = uncoupled
            out.append(Finding(
                "CONNECTION_DISABLED", "critical",
                f"Synchronization stopped for {p.minutes / 60:.0f} h after a privilege error: BC disabled the "
                "Dataverse connection",
                p.environment, p.company, perm[3], _ts(perm[0]), _ts(p.end), False, n, evidence,
                "Give the integration user the missing privilege (its security role in Dataverse), enable the "
                "connection again in Dataverse Connection Setup, then Retry All the records skipped meanwhile.",
                "Retry All", sel if n else None, record_ids=ids))
        else:
            out.append(Finding(
                "SYNC_STOPPED_ALL", "critical",
                f"No mapping synchronized for {p.minutes / 60:.0f} h although work was waiting",
                p.environment, p.company, None, _ts(p.start), _ts(p.end), False, 0, evidence,
                "Check the job queue (is it running, are the synchronization entries Ready?) and the Dataverse "
                "connection setup; look at the Job Queue Log Entries for errors raised before any record.",
                None, None))
    g = gaps(ws, environment=ctx.environment, company=ctx.company)
    slack = pd.Timedelta(minutes=2 * INTERVAL_MIN)
    for r in g[(g["kind"] == "stopped") & (g["minutes"] >= MIN_STOP_MINUTES)].itertuples():
        # a stop of every mapping explains this one if it covers it (give or take two intervals), or if the
        # mapping was idle on hold before and the stop is what kept it from waking up
        same = (periods["environment"] == r.environment) & (periods["company"] == r.company) if len(periods) \
            else pd.Series(dtype=bool)
        explained = len(periods) > 0 and (
            (same & (periods["start"] - slack <= r.gap_start) & (periods["end"] + slack >= r.gap_end)).any()
            or (not r.previous_busy and (same & (periods["start"] < r.gap_end) & (periods["end"] + slack >= r.gap_end)).any()))
        if explained:
            continue
        start = r.due if not pd.isna(r.due) else r.gap_start
        out.append(Finding(
            "SYNC_STOPPED", "high",
            f"{r.mapping_name} did not synchronize for {r.minutes / 60:.0f} h",
            r.environment, r.company, r.mapping_name, _ts(start), _ts(r.gap_end),
            _recent(r.gap_end, ctx.history_end) and bool(r.gap_end >= pd.Timestamp(ctx.history_end)), 0,
            {"gap_minutes": round(r.minutes), "last_run_end": _ts(r.gap_start), "previous_run_busy": bool(r.previous_busy)},
            f"Open the job queue entry of {r.mapping_name} (Job Queue Entries): it was not Ready — set On Hold, "
            "in error or deleted. Set it to Ready; records changed meanwhile are picked up by the next run.",
            None, None))
    return out


def _parents(ctx: _Context) -> list[Finding]:
    """PARENT_NOT_COUPLED: one per parent table and parent state (one root cause, many parents and children)."""
    g = dependency_graph(ctx.ws, environment=ctx.environment, company=ctx.company)
    out: list[Finding] = []
    if g.empty:
        return out
    end = ctx.history_end
    e = _error_frame(ctx)
    named = e[e["parent_key"].notna()]
    named = named.assign(parent_record_id=named["parent_table"].astype(str) + ": " + named["parent_key"].astype(str))
    named = named[named["record_id"] != named["parent_record_id"]]
    for (env, comp, table, state), grp in g.groupby(["environment", "company", "parent_table", "parent_state"],
                                                    sort=False):
        # the children of one kind of parent, whatever their mapping (errors no job names are '(unknown)')
        per_child = grp.groupby("child_mapping")["blocked_records"].sum().sort_values(ascending=False)
        known = per_child.drop("(unknown)", errors="ignore")
        child = str((known if len(known) else per_child).index[0])
        children = named.loc[(named["environment"] == env) & (named["company"] == comp)
                             & named["parent_record_id"].isin(set(grp["parent_record_id"])), "record_id"]
        sel, n, ids, uncoupled = ctx.resolve(env, comp, children)
        blocked = n if sel is not None else int(grp["blocked_records"].sum())
        if blocked < 3 or (blocked < 10 and state == "broken"):  # a few children of deleted parents: noise
            continue
        grp = grp.sort_values(["fix_order"])
        last = grp["last_seen"].max()
        still = int(grp["still_blocking"].sum())
        ongoing = still > 0 and state != "ok" and end is not None and \
            (end - pd.Timestamp(last).to_pydatetime()) < dt.timedelta(days=2)
        cause = str(grp["cause"].mode().iat[0])
        info = cause_info(cause)
        one = grp["parent_record_id"].nunique() == 1
        parent = grp["parent_record_id"].iat[0]
        parents = parent if one else f"{grp['parent_record_id'].nunique()} {table} records"
        mapping = grp["parent_mapping"].dropna()
        where = f" in {mapping.iat[0]}" if len(mapping) else ""
        out.append(Finding(
            "PARENT_NOT_COUPLED", "high" if blocked >= 20 else "medium",
            f"{parents} blocked {blocked} {child} record(s) ({_PARENT_STATE.get(state, state)})",
            env, comp, child, _ts(grp["first_seen"].min()), _ts(last), bool(ongoing), blocked,
            {"parent": parent if one else None, "parents": int(grp["parent_record_id"].nunique()), "parent_table": table, "parent_state": state,
             "children": {str(k): int(v) for k, v in per_child.items()},
             "parent_mapping": mapping.iat[0] if len(mapping) else None, "errors": int(grp["errors"].sum()),
             "still_blocking": still, "fix_order": int(grp["fix_order"].min()), "cause": cause,
             "examples": grp.sort_values("blocked_records", ascending=False)["parent_record_id"].head(5).tolist(),
             **({"uncoupled": uncoupled} if uncoupled else {})},
            f"Couple or synchronize {'the parent' if one else f'the {table} records'} first (Set Up Coupling or "
            f"Synchronize{where}), then Retry the {child} records. {info.remedy}",
            # the children of every mapping (one parent: exactly its children; several: their cause)
            "Retry", sel if sel is not None else Selection(environment=env, company=comp, parent=parent) if one
            else Selection(environment=env, company=comp, mapping=child if len(known) <= 1 else None, cause=cause),
            record_ids=ids))
    return out


def _episode_group(cause: pd.Series, signature: pd.Series) -> pd.Series:
    transient = cause.map(lambda c: cause_info(c).transient)
    return signature.where(~transient, "transient")


def _error_frame(ctx: _Context) -> pd.DataFrame:
    if ctx._errors is None:
        where, params = ctx.scope("je.")
        ctx._errors = ctx.ws.con.execute(
            f"SELECT environment, company, error_no, logged_at, mapping_name, job_start, job_queue_log_entry_no, "
            f"job_id, record_id, signature, cause, parent_table, parent_key, text "
            f"FROM ({errors_with_signatures_sql('WHERE ' + where)})", params).df()
    return ctx._errors


def _episodes(ctx: _Context) -> list[Finding]:
    """Bursts of new failing records per (mapping, cause group), and the chronic rest."""
    e = _error_frame(ctx)
    out: list[Finding] = []
    if e.empty:
        return out
    # errors naming a parent are the dependency graph's; a record naming itself is not a parent
    own = e["parent_key"].isna() | (e["record_id"] == e["parent_table"].astype(str) + ": " + e["parent_key"].astype(str))
    e = e[own].copy()
    e["group"] = _episode_group(e["cause"], e["signature"])
    runs_all = _runs(ctx)
    end_of_history = ctx.history_end
    keys = ["environment", "company", "mapping_name", "group"]
    onset_idx = e.sort_values("error_no").groupby(keys + ["record_id"], sort=False)["error_no"].idxmin()
    onsets = e.loc[onset_idx]
    # only a record's first failure ever starts a burst: records failing again after Retry All (their
    # skipped changes now conflict, say) show up in waves that are not incidents
    first_ever = e.groupby(["environment", "company", "mapping_name", "record_id"])["error_no"].transform("min")
    onsets = onsets[onsets["error_no"].to_numpy() == first_ever.loc[onsets.index].to_numpy()]
    resumed = _resumptions(ctx)
    for key, o in onsets.groupby(keys, sort=True):
        env, comp, mapping, group = key
        errs = e[(e["environment"] == env) & (e["company"] == comp) & (e["mapping_name"] == mapping) & (e["group"] == group)]
        runs = runs_all.get((env, comp, mapping))
        if runs is None or runs.empty:
            continue
        # each onset counts for the job-queue run it happened in (foreground runs are not on the cadence)
        starts = runs["run_start"].to_numpy()
        o_pos = np.clip(np.searchsorted(starts, o["logged_at"].to_numpy(), side="right") - 1, 0, len(runs) - 1)
        counts = np.bincount(o_pos, minlength=len(runs)).astype(float)
        # a burst in the first run after the sync stopped is the backlog catching up, not an incident
        after_stop = resumed.get((env, comp, mapping), np.array([], dtype="datetime64[ns]"))
        episodes = [(a, b) for a, b in _find_bursts(starts, counts)
                    if not (np.abs(after_stop - starts[a]) <= np.timedelta64(5, "m")).any()]
        in_episode = np.zeros(len(o), bool)
        cause = str(o["cause"].mode().iat[0])
        info = cause_info(cause)
        e_pos = np.clip(np.searchsorted(starts, errs["logged_at"].to_numpy(), side="right") - 1, 0, len(runs) - 1)
        if episodes and errs["record_id"].str.startswith(_NO_RECORD).all():
            # page 5339 errors name no record: a record's later failures cannot be told from new ones, so the
            # bursts of one cause are one finding, from the first burst to the cause's last error; its
            # records are at least the most that failed in one run
            first = episodes[0][0]
            during = e_pos >= first
            n = int(np.bincount(e_pos[during]).max())
            out.append(_episode_finding(env, comp, mapping, group, cause, info, n, errs[during],
                                        errs.loc[during, "logged_at"].min(), errs.loc[during, "logged_at"].max(),
                                        end_of_history, estimated=True))
            continue
        for first, last in episodes:
            started = (o_pos >= first) & (o_pos <= last)
            in_episode |= started
            # the episode's records: every record failing this way during the burst (also those that had
            # failed before); it ends when the records that started failing in it stopped failing
            during = (e_pos >= first) & (e_pos <= last)
            recs = set(errs.loc[during, "record_id"])
            rec_errs = errs[errs["record_id"].isin(recs)]
            ends = errs[errs["record_id"].isin(set(o.loc[started, "record_id"]))].groupby("record_id")["logged_at"].max()
            start = errs.loc[during, "logged_at"].min()
            stop = _episode_end(ends.to_numpy()) if len(ends) else rec_errs["logged_at"].max()
            sel, n, ids, uncoupled = ctx.resolve(env, comp, recs)
            if sel is None:
                continue
            out.append(_episode_finding(env, comp, mapping, group, cause, info, n, rec_errs, start, stop,
                                        end_of_history, selection=sel, record_ids=ids,
                                        uncoupled=uncoupled))
        rest = o[~in_episode]
        days = (rest["logged_at"].max() - rest["logged_at"].min()).days if len(rest) else 0
        sel, n, ids, uncoupled = ctx.resolve(env, comp, rest["record_id"])
        if sel is not None and n >= 20 and days >= 14:
            weekly = len(rest) / max(days / 7, 1)
            out.append(Finding(
                "CHRONIC_ERRORS", "medium" if not info.transient else "low",
                f"{mapping}: {n:,} records failed with {info.title.lower()} over {days} days "
                f"(about {weekly:.0f} a week)",
                env, comp, mapping, _ts(rest["logged_at"].min()), _ts(rest["logged_at"].max()),
                _recent(rest["logged_at"].max(), end_of_history), n,
                {"cause": cause, "signature": group, "per_week": round(weekly, 1),
                 "examples": errs["text"].drop_duplicates().head(3).tolist(),
                 **({"uncoupled": uncoupled} if uncoupled else {})},
                info.remedy, _runnable(info), sel, record_ids=ids))
    return out


def _resumptions(ctx: _Context) -> dict[tuple[str, str, str], np.ndarray]:
    """Per mapping, when its job queue entry ran again after it had stopped."""
    g = gaps(ctx.ws, environment=ctx.environment, company=ctx.company)
    g = g[g["kind"] == "stopped"]
    return {k: grp["gap_end"].to_numpy(dtype="datetime64[ns]")
            for k, grp in g.groupby(["environment", "company", "mapping_name"])}


def _runnable(info: Any) -> str | None:
    """The cause's BC action when this toolkit can run it (Set Up Coupling is done in BC by hand).

    Update conflicts are retried (once Resolve Update Conflicts is set): a finding names many records, and
    BC's Synchronize of several records leaves out those changed in both apps.
    """
    action = "Retry" if info.code == "conflict" else info.bc_action
    return action if action in _ACTIONS else None


def _recent(ts: Any, end: dt.datetime | None) -> bool:
    return end is not None and ts is not None and (end - pd.Timestamp(ts).to_pydatetime()) < dt.timedelta(days=2)


def _episode_finding(env: str, comp: str, mapping: str, group: str, cause: str, info: Any, n: int,
                     errs: pd.DataFrame, start: Any, stop: Any, end_of_history: dt.datetime | None, *,
                     estimated: bool = False, selection: Selection | None = None, record_ids: Any = None,
                     uncoupled: int = 0) -> Finding:
    code = "TRANSIENT_ERRORS" if group == "transient" else _EPISODE_CODES.get(cause, "ERROR_BURST")
    severity = {"TRANSIENT_ERRORS": "low", "PERMISSION_ERRORS": "critical"}.get(code, "high" if n >= 50 else "medium")
    hours = (pd.Timestamp(stop) - pd.Timestamp(start)).total_seconds() / 3600
    title = {
        "DELETED_BURST": f"{n:,} {mapping} records coupled to rows deleted at once",
        "CONFLICT_BURST": f"{n:,} {mapping} records edited in both apps: update conflicts",
        "FIELD_LENGTH_BURST": f"{n:,} {mapping} records with values too long for the other app",
        "TRANSIENT_ERRORS": f"{n:,} {mapping} records hit Dataverse time-outs or service limits for {hours:.1f} h",
        "PERMISSION_ERRORS": f"{n:,} {mapping} records failed on missing privileges",
    }.get(code, f"{n:,} {mapping} records started failing with {info.title.lower()}")
    examples = errs["text"].drop_duplicates().head(3).tolist()
    healed = None
    if code == "TRANSIENT_ERRORS":
        healed = "It healed by itself: the records synchronized on later runs." if not _recent(stop, end_of_history) \
            else "Still happening at the end of the history."
    sig = None if group == "transient" else group
    return Finding(
        code, severity, title, env, comp, mapping, _ts(start), _ts(stop), _recent(stop, end_of_history), n,
        {"cause": cause, "signature": group, "errors": len(errs), "examples": examples,
         **({"note": healed} if healed else {}),
         **({"records": "estimated: the most that failed in one run (page exports name no records)"}
            if estimated else {}), **({"uncoupled": uncoupled} if uncoupled else {})},
        info.remedy, _runnable(info),
        selection or Selection(environment=env, company=comp, mapping=mapping, cause=None if sig else cause,
                               signature=sig, since=_ts(start), until=None), record_ids=record_ids)


def _runs(ctx: _Context) -> dict[tuple[str, str, str], pd.DataFrame]:
    sql, params = runs_sql(ctx.environment, ctx.company)
    df = ctx.ws.con.execute(f"SELECT * FROM ({sql}) WHERE trigger = 'job queue' ORDER BY run_start", params).df()
    return {k: g.reset_index(drop=True) for k, g in df.groupby(["environment", "company", "mapping_name"])}


def _find_bursts(starts: np.ndarray, counts: np.ndarray, *, tail: float = 1e-4) -> list[tuple[int, int]]:
    """Runs where several records started failing at once: (first, last) run positions of each burst.

    ``counts`` are onsets per run. The background rate of each run is :func:`_background` (the quiet
    mean, or the run's hour of the week where that is higher); a burst run has a count a Poisson
    background would reach with probability below ``tail`` (and at least 2). Burst runs less than a day apart form one episode of at least 10 records. The episode then
    starts at the run that maximises the likelihood of "burst from here on" against "background until
    here", and the run just before may join as a partial run (the incident began between two runs) when
    its onsets are likelier as part of the burst than as background.
    """
    if not len(counts) or counts.sum() < 10:
        return []
    lam = _background(starts, counts)
    burst = np.flatnonzero(counts >= _threshold(lam, tail))
    if not len(burst):
        return []
    episodes: list[list[int]] = [[int(burst[0]), int(burst[0])]]
    day = np.timedelta64(1, "D")
    for i in burst[1:]:
        if starts[i] - starts[episodes[-1][1]] <= day:
            episodes[-1][1] = int(i)
        else:
            episodes.append([int(i), int(i)])
    out = []
    for first, last in episodes:
        if counts[first:last + 1].sum() < 10:
            continue
        lam_b = max(float(counts[first:last + 1].mean()), float(lam[first:last + 1].max()) * 1.01)
        gain = counts * np.log(lam_b / lam) - (lam_b - lam)  # log-likelihood ratio per run
        best, total, k = first, 0.0, first
        lo = max(0, first - 8)
        while k > lo:
            k -= 1
            if starts[first] - starts[k] > 8 * np.timedelta64(INTERVAL_MIN, "m"):
                break
            total += gain[k]
            if total > 0:
                best, total = k, 0.0
        # the incident usually starts between two runs, so the run before sees only part of the burst
        # rate: averaged over that unknown part, P(c) is about 1/lam_b; background gives Poisson(c; lam0)
        adjacent = np.timedelta64(int(1.5 * INTERVAL_MIN), "m")

        def partial(k: int, nxt: int, lam_b: float = lam_b, adjacent: np.timedelta64 = adjacent) -> bool:
            if not (0 <= k < len(counts)) or counts[k] < 1 or abs(starts[nxt] - starts[k]) > adjacent:
                return False
            c_k = int(counts[k])
            log_bg = c_k * np.log(lam[k]) - lam[k] - float(np.sum(np.log(np.arange(1, c_k + 1))))
            return -np.log(lam_b) > log_bg

        if partial(best - 1, best):
            best -= 1
        # the same on the way out: the tail of a burst thins out over the last runs
        end, total, k = last, 0.0, last
        hi = min(len(counts) - 1, last + 8)
        while k < hi:
            k += 1
            if starts[k] - starts[last] > 8 * np.timedelta64(INTERVAL_MIN, "m"):
                break
            total += gain[k]
            if total > 0:
                end, total = k, 0.0
        if partial(end + 1, end):
            end += 1
        out.append((int(best), int(end)))
    return out


_SEASON_WEEKS = 6


def _episode_end(ends: np.ndarray) -> np.datetime64:
    """When an episode's records stopped failing, from each record's last error.

    The last of them, unless stragglers — at most one in a thousand of the episode's records — fail
    again more than two job intervals after the rest stopped: among thousands of records that started
    failing in the same runs a few are background failures of their own (a record edited with a long
    value that hour, say), not the incident. In a small episode a late record is the incident's tail.
    """
    t = np.sort(ends)
    gap = np.flatnonzero(np.diff(t) > np.timedelta64(2 * INTERVAL_MIN, "m"))
    few = gap[(len(t) - 1 - gap) <= 0.001 * len(t)]
    return t[few[0]] if len(few) else t[-1]


def _background(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The background rate of onsets of each run.

    The mean over runs with at most two onsets, raised to the median of the run's hour of the week
    where the history holds that hour in at least :data:`_SEASON_WEEKS` weeks: people edit in a weekly
    rhythm (Monday mornings bring more changes, and more failures, than Saturday nights), and a weekly
    peak is not an incident. Over that many weeks a median is not moved by one incident's runs.
    """
    quiet = counts[counts <= 2]
    base = max(float(quiet.mean()) if len(quiet) else 0.0, 1e-3)
    hours = starts.astype("datetime64[h]").astype(np.int64)
    frame = pd.DataFrame({"count": counts, "slot": hours % 168, "week": hours // 168})
    slot = frame.groupby("slot")
    median = slot["count"].transform("median").to_numpy(dtype=float)
    weeks = slot["week"].transform("nunique").to_numpy()
    return np.where(weeks >= _SEASON_WEEKS, np.maximum(median, base), base)


def _threshold(lam: np.ndarray, tail: float) -> np.ndarray:
    """Per run, the smallest count c >= 2 with P(X >= c) < ``tail`` under Poisson(``lam``)."""
    out = np.empty(len(lam), dtype=np.int64)
    for value in np.unique(lam):
        c, term, cdf = 0, float(np.exp(-value)), 0.0
        while True:
            cdf += term
            c += 1
            term *= value / c
            if c >= 2 and 1 - cdf < tail:
                break
        out[lam == value] = c
    return out


def _configuration(ctx: _Context) -> list[Finding]:
    """NO_DELETION_RULE / NO_CONFLICT_RULE: mappings whose blank setting makes failures pile up."""
    where, params = ctx.scope("m.")
    df = ctx.ws.con.execute(f"""
        SELECT m.environment, m.company, m.name, m.direction, m.deletion_conflict_resolution AS del_rule,
               m.update_conflict_resolution AS upd_rule, e.cause, count(DISTINCT e.record_id) AS records,
               min(e.logged_at) AS first_seen, max(e.logged_at) AS last_seen
        FROM mappings m JOIN ({errors_with_signatures_sql()}) e
          ON e.environment = m.environment AND e.company = m.company AND e.mapping_name = m.name
        WHERE e.cause IN ('deleted', 'conflict') AND {where}
        GROUP BY ALL""", params).df()
    out = []
    e = _error_frame(ctx)
    for r in df.itertuples():
        blank = {"deleted": r.del_rule, "conflict": r.upd_rule}[r.cause]
        if not (pd.isna(blank) or blank in ("None", "")):
            continue
        sel, n, ids, _ = ctx.resolve(r.environment, r.company, e.loc[
            (e["environment"] == r.environment) & (e["company"] == r.company) & (e["mapping_name"] == r.name)
            & (e["cause"] == r.cause), "record_id"])
        if sel is None or not n:
            continue
        if r.cause == "deleted":
            out.append(Finding(
                "NO_DELETION_RULE", "medium",
                f"{r.name}: Resolve Deletion Conflicts is blank, so {n:,} records coupled to deleted rows fail",
                r.environment, r.company, r.name, _ts(r.first_seen), _ts(r.last_seen), True, n,
                {"setting": "Resolve Deletion Conflicts", "value": r.del_rule or "None"},
                f"Decide what a deletion in one app means for {r.name}: set Resolve Deletion Conflicts to "
                "'Restore records' or 'Delete coupling' on the Integration Table Mapping; for the records failing "
                "now use Restore Records or Delete Records.",
                "Restore Records", sel, record_ids=ids))
        else:
            out.append(Finding(
                "NO_CONFLICT_RULE", "medium",
                f"{r.name}: Resolve Update Conflicts is blank, so {n:,} records edited in both apps fail",
                r.environment, r.company, r.name, _ts(r.first_seen), _ts(r.last_seen), True, n,
                {"setting": "Resolve Update Conflicts", "value": r.upd_rule or "None"},
                f"Choose which app wins for {r.name}: set Resolve Update Conflicts to 'Send data update to "
                "integration table' or 'Get data update from integration table', then Retry the records failing "
                "now (their next run settles the conflict by that rule; a Synchronize of several records leaves "
                "them out, only one record at a time can be synchronized choosing the winning side).",
                # Retry, not Synchronize: BC's Synchronize of several records skips those changed on both sides
                "Retry", sel, record_ids=ids))
    return out


def _backlog(ctx: _Context) -> list[Finding]:
    """SKIPPED_BACKLOG and BROKEN_COUPLINGS from the couplings as they are now, one of each per company."""
    sql, params = records_relation(ctx.ws, Selection(environment=ctx.environment, company=ctx.company))
    df = ctx.ws.con.execute(f"""
        SELECT environment, company, mapping_name AS mapping, count(*) FILTER (state = 'skipped') AS skipped,
               min(coalesce(failed_on, latest_error_on)) FILTER (state = 'skipped') AS skipped_since,
               count(*) FILTER (state = 'broken') AS broken,
               count(*) FILTER (state = 'broken' AND skipped) AS broken_skipped,
               count(*) FILTER (bc_record_exists IS false) AS bc_gone,
               count(*) FILTER (crm_record_exists IS false) AS crm_gone, count(*) AS couplings
        FROM ({sql}) GROUP BY ALL ORDER BY skipped DESC, broken DESC, mapping""", params).df()
    end = ctx.history_end
    out = []
    for (env, comp), d in df.groupby(["environment", "company"], sort=False):
        skipped, broken, couplings = int(d["skipped"].sum()), int(d["broken"].sum()), int(d["couplings"].sum())
        top = lambda col, d=d: ", ".join(f"{r.mapping} {getattr(r, col):,}" for r in d[d[col] > 0].itertuples())  # noqa: E731
        only = lambda col, d=d: str(d.loc[d[col] > 0, "mapping"].iat[0]) if (d[col] > 0).sum() == 1 else None  # noqa: E731
        if skipped:
            # since the oldest failure that left a coupling skipped (as page 5333's Failed On shows it); BC's
            # Skipped flag also marks broken couplings, counted under BROKEN_COUPLINGS (states are exclusive)
            also = int(d["broken_skipped"].sum())
            also_text = f"; {also:,} more skipped ones are broken (their other record is deleted)" if also else ""
            out.append(Finding(
                "SKIPPED_BACKLOG", "high" if skipped >= 100 else "medium",
                f"{skipped:,} couplings are skipped (excluded from synchronization): {top('skipped')}{also_text}",
                env, comp, only("skipped"), _ts(d["skipped_since"].min()), end, True, skipped,
                {"skipped": skipped, "skipped_and_broken": also, "couplings": couplings,
                 "share": round(skipped / couplings, 4) if couplings else 0,
                 "per_mapping": {str(r.mapping): int(r.skipped) for r in d[d["skipped"] > 0].itertuples()}},
                "BC stops synchronizing a record after the same error twice. Fix the causes (see the other "
                "findings), then Retry them (or Retry All); Retry alone only repeats the failure.",
                "Retry", Selection(environment=env, company=comp, mapping=only("skipped"), state="skipped")))
        if broken:
            crm_gone, bc_gone = int(d["crm_gone"].sum()), int(d["bc_gone"].sum())
            out.append(Finding(
                "BROKEN_COUPLINGS", "medium",
                f"{broken:,} couplings point to a record that no longer exists ({crm_gone:,} deleted in Dataverse, "
                f"{bc_gone:,} in Business Central): {top('broken')}",
                env, comp, only("broken"), None, end, True, broken,
                {"crm_deleted": crm_gone, "bc_deleted": bc_gone,
                 "per_mapping": {str(r.mapping): int(r.broken) for r in d[d["broken"] > 0].itertuples()}},
                "Restore Records re-creates the deleted record from the surviving one and couples it again; "
                "Delete Records deletes the survivor too. Choose per record, or set Resolve Deletion Conflicts.",
                "Restore Records", Selection(environment=env, company=comp, mapping=only("broken"), state="broken")))
    return out


def _retries(ctx: _Context) -> list[Finding]:
    """RETRY_WITHOUT_FIX: records that failed the same way in three or more separate retry rounds."""
    e = _error_frame(ctx)
    if e.empty:
        return []
    d = e.sort_values("logged_at")[["environment", "company", "mapping_name", "record_id", "signature", "cause",
                                    "logged_at"]].copy()
    d["day"] = d["logged_at"].dt.floor("D")
    rounds = d.groupby(["environment", "company", "mapping_name", "record_id", "signature"]).agg(
        days=("day", "nunique"), cause=("cause", "first"), first=("logged_at", "min"), last=("logged_at", "max"))
    rep = rounds[rounds["days"] >= 3].reset_index()
    out = []
    for (env, comp, mapping, cause), g in rep.groupby(["environment", "company", "mapping_name", "cause"]):
        sel, n, ids, _ = ctx.resolve(env, comp, g["record_id"])
        if sel is None or n < 10:
            continue
        out.append(Finding(
            "RETRY_WITHOUT_FIX", "medium",
            f"{n:,} {mapping} records were retried on 3 or more days and failed with {cause_info(cause).title.lower()} "
            "each time",
            env, comp, mapping, _ts(g["first"].min()), _ts(g["last"].max()), _recent(g["last"].max(), ctx.history_end),
            n, {"median_days": float(g["days"].median()), "cause": cause},
            "Retry All only puts these records back in the queue; the next run fails them again and skips them. "
            "Fix what the error says first (see the cause findings), then retry.",
            None, sel, record_ids=ids))
    return out


def _job_health(ctx: _Context) -> list[Finding]:
    """HIGH_FAILURE_RATE, SLOW_RUNS and UNFINISHED_JOBS per mapping."""
    h = job_health(ctx.ws, environment=ctx.environment, company=ctx.company)
    e = _error_frame(ctx)
    out = []
    for r in h.itertuples():
        if r.processed and r.processed >= 100 and (r.failed_share or 0) >= 0.1:
            mine = e[(e["environment"] == r.environment) & (e["company"] == r.company)
                     & (e["mapping_name"] == r.mapping_name)]
            sel, n, ids, _ = ctx.resolve(r.environment, r.company, mine["record_id"])
            out.append(Finding(
                "HIGH_FAILURE_RATE", "medium",
                f"{r.mapping_name} failed {r.failed_share:.0%} of the {int(r.processed):,} records it processed",
                r.environment, r.company, r.mapping_name, _ts(r.first_run), _ts(r.last_run),
                # going on while the mapping still logs errors (its failing records may not be coupled)
                _recent(mine["logged_at"].max() if len(mine) else None, ctx.history_end),
                n if sel is not None else int(r.failed),
                {"failed": int(r.failed), "processed": int(r.processed), "failed_share": round(r.failed_share, 4)},
                "Most failures repeat: see the cause and backlog findings of this mapping.",
                None, sel or Selection(environment=r.environment, company=r.company, mapping=r.mapping_name),
                record_ids=ids))
        if r.duration_p95_s and r.duration_p50_s and r.duration_p95_s > max(5 * r.duration_p50_s, 300):
            out.append(Finding(
                "SLOW_RUNS", "low",
                f"{r.mapping_name}: 5% of runs take over {r.duration_p95_s:.0f} s (median {r.duration_p50_s:.0f} s)",
                r.environment, r.company, r.mapping_name, _ts(r.first_run), _ts(r.last_run), False, 0,
                {"p50_s": r.duration_p50_s, "p95_s": r.duration_p95_s, "jobs": int(r.jobs)},
                "Long runs usually process a backlog (after a stop, a full synchronization or a mass change) or hit "
                "Dataverse limits; check what they processed.", None, None))
    where, params = ctx.scope()
    unfinished = ctx.ws.con.execute(
        "SELECT environment, company, mapping_name, count(*), min(start_datetime), max(start_datetime) FROM jobs "
        f"WHERE finish_datetime IS NULL AND {where} GROUP BY ALL", params).fetchall()
    for env, comp, mapping, n, first, last in unfinished:
        out.append(Finding(
            "UNFINISHED_JOBS", "medium", f"{n} {mapping} jobs never finished (crashed or still running)",
            env, comp, mapping, _ts(first), _ts(last), False, 0, {"jobs": n},
            "A job without Finish Date/Time crashed (session ended, time-out) or is still running; check the Job "
            "Queue Log Entries of that time for the error.", None, None))
    return out
