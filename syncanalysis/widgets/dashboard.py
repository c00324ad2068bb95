"""The dashboard: headline figures, the diagnosis charts and the findings under shared filters.

A finding opens the triage panel with the finding's selection already selected.

Thin over :func:`syncanalysis.analysis.findings.kpis` / ``diagnose``, the trend and backlog analyses and
:mod:`syncanalysis.plots` (figures rendered to PNG for an ``Image`` widget, drawn only when their tab is
shown). Every text from the data is escaped.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pandas as pd
from IPython.display import display

from .. import actions as act
from .. import html as h
from .. import plots
from ..analysis import backlog, trends
from ..analysis.findings import Finding, diagnose, kpis, top_fixes
from ..analysis.signatures import ensure_signatures
from ..errors import SyncAnalysisError
from ..workspace import Workspace
from .triage import ANY, TriagePanel

# (title, figure of the workspace under the filters environment, company, mapping, since, until)
CHARTS: list[tuple[str, Callable[..., Any]]] = [
    ("Errors by cause", lambda ws, **f: plots.cause_pareto(trends.error_totals(ws, by="cause", **f))),
    ("Errors per day", lambda ws, **f: plots.trends_by_cause(trends.errors_over_time(ws, by="cause", **f))),
    ("Failure rate", lambda ws, **f: plots.mapping_heatmap(trends.failure_rate(ws, **f))),
    ("Job cadence", lambda ws, **f: plots.job_timeline(ws, **f)),
    ("Skipped backlog", lambda ws, **f: plots.backlog_ageing(backlog.backlog_ageing_over_time(ws, **f))),
]
KPI_LABELS = {"jobs": "Jobs", "failed": "Failed records (jobs)", "failure_rate": "Failure rate", "errors": "Errors",
              "signatures": "Error signatures", "couplings": "Couplings", "skipped": "Skipped", "broken": "Broken",
              "failing": "Failing (not skipped)"}
_ACTION_BY_CAPTION = {caption: action for action, caption in act.CAPTIONS.items()}


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is not kept by pyplot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def kpis_html(figures: dict[str, Any]) -> str:
    """The headline figures as tiles (escaped)."""
    tiles = []
    for key, label in KPI_LABELS.items():
        if key not in figures:
            continue
        v = figures[key]
        text = f"{v:.1%}" if key == "failure_rate" else (f"{v:,}" if isinstance(v, int) else h.fmt(v))
        tiles.append((label, text))
    return h.fragment('{% for label, text in tiles %}<div class="sa-kpi">{{ label }}<b>{{ text }}</b></div>{% endfor %}'
                      '{% if first %}<div class="sa-note">History {{ first | fmt }} – {{ last | fmt }} (UTC)</div>{% endif %}',
                      tiles=tiles, first=figures.get("first_job"), last=figures.get("last_job"))


def finding_html(f: Finding) -> str:
    """One finding as a line: now/over, severity, title, scope, window, records, the action that fits (escaped)."""
    when = ""
    if f.start is not None:
        when = f"{h.fmt(f.start)[:16]} – {'ongoing' if f.ongoing else h.fmt(f.end)[:16]} UTC"
    return h.fragment(
        '<span class="sa-badge {{ "sa-bad" if f.status == "now" else "" }}">{{ "now" if f.status == "now" else "over" }}'
        '</span><span class="sa-badge sa-sev-{{ f.severity }}">{{ f.severity }}</span><b>{{ f.title }}</b> '
        '<span class="sa-note">{{ f.id }} · {{ f.code }} · {{ f.mapping or "all mappings" }} · {{ when }} · '
        '{% if f.selection is none and not f.affected %}no records (job queue){% else %}'
        '{{ "{:,}".format(f.affected) }} records, {{ "{:,}".format(f.now) }} still failing now{% endif %}'
        '{% if f.action %} · then: <b>{{ f.action }}</b>{% endif %}'
        '</span><div class="sa-note">{{ f.remedy | fmt }}</div>', f=f, when=when)


def top_fixes_html(findings: list[Finding]) -> str:
    """The "top fixes" summary (at most five causes to fix first) as an escaped ordered list."""
    fixes = top_fixes(findings)
    return h.fragment(
        '<div class="sa-top-fixes"><h4>Top fixes</h4>{% if not fixes %}<div class="sa-note">Nothing is blocking '
        'records now.</div>{% else %}<ol>{% for t in fixes %}<li><b>{{ t.cause }}</b>{% if t.mapping %} '
        '({{ t.mapping }}){% endif %}: <b>{{ "{:,}".format(t.blocked) }}</b> records blocked now. Fix: {{ t.fix }}.'
        '{% if t.action %} Then run <b>{{ t.action }}</b>.{% endif %} <span class="sa-note">{{ t.finding }}'
        '</span></li>{% endfor %}</ol>{% endif %}</div>', fixes=fixes)


class Dashboard:
    """KPIs, the diagnosis charts and the findings of a workspace under shared filters.

    Parameters
    ----------
    ws
        The workspace (writable, so the diagnosis can cache error signatures).
    page_size
        Rows per page of the triage panel a finding opens.

    Examples
    --------
    >>> dash = Dashboard(ws)          # doctest: +SKIP
    >>> dash.set_filters(mapping="CUSTOMER"); panel = dash.open_finding(0)   # doctest: +SKIP
    """

    def __init__(self, ws: Workspace, *, page_size: int = 50) -> None:
        self.ws = ws
        self.page_size = page_size
        self.findings: list[Finding] = []
        self.shown: list[Finding] = []
        self.triage: TriagePanel | None = None
        self._diagnosis: dict[tuple, list[Finding]] = {}
        self._charts: dict[tuple, bytes] = {}
        self._quiet = False
        ensure_signatures(ws)  # before the KPIs count signatures
        self._build()
        self.refresh()

    # -- widgets ---------------------------------------------------------------------------
    def _build(self) -> None:
        style = {"description_width": "85px"}
        envs = self.ws.con.execute("SELECT DISTINCT environment, company FROM jobs ORDER BY ALL").fetchall()
        mappings = self.ws.con.execute("SELECT DISTINCT mapping_name FROM jobs WHERE mapping_name IS NOT NULL "
                                       "ORDER BY ALL").fetchall()
        self.filters_w: dict[str, w.Widget] = {
            "environment": w.Dropdown(description="Environment", style=style,
                                      options=[("any", ANY)] + [(e, e) for e in dict.fromkeys(r[0] for r in envs)]),
            "company": w.Dropdown(description="Company", style=style,
                                  options=[("any", ANY)] + [(c, c) for c in dict.fromkeys(r[1] for r in envs)]),
            "mapping": w.Dropdown(description="Mapping", style=style,
                                  options=[("any", ANY)] + [(m[0], m[0]) for m in mappings]),
            "since": w.DatePicker(description="From", style=style),
            "until": w.DatePicker(description="To", style=style),
        }
        for name, ctl in self.filters_w.items():
            ctl.add_class(f"sa-dash-{name}")
            ctl.observe(self._on_filter, names="value")
        self.kpi_html = w.HTML()
        self.kpi_html.add_class("sa-kpis")
        self.images = [w.Image(format="png", layout=w.Layout(max_width="100%")) for _ in CHARTS]
        self.tabs = w.Tab(children=[w.Box([img]) for img in self.images])
        for i, (title, _) in enumerate(CHARTS):
            self.tabs.set_title(i, title)
        self.tabs.observe(lambda change: self._guard(self._draw_chart, change["new"]), names="selected_index")
        self.top_fixes_html = w.HTML()
        self.top_fixes_html.add_class("sa-dash-top-fixes")
        self.findings_box = w.VBox()
        self.findings_box.add_class("sa-findings")
        self.findings_note = w.HTML()
        self.message = w.HTML()
        self.triage_box = w.VBox()
        self.triage_box.add_class("sa-dash-triage")
        f = self.filters_w
        self.layout = w.VBox([
            w.HTML(h.STYLE + "<h3>Synchronization dashboard</h3>"),
            w.HBox([f["environment"], f["company"], f["mapping"]], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([f["since"], f["until"]], layout=w.Layout(flex_flow="row wrap")),
            self.kpi_html, self.top_fixes_html, self.tabs, self.message,
            w.HTML("<h4>Findings</h4>"), self.findings_note, self.findings_box,
            self.triage_box,
        ])
        self.layout.add_class("sa-dashboard")

    def _ipython_display_(self) -> None:
        display(self.layout)

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - shown in the panel, not lost in the browser log
            prefix = "" if isinstance(exc, SyncAnalysisError) else f"Unexpected error ({type(exc).__name__}): "
            self.message.value = h.fragment('<div class="sa-confirm">{{ text }}</div>', text=prefix + str(exc))
            return None

    # -- filters ---------------------------------------------------------------------------
    @property
    def value(self) -> dict[str, Any]:
        """The shared filters: ``environment, company, mapping, since, until`` (``None`` = any)."""
        f = self.filters_w
        since, until = f["since"].value, f["until"].value
        return {"environment": f["environment"].value or None, "company": f["company"].value or None,
                "mapping": f["mapping"].value or None,
                "since": dt.datetime.combine(since, dt.time()) if since else None,
                "until": dt.datetime.combine(until, dt.time.max) if until else None}

    def set_filters(self, **filters: Any) -> None:
        """Set some of ``environment, company, mapping`` (``None`` = any), ``since``, ``until`` and refresh once."""
        unknown = set(filters) - set(self.filters_w)
        if unknown:
            raise SyncAnalysisError(f"Unknown filter(s) {sorted(unknown)}; use some of {sorted(self.filters_w)}.")
        self._quiet = True
        try:
            for name, value in filters.items():
                ctl = self.filters_w[name]
                if name in ("since", "until"):
                    ctl.value = value.date() if isinstance(value, dt.datetime) else value
                else:
                    value = ANY if value is None else str(value)
                    if value not in [v for _, v in ctl.options]:
                        raise SyncAnalysisError(f"{name} {value!r} is not in this workspace; use one of "
                                                f"{[v for _, v in ctl.options if v]}.")
                    ctl.value = value
        finally:
            self._quiet = False
        self.refresh()

    def _on_filter(self, change: dict) -> None:
        if not self._quiet:
            self._guard(self.refresh)

    # -- content ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Recompute the KPIs, the shown chart and the findings for the current filters."""
        self.message.value = ""
        v = self.value
        self.kpi_html.value = kpis_html(kpis(self.ws, environment=v["environment"], company=v["company"],
                                             since=v["since"], until=v["until"]))
        self._draw_chart(self.tabs.selected_index or 0)
        self._show_findings()

    def chart(self, index: int) -> bytes:
        """The PNG of chart ``index`` under the current filters (cached per filters until the history changes)."""
        key = (index, tuple(self.value.items()), self.ws.revision)
        if key not in self._charts:
            fig = CHARTS[index][1](self.ws, **self.value)
            self._charts[key] = figure_png(fig)
        return self._charts[key]

    def _draw_chart(self, index: int | None) -> None:
        if index is None:
            return
        self.images[index].value = self.chart(index)

    def _diagnose(self) -> list[Finding]:
        v = self.value
        key = (v["environment"], v["company"], self.ws.revision)  # an action run since: diagnose again
        if key not in self._diagnosis:
            self._diagnosis[key] = diagnose(self.ws, environment=key[0], company=key[1])
        return self._diagnosis[key]

    def _show_findings(self) -> None:
        self.findings = self._diagnose()
        v = self.value
        shown = []
        for f in self.findings:
            if v["mapping"] is not None and f.mapping not in (None, v["mapping"]):
                continue
            # a finding belongs to the window when its period overlaps it
            if v["since"] is not None and f.end is not None and pd.Timestamp(f.end) < v["since"]:
                continue
            if v["until"] is not None and f.start is not None and pd.Timestamp(f.start) > v["until"]:
                continue
            shown.append(f)
        self.shown = shown
        rows = []
        for i, f in enumerate(shown):
            btn = w.Button(description="Open in triage", layout=w.Layout(width="auto", min_width="130px"),
                           disabled=f.selection is None,
                           tooltip="Open the triage panel with this finding's records selected")
            btn.add_class("sa-open-finding")
            btn.on_click(lambda _, i=i: self._guard(self.open_finding, i))
            rows.append(w.HBox([btn, w.HTML(finding_html(f), layout=w.Layout(flex="1"))],
                               layout=w.Layout(align_items="center")))
        self.findings_box.children = rows
        self.top_fixes_html.value = top_fixes_html(shown)
        self.findings_note.value = h.fragment(
            '<div class="sa-note">{{ n }} of {{ total }} finding(s) under these filters: what is happening now first, '
            'then what is over; within each, the most records blocked now first.</div>',
            n=len(shown), total=len(self.findings))

    def open_finding(self, index: int) -> TriagePanel:
        """Open the triage panel below with finding ``index`` (of the shown list) preselected.

        Returns
        -------
        TriagePanel
            The panel (also :attr:`triage`), with all of the finding's records selected.
        """
        f = self.shown[index]
        if f.selection is None:
            raise SyncAnalysisError(f"Finding {f.code} ({f.title}) names no records to triage; {f.remedy}")
        if self.triage is not None:
            self.triage.close()  # its list tables go with it
        self.triage = TriagePanel(self.ws, f.selection, page_size=self.page_size, select_all=True)
        # an action run in the triage changes what is failing: the KPIs, top fixes and findings follow
        self.triage.on_run = lambda _result: self._guard(self.refresh)
        slug = _ACTION_BY_CAPTION.get(f.action or "")
        if slug in self.triage.action_btns:
            b = self.triage.action_btns[slug]
            b.button_style = "warning"
            b.tooltip = f"Suggested by the finding {f.code}"
        head = w.HTML(h.fragment("<h4>Triage: {{ title }}</h4>", title=f.title))
        self.triage_box.children = [head, self.triage.layout]
        return self.triage


__all__ = ["CHARTS", "Dashboard", "figure_png", "finding_html", "kpis_html", "top_fixes_html"]
