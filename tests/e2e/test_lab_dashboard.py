"""End-to-end: the Dashboard in real JupyterLab — top fixes, a finding opened in the triage on exactly its
records, a Retry preview that says which records will fail again, and the selection exported to xlsx."""

from __future__ import annotations

import json
import re

import pytest
from lab_helpers import ARTIFACTS, Lab, run_all_cells, wait_all_cells_done

from syncanalysis.analysis.signatures import assign_signatures
from syncanalysis.report import write_report
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish
from syncanalysis.workspace import Workspace

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 150_000
CELLS = [
    "from syncanalysis.widgets import Dashboard\nfrom syncanalysis.workspace import Workspace\n"
    "ws = Workspace('build/dashboard.duckdb')\ndash = Dashboard(ws, page_size=20)\ndash",
]


@pytest.fixture(scope="module")
def dashboard_notebook(lab: Lab) -> str:
    """A small twin workspace and a notebook that shows the Dashboard over it."""
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    with Workspace(lab.root / "build" / "dashboard.duckdb") as ws:
        publish(ws, sim, scenario="e2e-dashboard")
        assign_signatures(ws)
        # the report now: the notebook's kernel holds the workspace open once it runs
        write_report(ws, lab.root / "report.html")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                     "source": src} for i, src in enumerate(CELLS)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (lab.root / "dashboard.ipynb").write_text(json.dumps(nb))
    return "dashboard.ipynb"


def test_a_finding_opens_in_the_triage_previews_retry_and_exports_the_selection(lab: Lab, page,
                                                                                 dashboard_notebook: str) -> None:
    page.goto(lab.page_url(dashboard_notebook))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=90_000)
    run_all_cells(page)
    wait_all_cells_done(page, RUN_TIMEOUT)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.first.inner_text()
    dash = page.locator(".sa-dashboard").first
    dash.wait_for(state="visible", timeout=60_000)
    fixes = dash.locator(".sa-top-fixes")
    fixes.wait_for(timeout=30_000)
    assert 1 <= fixes.locator("li").count() <= 5 and "records blocked now" in fixes.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 1400})
    fixes.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "top_fixes.png"))

    # a finding about children blocked by parents that are still not coupled: open it in the triage
    rows = dash.locator(".sa-findings > *")
    row = rows.filter(has_text="PARENT_NOT_COUPLED").filter(has_text="still failing now").filter(
        has_text=re.compile(r"still not coupled|deleted in one app|itself")).first
    n = int(re.search(r"([\d,]+) records, [\d,]+ still failing now", row.inner_text()).group(1).replace(",", ""))
    row.locator("button.sa-open-finding").click()
    panel = dash.locator(".sa-dash-triage .sa-triage")
    panel.wait_for(state="visible", timeout=60_000)
    status = panel.locator(".sa-status")
    status.filter(has_text=f"All {n:,} matching records selected").wait_for(timeout=30_000)

    # Retry: the preview predicts which records will fail again, and why
    panel.locator("button.sa-btn-retry").click()
    preview = panel.locator(".sa-preview", has_text="Predicted outcome")
    preview.wait_for(timeout=30_000)
    assert "will fail again" in preview.inner_text() and "fix the parent first" in preview.inner_text()
    panel.locator("button.sa-parents-first").wait_for(state="visible", timeout=10_000)
    page.set_viewport_size({"width": 1400, "height": 2400})
    preview.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "triage_finding_retry_preview.png"))

    # export the selection (xlsx, English captions) and read it back
    panel.locator("button.sa-export").click()
    done = panel.locator(".sa-export-done", has_text="Exported selection to")
    done.wait_for(timeout=60_000)
    name = re.search(r"(exports/triage-selection-\S+\.xlsx)", done.inner_text()).group(1)
    from python_calamine import CalamineWorkbook

    sheet = CalamineWorkbook.from_path(str(lab.root / name)).get_sheet_by_index(0).to_python()
    assert len(sheet) - 1 == n and "Description" in sheet[0]
    assert panel.locator(".sa-message").inner_text().strip() == ""


def test_the_report_opens_with_the_top_fixes(lab: Lab, page, dashboard_notebook: str) -> None:
    out = lab.root / "report.html"
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(out.resolve().as_uri())
    first = page.locator(".sa-top-fixes").first
    first.wait_for(timeout=30_000)
    box = first.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 1000  # all of it on the first screen
    assert first.locator("li").count() >= 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_first_screen.png"))
