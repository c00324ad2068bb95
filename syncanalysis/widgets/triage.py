"""The triage panel: filter coupled records, select thousands, preview a resolution action, run it.

A thin composition of ipywidgets over library functions a test or the CLI calls with the same result:
:func:`~syncanalysis.analysis.records.records` / ``records_relation`` / ``facet_counts`` for the list,
:func:`syncanalysis.actions.plan` / ``execute`` / ``enabled_actions`` / ``audit_trail`` for the actions.
Only the current page's rows reach the browser. The selection is kept as keys
``(environment, company, table_id, integration_id)`` or, for "all N matching", as the filter itself, so
sorting and paging never shift it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd
from IPython.display import display

from .. import actions as act
from .. import html as h
from ..analysis.causes import cause_info
from ..analysis.records import STATES, Selection, order_sql, records, records_relation
from ..analysis.signatures import ensure_signatures, error_text_sql
from ..errors import SyncAnalysisError
from ..sql import registered
from ..workspace import Workspace

_log = logging.getLogger(__name__)
ANY = ""  # the "no filter" value of the filter dropdowns (a None value would show as no selection)
FACETS = {"environment": "environment", "company": "company", "mapping": "mapping_name", "state": "state",
          "cause": "cause", "signature": "signature"}
SORTS = [("Latest error (UTC)", "latest_error_on"), ("Failed On (UTC)", "failed_on"), ("BC record", "bc_record_id"), ("Coupled To", "crm_description"),
         ("Mapping", "mapping_name"), ("State", "state"), ("Signature", "signature"), ("Cause", "cause"),
         ("Error No.", "error_no")]
COLUMNS = [("mapping_name", "Mapping", "10%"), ("bc_record_id", "BC record", "13%"),
           ("crm_description", "Coupled To", "13%"), ("state", "State", "7%"), ("exists", "Exists BC/DV", "8%"),
           ("failed_on", "Failed On (UTC)", "12%"), ("error_message", "Error Message", "27%"), ("cause", "Cause", "10%")]
# "Failed On" / "Error Message" are page 5333's (BC's GetLatestError); where BC shows none, the cell says so
# and shows the record's latest error of either direction instead, marked as such
FACET_OPTIONS = 50  # values offered per filter dropdown, the largest first (a value set in code is added)
LIST_CLIP = 200  # characters of a list cell before it is cut (the whole text in its tooltip)
LOG_ACTION = "sync-log"  # page 5333's Synchronization Log: opens the SyncLogPanel, changes nothing
LOG_CAPTION = "Synchronization Log"
# BC's menu texts for the direction of Synchronize (spec §6.6)
DIRECTION_LABELS = {"to-dataverse": "Send data update to Dataverse (BC wins)",
                    "from-dataverse": "Get data update from Dataverse (Dataverse wins)",
                    "merge": "Merge data (both ways)"}
# Columns the enablement rules read; "all matching" passes their distinct combinations, not every row.
_RULE_COLUMNS = ("environment", "company", "table_id", "mapping_name", "state", "skipped", "bc_record_exists",
                 "crm_record_exists")


_index_names = itertools.count()


def _page_or_latest(page: pd.DataFrame) -> dict[str, pd.Series]:
    """The "Failed On" / "Error Message" cells: page 5333's, or, where BC shows none, the latest error marked so."""
    blank = page["error_message"].fillna("").eq("")
    latest = page["latest_error"].fillna("")
    message = page["error_message"].where(~blank, np.where(latest.ne(""), "(none in BC; latest error) " + latest, ""))
    failed_on = page["failed_on"].where(~blank, page["latest_error_on"])
    return {"error_message": message, "failed_on": failed_on}


def error_cells(ws: Workspace, page: pd.DataFrame) -> list[Any]:
    """The Error Message cells of a page: the inner error on the line, full text and call stack on expand.

    A wrapper such as "Modifying Customer failed because of the following error: …" shows its inner
    text (the signature's ``inner_message``); where page 5333 shows a message that is not the latest
    error's, that message is shown as BC shows it, and the expanded cell adds the latest error (of either
    direction) and its call stack under a label that says it is another error. Read for the page's rows only.
    """
    shown = _page_or_latest(page)["error_message"]
    if not len(page):
        return []
    keys = page[["environment", "company", "error_no"]].dropna()
    detail = pd.DataFrame(columns=["environment", "company", "error_no", "text", "stack", "inner"])
    if len(keys):
        text = error_text_sql("je")
        numbers = sorted({int(n) for n in keys["error_no"]})
        detail = ws.con.execute(
            f"SELECT je.environment, je.company, je.error_no, {text} AS text, je.exception_detail AS stack, "
            f"s.inner_message AS inner FROM job_errors je LEFT JOIN signatures s ON s.error_message = {text} "
            f"WHERE je.error_no IN ({', '.join(map(str, numbers))})").df()
    d = page[["environment", "company", "error_no"]].merge(detail, how="left", on=["environment", "company", "error_no"])
    out: list[Any] = []
    for msg, full, stack, inner in zip(shown.fillna(""), d["text"], d["stack"], d["inner"]):
        full = None if h.is_missing(full) else str(full)
        marked = msg.startswith("(none in BC; latest error) ")
        plain = msg.removeprefix("(none in BC; latest error) ")
        # the page's 250 characters are the start of the latest error: show its inner text
        same = full is not None and (plain == full or full.startswith(plain.removesuffix("…")))
        summary = (str(inner) if same and not h.is_missing(inner) and str(inner).strip() else plain) if plain else ""
        if not summary and full is None:
            out.append("")
            continue
        stack = None if h.is_missing(stack) else str(stack)
        if marked or same or full is None:
            out.append({"summary": ("(none in BC; latest error) " if marked else "") + summary,
                        "full": full if full is not None and full != summary else None, "other": None,
                        "stack": stack})
        else:  # page 5333 shows another error than the latest: that one in full, the latest one labelled as such
            out.append({"summary": summary, "full": plain if len(plain) > LIST_CLIP else None, "other": full,
                        "stack": stack})
    return out


def is_read_only(ws: Workspace) -> bool:
    """Whether the workspace was opened read-only (previews work, actions cannot run)."""
    return ws.read_only


def _key_tuples(frame: pd.DataFrame) -> list[tuple[str, str, int, str]]:
    return list(zip(frame["environment"].astype(str), frame["company"].astype(str),
                    frame["table_id"].astype(int).tolist(), frame["integration_id"].astype(str)))


def _css(name: str) -> str:
    return "sa-" + "".join(ch if ch.isalnum() else "-" for ch in name.lower())


class TriagePanel:
    """Filter, select, preview and run BC's resolution actions on coupled records (page 5333, in bulk).

    Parameters
    ----------
    ws
        The workspace.
    selection
        What to open with: its filters fill the filter controls; explicit keys stay as a fixed filter.
    page_size
        Rows per page (only these rows are sent to the browser).
    backend
        Action backend passed to :func:`syncanalysis.actions.plan` (default: the library's choice).
    select_all
        Start with "all matching" selected (e.g. when opened from a finding).
    who
        Recorded in the audit trail (default: the library's choice).

    Examples
    --------
    >>> panel = TriagePanel(ws)                                     # doctest: +SKIP
    >>> panel.set_filters(state="skipped", signature=sig)           # doctest: +SKIP
    >>> panel.select_all_matching(); panel.preview("retry")         # doctest: +SKIP
    >>> panel.run("retry")                                          # doctest: +SKIP
    """

    def __init__(self, ws: Workspace, selection: Selection | None = None, *, page_size: int = 50,
                 backend: Any = None, select_all: bool = False, who: str | None = None) -> None:
        self.ws = ws
        self.page_size = int(page_size)
        self.backend = backend
        self.who = who
        selection = selection or Selection()
        self._fixed = selection.replace(environment=None, company=None, mapping=None, state=None, cause=None,
                                        signature=None, since=None, until=None, search=None, finding=None)
        self._finding = selection.finding
        self._order = "-latest_error_on"
        self._offset = 0
        self._total = 0
        self._chosen: set[tuple[str, str, int, str]] = set()
        self._all = False
        self._page = pd.DataFrame()
        self._page_keys: list[tuple[str, str, int, str]] = []
        self._quiet = False
        self._cleared = 0  # how many records a filter change or a reload unselected, and why
        self._cleared_why = ""
        self._plan_key: tuple | None = None
        self._parents_first = False
        self._facet_options: dict[str, list] = {}
        self._exact: dict[str, dt.datetime | None] = {}
        n = next(_index_names)
        self._index = f"_triage_order_{n}"
        self._index_version: tuple | None = None
        self._base = f"_triage_base_{n}"
        self._base_version: tuple | None = None
        self.plan: Any = None
        self.result: Any = None
        self.enabled: dict[str, bool] = {}
        self._action: str | None = None
        self._pending: tuple[str, str | None] | None = None
        self.log_panel: Any = None
        self.on_run: Any = None  # called with the result after an action ran (the Dashboard refreshes itself)
        ensure_signatures(ws)
        self._build()
        self._set_widgets(selection)
        self._filters_changed(keep_finding=True)
        if select_all:
            self.select_all_matching()
        self._refresh_audit()

    # -- widgets ---------------------------------------------------------------------------
    def _build(self) -> None:
        lay = w.Layout(width="auto")
        self.filters_w: dict[str, w.Widget] = {}
        for name in FACETS:
            d = w.Dropdown(description=name.capitalize(), options=[("any", ANY)], value=ANY,
                           layout=w.Layout(width="260px" if name not in ("signature", "cause") else "480px"),
                           style={"description_width": "90px"})
            d.add_class(_css(f"filter-{name}"))
            self.filters_w[name] = d
        self.filters_w["since"] = w.DatePicker(description="Failed from", style={"description_width": "80px"})
        self.filters_w["until"] = w.DatePicker(description="to", style={"description_width": "30px"})
        self.filters_w["search"] = w.Text(description="Text", placeholder="record, name or error text",
                                          continuous_update=False, style={"description_width": "40px"})
        for name in ("since", "until", "search"):
            self.filters_w[name].add_class(_css(f"filter-{name}"))
        for d in self.filters_w.values():
            d.observe(self._on_filter, names="value")
        self.clear_filters_btn = w.Button(description="Clear filters", layout=lay)
        self.clear_filters_btn.on_click(lambda _: self._guard(self.clear_filters))
        self.fixed_html = w.HTML()
        self.clear_fixed_btn = w.Button(description="Show all records", layout=w.Layout(width="auto", display="none"))
        self.clear_fixed_btn.on_click(lambda _: self._guard(self.clear_fixed_keys))

        self.status = w.HTML()
        self.status.add_class("sa-status")
        self.select_page_btn = w.Button(description="Select page", layout=lay)
        self.select_page_btn.add_class("sa-select-page")
        self.select_page_btn.on_click(lambda _: self._guard(self.select_page))
        self.select_all_btn = w.Button(description="Select all matching", layout=lay)
        self.select_all_btn.add_class("sa-select-all")
        self.select_all_btn.on_click(lambda _: self._guard(self.select_all_matching))
        self.clear_btn = w.Button(description="Clear selection", layout=lay)
        self.clear_btn.add_class("sa-clear-selection")
        self.clear_btn.on_click(lambda _: self._guard(self.clear_selection))

        self.sort_w = w.Dropdown(description="Sort by", options=SORTS, value="latest_error_on",
                                 layout=w.Layout(width="220px"), style={"description_width": "55px"})
        self.desc_w = w.Checkbox(description="descending", value=True, indent=False, layout=w.Layout(width="110px"))
        self.sort_w.observe(self._on_sort, names="value")
        self.desc_w.observe(self._on_sort, names="value")
        self.prev_btn = w.Button(description="◀ Previous", layout=lay)
        self.prev_btn.add_class("sa-prev")
        self.prev_btn.on_click(lambda _: self._guard(self.prev_page))
        self.next_btn = w.Button(description="Next ▶", layout=lay)
        self.next_btn.add_class("sa-next")
        self.next_btn.on_click(lambda _: self._guard(self.next_page))
        self.pager = w.HTML()
        self.pager.add_class("sa-pager")

        widths = [c[2] for c in COLUMNS]
        self._widths = widths
        self.header = w.HBox([w.HTML(layout=w.Layout(width="28px")),
                              w.HTML(h.row([c[1] for c in COLUMNS], widths, head=True), layout=w.Layout(flex="1"))])
        self.checkboxes: list[w.Checkbox] = []
        self.row_html: list[w.HTML] = []
        self.rows: list[w.HBox] = []
        for i in range(self.page_size):
            cb = w.Checkbox(value=False, indent=False, layout=w.Layout(width="28px"))
            cb.observe(lambda change, i=i: self._on_check(i, change), names="value")
            cb.add_class("sa-row-check")
            rh = w.HTML(layout=w.Layout(flex="1"))
            box = w.HBox([cb, rh], layout=w.Layout(display="none", align_items="center"))
            box.add_class("sa-row-box")
            self.checkboxes.append(cb)
            self.row_html.append(rh)
            self.rows.append(box)
        self.table = w.VBox([self.header, *self.rows])
        self.table.add_class("sa-table-box")

        self.action_btns: dict[str, w.Button] = {}
        for action in [*act.ACTIONS, LOG_ACTION]:
            caption = _caption(action)
            tip = (f"Open the {caption} of the selected record" if action == LOG_ACTION else
                   f"Preview {caption} on the whole environment/company" if action in act.WHOLE_COMPANY else
                   f"Preview {caption} on the selection")
            b = w.Button(description=caption, disabled=True, layout=lay, tooltip=tip)
            b.add_class(_css(f"btn-{action}"))
            b.on_click(lambda _, a=action: self._guard(self._on_action, a))
            self.action_btns[action] = b
        self.direction_w = w.Dropdown(description="Direction",
                                      options=[(DIRECTION_LABELS.get(d, d), d) for d in act.DIRECTIONS],
                                      value=act.DIRECTIONS[0], disabled=True, layout=w.Layout(width="420px"),
                                      style={"description_width": "60px"})
        self.direction_w.add_class("sa-direction")
        self.direction_w.observe(self._on_direction, names="value")
        # Set Up Coupling: the Dataverse row the one selected record is to be coupled to (page "CRM Coupling Record")
        self.couple_to_w = w.Text(description="Couple to", placeholder="Dataverse row id (GUID) for Set Up Coupling",
                                  layout=w.Layout(width="420px"), style={"description_width": "60px"})
        self.couple_to_w.add_class("sa-couple-to")
        self.couple_to_w.observe(lambda _: self._quiet or self._clear_preview(), names="value")
        self.preview_html = w.HTML()
        self.preview_html.add_class("sa-preview")
        self.parents_first_btn = w.Button(description="Fix the parents first", button_style="warning",
                                          layout=w.Layout(width="auto", display="none"),
                                          tooltip="Preview again with the parents the errors name, acted on first")
        self.parents_first_btn.add_class("sa-parents-first")
        self.parents_first_btn.on_click(lambda _: self._guard(
            lambda: self.preview(self._action, self.direction_w.value if self._action in _DIRECTED else None,
                                 parents_first=True)))
        self.touched_btn = w.Button(description="Show the records this action touched",
                                    layout=w.Layout(width="auto", display="none"))
        self.touched_btn.add_class("sa-show-touched")
        self.touched_btn.on_click(lambda _: self._guard(self.show_touched))
        self.export_what_w = w.Dropdown(options=[("filtered list", "list"), ("selection", "selection"),
                                                 ("preview", "preview"), ("result", "result")], value="selection",
                                        description="Export", layout=w.Layout(width="230px"),
                                        style={"description_width": "50px"})
        self.export_format_w = w.Dropdown(options=[("Excel (xlsx)", "xlsx"), ("CSV", "csv")], value="xlsx",
                                          layout=w.Layout(width="120px"))
        self.export_lang_w = w.Dropdown(options=[("English", "en"), ("Français", "fr"), ("Deutsch", "de")],
                                        value="en", layout=w.Layout(width="110px"))
        self.export_btn = w.Button(description="Export", layout=lay, tooltip="Write it with BC's captions")
        self.export_btn.add_class("sa-export")
        self.export_btn.on_click(lambda _: self._guard(self._on_export))
        self.export_html = w.HTML()
        self.export_html.add_class("sa-export-done")
        self.audit_pick_w = w.Dropdown(description="Action", options=[], layout=w.Layout(width="220px"),
                                       style={"description_width": "50px"})
        self.audit_show_btn = w.Button(description="Show its records", layout=lay)
        self.audit_show_btn.add_class("sa-audit-show")
        self.audit_show_btn.on_click(lambda _: self._guard(
            lambda: self.show_action(self.audit_pick_w.value) if self.audit_pick_w.value else None))
        self.run_btn = w.Button(description="Run", button_style="primary", disabled=True, layout=lay)
        self.run_btn.add_class("sa-run")
        self.run_btn.on_click(lambda _: self._guard(self._on_run))
        self.confirm_html = w.HTML()
        self.confirm_btn = w.Button(description="Confirm", button_style="danger", layout=lay)
        self.confirm_btn.add_class("sa-confirm-btn")
        self.confirm_btn.on_click(lambda _: self._guard(self.confirm))
        self.cancel_btn = w.Button(description="Cancel", layout=lay)
        self.cancel_btn.add_class("sa-cancel-btn")
        self.cancel_btn.on_click(lambda _: self._guard(self.cancel))
        self.confirm_box = w.VBox([self.confirm_html, w.HBox([self.confirm_btn, self.cancel_btn])],
                                  layout=w.Layout(display="none"))
        self.confirm_box.add_class("sa-confirm-box")
        self.progress = w.FloatProgress(value=0, min=0, max=1, description="", layout=w.Layout(
            width="50%", visibility="hidden"))
        self.progress.add_class("sa-progress")
        self.progress_label = w.HTML()
        self.result_html = w.HTML()
        self.result_html.add_class("sa-result")
        self.message = w.HTML()
        self.message.add_class("sa-message")
        self.log_box = w.VBox()
        self.audit_html = w.HTML()
        self.audit_html.add_class("sa-audit")
        self.audit_refresh_btn = w.Button(description="Refresh", layout=lay)
        self.audit_refresh_btn.on_click(lambda _: self._guard(self._refresh_audit))

        f = self.filters_w
        self.layout = w.VBox([
            w.HTML(h.STYLE + "<h3>Coupled Data Synchronization Errors — triage</h3>"),
            w.HBox([f["environment"], f["company"], f["mapping"], f["state"]], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([f["cause"], f["signature"]], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([f["since"], f["until"], f["search"], self.clear_filters_btn],
                   layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.fixed_html, self.clear_fixed_btn]),
            w.HBox([self.status, self.select_page_btn, self.select_all_btn, self.clear_btn],
                   layout=w.Layout(flex_flow="row wrap", align_items="center")),
            w.HBox([self.sort_w, self.desc_w, self.prev_btn, self.pager, self.next_btn],
                   layout=w.Layout(flex_flow="row wrap", align_items="center")),
            self.table,
            w.HBox([*self.action_btns.values()], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.direction_w, self.couple_to_w], layout=w.Layout(flex_flow="row wrap")),
            self.preview_html,
            w.HBox([self.run_btn, self.parents_first_btn]),
            self.confirm_box,
            w.HBox([self.progress, self.progress_label]),
            self.message,
            self.result_html,
            self.touched_btn,
            w.HBox([self.export_what_w, self.export_format_w, self.export_lang_w, self.export_btn, self.export_html],
                   layout=w.Layout(flex_flow="row wrap", align_items="center")),
            self.log_box,
            w.HBox([w.HTML("<h4>Audit trail of this workspace</h4>"), self.audit_refresh_btn, self.audit_pick_w,
                    self.audit_show_btn], layout=w.Layout(align_items="center")),
            self.audit_html,
        ])
        self.layout.add_class("sa-triage")

    def _ipython_display_(self) -> None:
        display(self.layout)

    def close(self) -> None:
        """Close the widgets and drop the panel's list index from the workspace connection."""
        self.ws.con.execute(f"DROP TABLE IF EXISTS {self._index}")
        self.ws.con.execute(f"DROP TABLE IF EXISTS {self._base}")
        self._index_version = self._base_version = None
        self.layout.close()

    def _guard(self, fn: Any, *args: Any) -> None:
        """Run a button handler; show errors in the panel (in a browser they would vanish into a log)."""
        self.message.value = ""
        try:
            fn(*args)
        except SyncAnalysisError as exc:
            self._show_error(exc)
        except Exception as exc:  # noqa: BLE001 - a click must not fail silently
            _log.exception("triage panel: %s failed", getattr(fn, "__name__", fn))
            self._show_error(exc, unexpected=True)

    def _show_error(self, exc: BaseException, *, unexpected: bool = False) -> None:
        prefix = f"Unexpected error ({type(exc).__name__}): " if unexpected else ""
        self.message.value = h.fragment('<div class="sa-confirm">{{ text }}</div>', text=prefix + str(exc))

    # -- filters ---------------------------------------------------------------------------
    def _set_widgets(self, sel: Selection) -> None:
        """Put ``sel``'s filters into the controls (without triggering a refresh per control)."""
        self._quiet = True
        try:
            values = {"environment": sel.environment, "company": sel.company, "mapping": sel.mapping,
                      "state": sel.state, "cause": sel.cause, "signature": sel.signature}
            for name, value in values.items():
                d = self.filters_w[name]
                value = ANY if value is None else str(value)
                if value not in [v for _, v in d.options]:
                    d.options = [*d.options, (value, value)]
                d.value = value
            self._exact = {"since": sel.since, "until": sel.until}
            self.filters_w["since"].value = sel.since.date() if sel.since else None
            self.filters_w["until"].value = sel.until.date() if sel.until else None
            self.filters_w["search"].value = sel.search or ""
        finally:
            self._quiet = False

    @property
    def filters(self) -> Selection:
        """The filter of the list (what "all matching" selects), without the selected keys."""
        f = self.filters_w

        def pick(name: str) -> str | None:
            return f[name].value or None

        def bound(name: str, time: dt.time) -> dt.datetime | None:
            # a date picker holds a day; an exact bound given by code (a finding's window) is kept while it
            # is still that day
            day = f[name].value
            exact = self._exact.get(name)
            if day is None:
                return None
            return exact if exact is not None and exact.date() == day else dt.datetime.combine(day, time)

        return self._fixed.replace(
            environment=pick("environment"), company=pick("company"), mapping=pick("mapping"), state=pick("state"),
            cause=pick("cause"), signature=pick("signature"),
            since=bound("since", dt.time()), until=bound("until", dt.time.max),
            search=f["search"].value.strip() or None, finding=self._finding)

    def set_filters(self, **filters: Any) -> None:
        """Set filter controls and refresh once.

        Parameters
        ----------
        **filters
            Any of ``environment, company, mapping, state, cause, signature`` (``None`` = any), ``since``,
            ``until`` (dates or datetimes) and ``search`` (text).
        """
        unknown = set(filters) - set(self.filters_w)
        if unknown:
            raise SyncAnalysisError(f"Unknown filter(s) {sorted(unknown)}; use some of {sorted(self.filters_w)}.")
        if filters.get("state") not in (None, *STATES):
            raise SyncAnalysisError(f"Unknown state {filters['state']!r}; use one of {STATES}.")
        self._quiet = True
        try:
            for name, value in filters.items():
                ctl = self.filters_w[name]
                if name in FACETS:
                    value = ANY if value is None else str(value)
                    if value not in [v for _, v in ctl.options]:
                        ctl.options = [*ctl.options, (value, value)]
                elif name in ("since", "until"):
                    self._exact[name] = value if isinstance(value, dt.datetime) else None
                    value = value.date() if isinstance(value, dt.datetime) else value
                else:
                    value = value or ""
                ctl.value = value
        finally:
            self._quiet = False
        self._filters_changed()

    def clear_filters(self) -> None:
        """Reset every filter control to "any"."""
        self.set_filters(**{name: None for name in self.filters_w})

    def clear_fixed_keys(self) -> None:
        """Drop what the panel was opened with (its records, table or parent) and list every record."""
        self._fixed = self._fixed.replace(keys=None, table_id=None, parent=None)
        self._listing = None
        self._filters_changed()

    def _on_filter(self, change: dict) -> None:
        if not self._quiet:
            self._guard(self._filters_changed)

    def _filters_changed(self, *, keep_finding: bool = False) -> None:
        if not keep_finding:
            self._finding = None
        # a selection is only ever what the list shows: a filter change clears it (and says so), so that no
        # action runs on records the user can no longer see or count
        had = self._total if self._all else len(self._chosen)
        self._chosen.clear()
        self._cleared = had if not keep_finding else 0
        self._cleared_why = "filters"
        self._all = False  # "all N matching" meant the old filter's N
        self._offset = 0
        sel = self.filters
        self._count()
        self._refresh_facets(sel)
        fixed = []
        if self._fixed.keys is not None:
            fixed.append(getattr(self, "_listing", None) or f"{len(self._fixed.keys):,} chosen record(s)")
        if self._fixed.table_id is not None:
            fixed.append(f"table {self._fixed.table_id}")
        if self._fixed.parent is not None:
            fixed.append(f"children of {self._fixed.parent}")
        self.fixed_html.value = h.fragment('{% if fixed %}<span class="sa-badge sa-warn">Listing only: '
                                           '{{ fixed | join(", ") }}</span>{% endif %}', fixed=fixed)
        self.clear_fixed_btn.layout.display = None if fixed else "none"
        self._render_page()
        self._selection_changed()

    def _refresh_facets(self, sel: Selection) -> None:
        """Refill each dropdown with the values present under the other filters, with their counts."""
        base = self._base_table()
        where = self._facet_where(sel)
        self._quiet = True
        try:
            for name, column in FACETS.items():
                d = self.filters_w[name]
                current = d.value
                others = [(c, v) for c, v in where if c != column]
                cond = " AND ".join(f'"{c}" = ?' for c, _ in others) or "true"
                counts = self.ws.con.execute(
                    f'SELECT "{column}" AS value, count(*) AS records FROM {base} WHERE {cond} AND "{column}" IS NOT '
                    f"NULL GROUP BY ALL ORDER BY records DESC, value LIMIT {int(FACET_OPTIONS)}",
                    [v for _, v in others]).df()
                show = _cause_title if name == "cause" else (lambda v: v)
                options = [("any", ANY)] + [(f"{_label(show(v))} ({n:,})", str(v))
                                            for v, n in zip(counts["value"], counts["records"])]
                if current != ANY and current not in [v for _, v in options]:  # beyond the largest: its own count
                    n = self.ws.con.execute(f'SELECT count(*) FROM {base} WHERE {cond} AND "{column}" = ?',
                                            [*(v for _, v in others), current]).fetchall()[0][0]
                    options.append((f"{_label(show(current))} ({n:,})", current))
                if options != self._facet_options.get(name):
                    d.options = options
                    self._facet_options[name] = options
                d.value = current
        finally:
            self._quiet = False

    @staticmethod
    def _facet_where(sel: Selection) -> list[tuple[str, Any]]:
        """The facet filters of ``sel`` as (column of the list, value) pairs."""
        values = {"environment": sel.environment, "company": sel.company, "mapping_name": sel.mapping,
                  "state": sel.state, "cause": sel.cause, "signature": sel.signature}
        return [(c, v) for c, v in values.items() if v is not None]

    def _base_table(self) -> str:
        """The records under every filter except the facets, narrow (keys, facet and sort columns).

        Built once per non-facet filter (time, text, the fixed keys) and workspace version: a facet
        change (state, cause, mapping…) then filters and counts this table instead of joining the whole
        history again — the count, six facets and the list order of a filter change read it.
        """
        sel = self.filters
        base = self._fixed.replace(since=sel.since, until=sel.until, search=sel.search)
        version = (base, self.ws.revision)
        if version != self._base_version:
            sql, params = records_relation(self.ws, base)
            cols = ", ".join(f'"{c}"' for c in dict.fromkeys(
                ["environment", "company", "table_id", "integration_id", *FACETS.values(), *(c for _, c in SORTS)]))
            self.ws.con.execute(f"CREATE OR REPLACE TEMP TABLE {self._base} AS SELECT {cols} FROM ({sql})", params)
            self._base_version = version
        return self._base

    # -- paging and sorting ----------------------------------------------------------------
    @property
    def total(self) -> int:
        """How many records match the filters."""
        return self._total

    @property
    def page(self) -> int:
        """The current page, 0-based."""
        return self._offset // self.page_size

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, -(-self._total // self.page_size))

    @property
    def page_rows(self) -> pd.DataFrame:
        """The records shown on the current page."""
        return self._page

    def go_to_page(self, page: int) -> None:
        """Show page ``page`` (0-based, clamped to the pages there are)."""
        self._offset = min(max(0, int(page)), self.pages - 1) * self.page_size
        self._render_page()

    def next_page(self) -> None:
        """Show the next page."""
        self.go_to_page(self.page + 1)

    def prev_page(self) -> None:
        """Show the previous page."""
        self.go_to_page(self.page - 1)

    def sort_by(self, column: str, descending: bool = True) -> None:
        """Order the list by ``column`` (one of the sort choices); the selection is unaffected."""
        self._quiet = True
        try:
            self.sort_w.value = column
            self.desc_w.value = descending
        finally:
            self._quiet = False
        self._on_sort(None)

    def _on_sort(self, change: dict | None) -> None:
        if self._quiet:
            return
        self._order = ("-" if self.desc_w.value else "") + self.sort_w.value
        self._offset = 0
        self._guard(self._render_page)

    def _listed(self) -> tuple[str, list[Any], str]:
        """SQL of the listed records (over the base table), its parameters and the list order."""
        where = self._facet_where(self.filters)
        sql = f"SELECT * FROM {self._base_table()} WHERE " + (" AND ".join(f'"{c}" = ?' for c, _ in where) or "true")
        col = self._order.lstrip("-")
        if col not in {c for _, c in SORTS}:
            raise SyncAnalysisError(f"Cannot sort the list by {col!r}; use one of {[c for _, c in SORTS]}.")
        return sql, [v for _, v in where], order_sql(self._order)  # the same order as records()

    def _count(self) -> int:
        """How many records the filters match (counted once per filter and workspace version)."""
        version = (self.filters, self.ws.revision)
        if version != getattr(self, "_count_version", None):
            sql, params, _ = self._listed()
            self._total = self.ws.con.execute(f"SELECT count(*) FROM ({sql})", params).fetchall()[0][0]
            self._count_version = version
        return self._total

    def _ordered(self) -> str:
        """The temp table of the listed records' keys in list order (``rn`` = position, 0-based).

        Built once per filter, order and workspace version (a load or an action bumps it), for pages
        deeper than :data:`TOP_N_ROWS` (the first pages are a top-N query, much cheaper than sorting the
        whole list); a page at any depth is then a range of ``rn`` plus :func:`records` for its keys. The
        rows themselves are always read fresh.
        """
        version = (self.filters, self._order, self.ws.revision)
        if version != self._index_version:
            sql, params, order = self._listed()
            self.ws.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {self._index} AS SELECT row_number() OVER (ORDER BY {order}) - 1 AS rn, "
                f"environment, company, table_id, integration_id FROM ({sql})", params)
            self._index_version = version
        return self._index

    def _keys_at(self, offset: int) -> list[tuple]:
        """The keys of the page starting at ``offset``, in list order."""
        if offset + self.page_size <= TOP_N_ROWS:
            sql, params, order = self._listed()
            return self.ws.con.execute(
                f"SELECT environment, company, table_id, CAST(integration_id AS VARCHAR) FROM ({sql}) "
                f"ORDER BY {order} LIMIT ? OFFSET ?", [*params, self.page_size, offset]).fetchall()
        return self.ws.con.execute(
            f"SELECT environment, company, table_id, CAST(integration_id AS VARCHAR) FROM {self._ordered()} "
            "WHERE rn >= ? AND rn < ? ORDER BY rn", [offset, offset + self.page_size]).fetchall()

    def _render_page(self) -> None:
        """Read one page and update the row widgets (only changed values are sent to the browser)."""
        self._count()
        keys = self._keys_at(self._offset)
        rows = records(self.ws, Selection(keys=tuple(keys)), limit=None)
        if len(rows) > 1:
            position = {key: i for i, key in enumerate(keys)}
            rows = rows.iloc[np.argsort([position[k] for k in _key_tuples(rows)], kind="stable")]
        self._page = rows.reset_index(drop=True)
        self._page_keys = _key_tuples(self._page) if len(self._page) else []
        page = self._page
        n = len(page)
        if n:
            exists = (page["bc_record_exists"].map({True: "yes", False: "no"}).fillna("?") + " / "
                      + page["crm_record_exists"].map({True: "yes", False: "no"}).fillna("?"))
            cells = page.assign(exists=exists, failed_on=_page_or_latest(page)["failed_on"],
                                cause=page["cause"].map(_cause_title, na_action="ignore"))[
                [c[0] for c in COLUMNS]].to_numpy(dtype=object)
            cells[:, [c[0] for c in COLUMNS].index("error_message")] = np.array(
                error_cells(self.ws, page), dtype=object)
        self._quiet = True
        try:
            for i in range(self.page_size):
                if i < n:
                    self.row_html[i].value = h.row(cells[i], self._widths, clip_width=LIST_CLIP)
                    self.checkboxes[i].value = self._all or self._page_keys[i] in self._chosen
                    self.checkboxes[i].disabled = self._all
                    self.rows[i].layout.display = None
                else:
                    self.rows[i].layout.display = "none"
        finally:
            self._quiet = False
        self.pager.value = (f"Rows {self._offset + 1:,}–{self._offset + n:,} of {self._total:,} · page "
                            f"{self.page + 1:,} of {self.pages:,}" if n else "No rows")
        self.prev_btn.disabled = self._offset == 0
        self.next_btn.disabled = self._offset + n >= self._total
        self._show_status()

    # -- selection -------------------------------------------------------------------------
    @property
    def value(self) -> Selection:
        """The current selection: the filter itself when "all matching" is selected, else the chosen keys."""
        if self._all:
            return self.filters
        return Selection(keys=tuple(sorted(self._chosen)), finding=self._finding)

    @property
    def selected_count(self) -> int:
        """How many records are selected."""
        return self._total if self._all else len(self._chosen)

    @property
    def all_matching(self) -> bool:
        """Whether "all matching" is selected (kept as the filter, not as keys)."""
        return self._all

    def _on_check(self, i: int, change: dict) -> None:
        if self._quiet or i >= len(self._page_keys) or self._all:
            return
        key = self._page_keys[i]
        if change["new"]:
            self._chosen.add(key)
        else:
            self._chosen.discard(key)
        self._guard(self._selection_changed)

    def select_rows(self, rows: list[int], selected: bool = True) -> None:
        """Tick (or untick) the checkboxes of rows ``rows`` (indexes on the current page)."""
        for i in rows:
            self.checkboxes[i].value = selected

    def select_keys(self, keys: list[tuple[str, str, int, str]], selected: bool = True) -> None:
        """Add (or remove) records by key, wherever they are in the list."""
        norm = {(str(e), str(c), int(t), str(k)) for e, c, t, k in keys}
        if selected:
            self._chosen |= norm
        else:
            self._chosen -= norm
        self._render_page()
        self._selection_changed()

    def select_page(self) -> None:
        """Add every record of the current page to the selection."""
        if self._all:
            return
        self._chosen.update(self._page_keys)
        self._render_page()
        self._selection_changed()

    def select_all_matching(self) -> None:
        """Select every record the filters match, kept as the filter (not as N keys)."""
        self._all = True
        self._chosen.clear()
        self._render_page()
        self._selection_changed()

    def clear_selection(self) -> None:
        """Select nothing."""
        self._all = False
        self._chosen.clear()
        self._render_page()
        self._selection_changed()

    def _selection_changed(self) -> None:
        """Recompute what the selection enables; a preview of another selection no longer applies."""
        if self.selected_count:
            self._cleared = 0
        self._show_status()
        self._update_enablement()
        self._clear_preview()

    def _show_status(self) -> None:
        n = self.selected_count
        if self._total == 0 and not self._chosen:
            text = "<b>No record matches the filters.</b>"
        elif self._all:
            text = h.fragment('<b>All {{ n }} matching records selected</b> <span class="sa-note">(kept as the '
                              'filter: {{ filters }})</span>', n=f"{self._total:,}", filters=self.filters.describe())
        else:
            text = f"{self._total:,} matching · <b>{n:,} selected</b>"
        if self._cleared and self._cleared_why == "no longer in the list":
            text += h.fragment(' <span class="sa-badge sa-warn">{{ n }} selected record(s) unselected: no longer in '
                               'the list</span>', n=f"{self._cleared:,}")
        elif self._cleared and n == 0:
            text += h.fragment(' <span class="sa-badge sa-warn">selection of {{ n }} record(s) cleared: the filters '
                               'changed</span>', n=f"{self._cleared:,}")
        self.status.value = text
        self.select_all_btn.description = f"Select all {self._total:,} matching"
        self.select_all_btn.disabled = self._all or self._total == 0
        self.select_page_btn.disabled = self._all or not self._page_keys
        self.clear_btn.disabled = n == 0 and not self._all

    def selected_rows(self) -> pd.DataFrame:
        """The records the enablement rules look at.

        Every chosen row, or for "all matching" the distinct combinations of the columns the rules read
        (set-based, whatever N is).
        """
        if self._all:
            sql, params = records_relation(self.ws, self.filters)
            cols = ", ".join(_RULE_COLUMNS)
            return self.ws.con.execute(f"SELECT DISTINCT {cols} FROM ({sql})", params).df()
        if not self._chosen:
            return self._page.iloc[:0]
        return records(self.ws, Selection(keys=tuple(self._chosen)), limit=None)

    def _update_enablement(self) -> None:
        rows = self.selected_rows()
        self.enabled = dict(act.enabled_actions(rows))
        n = self.selected_count
        self.enabled[LOG_ACTION] = (n == 1 and len(rows) == 1 and not rows["bc_record_exists"].eq(False).any())
        # BC couples one record at a time ("all matching" passes distinct combinations, not records)
        self.enabled["set-up-coupling"] = bool(self.enabled.get("set-up-coupling")) and n == 1
        self.couple_to_w.disabled = not self.enabled["set-up-coupling"]
        for action, b in self.action_btns.items():
            b.disabled = not self.enabled.get(action, False)

    # -- actions ---------------------------------------------------------------------------
    def _clear_preview(self) -> None:
        self.plan = None
        self._pending = None
        self.preview_html.value = ""
        self.run_btn.disabled = True
        self.run_btn.description = "Run"
        self.confirm_box.layout.display = "none"

    def _on_action(self, action: str) -> None:
        if action == LOG_ACTION:
            self.open_log()
        else:
            self.preview(action)

    def _on_direction(self, change: dict) -> None:
        if not self._quiet and self._action in _DIRECTED and self.plan is not None:
            self._guard(self.preview, self._action, change["new"])

    def action_selection(self, action: str) -> Selection | None:
        """What ``action`` acts on: the selection, or only the environment/company filter.

        Only the filter for Retry All / Find for Deleted, which BC runs on the whole company, without a
        selection.
        """
        if action in act.WHOLE_COMPANY:
            f = self.filters
            if f.environment is None and f.company is None:
                return None
            return Selection(environment=f.environment, company=f.company)
        return self.value

    def _check(self, action: str) -> None:
        if action not in act.ACTIONS:
            raise SyncAnalysisError(f"Unknown action {action!r}; use one of {', '.join(act.ACTIONS)}.")
        if action not in act.WHOLE_COMPANY and self.selected_count == 0:
            raise SyncAnalysisError(f"{_caption(action)} is not enabled: nothing is selected. Tick records, "
                                    "select the page or select all matching first.")
        if not self.enabled.get(action, False):
            raise SyncAnalysisError(
                f"{_caption(action)} is not enabled for the selection ({self.selected_count:,} record(s)): BC "
                "enables Retry and Synchronize only where both records exist, Restore Records and Delete Records "
                "only where exactly one exists.")

    def preview(self, action: str, direction: str | None = None, *, parents_first: bool = False) -> Any:
        """Dry run: compute the plan of ``action`` on the selection and show it (nothing changes).

        Parameters
        ----------
        action
            One of :data:`syncanalysis.actions.ACTIONS` (e.g. ``"retry"``).
        direction
            Synchronize only: one of :data:`syncanalysis.actions.DIRECTIONS` (default: the chooser's value).
        parents_first
            Also act on the parents the selected records' errors name, first ("Fix the parents first").

        Returns
        -------
        syncanalysis.actions.Plan
            The plan, also kept as :attr:`plan` and executed by :meth:`run` when nothing changed since.
        """
        self._check(action)
        self.message.value = ""
        self._action = action
        for a, b in self.action_btns.items():
            b.button_style = "info" if a == action else ""
        directed = action in _DIRECTED
        self._quiet = True
        try:
            if direction is not None:
                self.direction_w.value = direction
            self.direction_w.disabled = not directed
        finally:
            self._quiet = False
        direction = self.direction_w.value if directed else None
        target = self.action_selection(action)
        couple_to = None
        if action == "set-up-coupling":
            couple_to = self.couple_to_w.value.strip() or None
            if couple_to is None:
                raise SyncAnalysisError("Set Up Coupling: type the id of the Dataverse row to couple the selected record "
                                        "to in “Couple to”, then preview again.")
        parents_first = parents_first and action in _PARENTS_FIRST
        p = act.plan(self.ws, action, target, direction=direction, backend=self.backend, couple_to=couple_to,
                     parents_first=parents_first)
        self.plan = p
        self._parents_first = parents_first
        self._plan_key = self._key(action, direction)  # after plan(): classifying may bump the revision
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.preview_html.value = _plan_html(p)
        blocked = p.targets.get("prediction", pd.Series(dtype=object)).fillna("").str.contains("fix the parent first")
        self.parents_first_btn.layout.display = None if blocked.any() and not parents_first else "none"
        self.parents_first_btn.description = f"Fix the parents first ({int(blocked.sum()):,} blocked)"
        self.run_btn.description = f"Run {_caption(action)}" + ("…" if self._asks(p) else "")
        self.run_btn.disabled = False
        return p

    def _on_run(self) -> None:
        if self._action is None:
            raise SyncAnalysisError("Choose an action first (the buttons above preview it).")
        direction = self.direction_w.value if self._action in _DIRECTED else None
        if self.plan is None or self._plan_key != self._key(self._action, direction):
            # the button runs only what the user has seen: something changed since, so show it first
            self.preview(self._action, direction, parents_first=self._parents_first)
            self.message.value = ('<div class="sa-note">The selection, its records or the options changed since '
                                  "the preview: this is the new preview. Run again to apply it.</div>")
            return
        self.run(self._action, direction)

    def _key(self, action: str, direction: str | None) -> tuple:
        """What a plan was made for: the action, its options, its selection and the workspace revision."""
        key = (action, direction, self.action_selection(action), self.ws.revision)
        return key + ((self.couple_to_w.value.strip() or None,) if action == "set-up-coupling" else ())

    def run(self, action: str, direction: str | None = None, confirm: bool = False) -> Any:
        """Run ``action`` on the selection: the previewed plan if it still fits, else a fresh one.

        Destructive actions need ``confirm=True`` (the Confirm button); without it the panel asks and
        returns ``None``.

        Returns
        -------
        syncanalysis.actions.ActionResult or None
            The result, also shown as a summary and kept as :attr:`result`.
        """
        self._check(action)
        direction = direction if action in _DIRECTED else None
        if direction is None and action in _DIRECTED:
            direction = self.direction_w.value
        p = self.plan if self.plan is not None and self._plan_key == self._key(action, direction) else None
        if p is None:
            p = self.preview(action, direction, parents_first=self._parents_first)
        if self._asks(p) and not confirm:
            self._pending = (action, direction)
            self.confirm_html.value = _confirm_html(p, outside=self._outside(p))
            self.confirm_box.layout.display = None
            return None
        return self._execute(p)

    def _outside(self, p: Any) -> int:
        """How many of the plan's targets the list does not show (Retry All / Find for Deleted act company-wide)."""
        if p.action not in act.WHOLE_COMPANY or not len(p.targets):
            return 0
        keys = p.targets[["environment", "company", "table_id", "integration_id"]].astype({"integration_id": str})
        return self._against_list(keys, "ANTI", "count(*)")[0][0]

    def _against_list(self, keys: pd.DataFrame, join: str, select: str = "k.*") -> list[tuple]:
        """``select`` over the rows of ``keys`` the list shows (``join="SEMI"``) or does not show (``"ANTI"``).

        ``keys`` has environment, company, table_id and integration_id (as text).
        """
        listed, params, _ = self._listed()
        with registered(self.ws.con, keys, "keys") as name:
            return self.ws.con.execute(
                f"SELECT {select} FROM {name} k {join} JOIN ({listed}) l ON l.environment = k.environment AND "
                "l.company = k.company AND l.table_id = k.table_id AND CAST(l.integration_id AS VARCHAR) = "
                "k.integration_id", params).fetchall()

    def _asks(self, p: Any) -> bool:
        """Whether Run asks first: a destructive action, or one that reaches records the list does not show."""
        return p.action in act.DESTRUCTIVE or self._outside(p) > 0

    def confirm(self) -> Any:
        """Run the action waiting for confirmation."""
        if self._pending is None:
            raise SyncAnalysisError("Nothing waits for confirmation; choose an action and Run it first.")
        action, direction = self._pending
        return self.run(action, direction, confirm=True)

    def cancel(self) -> None:
        """Drop the action waiting for confirmation."""
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.message.value = '<div class="sa-note">Cancelled; nothing was changed.</div>'

    def _execute(self, p: Any) -> Any:
        if is_read_only(self.ws):
            raise SyncAnalysisError(f"The workspace {self.ws.path} is open read-only: the preview shows what "
                                    f"{p.caption} would do, but running it needs a writable workspace "
                                    "(open it without read_only=True, or work on a scratch copy).")
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.run_btn.disabled = True
        self.progress.layout.visibility = "visible"
        self.progress.bar_style = "info"
        self.progress.value = 0
        self.progress_label.value = h.fragment("Running {{ caption }} on {{ n }} record(s)…", caption=p.caption,
                                               n=f"{p.counts['will_change']:,}")
        try:
            result = act.execute(self.ws, p, who=self.who, progress=self._progress)
        except Exception:
            self.progress.bar_style = "danger"
            self.progress_label.value = "Failed; nothing was changed."
            raise
        self.progress.value = 1
        self.progress.bar_style = "success"
        self.progress_label.value = "Done."
        self.result = result
        self.result_html.value = _result_html(result)
        self.touched_btn.layout.display = None
        self.touched_btn.description = f"Show the {len(result.outcome):,} record(s) this action touched"
        self._clear_preview()
        for b in self.action_btns.values():
            b.button_style = ""
        self.reload()
        self._refresh_audit()
        if self.on_run is not None:
            self.on_run(result)
        return result

    def reload(self) -> None:
        """Re-read the workspace (after an action or a twin run): counts, facets, the page, the enablement.

        A preview is dropped (its plan may no longer fit). "All matching" stays the filter; chosen records
        the list no longer shows (an action moved them out of the filters) are unselected, and the status
        says how many, so nothing selected is out of sight.
        """
        ensure_signatures(self.ws)
        sel = self.filters
        self._index_version = self._base_version = self._count_version = None
        self._count()
        self._clear_preview()
        if self._chosen and not self._all:
            chosen = pd.DataFrame(sorted(self._chosen), columns=["environment", "company", "table_id", "integration_id"])
            kept = self._against_list(chosen, "SEMI")
            gone = len(self._chosen) - len(kept)
            if gone:
                self._chosen = {(str(e), str(c), int(t), str(i)) for e, c, t, i in kept}
                self._cleared = gone
                self._cleared_why = "no longer in the list"
        self._refresh_facets(sel)
        self._offset = min(self._offset, (self.pages - 1) * self.page_size)
        self._render_page()
        self._show_status()
        self._update_enablement()
        self._refresh_audit()
        if self.log_panel is not None:  # the open Synchronization Log shows the record as it is now
            self.log_panel.refresh()

    def show_records(self, keys: list[tuple[str, str, int, str]], label: str) -> int:
        """List exactly ``keys`` (all other filters cleared; the list says so) and return how many still exist."""
        self._fixed = self._fixed.replace(keys=tuple(sorted({(str(e), str(c), int(t), str(i))
                                                              for e, c, t, i in keys})), table_id=None)
        self._listing = label
        self._quiet = True
        try:
            for name, ctl in self.filters_w.items():
                ctl.value = ANY if name in FACETS else ("" if name == "search" else None)
            self._exact = {}
        finally:
            self._quiet = False
        self._filters_changed()
        return self._total

    def show_touched(self) -> int:
        """After a run: list the records the action touched, with their new state (gone ones are counted)."""
        if self.result is None:
            raise SyncAnalysisError("No action has run in this panel yet.")
        return self.show_action(self.result.action_id)

    def show_action(self, action_id: int) -> int:
        """List the records audited action ``action_id`` acted on, with their state now.

        Returns
        -------
        int
            How many of its targets still have a coupling (Delete Records and Remove Coupling remove theirs).
        """
        t = act.action_targets(self.ws, int(action_id))
        if t.empty:
            raise SyncAnalysisError(f"Action #{action_id} has no targets in the audit trail of this workspace.")
        gone = int(t["state"].isna().sum())
        label = f"the {len(t):,} target(s) of action #{int(action_id)}" + (
            f" ({gone:,} no longer coupled, so not listed)" if gone else "")
        return self.show_records(list(t[["environment", "company", "table_id", "integration_id"]].itertuples(
            index=False, name=None)), label)

    def export(self, what: str = "list", path: str | Any = None, *, language: str = "en") -> Any:
        """Write the filtered list, the selection, the preview or the result to xlsx or CSV (BC's captions).

        Parameters
        ----------
        what
            ``list`` (every record the filters match), ``selection``, ``preview`` (the plan's targets) or
            ``result`` (the last run's outcome).
        path
            Where to write; the suffix (``.xlsx`` or ``.csv``) chooses the format. Default:
            ``exports/triage-<what>-<time>.xlsx`` under the current folder.
        language
            ``en``, ``fr`` or ``de``: the language of the column captions.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        from pathlib import Path

        from .. import export as ex

        if path is None:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
            path = Path("exports") / f"triage-{what}-{stamp}.xlsx"
        if what == "list":
            out = ex.export_records(self.ws, self.filters, path, language=language, order_by=self._order)
        elif what == "selection":
            if not self.selected_count:
                raise SyncAnalysisError("Nothing is selected: tick records or select all matching, then export.")
            out = ex.export_records(self.ws, self.value, path, language=language, order_by=self._order)
        elif what == "preview":
            if self.plan is None:
                raise SyncAnalysisError("No preview to export: preview an action first.")
            out = ex.export_plan(self.plan, path, language=language)
        elif what == "result":
            if self.result is None:
                raise SyncAnalysisError("No result to export: run an action first.")
            out = ex.export_result(self.result, path, language=language)
        else:
            raise SyncAnalysisError(f"Cannot export {what!r}; use list, selection, preview or result.")
        self.export_html.value = h.fragment('<div class="sa-note">Exported {{ what }} to <code>{{ path }}</code>.</div>',
                                            what=what, path=str(out))
        return out

    def _progress(self, done: float, total: float | None = None) -> None:
        """Progress callback for the library: ``done`` of ``total`` (or a fraction when ``total`` is None)."""
        frac = done / total if total else done
        self.progress.value = max(0.0, min(1.0, float(frac)))

    def open_log(self) -> Any:
        """Open the Synchronization Log of the one selected record below the list."""
        from .synclog import SyncLogPanel

        if not self.enabled.get(LOG_ACTION):
            raise SyncAnalysisError("Select exactly one record whose BC record exists to open its Synchronization Log.")
        rec = records(self.ws, self.value, limit=1).iloc[0]
        self.log_panel = SyncLogPanel(self.ws, environment=rec["environment"], company=rec["company"],
                                      bc_record_id=rec["bc_record_id"])
        self.log_box.children = [self.log_panel.layout]
        return self.log_panel

    def _on_export(self) -> None:
        from pathlib import Path

        what = self.export_what_w.value
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        self.export(what, Path("exports") / f"triage-{what}-{stamp}.{self.export_format_w.value}",
                    language=self.export_lang_w.value)

    def _refresh_audit(self) -> None:
        trail = act.audit_trail(self.ws, limit=AUDIT_ROWS)
        self.audit_pick_w.options = [(f"#{int(a)} {c}", int(a)) for a, c in zip(trail["action_id"], trail["caption"])]
        cols = [c for c in AUDIT_COLUMNS if c in trail.columns]
        # wrapped and sized to the content: who, when and on what are read in full
        self.audit_html.value = h.table(trail, columns=cols, headers=AUDIT_HEADERS, max_rows=AUDIT_ROWS, clip_width=300,
                                        wrap=True, empty="No actions recorded in this workspace yet.")


TOP_N_ROWS = 2_000  # pages within the first rows are top-N queries; deeper ones read the list index
_DIRECTED = {"synchronize"}
_PARENTS_FIRST = {"retry", "synchronize"}  # actions whose plan can take the errors' parents first
AUDIT_ROWS = 20
AUDIT_COLUMNS = ["action_id", "at", "who", "caption", "backend", "dry_run", "targets", "changed", "planned", "no_op",
                 "refused", "failed", "direction", "selection"]
AUDIT_HEADERS = {"action_id": "#", "at": "at (UTC)", "caption": "action", "dry_run": "dry run", "no_op": "no-op"}
PLAN_COLUMNS = ["mapping_name", "bc_record_id", "crm_description", "state", "role", "status", "outcome", "prediction",
                "destroyed", "winner", "fields"]
PLAN_HEADERS = {"mapping_name": "Mapping", "bc_record_id": "BC record", "crm_description": "Coupled To",
                "state": "State", "role": "Role", "status": "Status", "outcome": "What will happen",
                "prediction": "Predicted outcome", "destroyed": "Deleted", "winner": "Wins", "fields": "Overwritten"}
PREVIEW_ROWS = 50
DESTROYED_NAMES = 2000  # names listed in a destructive preview's box (the export of the preview lists all)


def _cause_title(cause: Any) -> str:
    """A cause as its readable title (``Update conflict: both sides changed``), not its code."""
    return cause_info(str(cause)).title


def _caption(action: str) -> str:
    return LOG_CAPTION if action == LOG_ACTION else act.CAPTIONS.get(action, action)


def _label(value: Any, width: int = 90) -> str:
    text = h.fmt(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _plan_html(p: Any) -> str:
    """The plan as escaped HTML: summary, counts, predicted outcomes, and the first targets (refused first).

    A destructive plan names what it deletes, in which app and in full, in a warning colour (never
    success's green); a Retry shows which records will fail again and why.
    """
    targets = p.targets
    if len(targets):
        # what the reviewer must look at first: refusals, then predicted failures, then changes, then no-ops
        order = targets["status"].map({"refused": 0, "change": 2, "no-op": 3}).fillna(4)
        if "prediction" in targets.columns:
            order = order - targets["prediction"].fillna("").str.startswith("will fail again").astype(int)
        targets = targets.iloc[order.to_numpy().argsort(kind="stable")[:PREVIEW_ROWS]]
    destructive = p.action in act.DESTRUCTIVE
    # columns with nothing to say for this plan (who wins, when nothing is overwritten) are left out
    cols = [c for c in PLAN_COLUMNS if c in targets.columns and not targets[c].isna().all()]
    # wrapped, not cut: outcomes and predictions are read in full (up to 400 characters)
    table = h.table(targets, columns=cols, headers=PLAN_HEADERS, clip_width=400, wrap=True,
                    empty="No coupled record matches.")
    more = h.fragment('<div class="sa-note">Showing {{ n }} of {{ total }} targets (refused and failing again '
                      "first).</div>", n=f"{PREVIEW_ROWS:,}", total=f"{len(p.targets):,}") \
        if len(p.targets) > PREVIEW_ROWS else ""
    warn = ""
    if destructive and p.destroys:
        names = p.targets["destroyed"].dropna().astype(str)
        warn = h.fragment(
            '<div class="sa-destroys"><b>{{ caption }} deletes, and this cannot be undone from here:</b> '
            '{% for k, n in destroys.items() %}{{ "{:,}".format(n) }} {{ k }}(s){{ ", " if not loop.last }}'
            '{% endfor %}.<br>{{ names[:20] | join("; ") }}{% if names | length > 20 %}<details><summary>All '
            '{{ "{:,}".format(total) }} deleted records</summary><div class="sa-names">{{ names | join("; ") }}'
            '{% if total > names | length %} … and {{ "{:,}".format(total - names | length) }} more (export the '
            "preview for all of them){% endif %}</div></details>{% endif %}</div>",
            caption=p.caption, destroys=p.destroys, names=names.head(DESTROYED_NAMES).tolist(), total=len(names))
    predicted = ""
    if p.predicted:
        predicted = h.fragment('<div class="sa-predict"><b>Predicted outcome:</b> {% for k, n in items %}'
                               '{{ "{:,}".format(n) }} {{ k }}{{ "; " if not loop.last }}{% endfor %}</div>',
                               items=list(p.predicted.items()))
    # green only for changes expected to work: deletions and predicted failures are not a success
    change_class = "sa-bad" if destructive else "sa-warn" if "will fail again" in p.predicted else "sa-good"
    return (f"<h4>Preview — dry run, nothing changed yet</h4>{warn}{h.paragraph(p.summary(), css='sa-summary')}"
            f"{h.badges(p.counts, classes={'refused': 'sa-warn', 'will_change': change_class})}{predicted}{table}{more}")


def _confirm_html(p: Any, *, outside: int = 0) -> str:
    """The confirmation of a plan, escaped.

    A destructive plan says what it deletes, in which app and how many; a company-wide one how many of its
    targets (``outside``) the list does not show.
    """
    if p.action not in act.DESTRUCTIVE:
        return h.fragment(
            '<div class="sa-confirm"><b>{{ caption }}</b> runs on the whole company, as in BC, not only on the list: '
            "{{ n }} record(s) will change, {{ outside }} of its {{ total }} target(s) are not in the list "
            "({{ scope }}). Confirm to run it, or cancel.</div>",
            caption=p.caption, n=f"{p.counts['will_change']:,}", outside=f"{outside:,}", total=f"{len(p.targets):,}",
            scope=p.scope)
    destroys = p.destroys
    names = p.targets["destroyed"].dropna().astype(str) if "destroyed" in p.targets.columns else pd.Series([], dtype=str)
    if not destroys:  # Restore Records re-creates the missing side: it changes, it does not delete
        return h.fragment(
            '<div class="sa-confirm"><b>{{ caption }}</b> cannot be undone from here: it will change {{ n }} '
            "coupled record(s) ({{ summary }}). Confirm to run it, or cancel.</div>",
            caption=p.caption, n=f"{p.counts['will_change']:,}", summary=p.summary().splitlines()[0])
    return h.fragment(
        '<div class="sa-confirm"><b>{{ caption }}</b> cannot be undone from here: it will delete '
        '{% for k, n in destroys.items() %}{{ "{:,}".format(n) }} {{ k }}(s){{ " and " if not loop.last }}{% endfor %}'
        "{% if records %} and their couplings{% endif %} ({{ scope }}; selection: {{ selection }}), such as "
        '{{ names | join("; ") }}{% if more %} and {{ "{:,}".format(more) }} more{% endif %}. Confirm to run it, '
        "or cancel.</div>",
        caption=p.caption, destroys=destroys, records=any(k != "coupling" for k in destroys), scope=p.scope,
        selection=p.selection.describe() if p.selection is not None else "the whole company",
        names=names.head(5).tolist(), more=max(0, len(names) - 5))


def _result_html(result: Any) -> str:
    """The result as escaped HTML: summary, counts, and the outcome grouped by result and detail."""
    out = result.outcome
    grouped = (out.groupby(["mapping_name", "result", "detail"], dropna=False).size().reset_index(name="records")
               .sort_values("records", ascending=False) if len(out) else out)
    table = h.table(grouped, headers={"mapping_name": "Mapping"}, max_rows=30, clip_width=100, wrap=True,
                    empty="No target.") if len(out) else ""
    return (f"<h4>Result</h4>{h.paragraph(result.summary(), css='sa-summary')}"
            f"{h.badges(result.counts, classes={'refused': 'sa-warn', 'failed': 'sa-bad', 'changed': 'sa-good'})}"
            f"{table}")


__all__ = ["TriagePanel"]
