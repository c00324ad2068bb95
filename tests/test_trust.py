"""What to fix first, and a triage a consultant can trust: exact selections, truthful previews, handover.

In-process widget and library tests on a small twin (21 days): findings open the triage on exactly
their records, rank what is happening now first, previews predict failures and name what a
destructive action deletes, a filter change never leaves an invisible selection behind.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import markupsafe
import pytest

from syncanalysis import actions as act
from syncanalysis.analysis.findings import diagnose, kpis, top_fixes
from syncanalysis.analysis.records import Selection, count_records, facet_counts, records
from syncanalysis.analysis.signatures import assign_signatures
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish
from syncanalysis.widgets import Dashboard, TriagePanel
from syncanalysis.workspace import Workspace

SYMPTOMS = {"SKIPPED_BACKLOG", "BROKEN_COUPLINGS", "RETRY_WITHOUT_FIX", "HIGH_FAILURE_RATE", "SLOW_RUNS",
            "UNFINISHED_JOBS"}


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "base.duckdb"
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    with Workspace(path) as ws:
        publish(ws, sim, scenario="trust")
        assign_signatures(ws)
    return path


@pytest.fixture
def ws(base_db: Path, tmp_path: Path):
    path = tmp_path / "ws.duckdb"
    shutil.copyfile(base_db, path)
    with Workspace(path) as workspace:
        yield workspace


@pytest.fixture(scope="module")
def findings(base_db: Path):
    with Workspace(base_db, read_only=True) as ws:
        return diagnose(ws)


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


# -- what to fix first ------------------------------------------------------------------------------
def test_findings_rank_what_is_happening_now_first_with_records_counted(findings) -> None:
    assert findings[0].status == "now" and findings[0].code not in SYMPTOMS and findings[0].now > 0
    status = [f.status for f in findings]
    assert status == sorted(status, key=lambda s: s != "now")  # now first, then what is over
    over = {f.code for f in findings if f.status == "over"}
    assert {"CONNECTION_DISABLED", "SYNC_STOPPED"} <= over  # they ended long before the history ends
    causes_now = [f for f in findings if f.status == "now" and f.code not in SYMPTOMS]
    assert [f.now for f in causes_now] == sorted((f.now for f in causes_now), reverse=True)
    # the blank Resolve Update Conflicts: one finding, with the burst, the steady failures and the retries
    conflict = next(f for f in findings if f.code == "NO_CONFLICT_RULE")
    assert conflict is findings[0] and "CONFLICT_BURST" in conflict.evidence["merged"]
    assert conflict.evidence["share_of_errors"] > 0.2
    # one root cause, one finding: a mapping's cause appears once outside separate bursts
    seen = [(f.environment, f.company, f.mapping, f.evidence.get("cause")) for f in findings
            if f.code in {"NO_CONFLICT_RULE", "NO_DELETION_RULE", "CHRONIC_ERRORS", "RETRY_WITHOUT_FIX"}]
    assert len(seen) == len(set(seen))


def test_top_fixes_are_at_most_five_causes_blocking_records_now(findings, base_db: Path) -> None:
    from syncanalysis.cli import format_top_fixes
    from syncanalysis.report import render_report

    fixes = top_fixes(findings)
    assert 1 <= len(fixes) <= 5
    by_id = {f.id: f for f in findings}
    for t in fixes:
        f = by_id[t.finding]
        assert f.status == "now" and 0 < t.blocked <= f.now and t.fix and f.code not in SYMPTOMS
    # each record blocked now is counted once, under the first fix that blocks it
    behind = set().union(*(by_id[t.finding].now_keys for t in fixes))
    assert sum(t.blocked for t in fixes) == len(behind) and fixes[0].blocked == by_id[fixes[0].finding].now
    assert fixes[0].cause == "Resolve Update Conflicts is blank"
    assert "'Send data update to integration table' (BC wins)" in fixes[0].fix  # page 5335's caption
    text = format_top_fixes(findings, "ws.duckdb")
    assert text.startswith("Top fixes") and f"--finding {fixes[0].finding}" in text
    assert len([ln for ln in text.splitlines() if re.match(r"^\d\. ", ln)]) == len(fixes)
    with Workspace(base_db, read_only=True) as ws:
        html = render_report(ws, findings=findings)
    box = html.index('class="sa-top-fixes"')
    assert box < html.index("Findings (") and box < html.index("How to read this")  # first after the title
    shown = html[box:html.index("</div>", box)]
    assert shown.count("<li>") == len(fixes)
    for t in fixes:
        assert f"<b>{t.blocked:,}</b> records blocked now" in shown and f"<code>{t.finding}</code>" in shown


# -- selections that are exactly what they say ------------------------------------------------------
def test_a_finding_opens_the_triage_on_exactly_its_records_and_its_action_plans_them(ws: Workspace) -> None:
    dash = Dashboard(ws, page_size=10)
    fixes = top_fixes(dash.shown)
    assert dash.top_fixes_html.value.count("<li>") == len(fixes) and 1 <= len(fixes) <= 5
    assert all(f"{t.blocked:,}</b> records blocked now" in dash.top_fixes_html.value for t in fixes)
    opened = 0
    for i, f in enumerate(dash.shown):
        if f.selection is None:
            assert dash.findings_box.children[i].children[0].disabled  # nothing to open
            continue
        panel = dash.open_finding(i)
        assert panel.selected_count == panel.total == f.affected == count_records(ws, f.selection), f.code
        assert panel.total < count_records(ws, Selection(environment=f.environment, company=f.company))
        if f.action and f.action not in ("Retry All", "Find for Deleted"):
            slug = {v: k for k, v in act.CAPTIONS.items()}[f.action]
            assert act.plan(ws, slug, panel.value).counts["targets"] == f.affected, f.code
        opened += 1
    assert opened >= 8


def test_a_run_in_the_dashboards_triage_refreshes_the_diagnosis_and_panels_do_not_pile_up(ws: Workspace) -> None:
    dash = Dashboard(ws, page_size=10)
    i = next(i for i, f in enumerate(dash.shown) if f.action == "Retry" and f.selection is not None and f.now)
    first = dash.open_finding(i)
    def tables() -> set[str]:
        return {r[0] for r in ws.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}

    before = tables()
    dash.open_finding(i)  # the first panel is closed: its list tables are dropped
    assert first._base not in tables() and len(tables()) <= len(before)
    diagnosed, skipped = dash.findings, kpis(ws)["skipped"]
    dash.triage.preview("retry")
    result = dash.triage.run("retry")
    assert dash.message.value == "" and result.counts["changed"] > 0
    assert dash.findings is not diagnosed  # diagnosed again after the run
    now = kpis(ws)["skipped"]
    assert now < skipped and f"{now:,}" in dash.kpi_html.value


def test_a_filter_change_clears_the_selection_and_says_so(ws: Workspace) -> None:
    panel = TriagePanel(ws, page_size=10)
    panel.select_rows([0])
    ticked = panel.page_rows.iloc[0]
    assert panel.selected_count == 1
    other = next(m for m in panel.page_rows["mapping_name"].tolist() + ["CONTACT", "CUSTOMER"]
                 if m != ticked["mapping_name"])
    panel.set_filters(mapping=other)
    assert ticked["integration_id"] not in set(panel.page_rows["integration_id"].astype(str))
    assert panel.selected_count == 0 and "cleared" in panel.status.value
    assert all(b.disabled for a, b in panel.action_btns.items() if a not in act.WHOLE_COMPANY)
    with pytest.raises(Exception, match="nothing is selected"):
        panel.preview("retry")


def test_state_counts_add_up_and_the_skipped_filter_lists_skipped_rows_only(ws: Workspace) -> None:
    states = facet_counts(ws, None, "state")
    assert states["records"].sum() == count_records(ws)
    skipped = records(ws, Selection(state="skipped"), limit=None)
    assert len(skipped) and set(skipped["state"]) == {"skipped"}
    panel = TriagePanel(ws, page_size=10)
    panel.set_filters(state="skipped")
    assert set(panel.page_rows["state"]) == {"skipped"} and panel.total == len(skipped)


# -- previews that tell the truth -------------------------------------------------------------------
def test_retry_preview_predicts_failures_and_offers_fix_the_parents_first(ws: Workspace, findings) -> None:
    f = next(f for f in findings if f.code == "PARENT_NOT_COUPLED" and f.status == "now"
             and f.evidence["parent_state"] != "ok")
    panel = TriagePanel(ws, f.selection, select_all=True)
    p = panel.preview("retry")
    failing = p.targets[p.targets["prediction"].fillna("").str.startswith("will fail again")]
    assert len(failing) and failing["prediction"].str.contains("fix the parent first").all()
    assert failing["latest_parent"].notna().all()
    assert all(str(par) in text for par, text in zip(failing["latest_parent"], failing["prediction"]))
    html = _text(panel.preview_html.value)
    assert "Predicted outcome" in html and "will fail again" in html
    assert panel.parents_first_btn.layout.display != "none"
    panel.parents_first_btn.click()
    assert panel.message.value == "" and panel.plan.parameters["parents_first"] is True


def test_conflicts_fail_a_retry_again_and_a_synchronize_of_one_record_settles_them(ws: Workspace) -> None:
    conflicts = Selection(state="skipped", cause="conflict")
    retry = act.plan(ws, "retry", conflicts)
    changing = retry.targets[retry.targets["status"] == "change"]
    assert len(changing) and changing["prediction"].str.startswith("will fail again: changed in both apps").all()
    key = tuple(changing.iloc[0][["environment", "company", "table_id", "integration_id"]])
    one = act.plan(ws, "synchronize", Selection(keys=(key,)), direction="to-dataverse")
    assert list(one.targets["status"]) == ["change"]
    assert one.targets["prediction"].iloc[0].startswith("should synchronize: the chosen side overwrites")
    # several records: BC leaves out those changed on the other side, so nothing is predicted for them
    several = act.plan(ws, "synchronize", conflicts, direction="to-dataverse")
    refused = several.targets[several.targets["status"] == "refused"]
    assert len(refused) and refused["prediction"].isna().all()
    # on loaded history (a plan file for the admin) the same Synchronize is planned, and predicted as BC runs it
    planned = act.plan(ws, "synchronize", conflicts, direction="to-dataverse", backend="plan").targets
    planned = planned[planned["status"] == "change"]
    assert len(planned) > 1 and planned["prediction"].str.startswith("will be left out: changed in both apps").all()
    # records coupled to a deleted row: the blank Resolve Deletion Conflicts decides
    deleted = act.plan(ws, "retry-all", None).targets
    deleted = deleted[(deleted["status"] == "change") & (deleted["cause"] == "deleted")]
    assert len(deleted) and deleted["prediction"].str.startswith(
        "will fail again: coupled to a deleted record and Resolve Deletion Conflicts is blank").all()
    # once the mapping says which app wins, the next run settles the conflicts a Retry puts back
    ws.con.execute("UPDATE mappings SET update_conflict_resolution = 'Send Update to Integration' "
                   "WHERE name = ?", [changing["mapping_name"].iloc[0]])
    again = act.plan(ws, "retry", conflicts).targets
    again = again[(again["status"] == "change") & (again["mapping_name"] == changing["mapping_name"].iloc[0])]
    assert len(again) and again["prediction"].str.startswith(
        "should synchronize: Resolve Update Conflicts is 'Send Update to Integration' now").all()


def test_destructive_previews_name_what_they_delete_in_full_and_not_in_green(ws: Workspace, findings) -> None:
    f = next(f for f in findings if f.evidence.get("cause") == "deleted" and f.selection is not None)
    panel = TriagePanel(ws, f.selection)
    panel.select_page()
    p = panel.preview("delete-records")
    changed = p.targets[p.targets["status"] == "change"]
    assert len(changed) and p.destroys
    html = panel.preview_html.value
    assert "sa-destroys" in html and "cannot be undone" in html
    destroyed = changed["destroyed"].dropna()
    assert len(destroyed) == len(changed)
    start = html.index('class="sa-destroys"')
    box = html[start:html.index("</details>", start) if "sa-names" in html else html.index("</div>", start)]
    for text in destroyed:  # every deleted record is named, in full, in the box (inline or under "All N")
        assert str(markupsafe.escape(text)) in box
    assert ">Deleted</th>" in html  # and per row in the table
    assert re.search(r'sa-badge sa-bad">will change', html) and not re.search(r'sa-good">will change', html)
    assert panel.run("delete-records") is None  # waits for confirmation
    n = p.destroys["Business Central record"]
    confirm = _text(panel.confirm_html.value)
    assert f"delete {n:,} Business Central record(s) and their couplings" in confirm
    assert str(markupsafe.escape(destroyed.iloc[0])) in panel.confirm_html.value and "selection:" in confirm
    # the coupling-only actions on the same broken records: which record stays, and the coupling BC deletes
    remove = act.plan(ws, "remove-coupling", f.selection).targets
    remove = remove[remove["status"] == "change"]
    assert len(remove) and not remove["destroyed"].str.contains("both records stay").any()
    assert (remove["destroyed"] == "the coupling of " + remove["bc_record_id"] + " (the Business Central record "
            "stays)").where(remove["bc_record_exists"], True).all()
    restore = act.plan(ws, "restore-records", f.selection).targets
    restore = restore[restore["status"] == "change"]
    assert len(restore) and restore["destroyed"].str.endswith("to its deleted counterpart (a new one is made)").all()


# -- after a run, and the audit trail ----------------------------------------------------------------
def test_after_a_run_the_touched_records_are_one_click_away_and_the_audit_is_current(ws: Workspace,
                                                                                       monkeypatch) -> None:
    monkeypatch.setenv("SYNCANALYSIS_USER", "Ana Lopez (Contoso)")
    panel = TriagePanel(ws, page_size=10)
    panel.set_filters(state="skipped")
    panel.select_rows([0, 1, 2])
    res = panel.run("retry")
    assert res.counts["changed"] == 3 and panel.touched_btn.layout.display != "none"
    assert panel.total == count_records(ws, Selection(state="skipped"))  # they left the list
    panel.touched_btn.click()
    assert panel.message.value == "" and panel.total == 3 and "skipped" not in set(panel.page_rows["state"])
    assert "target(s) of action" in panel.fixed_html.value
    panel.clear_fixed_keys()
    listed = [v for _, v in panel.audit_pick_w.options]
    for _ in range(2):  # two more runs outside the panel (a notebook cell, the CLI): seen after reload()
        rec = records(ws, Selection(state="skipped"), limit=1)
        key = tuple(rec[["environment", "company", "table_id", "integration_id"]].astype({"integration_id": str})
                    .itertuples(index=False, name=None))
        act.execute(ws, act.plan(ws, "retry", Selection(keys=key)))
    assert [v for _, v in panel.audit_pick_w.options] == listed
    panel.reload()
    ids = [v for _, v in panel.audit_pick_w.options]
    newest = ws.con.execute("SELECT max(action_id) FROM actions").fetchall()[0][0]
    assert ids[0] == newest and ids[:3] == sorted(ids, reverse=True)[:3] and len(ids) == len(listed) + 2
    audit = panel.audit_html.value
    assert "Ana Lopez (Contoso)" in audit and "{&#34;" not in audit and '{"' not in audit
    assert "chosen record(s)" in _text(audit)


# -- readable lists -----------------------------------------------------------------------------------
def test_the_list_shows_the_inner_error_causes_by_title_and_utc_times(ws: Workspace) -> None:
    panel = TriagePanel(ws, page_size=25)
    panel.set_filters(cause="field-length")
    row = panel.row_html[0].value
    summary = re.search(r"<summary>(.*?)</summary>", row, re.S).group(1)
    assert "The length of the string is" in summary and "failed because of the following error" not in summary
    assert "failed because of the following error" in row  # the full text on expand
    assert "Value longer than the destination field" in row and ">field-length<" not in row
    assert "Failed On (UTC)" in panel.header.children[1].value
    labels = [label for label, _ in panel.filters_w["cause"].options]
    assert any(label.startswith("Value longer than the destination field (") for label in labels)


# -- handover: exports a consultant attaches to a ticket ----------------------------------------------
@pytest.mark.parametrize("language", ["en", "fr", "de"])
def test_the_panel_exports_the_selection_and_the_preview_in_bc_captions(ws: Workspace, findings, tmp_path: Path,
                                                                       language: str) -> None:
    from python_calamine import CalamineWorkbook

    from syncanalysis.export import column_header

    f = next(f for f in findings if f.code == "PARENT_NOT_COUPLED" and f.status == "now")
    panel = TriagePanel(ws, f.selection, select_all=True)
    out = panel.export("selection", tmp_path / "selection.xlsx", language=language)
    rows = CalamineWorkbook.from_path(str(out)).get_sheet_by_index(0).to_python()
    assert len(rows) - 1 == panel.selected_count == f.affected
    header = rows[0]
    assert column_header("bc_record_id", language) in header
    assert f"{column_header('failed_on', language)} (UTC)" in header
    got = {str(r[header.index(column_header("bc_record_id", language))]) for r in rows[1:]}
    assert got == set(records(ws, f.selection, limit=None)["bc_record_id"])
    panel.preview("retry")
    csv = panel.export("preview", tmp_path / "preview.csv", language=language)
    text = csv.read_text(encoding="utf-8-sig")
    assert "will fail again" in text and len(text.splitlines()) - 1 == len(panel.plan.targets)
    with pytest.raises(Exception, match="run an action first"):
        panel.export("result", tmp_path / "result.xlsx")
