"""From the page exports alone (5338, 5339, 5333, in English and French): records, findings, coverage, actions.

The page exports are those of ``sample_data/pages`` (what BC's pages export: no GUIDs, no record ids).
Their line counts are read with python-calamine, not through the loaders under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from syncanalysis import Workspace
from syncanalysis.actions import execute, plan, sync_log
from syncanalysis.actions.planfile import PlanFileBackend
from syncanalysis.analysis.coverage import coverage
from syncanalysis.analysis.findings import diagnose
from syncanalysis.analysis.records import Selection, count_records, facet_counts, records
from syncanalysis.analysis.signatures import ensure_signatures
from syncanalysis.sources import load_files
from syncanalysis.widgets import TriagePanel

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
TRUTH = SAMPLE / "ground_truth_incidents.csv"
SCOPE = {"environment": "PRODUCTION", "company": "CRONUS International Ltd."}
TOLERANCE = pd.Timedelta(minutes=30)
# the finding each planted incident is named by
CODES = {"salesperson-not-coupled": {"PARENT_NOT_COUPLED"}, "contact-company-not-coupled": {"ERROR_BURST",
         "PARENT_NOT_COUPLED"}, "deleted-in-dataverse": {"DELETED_BURST"}, "update-conflicts": {"CONFLICT_BURST"},
         "connection-disabled": {"CONNECTION_DISABLED"}, "throttling": {"TRANSIENT_ERRORS"},
         "currency-missing": {"PARENT_NOT_COUPLED"}, "uom-setup": {"PARENT_NOT_COUPLED"},
         "field-length": {"FIELD_LENGTH_BURST"}, "job-queue-on-hold": {"SYNC_STOPPED"}}
# page 5339 errors name no record: a record's retries cannot be told from new failures, so the start of a
# burst of a cause that keeps failing in the background is not the incident's (the finding spans it)
WINDOW_UNKNOWN = {"deleted-in-dataverse", "update-conflicts", "field-length"}


def _page_lines(lang: str) -> int:
    """Data lines of the page 5333 export (non-blank rows below the header), read with calamine."""
    path = next(p for p in (SAMPLE / "pages" / lang).glob("*.xlsx") if "coupl" in p.name.lower())
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    return sum(1 for r in rows[1:] if any(str(v).strip() for v in r))


@pytest.fixture(scope="module", params=["en", "fr"])
def pages(request) -> tuple[str, Workspace]:
    ws = Workspace()
    load_files(ws, sorted((SAMPLE / "pages" / request.param).glob("*.xlsx")), progress=False, **SCOPE)
    load_files(ws, [TRUTH], progress=False)
    ensure_signatures(ws)
    return request.param, ws


def test_every_page_5333_line_is_a_record_with_state_and_cause(pages):
    lang, ws = pages
    r = records(ws, limit=None)
    assert len(r) == _page_lines(lang) > 3000
    assert set(r["state"]) == {"skipped", "broken"}  # what page 5333 lists
    assert r["inferred"].all() and r["skipped"].all()
    assert not r["mapping_name"].str.startswith("TABLE ").any()  # BC's default mapping names
    shown = r[r["error_message"].notna()]
    assert len(shown) > 2000 and shown["cause"].notna().all() and shown["latest_error_on"].notna().all()
    # a broken line is one whose Dataverse row is gone: Restore/Delete Records are its actions
    assert (r.loc[r["state"] == "broken", "crm_record_exists"] == False).all()  # noqa: E712
    panel = TriagePanel(ws, page_size=25)
    assert panel.total == len(r) and len(panel.page_rows) == 25
    causes = facet_counts(ws, None, "cause")
    assert {"conflict", "deleted", "field-length", "not-coupled"} <= set(causes["value"])


def test_a_page_record_has_its_error_and_job_in_the_synchronization_log(pages):
    _, ws = pages
    r = records(ws, Selection(cause="deleted"), limit=1).iloc[0]
    log = sync_log(ws, environment=r.environment, company=r.company, bc_record_id=r.bc_record_id)
    assert len(log.errors) == 1 and log.errors["logged_at"].iloc[0] == r.latest_error_on
    assert len(log.jobs) == 1 and log.jobs["mapping_name"].iloc[0] == r.mapping_name  # the job of that time


def test_the_diagnosis_from_pages_recovers_each_planted_incident_as_one_finding(pages):
    _, ws = pages
    findings = diagnose(ws)
    truth = ws.sql('SELECT kind, mapping, start, "end" FROM incidents')
    assert len(findings) <= 2 * len(truth)
    for inc in truth.itertuples():
        same = [f for f in findings if f.code in CODES[inc.kind] and f.start is not None and f.end is not None
                and (f.mapping == inc.mapping or inc.mapping in f.evidence.get("per_mapping", {}))]
        if inc.kind in WINDOW_UNKNOWN:  # one finding whose window holds the incident
            hits = [f for f in same if pd.Timestamp(f.start) <= inc.start + TOLERANCE
                    and pd.Timestamp(f.end) >= inc.end - TOLERANCE]
            assert len(hits) == 1, (inc.kind, [(f.code, f.start, f.end) for f in same])
        else:
            hits = [f for f in same if abs(pd.Timestamp(f.start) - inc.start) <= TOLERANCE
                    and abs(pd.Timestamp(f.end) - inc.end) <= TOLERANCE]
            assert hits, (inc.kind, [(f.code, f.start, f.end) for f in same])
    # one root cause, one finding: the parents of one kind are one finding, not one per parent
    parents = [f for f in findings if f.code == "PARENT_NOT_COUPLED"]
    assert len({(f.evidence["parent_table"], f.evidence["parent_state"]) for f in parents}) == len(parents)
    assert sum(f.code == "SKIPPED_BACKLOG" for f in findings) == 1


def test_coverage_says_which_exports_are_missing_and_what_is_estimated(pages):
    _, ws = pages
    (c,) = coverage(ws)
    assert set(c.have) == {"page-5338", "page-5339", "page-5333"} and not c.complete
    assert {"table-5331", "table-5338", "table-5339", "mappings"} == set(c.missing)
    assert "GUIDs" in c.missing["table-5331"] and "watermarks" in c.missing["table-5331"]
    assert any("plan files" in e for e in c.estimates)
    from syncanalysis.report import render_report

    html = render_report(ws)
    assert "Missing exports" in html and "export table 5331 CRM Integration Record" in html


def test_actions_on_page_records_are_plan_files_with_page_5333_filters(pages, tmp_path):
    lang, ws = pages
    p = plan(ws, "restore-records", Selection(mapping="CUSTOMER", state="broken"))
    assert p.backend == "plan" and len(p.targets) > 100
    p.backend_impl = PlanFileBackend(tmp_path / f"plan-{lang}.json")
    result = execute(ws, p, who="test")
    doc = json.loads((tmp_path / f"plan-{lang}.json").read_text(encoding="utf-8"))
    step = doc["steps"][0]
    assert step["page_id"] == 5333 and step["bc_action"] == "Restore Records"
    assert step["batches"][0]["filter"].startswith("Table ID: 18; Description: C")
    assert result.counts["planned"] == len(p.targets)  # each line has exactly one record left: enabled


def test_table_exports_after_the_pages_refine_the_same_records(tmp_path):
    pages = sorted((SAMPLE / "pages" / "en").glob("*.xlsx"))
    tables = sorted((SAMPLE / "tables").glob("*.csv.gz"))
    first = Workspace()
    load_files(first, pages, progress=False, **SCOPE)
    from_pages = records(first, limit=None)
    reports = load_files(first, tables, progress=False, **SCOPE)
    both = Workspace()
    load_files(both, tables + pages, progress=False, **SCOPE)
    # no duplicates: the made-up couplings gave way to the table's, whatever the order of the loads
    assert first.count("couplings") == both.count("couplings") == count_records(both)
    assert first.sql("SELECT count(*) AS n FROM couplings WHERE fidelity = 1")["n"][0] == 0
    assert sum(r.tables.get("couplings").deleted for r in reports if "couplings" in r.tables) == len(from_pages)
    for w in (first, both):
        assert facet_counts(w, None, "state").to_dict("records") == facet_counts(both, None, "state").to_dict("records")
    # the records the pages showed are the table's skipped ones: same keys, same state
    after = records(first, limit=None)
    after = after[after["skipped"]]
    key = lambda f: set(zip(f["table_id"], f["bc_record_id"].fillna(f["crm_description"]), f["state"]))  # noqa: E731
    assert key(from_pages) == key(after)
    assert coverage(first)[0].complete


def test_page_records_with_a_table_5339_export_but_no_5331_are_listed_once():
    ws = Workspace()
    load_files(ws, [next((SAMPLE / "pages" / "en").glob("*Coupled*.xlsx")),
                    SAMPLE / "tables" / "Integration Synch. Job Errors.csv.gz"], progress=False, **SCOPE)
    r = records(ws, limit=None)
    assert len(r) == _page_lines("en") == len(r.drop_duplicates(["table_id", "integration_id"]))
    assert r["error_no"].notna().sum() > 2000  # the table's errors, found by record id, give the latest error
