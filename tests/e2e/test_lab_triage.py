"""End-to-end: notebook 04 in real JupyterLab, driven in headless Chromium like an admin would."""

from __future__ import annotations

import re

import pytest
from lab_helpers import ARTIFACTS, Lab, copy_notebook, run_all_cells, wait_all_cells_done, wait_kernel_idle

from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish
from syncanalysis.workspace import Workspace

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 150_000  # ms: kernel start plus every cell of the notebook on the small workspace


@pytest.fixture(scope="module")
def demo_for_lab(lab: Lab) -> None:
    """A small twin workspace where the notebook's kernel looks for the demo (``build/demo.duckdb`` under its
    folder, which is not inside a project), so the notebook does not build the full demo."""
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    with Workspace(lab.root / "build" / "demo.duckdb") as ws:
        publish(ws, sim, scenario="e2e")


def test_bulk_triage_notebook_retry_all_matching(lab: Lab, page, demo_for_lab: None) -> None:
    copy_notebook(lab, "04_bulk_triage.ipynb")
    page.goto(lab.page_url("04_bulk_triage.ipynb"))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=90_000)
    run_all_cells(page)
    wait_all_cells_done(page, RUN_TIMEOUT)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.first.inner_text()

    panel = page.locator(".sa-triage").first
    panel.wait_for(state="visible", timeout=60_000)
    panel.scroll_into_view_if_needed()
    status = panel.locator(".sa-status")

    # filter to one signature (the most frequent among the skipped records first) and select all matching;
    # take the first signature whose records Retry applies to (BC enables it where both records exist)
    signature = panel.locator(".sa-filter-signature select")
    options = signature.locator("option")
    retry = panel.locator("button.sa-btn-retry")
    n = None
    for i in range(1, min(options.count(), 6)):
        label = options.nth(i).inner_text()
        count = int(re.search(r"\(([\d,]+)\)$", label).group(1).replace(",", ""))
        signature.select_option(index=i)
        status.filter(has_text=f"{count:,} matching").wait_for(timeout=30_000)
        panel.locator("button.sa-select-all").click()
        status.filter(has_text=f"All {count:,} matching records selected").wait_for(timeout=30_000)
        wait_kernel_idle(page)  # the enablement is sent in the same kernel turn as the status
        if retry.is_enabled():
            n = count
            break
    assert n is not None, "no signature among the first five offers records Retry applies to"

    audit = panel.locator(".sa-audit")
    newest_before = audit.locator("tbody tr td").first.inner_text() if audit.locator("tbody tr").count() else ""
    retry.click()
    panel.locator(".sa-preview", has_text="Preview").wait_for(timeout=30_000)
    panel.locator("button.sa-run").click()
    confirm = panel.locator("button.sa-confirm-btn")
    if confirm.is_visible():
        confirm.click()
    result = panel.locator(".sa-result", has_text="Result")
    result.wait_for(timeout=60_000)
    page.wait_for_function(  # a new audit row on top
        "([before]) => { const td = document.querySelector('.sa-triage .sa-audit tbody tr td');"
        " return td !== null && td.textContent.trim() !== before; }", arg=[newest_before.strip()], timeout=30_000)
    cells = [c.strip().replace(",", "") for c in audit.locator("tbody tr").first.locator("td").all_inner_texts()]
    assert "Retry" in cells and str(n) in cells  # the new audit row: the action and its n targets, cell by cell
    assert re.search(rf"Retry #\d+ on .*: {n:,} target\(s\)", result.inner_text())
    assert panel.locator(".sa-message").inner_text().strip() == ""

    # the artifact: the panel after the run (a tall window, so the result and the audit row are in view)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 2400})
    result.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "bulk_triage_retry.png"))
