"""Widget tests in-process: build the panels on a small twin workspace, set values, click, and check the
workspace, the twin and the rendered HTML."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import ipywidgets as w
import pandas as pd
import pytest

from syncanalysis import actions as act
from syncanalysis import html as h
from syncanalysis.analysis.records import Selection, count_records, facet_counts, records, records_relation
from syncanalysis.analysis.signatures import assign_signatures
from syncanalysis.errors import SyncAnalysisError
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import load_twin, publish
from syncanalysis.widgets import SyncLogPanel, TriagePanel
from syncanalysis.workspace import Workspace

HOSTILE_ERROR = "<script>alert(1)</script> <b>bold</b> & more"
HOSTILE_NAME = "<b>Bold & Co</b><img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small twin workspace (21 days, scale 0.15) with signatures, plus markup in some messages and names."""
    path = tmp_path_factory.mktemp("widgets") / "base.duckdb"
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    with Workspace(path) as ws:
        publish(ws, sim, scenario="widgets")
        assign_signatures(ws)
        # error texts and record names can carry markup; the panels must show it as text
        # the latest error of a skipped coupling (what the panels show for it)
        no = int(records(ws, Selection(state="skipped"), order_by="-error_no", limit=1)["error_no"].iloc[0])
        ws.con.execute("UPDATE job_errors SET error_message = ? || error_message, message = ? || message "
                       "WHERE error_no = ?", [HOSTILE_ERROR, HOSTILE_ERROR, no])
        ws.con.execute("UPDATE couplings SET crm_description = ? WHERE integration_id = "
                       "(SELECT integration_id FROM couplings WHERE skipped ORDER BY integration_id LIMIT 1)",
                       [HOSTILE_NAME])
    return path


@pytest.fixture
def ws(base_db: Path, tmp_path: Path):
    """A private copy of the base workspace (actions change it)."""
    path = tmp_path / "ws.duckdb"
    shutil.copyfile(base_db, path)
    with Workspace(path) as workspace:
        yield workspace


def _html_values(widget: w.Widget) -> list[str]:
    """Every HTML/Label text under ``widget``."""
    out = []
    if isinstance(widget, (w.HTML, w.HTMLMath, w.Label)):
        out.append(widget.value)
    for child in getattr(widget, "children", ()) or ():
        out += _html_values(child)
    return out


def _digest(ws: Workspace) -> str:
    """A fingerprint of what actions may change: couplings, the twin state and the audit trail."""
    parts = [ws.con.execute("SELECT count(*) FROM actions WHERE NOT dry_run").fetchall()]
    parts.append(ws.con.execute(
        "SELECT md5(string_agg(CAST(integration_id AS VARCHAR) || skipped::VARCHAR || coalesce(last_synch_result, '') "
        "|| coalesce(last_synch_crm_result, '') || bc_record_exists::VARCHAR || crm_record_exists::VARCHAR, ',' "
        "ORDER BY integration_id)) FROM couplings").fetchall())
    blob = ws.con.execute("SELECT state FROM twin_state").fetchall()[0][0]
    parts.append(hashlib.md5(blob).hexdigest())
    return repr(parts)


def _visible_rows(panel: TriagePanel) -> int:
    return sum(box.layout.display != "none" for box in panel.rows)


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["environment"], frame["company"], frame["table_id"].astype(int),
                    frame["integration_id"].astype(str)))


def _twin_skipped(ws: Workspace, frame: pd.DataFrame) -> list[bool]:
    """The twin's Skipped flag of each record in ``frame`` (mapping + BC key from the record id)."""
    sim = load_twin(ws)
    out = []
    for mapping, rec in zip(frame["mapping_name"], frame["bc_record_id"]):
        t = sim.world.table(mapping)
        row = t.rows_by_key([rec.split(": ", 1)[1]])
        out.append(bool(t.skipped[row][0]))
    return out


# -- paging, sorting and selection ------------------------------------------------------------
def test_pages_send_only_their_rows_and_follow_the_order(ws: Workspace) -> None:
    panel = TriagePanel(ws, page_size=20)
    total = count_records(ws)
    assert panel.total == total and panel.pages == -(-total // 20)
    assert _visible_rows(panel) == 20 and len(panel.page_rows) == 20
    assert panel.prev_btn.disabled and not panel.next_btn.disabled
    first = _keys(panel.page_rows)
    assert first == _keys(records(ws, Selection(), limit=20))
    panel.next_page()
    assert _keys(panel.page_rows) == _keys(records(ws, Selection(), limit=20, offset=20))
    assert f"Rows 21–40 of {total:,}" in panel.pager.value
    panel.go_to_page(panel.pages - 1)
    last = total - 20 * (panel.pages - 1)
    assert _visible_rows(panel) == last and panel.next_btn.disabled
    # the record shown in a row is the record of that row's checkbox
    assert h.esc(panel.page_rows["bc_record_id"].iloc[0]) in panel.row_html[0].value


def test_sorting_by_cause_follows_the_titles_the_list_shows_in_the_panel_and_in_records(ws: Workspace) -> None:
    from syncanalysis.analysis.causes import cause_info

    every = Selection(state="skipped")
    panel = TriagePanel(ws, every, page_size=100_000)
    panel.sort_by("cause", descending=False)
    titles = [cause_info(c).title.casefold() for c in panel.page_rows["cause"].dropna()]
    assert len(set(titles)) >= 3, "the twin's skipped records have several causes"
    assert titles == sorted(titles)  # by title, not by code
    codes = list(panel.page_rows["cause"].dropna())
    assert codes != sorted(codes), "this twin's causes sort differently by code, so the test can tell"
    listed = records(ws, every, order_by="cause", limit=None)["cause"].dropna().tolist()
    assert listed == codes  # the export and records() use the same order
    down = records(ws, every, order_by="-cause", limit=None)["cause"].dropna().tolist()
    assert [cause_info(c).title.casefold() for c in down] == sorted(titles, reverse=True)


def test_selection_is_kept_by_key_across_sorting_and_paging(ws: Workspace) -> None:
    panel = TriagePanel(ws, Selection(state="skipped"), page_size=10)
    panel.next_page()
    panel.select_rows([1, 3, 4])
    chosen = set(_keys(panel.page_rows.iloc[[1, 3, 4]]))
    assert set(panel.value.keys) == chosen and panel.selected_count == 3
    assert "3 selected" in panel.status.value
    panel.sort_by("bc_record_id", descending=False)
    assert set(panel.value.keys) == chosen
    # wherever the chosen records are now, their boxes (and only theirs) are ticked
    seen = 0
    for page in range(panel.pages):
        panel.go_to_page(page)
        for i, key in enumerate(_keys(panel.page_rows)):
            assert panel.checkboxes[i].value == (key in chosen)
            seen += key in chosen
    assert seen == 3
    # unticking removes exactly that record
    panel.select_keys([next(iter(chosen))], selected=False)
    assert panel.selected_count == 2


def test_select_page_then_all_matching_is_kept_as_the_filter(ws: Workspace) -> None:
    panel = TriagePanel(ws, page_size=10)
    panel.set_filters(state="skipped", mapping="CUSTOMER")
    n = count_records(ws, Selection(state="skipped", mapping="CUSTOMER"))
    assert panel.total == n > 10
    panel.select_page()
    assert panel.selected_count == 10 and len(panel.value.keys) == 10
    panel.select_all_matching()
    sel = panel.value
    assert sel.keys is None and sel.state == "skipped" and sel.mapping == "CUSTOMER"
    assert panel.selected_count == n and f"All {n:,} matching" in panel.status.value
    assert all(cb.value and cb.disabled for cb, box in zip(panel.checkboxes, panel.rows) if box.layout.display != "none")
    panel.next_page()  # paging does not turn it into keys
    assert panel.value == sel
    panel.set_filters(mapping="CONTACT")  # a new filter is a new set: "all matching" is dropped
    assert not panel.all_matching and panel.selected_count == 0


def test_filters_offer_the_facets_with_counts(ws: Workspace) -> None:
    panel = TriagePanel(ws, Selection(state="skipped"))
    mappings = facet_counts(ws, Selection(state="skipped"), "mapping_name")
    options = dict((v, label) for label, v in panel.filters_w["mapping"].options)
    for value, n in zip(mappings["value"], mappings["records"]):
        assert options[value] == f"{value} ({n:,})"
    sig = facet_counts(ws, Selection(state="skipped"), "signature")["value"].dropna().iloc[0]
    panel.filters_w["signature"].value = sig  # as a user picking it in the browser
    assert panel.filters.signature == sig
    assert panel.total == count_records(ws, Selection(state="skipped", signature=sig))
    with pytest.raises(SyncAnalysisError, match="Unknown filter"):
        panel.set_filters(colour="red")


# -- enablement ---------------------------------------------------------------------------------
def test_buttons_follow_bc_enablement_rules(ws: Workspace) -> None:
    panel = TriagePanel(ws, Selection(state="broken"))
    broken = records(ws, Selection(state="broken"), limit=None)
    one_side = broken[broken["bc_record_exists"] ^ broken["crm_record_exists"]]
    assert len(one_side)
    panel.select_keys(_keys(one_side.iloc[:1]))
    rules = act.enabled_actions(one_side.iloc[:1])
    assert rules["restore-records"] and rules["delete-records"] and not rules["retry"]
    for action in act.ACTIONS:
        assert panel.action_btns[action].disabled == (not rules[action]), action
    panel.clear_selection()
    both = records(ws, Selection(state="skipped"), limit=None)
    both = both[both["bc_record_exists"] & both["crm_record_exists"]].iloc[:2]
    panel.clear_fixed_keys()
    panel.set_filters(state="skipped")
    panel.select_keys(_keys(both))
    rules = act.enabled_actions(both)
    assert rules["retry"] and rules["synchronize"] and not rules["restore-records"]
    for action in act.ACTIONS:
        assert panel.action_btns[action].disabled == (not rules[action]), action
    with pytest.raises(SyncAnalysisError, match="not enabled"):
        panel.preview("restore-records")


def test_all_matching_enablement_matches_the_rules_on_every_row(ws: Workspace) -> None:
    for state in ("broken", None):
        panel = TriagePanel(ws)
        panel.set_filters(state=state)
        panel.select_all_matching()
        expected = act.enabled_actions(records(ws, panel.filters, limit=None))
        assert {a: panel.enabled[a] for a in act.ACTIONS} == {a: expected[a] for a in act.ACTIONS}
        assert not panel.enabled["sync-log"]


# -- preview, run, confirm --------------------------------------------------------------------
def test_preview_shows_the_plan_and_changes_nothing(ws: Workspace) -> None:
    panel = TriagePanel(ws, Selection(state="skipped", mapping="CUSTOMER"))
    panel.select_all_matching()
    before = _digest(ws)
    panel.action_btns["retry"].click()
    assert _digest(ws) == before
    expected = act.plan(ws, "retry", panel.value)
    assert panel.plan.counts == expected.counts
    assert "Preview" in panel.preview_html.value
    assert f"targets: {expected.counts['targets']:,}" in panel.preview_html.value
    assert not panel.run_btn.disabled and panel.run_btn.description.startswith("Run")


def test_retry_all_matching_by_clicks_changes_workspace_twin_and_audit(ws: Workspace) -> None:
    skipped = Selection(state="skipped")
    sig = facet_counts(ws, skipped, "signature")["value"].dropna().iloc[0]
    sel = skipped.replace(signature=sig)
    targets = records(ws, sel, limit=None)
    targets = targets[targets["bc_record_exists"] & targets["crm_record_exists"]]
    assert len(targets) and all(_twin_skipped(ws, targets))
    audit_before = len(act.audit_trail(ws, limit=1000))

    panel = TriagePanel(ws, page_size=25)
    panel.filters_w["state"].value = "skipped"
    panel.filters_w["signature"].value = sig
    panel.select_all_btn.click()
    assert panel.value.keys is None and panel.value.signature == sig
    panel.action_btns["retry"].click()
    panel.run_btn.click()

    assert panel.message.value == "", panel.message.value
    assert panel.result is not None and "Result" in panel.result_html.value
    assert panel.progress.value == 1 and panel.progress.bar_style == "success"
    # the workspace and the twin agree: the records are no longer skipped
    after = records(ws, Selection(keys=tuple(_keys(targets))), limit=None)
    assert not after["skipped"].any()
    assert not any(_twin_skipped(ws, targets))
    assert count_records(ws, sel) == 0 and panel.total == 0
    trail = act.audit_trail(ws, limit=1000)
    assert len(trail) > audit_before
    assert trail["action"].iloc[0] == "retry" and ">Retry<" in panel.audit_html.value


def test_retry_all_asks_before_reaching_records_the_list_does_not_show(ws: Workspace) -> None:
    panel = TriagePanel(ws, page_size=25)
    panel.set_filters(state="skipped", mapping="CUSTOMER")
    before = _digest(ws)
    panel.action_btns["retry-all"].click()
    outside = len(panel.plan.targets) - panel.total
    assert outside > 0 and panel.run_btn.description.endswith("…")
    panel.run_btn.click()
    assert panel.result is None and _digest(ws) == before  # not run yet: it asks
    text = re.sub(r"<[^>]+>", " ", panel.confirm_html.value)
    assert "whole company" in text and f"{outside:,} of its {len(panel.plan.targets):,} target(s) are not in the list" in text
    panel.confirm_btn.click()
    assert panel.result is not None and panel.result.counts["changed"] > 0


def test_destructive_actions_wait_for_confirmation(ws: Workspace) -> None:
    destructive = sorted(a for a in act.DESTRUCTIVE if a in act.ACTIONS)
    assert destructive
    broken = records(ws, Selection(state="broken"), limit=None)
    one_side = broken[broken["bc_record_exists"] ^ broken["crm_record_exists"]].iloc[:1]
    action = "delete-records"
    assert action in destructive
    panel = TriagePanel(ws, Selection(state="broken"))
    panel.select_keys(_keys(one_side))
    before = _digest(ws)
    panel.action_btns[action].click()
    panel.run_btn.click()
    assert panel.confirm_box.layout.display != "none" and "cannot be undone" in panel.confirm_html.value
    assert panel.result is None and _digest(ws) == before
    panel.cancel_btn.click()
    assert panel.confirm_box.layout.display == "none" and _digest(ws) == before
    assert panel.run(action) is None and _digest(ws) == before  # the method asks as well
    panel.confirm_btn.click()
    assert panel.result is not None and _digest(ws) != before
    gone = ws.con.execute("SELECT count(*) FROM couplings WHERE integration_id = ?",
                          [one_side["integration_id"].iloc[0]]).fetchall()[0][0]
    assert gone == 0


def test_synchronize_passes_the_chosen_direction(ws: Workspace) -> None:
    both = records(ws, Selection(state="skipped", mapping="CUSTOMER"), limit=None)
    both = both[both["bc_record_exists"] & both["crm_record_exists"]].iloc[:3]
    panel = TriagePanel(ws, Selection(state="skipped", mapping="CUSTOMER"))
    assert panel.direction_w.disabled
    panel.select_keys(_keys(both))
    direction = act.DIRECTIONS[1]
    p = panel.preview("synchronize", direction)
    assert not panel.direction_w.disabled and panel.direction_w.value == direction
    expected = act.plan(ws, "synchronize", panel.value, direction=direction)
    assert p.counts == expected.counts
    assert p.targets.reset_index(drop=True).equals(expected.targets.reset_index(drop=True))


def test_errors_of_actions_are_shown_in_the_panel(ws: Workspace) -> None:
    panel = TriagePanel(ws)
    panel.action_btns["retry"].disabled = False  # a stale button in the browser
    panel.action_btns["retry"].click()  # nothing selected: the panel says why instead of failing silently
    assert "not enabled" in panel.message.value
    assert panel.plan is None


# -- escaping ---------------------------------------------------------------------------------
def test_markup_in_data_is_escaped_everywhere(ws: Workspace) -> None:
    panel = TriagePanel(ws, Selection(search="<script>"))
    assert panel.total >= 1
    texts = "\n".join(_html_values(panel.layout))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in texts
    panel2 = TriagePanel(ws, Selection(search="Bold & Co"))
    assert panel2.total == 1
    panel2.select_page()
    panel2.preview("retry")
    log = panel2.open_log()
    texts += "\n".join(_html_values(panel2.layout) + _html_values(log.layout))
    assert "&lt;b&gt;Bold &amp; Co&lt;/b&gt;&lt;img src=x onerror=alert(2)&gt;" in texts
    for raw in ("<script>alert", "<b>bold", "<b>Bold", "<img src=x"):
        assert raw not in texts


def test_html_helpers_escape_cells_headers_and_tooltips() -> None:
    frame = pd.DataFrame({"<th>": ['"><script>x</script>', None], "n": [1, 2]})
    out = h.table(frame, row_classes=["sa-diff", ""])
    assert "<script>" not in out and "<th>&lt;th&gt;</th>" in out
    assert 'title="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in out
    assert out.count('<tr class="sa-diff">') == 1
    assert h.esc(float("nan")) == "" and h.esc(pd.NaT) == ""
    assert "Showing 1 of 2 rows" in h.table(frame, max_rows=1)


# -- synchronization log --------------------------------------------------------------------
def test_sync_log_panel_shows_the_library_log(ws: Workspace) -> None:
    rec = records(ws, Selection(state="skipped"), limit=1).iloc[0]
    key = {"environment": rec["environment"], "company": rec["company"], "bc_record_id": rec["bc_record_id"]}
    panel = SyncLogPanel(ws, **key)
    log = act.sync_log(ws, **key)
    assert panel.value == key
    assert len(log.errors) >= 1
    assert panel.errors_html.value.count("<tr>") == min(len(log.errors), 200) + 1  # + header row
    assert h.esc(rec["bc_record_id"]) in panel.title.value
    if log.versions is not None:
        marked = panel.versions_html.value.count('<tr class="sa-diff">')
        assert marked == int(log.versions["differs"].sum())


def test_triage_opens_the_log_of_one_selected_record(ws: Workspace) -> None:
    panel = TriagePanel(ws, Selection(state="skipped"))
    assert panel.action_btns["sync-log"].disabled
    rows = panel.page_rows
    i = int(rows["bc_record_exists"].fillna(True).to_numpy().argmax())
    panel.select_rows([i])
    assert not panel.action_btns["sync-log"].disabled
    panel.action_btns["sync-log"].click()
    assert panel.log_panel is not None and panel.log_box.children == (panel.log_panel.layout,)
    assert panel.log_panel.value["bc_record_id"] == rows["bc_record_id"].iloc[i]
    panel.select_rows([i + 1])
    assert panel.action_btns["sync-log"].disabled



# -- dashboard --------------------------------------------------------------------------------
def test_dashboard_kpis_charts_findings_and_triage_from_a_finding(ws: Workspace) -> None:
    from syncanalysis.analysis.findings import diagnose, kpis
    from syncanalysis.widgets import Dashboard

    dash = Dashboard(ws, page_size=20)
    figures = kpis(ws)
    assert f"<b>{figures['errors']:,}</b>" in dash.kpi_html.value
    assert f"<b>{figures['skipped']:,}</b>" in dash.kpi_html.value
    assert dash.images[0].value[:8] == b"\x89PNG\r\n\x1a\n"  # the shown tab is drawn
    assert dash.images[1].value == b""  # the others only when opened
    dash.tabs.selected_index = 1
    assert dash.images[1].value[:4] == b"\x89PNG"
    findings = diagnose(ws)
    assert len(dash.shown) == len(findings) == len(dash.findings_box.children)

    dash.set_filters(mapping="CUSTOMER")
    expected = [f for f in findings if f.mapping in (None, "CUSTOMER")]
    assert [f.code for f in dash.shown] == [f.code for f in expected]
    assert f"{figures['errors']:,}" in dash.kpi_html.value  # KPIs are per environment/company/window

    i = next(i for i, f in enumerate(dash.shown) if f.selection is not None and f.action == "Retry")
    finding = dash.shown[i]
    dash.findings_box.children[i].children[0].click()  # "Open in triage"
    panel = dash.triage
    assert dash.message.value == "", dash.message.value
    assert panel is not None and panel.all_matching and panel.value == finding.selection
    assert panel.total == count_records(ws, finding.selection)
    assert panel.action_btns["retry"].button_style == "warning"
    assert dash.triage_box.children[-1] is panel.layout


def test_finding_lines_are_escaped() -> None:
    from syncanalysis.analysis.findings import Finding
    from syncanalysis.widgets.dashboard import finding_html

    f = Finding(code="ERROR_BURST", severity="high", title="<script>alert(1)</script>", environment="E",
                company="C", mapping="<b>M</b>", start=None, end=None, ongoing=True, affected=3,
                remedy="Fix <img src=x onerror=alert(2)>", action="Retry")
    out = finding_html(f)
    assert "<script>" not in out and "<img" not in out and "<b>M</b>" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "&lt;img src=x onerror=alert(2)&gt;" in out


def test_running_twice_reports_no_ops_and_read_only_previews_only(ws: Workspace, tmp_path: Path) -> None:
    rows = records(ws, Selection(state="skipped"), limit=None)
    rows = rows[rows["bc_record_exists"] & rows["crm_record_exists"]].iloc[:4]
    panel = TriagePanel(ws, Selection(keys=tuple(_keys(rows))))  # listed by key: still listed after the run
    panel.select_all_matching()
    first = panel.run("retry")
    assert first.counts["changed"] == 4 and panel.selected_count == 4
    second = panel.run("retry")  # the same keys again: nothing left to un-skip
    assert second.counts["changed"] == 0 and second.counts["no_op"] == 4
    assert "no op: 4" in panel.result_html.value

    ws.con.execute("CHECKPOINT")
    shutil.copyfile(ws.path, tmp_path / "ro.duckdb")
    with Workspace(tmp_path / "ro.duckdb", read_only=True) as ro:
        view = TriagePanel(ro, Selection(state="skipped"))
        view.select_page()
        before = _digest(ro)
        view.action_btns["retry"].click()
        assert view.plan is not None and view.plan.counts["will_change"] > 0
        view.run_btn.click()
        assert "read-only" in view.message.value and view.result is None and _digest(ro) == before


def test_records_an_action_moves_out_of_the_list_are_unselected_and_a_reload_drops_the_preview(
        ws: Workspace) -> None:
    rows = records(ws, Selection(state="skipped"), limit=None)
    rows = rows[rows["bc_record_exists"] & rows["crm_record_exists"]].iloc[:4]
    panel = TriagePanel(ws, Selection(state="skipped"))
    panel.select_keys(_keys(rows))
    panel.run("retry")  # un-skipped: no longer in a list of skipped records
    assert panel.selected_count == 0 and "4 selected record(s) unselected: no longer in the list" in panel.status.value
    assert all(b.disabled for a, b in panel.action_btns.items() if a not in act.WHOLE_COMPANY)
    panel.select_page()
    panel.preview("retry")
    assert panel.plan is not None and not panel.run_btn.disabled
    panel.reload()  # the data may have changed: the preview no longer applies
    assert panel.plan is None and panel.run_btn.disabled and panel.preview_html.value == ""


def test_the_run_button_runs_only_a_plan_the_user_has_seen(ws: Workspace) -> None:
    panel = TriagePanel(ws, Selection(state="skipped"))
    panel.select_page()
    panel.action_btns["retry"].click()
    seen = panel.plan
    # the workspace changes behind the preview (another panel, a load, a twin run): Run shows the new plan first
    with ws.transaction() as con:
        con.execute("UPDATE couplings SET skipped = false WHERE integration_id = "
                    "(SELECT integration_id FROM couplings WHERE skipped LIMIT 1)")
    before = _digest(ws)
    panel.run_btn.click()
    assert panel.result is None and panel.plan is not seen and _digest(ws) == before
    assert "Run again to apply it" in panel.message.value
    panel.run_btn.click()  # now it is the plan on screen
    assert panel.result is not None and panel.result.counts["changed"] > 0


def test_set_up_coupling_takes_the_row_typed_in_couple_to_for_one_record(ws: Workspace) -> None:
    skipped = records(ws, Selection(state="skipped", mapping="CUSTOMER"), limit=None)
    skipped = skipped[skipped["bc_record_exists"] & skipped["crm_record_exists"]]
    panel = TriagePanel(ws, Selection(state="skipped", mapping="CUSTOMER"))
    panel.select_keys(_keys(skipped.iloc[:2]))
    assert panel.action_btns["set-up-coupling"].disabled and panel.couple_to_w.disabled  # one record at a time
    panel.clear_selection()
    panel.select_keys(_keys(skipped.iloc[:1]))
    assert not panel.action_btns["set-up-coupling"].disabled and not panel.couple_to_w.disabled
    with pytest.raises(SyncAnalysisError, match="type the id of the Dataverse row"):
        panel.preview("set-up-coupling")
    panel.couple_to_w.value = str(skipped["crm_id"].iloc[1])  # the row coupled to another customer
    p = panel.preview("set-up-coupling")
    assert p.targets["status"].tolist() == ["refused"] and "already coupled to" in p.targets["reason"].iloc[0]
    assert "already coupled to" in panel.preview_html.value


def test_a_filter_value_beyond_the_dropdowns_largest_shows_its_real_count(ws: Workspace, monkeypatch) -> None:
    import syncanalysis.widgets.triage as triage

    monkeypatch.setattr(triage, "FACET_OPTIONS", 2)  # the dropdown offers the 2 largest signatures
    sql, params = records_relation(ws, None)
    counts = ws.con.execute(f"SELECT signature, count(*) FROM ({sql}) WHERE signature IS NOT NULL GROUP BY ALL "
                            "ORDER BY 2, 1", params).fetchall()
    assert len(counts) > 2
    panel = TriagePanel(ws)
    sig, n = counts[0]  # the least frequent
    assert sig not in [v for _, v in panel.filters_w["signature"].options]
    panel.set_filters(signature=sig)
    label = next(lab for lab, v in panel.filters_w["signature"].options if v == sig)
    assert label.endswith(f"({n:,})") and panel.total == n
