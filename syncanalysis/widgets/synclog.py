"""The Synchronization Log of one record: jobs and errors that touched it and its coupling over time.

On the twin it also shows both apps' versions side by side with the differing fields marked.

A thin view over :func:`syncanalysis.actions.sync_log`; every text shown is escaped.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import pandas as pd
from IPython.display import display

from .. import actions as act
from .. import html as h
from ..workspace import Workspace

_JOB_COLUMNS = ["start_datetime", "finish_datetime", "mapping_name", "synch_direction", "type", "trigger", "inserted",
                "modified", "unchanged", "skipped", "failed", "uncoupled", "coupled", "message", "why"]
_ERROR_COLUMNS = ["error_no", "logged_at", "synch_direction", "source_record_id", "destination_record_id",
                  "error_message", "cause"]
# the coupling's fields in the order page 5333 and table 5331 show them; the rest follows
_RECORD_FIELDS = ["mapping_name", "bc_record_id", "crm_description", "state", "skipped", "bc_record_exists",
                  "crm_record_exists", "last_synch_result", "last_synch_crm_result", "failed_on", "error_message",
                  "latest_error_on", "latest_error", "signature", "cause", "twin_bc_exists", "twin_dataverse_exists", "twin_bc_modified_at",
                  "twin_dataverse_modified_on"]
_RECORD_LABELS = {"bc_record_id": "BC record", "crm_description": "Coupled To", "bc_record_exists": "Record Exists",
                  "crm_record_exists": "Coupled Record Exists", "last_synch_result": "Last Synch. Result (from Dataverse)",
                  "last_synch_crm_result": "Last Synch. CRM Result (to Dataverse)", "failed_on": "Failed On (page 5333)",
                  "error_message": "Error Message (page 5333)", "latest_error_on": "Latest error on",
                  "latest_error": "Latest error (either direction)"}


def record_html(record: dict[str, Any]) -> str:
    """The coupling's fields as an escaped two-column table (known fields first, empty ones left out)."""
    ordered = {k: record[k] for k in _RECORD_FIELDS if k in record}
    ordered |= {k: v for k, v in record.items() if k not in ordered}
    return h.key_values({k: v for k, v in ordered.items() if not h.is_missing(v)}, labels=_RECORD_LABELS)


def _columns(frame: pd.DataFrame | None, preferred: list[str]) -> list[str] | None:
    """The preferred columns the frame has (in that order), or all of them when it has none of those."""
    if frame is None:
        return None
    cols = [c for c in preferred if c in frame.columns]
    return cols or list(frame.columns)


def versions_html(versions: pd.DataFrame | None) -> str:
    """Both apps' versions side by side; rows whose values differ carry the ``sa-diff`` mark."""
    if versions is None:
        return '<div class="sa-note">No twin behind this workspace: the apps\' current versions are unknown.</div>'
    if versions.empty:
        return '<div class="sa-note">Neither app holds this record any more.</div>'
    marks = versions["differs"].fillna(False).astype(bool) if "differs" in versions else pd.Series(False,
                                                                                                  index=versions.index)
    cols = [c for c in versions.columns if c != "differs"]
    shown = versions[cols].assign(differs=marks.map({True: "≠ differs", False: ""}))
    n = int(marks.sum())
    note = (f'<div class="sa-note"><span class="sa-badge sa-warn">{n} field(s) differ</span> (marked)</div>'
            if n else '<div class="sa-note">Both apps hold the same values.</div>')
    return note + h.table(shown, row_classes=marks.map({True: "sa-diff", False: ""}).tolist(), max_rows=200)


class SyncLogPanel:
    """One record's Synchronization Log (page 5333's action, with the whole history instead of the last job).

    Parameters
    ----------
    ws
        The workspace.
    environment, company
        Where the record lives.
    bc_record_id
        The BC record as BC formats it, e.g. ``Customer: 10000``.
    """

    def __init__(self, ws: Workspace, *, environment: str, company: str, bc_record_id: str) -> None:
        self.ws = ws
        self.value = {"environment": environment, "company": company, "bc_record_id": bc_record_id}
        self.log: Any = None
        self.title = w.HTML()
        self.record_html = w.HTML()
        self.record_html.add_class("sa-log-record")
        self.jobs_html = w.HTML()
        self.errors_html = w.HTML()
        self.timeline_html = w.HTML()
        self.versions_html = w.HTML()
        self.versions_html.add_class("sa-log-versions")
        self.tabs = w.Tab(children=[self.errors_html, self.jobs_html, self.timeline_html, self.versions_html])
        for i, name in enumerate(("Errors", "Jobs", "Coupling over time", "Both apps' versions")):
            self.tabs.set_title(i, name)
        self.refresh_btn = w.Button(description="Refresh", layout=w.Layout(width="auto"))
        self.refresh_btn.on_click(lambda _: self.refresh())
        self.layout = w.VBox([w.HTML(h.STYLE), self.title, self.record_html, self.tabs, self.refresh_btn])
        self.layout.add_class("sa-synclog")
        self.refresh()

    def _ipython_display_(self) -> None:
        display(self.layout)

    def refresh(self) -> None:
        """Read the log again (e.g. after an action or a twin run) and redraw it."""
        log = act.sync_log(self.ws, **self.value)
        self.log = log
        self.title.value = h.fragment("<h4>Synchronization Log — {{ id | fmt }}</h4>", id=self.value["bc_record_id"])
        self.record_html.value = record_html(log.record or {})
        self.errors_html.value = h.table(log.errors, columns=_columns(log.errors, _ERROR_COLUMNS), max_rows=200,
                                         wrap=True, empty="No error was logged for this record.")
        self.jobs_html.value = h.table(log.jobs, columns=_columns(log.jobs, _JOB_COLUMNS), max_rows=200,
                                       empty="No job touched this record.")
        self.timeline_html.value = h.table(log.timeline, max_rows=200, empty="No coupling history.")
        self.versions_html.value = versions_html(log.versions)


__all__ = ["SyncLogPanel", "record_html", "versions_html"]
