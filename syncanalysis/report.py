"""The HTML report: one self-contained file with the diagnosis of a workspace.

:func:`write_report` writes KPIs, the coded findings with their remedies, the charts of
:mod:`syncanalysis.plots` (embedded as base64 PNG), the top error signatures with example messages,
the time to resolution per signature and the skipped backlog, in one section per environment and
company. The file references nothing outside itself (no scripts, stylesheets, fonts or images from
the network), so it can be mailed or attached to a ticket. It is rendered from a jinja2 template with
autoescaping (:mod:`syncanalysis.html`), so every text that comes from the data (error messages, record
ids, finding titles and evidence) is escaped: error texts can contain markup.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pandas as pd

from . import plots
from .analysis import backlog, trends
from .analysis.causes import cause_info
from .analysis.coverage import coverage
from .analysis.dependencies import dependency_graph
from .analysis.findings import diagnose, kpis, top_fixes
from .analysis.signatures import ensure_signatures
from .html import render
from .sql import scope
from .workspace import Workspace

SEVERITY_COLORS = {"critical": "#7f0000", "high": "#d62728", "medium": "#e6550d", "low": "#6baed6", "info": "#9e9e9e"}
TOP_SIGNATURES = 10
MAX_FINDINGS = 60  # per section; the rest are counted (the CLI's `diagnose --json` lists them all)

def _when(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _num(value: Any, fmt: str = "{:,.0f}") -> str:
    if value is None or pd.isna(value):
        return ""
    return fmt.format(value)


def _hours(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d"


def _png(fig: Any, alt: str, caption: str | None = None) -> dict[str, str | None]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return {"alt": alt, "data": base64.b64encode(buf.getvalue()).decode("ascii"), "caption": caption}


def _scopes(ws: Workspace, environment: str | None, company: str | None) -> list[tuple[str, str]]:
    cond, params = scope(environment=environment, company=company)
    w = f" WHERE {cond}"
    rows = ws.con.execute(
        f"SELECT DISTINCT environment, company FROM (SELECT environment, company FROM jobs{w} "
        f"UNION SELECT environment, company FROM job_errors{w} UNION SELECT environment, company FROM couplings{w}) "
        "ORDER BY ALL", params * 3).fetchall()
    return [(e, c) for e, c in rows]


def _kpis(k: dict[str, Any], extra: dict[str, str]) -> list[tuple[str, str]]:
    items = [
        ("Synchronization jobs", _num(k.get("jobs"))),
        ("Errors logged", _num(k.get("errors"))),
        ("Failure rate (failed / processed)", _num(k.get("failure_rate"), "{:.1%}") if "failure_rate" in k else ""),
        ("Distinct signatures", _num(k.get("signatures")) if "signatures" in k else ""),
        ("Couplings", _num(k.get("couplings"))),
        ("Skipped now", _num(k.get("skipped"))),
        ("Failing, not skipped", _num(k.get("failing")) if "failing" in k else ""),
        ("Broken couplings", _num(k.get("broken")) if "broken" in k else ""),
        *extra.items(),
    ]
    return [(label, v) for label, v in items if v != ""]


def _evidence(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in (evidence or {}).items():
        if isinstance(value, (list, tuple)):
            shown = ", ".join(str(v) for v in list(value)[:5]) + (f", … ({len(value)} in all)" if len(value) > 5 else "")
        elif isinstance(value, dict):
            shown = ", ".join(f"{k}: {v}" for k, v in list(value.items())[:5])
        else:
            shown = str(value)
        out.append((str(key), shown if len(shown) <= 300 else shown[:299] + "…"))
    return out


def _finding(f: Any) -> dict[str, Any]:
    """What the report shows of a finding (its card or its table row)."""
    sev = str(getattr(f, "severity", "info"))
    window = f"{_when(f.start)} – {_when(f.end)}" if getattr(f, "start", None) is not None else _when(f.end)
    if getattr(f, "ongoing", False):
        window += " (ongoing)"
    sel = getattr(f, "selection", None)
    affected = getattr(f, "affected", None)
    records = ("no records (job queue)" if sel is None and not affected else
               f"{_num(affected)} records, {_num(getattr(f, 'now', 0))} still failing now")
    return {"severity": sev, "color": SEVERITY_COLORS.get(sev, "#9e9e9e"), "window": window.strip(),
            "title": f.title, "code": f.code, "mapping": getattr(f, "mapping", None) or "",
            "id": getattr(f, "id", ""), "status": getattr(f, "status", ""), "records": records,
            "affected": _num(affected), "remedy": getattr(f, "remedy", "") or "",
            "action": getattr(f, "action", None) or "", "triage": sel.describe() if sel is not None else "",
            "evidence": _evidence(getattr(f, "evidence", {}))}


def _signatures(ws: Workspace, environment: str, company: str) -> list[dict[str, Any]]:
    sig = trends.signature_history(ws, environment=environment, company=company).head(TOP_SIGNATURES)
    if sig.empty:
        return []
    res = backlog.resolution_summary(ws, environment=environment, company=company)
    res = res.set_index("key") if not res.empty else res
    rows = []
    for r in sig.itertuples(index=False):
        info = cause_info(r.cause)
        stats = res.loc[r.signature] if len(res) and r.signature in res.index else None
        rows.append({
            "signature": r.signature, "example": r.example if r.example != r.signature else "",
            "cause": r.cause or "", "mappings": ", ".join(str(m) for m in (r.mappings if r.mappings is not None else [])),
            "errors": _num(r.errors), "records": _num(r.records), "first_seen": _when(r.first_seen)[:10],
            "last_seen": _when(r.last_seen)[:10], "resolution": _resolution(stats),
            "healed": _num(stats["self_heal_share"], "{:.0%}") if stats is not None else "",
            "remedy_title": info.title if info is not None else "", "remedy": info.action if info is not None else ""})
    return rows


def _resolution(stats: Any) -> list[str]:
    if stats is None:
        return []
    if pd.isna(stats["median_hours"]):
        return ["none resolved" if stats["resolved"] == 0 else "time unknown"]
    return [_hours(stats["median_hours"]), _hours(stats["p90_hours"])]


def _charts(ws: Workspace, environment: str, company: str) -> list[dict[str, str | None]]:
    scope = {"environment": environment, "company": company}
    out = []
    out.append(_png(plots.cause_pareto(trends.error_totals(ws, by="cause", **scope), title="Errors by cause"),
                    "Pareto chart of errors by cause", "Errors per cause, most frequent first, and their cumulative "
                    "share (line): the causes before the line crosses 80 % account for most errors."))
    out.append(_png(plots.trends_by_cause(trends.errors_over_time(ws, by="cause", **scope)),
                    "Errors per day by cause", "Errors per day, stacked by cause."))
    out.append(_png(plots.mapping_heatmap(trends.failure_rate(ws, **scope)), "Failure rate per mapping and day",
                    "Share of the records each mapping processed that failed, per day."))
    out.append(_png(plots.job_timeline(ws, **scope), "Job cadence per mapping",
                    "Every run per mapping, gaps where synchronization stopped, and planted incidents when known."))
    out.append(_png(plots.duration_distribution(trends.job_activity(ws, **scope)), "Job durations",
                    "Duration of the jobs of each mapping (box: middle half; whiskers: 5th-95th percentile)."))
    out.append(_png(plots.backlog_ageing(backlog.backlog_ageing_over_time(ws, **scope)), "Skipped backlog by age",
                    "Records skipped at the end of each day, by how long they had been stuck (reconstructed)."))
    out.append(_png(plots.resolution_times(backlog.resolution_summary(ws, **scope)), "Time to resolution",
                    "Median and 90th percentile time from first failure to success, and the share that healed "
                    "by itself, per signature."))
    out.append(_png(plots.dependency_graph(dependency_graph(ws, **scope)), "Parents blocking children",
                    "Parent records that are not coupled and the child records they block, in the order to "
                    "fix them."))
    return out


def _section(ws: Workspace, environment: str, company: str, findings: list[Any], anchor: str) -> dict[str, Any]:
    k = kpis(ws, environment=environment, company=company)
    first, last = trends.history_range(ws, environment=environment, company=company)
    ageing = backlog.backlog_ageing(ws, by=None, environment=environment, company=company)
    old = int(ageing.loc[ageing["bucket"] == backlog.AGE_BUCKETS[-1], "records"].sum()) if len(ageing) else 0
    episodes = backlog.resolution_summary(ws, by="cause", environment=environment, company=company)
    healed = (episodes["self_healed"].sum() / episodes["episodes"].sum()) if episodes["episodes"].sum() else None
    extra = {"Skipped for more than 30 days": _num(old)}
    if healed is not None:
        extra["Failures that healed by themselves"] = f"{healed:.0%}"
    mine = [f for f in findings if getattr(f, "environment", environment) == environment
            and getattr(f, "company", company) == company]
    shown = [_finding(f) for f in mine[:MAX_FINDINGS]]
    counts = pd.Series([str(f.severity) for f in mine]).value_counts() if mine else pd.Series(dtype=int)
    cov = coverage(ws, environment=environment, company=company)
    return {"environment": environment, "company": company, "anchor": anchor, "first": _when(first),
            "coverage": cov[0] if cov else None,
            "last": _when(last), "kpis": _kpis(k, extra), "findings_total": len(mine),
            "summary": ", ".join(f"{n} {s}" for s, n in counts.items()),
            # what is happening now as cards (what to fix first, first), what is over as a compact table
            "top_fixes": top_fixes(mine),
            "cards": [f for f in shown if f["status"] != "over"],
            "rows": [f for f in shown if f["status"] == "over"],
            "more": len(mine) - len(shown), "signatures": _signatures(ws, environment, company),
            "charts": _charts(ws, environment, company)}


def render_report(ws: Workspace, *, environment: str | None = None, company: str | None = None,
                  findings: list[Any] | None = None, title: str = "Synchronization diagnosis") -> str:
    """Return the report as one HTML string (see :func:`write_report`): ``report.html.j2``, autoescaped."""
    ensure_signatures(ws)
    if findings is None:
        findings = diagnose(ws, environment=environment, company=company)
    scopes = _scopes(ws, environment, company)
    first, last = trends.history_range(ws, environment=environment, company=company)
    return render("report.html.j2", title=title, first=_when(first), last=_when(last),
                  generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  sections=[_section(ws, e, c, findings, f"scope-{i}") for i, (e, c) in enumerate(scopes)]) + "\n"


def write_report(ws: Workspace, out: str | Path, *, environment: str | None = None, company: str | None = None,
                 findings: list[Any] | None = None, title: str = "Synchronization diagnosis") -> Path:
    """Write the self-contained HTML report of ``ws`` to ``out`` and return its path.

    Parameters
    ----------
    ws
        The workspace. When it can be written, error signatures still missing are assigned first.
    out
        The HTML file to write (its folder is created when missing).
    environment, company
        Limit the report to one environment / company (default: a section for each).
    findings
        Findings to show instead of running :func:`syncanalysis.analysis.findings.diagnose`.
    title
        The report title.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(ws, environment=environment, company=company, findings=findings, title=title)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # a reader never sees a half-written report
    return path
