"""The HTML report: one self-contained file with the diagnosis of a workspace.

:func:`write_report` writes KPIs, the coded findings with their remedies, the charts of
:mod:`syncanalysis.plots` (embedded as base64 PNG), the top error signatures with example messages,
the time to resolution per signature and the skipped backlog, in one section per environment and
company. The file references nothing outside itself (no scripts, stylesheets, fonts or images from
the network), so it can be mailed or attached to a ticket. Every text that comes from the data (error
messages, record ids, finding titles and evidence) is escaped with :func:`html.escape`: error texts
can contain markup.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from pathlib import Path
from typing import Any

import pandas as pd

from . import plots
from .analysis import backlog, trends
from .analysis.causes import cause_info
from .analysis.dependencies import dependency_graph
from .analysis.findings import diagnose, kpis
from .analysis.signatures import ensure_signatures
from .workspace import Workspace

SEVERITY_COLORS = {"critical": "#7f0000", "high": "#d62728", "medium": "#e6550d", "low": "#6baed6", "info": "#9e9e9e"}
TOP_SIGNATURES = 10
MAX_FINDINGS = 60  # per section; the rest are counted (the CLI's `diagnose --json` lists them all)

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 1.5em 2em 4em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-top: 1.6em; } .muted { color: #666; font-size: 0.92em; }
.kpis { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 1em 0; }
.kpi { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em 0.9em; min-width: 8.5em; background: #fafafa; }
.kpi .v { font-size: 1.45em; font-weight: 600; } .kpi .l { font-size: 0.8em; color: #555; }
table { border-collapse: collapse; width: 100%; font-size: 0.88em; margin: 0.6em 0 1em; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.35em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num, th.num { text-align: right; white-space: nowrap; }
.sev { color: #fff; border-radius: 4px; padding: 0.05em 0.45em; font-size: 0.8em; font-weight: 600;
       text-transform: uppercase; white-space: nowrap; }
.finding { border: 1px solid #e0e0e0; border-left-width: 5px; border-radius: 4px; padding: 0.5em 0.9em;
           margin: 0.6em 0; }
.finding .t { font-weight: 600; } .finding .meta { font-size: 0.85em; color: #555; }
.finding .remedy { margin-top: 0.3em; } code, .msg { font-family: Consolas, Menlo, monospace; font-size: 0.85em; }
.msg { white-space: pre-wrap; word-break: break-word; background: #f7f7f7; padding: 0.2em 0.4em; display: block; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
nav ul { columns: 2; } .howto li { margin-bottom: 0.3em; }
"""

_HOW_TO_READ = """
<ul class="howto">
<li><b>Findings</b> are problems the diagnosis recognised, most severe first. Each has a time window (when it
started and ended, or <i>ongoing</i>), how many records it affects, a remedy written for an admin and the
Business Central action that fits (on page <i>Coupled Data Synchronization Errors</i> or the integration table
mapping). Fix the cause first, then retry the records.</li>
<li><b>Signatures</b> group error messages that differ only by record ids, values or numbers; the <b>cause</b>
is the category of the matching Business Central message template.</li>
<li><b>Skipped</b> records are couplings BC excludes from synchronization after the same error twice in a row;
they wait for Retry / Retry All / Synchronize. The skipped backlog over time is reconstructed from the error
history (the workspace holds only today's couplings), so past days are estimates.</li>
<li><b>Time to resolution</b> runs from a record's first failure to the first run that synchronized it again;
<i>heals by itself</i> means the next run succeeded without the record being skipped or an audited action.</li>
<li><b>Job cadence</b>: each tick is a run of a mapping; red bands are gaps where the synchronization stopped,
grey bands pauses of an entry on hold for inactivity (normal when nothing changed); purple lanes are incidents
planted in a simulated workspace (its ground truth).</li>
<li>Times are UTC as stored by BC. Counts of errors are rows of table 5339 (one per record and run).</li>
</ul>
"""


def _e(value: Any) -> str:
    """Escape any data value for HTML (``None``/NaN become an empty string)."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


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


def _png(fig: Any, alt: str, caption: str | None = None) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'


def _scopes(ws: Workspace, environment: str | None, company: str | None) -> list[tuple[str, str]]:
    where, params = [], []
    for col, value in (("environment", environment), ("company", company)):
        if value is not None:
            where.append(f"{col} = ?")
            params.append(value)
    w = (" WHERE " + " AND ".join(where)) if where else ""
    rows = ws.con.execute(
        f"SELECT DISTINCT environment, company FROM (SELECT environment, company FROM jobs{w} "
        f"UNION SELECT environment, company FROM job_errors{w} UNION SELECT environment, company FROM couplings{w}) "
        "ORDER BY ALL", params * 3).fetchall()
    return [(e, c) for e, c in rows]


def _kpi_html(k: dict[str, Any], extra: dict[str, str]) -> str:
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
    cells = "".join(f'<div class="kpi"><div class="v">{_e(v)}</div><div class="l">{_e(label)}</div></div>'
                    for label, v in items if v != "")
    return f'<div class="kpis">{cells}</div>'


def _evidence_html(evidence: dict[str, Any]) -> str:
    parts = []
    for key, value in (evidence or {}).items():
        if isinstance(value, (list, tuple)):
            shown = ", ".join(str(v) for v in list(value)[:5]) + (f", … ({len(value)} in all)" if len(value) > 5 else "")
        elif isinstance(value, dict):
            shown = ", ".join(f"{k}: {v}" for k, v in list(value.items())[:5])
        else:
            shown = str(value)
        if len(shown) > 300:
            shown = shown[:299] + "…"
        # long texts (error messages) as a monospaced block, short values inline
        body = f'<span class="msg">{_e(shown)}</span>' if len(shown) > 60 else _e(shown)
        parts.append(f"<li><b>{_e(key)}</b>: {body}</li>")
    return f"<ul class=\"muted\">{''.join(parts)}</ul>" if parts else ""


def _severity_window(f: Any) -> tuple[str, str, str]:
    """A finding's severity, its colour and its time window as text (shared by cards and table rows)."""
    sev = str(getattr(f, "severity", "info"))
    window = f"{_when(f.start)} – {_when(f.end)}" if getattr(f, "start", None) is not None else _when(f.end)
    if getattr(f, "ongoing", False):
        window += " (ongoing)"
    return sev, SEVERITY_COLORS.get(sev, "#9e9e9e"), window


def _finding_html(f: Any) -> str:
    sev, color, window = _severity_window(f)
    meta = [f"<code>{_e(f.code)}</code>"]
    if getattr(f, "mapping", None):
        meta.append(f"mapping {_e(f.mapping)}")
    if window.strip():
        meta.append(_e(window))
    meta.append(f"affected: {_num(getattr(f, 'affected', None))}")
    action = f" <b>Action:</b> {_e(f.action)}." if getattr(f, "action", None) else ""
    sel = getattr(f, "selection", None)
    triage = f"<div class=\"meta\">Triage selection: {_e(sel.describe())}</div>" if sel is not None else ""
    return (f'<div class="finding" style="border-left-color:{color}">'
            f'<span class="sev" style="background:{color}">{_e(sev)}</span> <span class="t">{_e(f.title)}</span>'
            f'<div class="meta">{" · ".join(meta)}</div>'
            f'<div class="remedy"><b>Remedy:</b> {_e(getattr(f, "remedy", ""))}{action}</div>'
            f'{triage}{_evidence_html(getattr(f, "evidence", {}))}</div>')


def _finding_row(f: Any) -> str:
    sev, color, window = _severity_window(f)
    action = f"<b>Action:</b> {_e(f.action)}. " if getattr(f, "action", None) else ""
    return (f'<tr><td><span class="sev" style="background:{color}">{_e(sev)}</span></td>'
            f'<td><details><summary>{_e(f.title)} <code>{_e(f.code)}</code></summary>'
            f'<div class="remedy"><b>Remedy:</b> {_e(getattr(f, "remedy", ""))} {action}</div>'
            f'{_evidence_html(getattr(f, "evidence", {}))}</details></td>'
            f'<td>{_e(getattr(f, "mapping", None))}</td><td style="white-space:nowrap">{_e(window)}</td>'
            f'<td class="num">{_num(getattr(f, "affected", None))}</td></tr>')


def _findings_html(findings: list[Any]) -> str:
    """Critical and high findings as cards, the others as a compact table (remedy folded in)."""
    if not findings:
        return "<p>No findings: nothing the diagnosis knows about is wrong.</p>"
    cards = [f for f in findings if str(getattr(f, "severity", "")) in ("critical", "high")]
    rest = [f for f in findings if f not in cards]
    out = "".join(_finding_html(f) for f in cards)
    if rest:
        out += ("<table><tr><th>Severity</th><th>Finding (click for the remedy and evidence)</th><th>Mapping</th>"
                "<th>Window (UTC)</th><th class=\"num\">Affected</th></tr>"
                + "".join(_finding_row(f) for f in rest) + "</table>")
    return out


def _signatures_html(ws: Workspace, environment: str, company: str) -> str:
    sig = trends.signature_history(ws, environment=environment, company=company).head(TOP_SIGNATURES)
    if sig.empty:
        return "<p class=\"muted\">No errors.</p>"
    res = backlog.resolution_summary(ws, environment=environment, company=company)
    res = res.set_index("key") if not res.empty else res
    rows = []
    for r in sig.itertuples(index=False):
        info = cause_info(r.cause)
        stats = res.loc[r.signature] if len(res) and r.signature in res.index else None
        remedy = f"<b>{_e(info.title)}.</b> {_e(info.action)}" if info is not None else ""
        mappings = ", ".join(str(m) for m in (r.mappings if r.mappings is not None else []))
        rows.append(
            "<tr>"
            f"<td><span class=\"msg\">{_e(r.signature)}</span>"
            + (f"<div class=\"muted\">Example:</div><span class=\"msg\">{_e(r.example)}</span>"
               if r.example != r.signature else "") + "</td>"
            f"<td>{_e(r.cause)}<div class=\"muted\">{_e(mappings)}</div></td>"
            f"<td class=\"num\">{_num(r.errors)}</td><td class=\"num\">{_num(r.records)}</td>"
            f"<td style=\"white-space:nowrap\">{_when(r.first_seen)[:10]}<br>{_when(r.last_seen)[:10]}</td>"
            f"<td class=\"num\">{_resolution_cell(stats)}</td>"
            f"<td class=\"num\">{_num(stats['self_heal_share'], '{:.0%}') if stats is not None else ''}</td>"
            f"<td>{remedy}</td></tr>")
    head = ("<tr><th>Signature and example</th><th>Cause, mappings</th><th class=\"num\">Errors</th>"
            "<th class=\"num\">Records</th><th>First / last seen</th><th class=\"num\">Resolution median / p90</th>"
            "<th class=\"num\">Heals by itself</th><th>What to do</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _resolution_cell(stats: Any) -> str:
    if stats is None:
        return ""
    if pd.isna(stats["median_hours"]):
        return "none resolved" if stats["resolved"] == 0 else "time unknown"
    return f"{_hours(stats['median_hours'])}<br>{_hours(stats['p90_hours'])}"


def _charts_html(ws: Workspace, environment: str, company: str) -> str:
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
    return "".join(out)


def _section(ws: Workspace, environment: str, company: str, findings: list[Any], anchor: str) -> str:
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
    shown = mine[:MAX_FINDINGS]
    more = (f"<p class=\"muted\">{len(mine) - len(shown)} more findings of lower severity are not shown; run "
            "<code>syncanalysis diagnose --json</code> for all.</p>") if len(mine) > len(shown) else ""
    counts = pd.Series([str(f.severity) for f in mine]).value_counts() if mine else pd.Series(dtype=int)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    parts = [
        f'<h2 id="{anchor}">{_e(environment)} / {_e(company)}</h2>',
        f'<p class="muted">History from {_e(_when(first))} to {_e(_when(last))} (UTC).</p>',
        _kpi_html(k, extra),
        f"<h3>Findings ({len(mine)}{': ' + _e(summary) if summary else ''})</h3>",
        _findings_html(shown),
        more,
        "<h3>Top error signatures</h3>", _signatures_html(ws, environment, company),
        "<h3>Charts</h3>", _charts_html(ws, environment, company),
    ]
    return "\n".join(parts)


def render_report(ws: Workspace, *, environment: str | None = None, company: str | None = None,
                  findings: list[Any] | None = None, title: str = "Synchronization diagnosis") -> str:
    """Return the report as one HTML string (see :func:`write_report`)."""
    ensure_signatures(ws)
    if findings is None:
        findings = diagnose(ws, environment=environment, company=company)
    scopes = _scopes(ws, environment, company)
    first, last = trends.history_range(ws, environment=environment, company=company)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [_section(ws, e, c, findings, f"scope-{i}") for i, (e, c) in enumerate(scopes)]
    nav = "".join(f'<li><a href="#scope-{i}">{_e(e)} / {_e(c)}</a></li>' for i, (e, c) in enumerate(scopes))
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">Business Central ⇄ Dataverse synchronization history from {_e(_when(first))} to '
        f"{_e(_when(last))} (UTC); {len(scopes)} environment/company section(s); generated {_e(generated)} by "
        "syncanalysis.</p>",
        f"<nav><ul>{nav}</ul></nav>" if len(scopes) > 1 else "",
        "<h2>How to read this</h2>", _HOW_TO_READ,
        *(sections or ["<p>The workspace holds no synchronization history.</p>"]),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


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
