"""records(): page 5333's Error Message / Failed On exactly as BC's GetLatestError computes them (spec §5.1),
beside the record's latest error of either direction (issue 12)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from syncanalysis import Workspace
from syncanalysis.analysis.records import records
from syncanalysis.sources.files import load_files

ROOT = Path(__file__).resolve().parents[1]
JOB_TO, JOB_FROM, JOB_GONE = (str(uuid.UUID(int=i)) for i in (1, 2, 3))


def _id(i: int) -> str:
    return str(uuid.UUID(int=1000 + i))


def _workspace() -> Workspace:
    """Four couplings of customers, each a case of GetLatestError."""
    ws = Workspace()
    couplings = pd.DataFrame({
        "environment": "E", "company": "C", "table_id": 18, "integration_id": [_id(i) for i in range(5)],
        "crm_id": [_id(10 + i) for i in range(5)], "skipped": True,
        "bc_record_exists": [True, True, False, True, True], "crm_record_exists": [True, True, True, True, False],
        "bc_record_id": [f"Customer: C{i}" for i in range(5)],
        # 0: its last job to Dataverse failed for it; 1: that job did not, its last job from Dataverse did;
        # 2: like 0, but the customer is gone; 3: no job known (history from page exports); 4: only a job from
        # Dataverse, which failed for it, and the account is gone
        "last_synch_crm_job_id": [JOB_TO, JOB_TO, JOB_TO, None, None],
        "last_synch_job_id": [None, JOB_FROM, None, None, JOB_FROM], "last_synch_crm_result": "Failure"})
    errors = pd.DataFrame({
        "environment": "E", "company": "C", "error_no": [1, 2, 3, 4, 5],
        "job_id": [JOB_TO, JOB_FROM, JOB_TO, JOB_GONE, JOB_FROM],
        "logged_at": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 10:05", "2026-01-01 10:01", "2026-01-01 09:00",
                                     "2026-01-01 10:06"]),
        "source_record_id": ["Customer: C0", "Dataverse Account: {x}", "Customer: C2", "Customer: C3",
                             "Dataverse Account: {y}"],
        "destination_record_id": ["", "Customer: C1", "", "", "Customer: C4"],
        "source_table": ["Customer", "Dataverse Account", "Customer", "Customer", "Dataverse Account"],
        "message": [("To failed " * 30)[:250], "From failed", "Gone failed", "Old", "Account gone"],
        "error_message": ["To failed " * 30, "From failed", "Gone failed", "Old", "Account gone"]})
    page = pd.DataFrame({"environment": "E", "company": "C", "table_id": [18], "description": ["C3"],
                         "coupled_to": ["Firm 3"], "error_message": ["What the page showed"],
                         "failed_on": pd.to_datetime(["2026-01-02 08:00"]), "integration_id": [_id(3)]})
    ws.ingest({"couplings": couplings, "job_errors": errors, "skipped_records": page}, source="t", kind="test")
    return ws


def test_error_message_is_the_pages_and_latest_error_is_either_directions():
    got = records(_workspace(), limit=None).set_index("bc_record_id")
    # the 5339 Message (250 characters) of the error the Last Synch. CRM Job logged for the record
    assert got.loc["Customer: C0", "error_message"] == ("To failed " * 30)[:250]
    assert got.loc["Customer: C0", "latest_error"] == "To failed " * 30  # the full Error Message
    assert got.loc["Customer: C0", "failed_on"] == pd.Timestamp("2026-01-01 10:00")
    # Last Synch. CRM Job ID is set, so BC looks no further: blank, though the job from Dataverse failed
    assert pd.isna(got.loc["Customer: C1", "error_message"]) and pd.isna(got.loc["Customer: C1", "failed_on"])
    assert got.loc["Customer: C1", "latest_error"] == "From failed"
    # a job to Dataverse finds no error once the BC record is gone (BC looks the record up first)
    assert pd.isna(got.loc["Customer: C2", "error_message"]) and got.loc["Customer: C2", "latest_error"] == "Gone failed"
    # no job known: what the loaded page export showed
    assert got.loc["Customer: C3", "error_message"] == "What the page showed"
    assert got.loc["Customer: C3", "latest_error"] == "Old"
    # a job from Dataverse finds no error once the Dataverse row is gone
    assert pd.isna(got.loc["Customer: C4", "error_message"]) and got.loc["Customer: C4", "latest_error"] == "Account gone"


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_page_5333_from_the_table_exports_is_what_the_page_export_shows(lang):
    """Two independent computations agree on the demo: page 5333's Error Message built in SQL from the table
    exports (5331 + 5339) equals, on every line, the one the twin wrote into the page export."""
    ws = Workspace()
    load_files(ws, [ROOT / "sample_data" / "tables", ROOT / "sample_data" / "pages" / lang], progress=False)
    page = ws.sql("SELECT integration_id, error_message FROM skipped_records")
    assert len(page) > 1000 and page["integration_id"].notna().all()
    ours = records(ws, limit=None)[["integration_id", "error_message"]]
    both = page.merge(ours, on="integration_id", suffixes=("_page", "_ours"))
    assert len(both) == len(page)
    assert (both["error_message_page"].fillna("") == both["error_message_ours"].fillna("")).all()
    assert (both["error_message_page"].fillna("") == "").sum() > 100  # BC's blank lines are blank here too


def test_T150_page_lines_link_by_the_records_primary_key_values_and_by_coupled_to(tmp_path):
    """T150 GetRecDescriptionForComplexPK: a line's Description is the BC record's primary-key values joined by
    commas (``Invoice,1001,10000`` for a Sales Line), as BC formats a RecordId after its table; a line whose
    BC record is gone has a blank Description and links by Coupled To instead."""
    ws = Workspace()
    couplings = pd.DataFrame({
        "environment": "E", "company": "C", "table_id": [37, 18, 18],
        "integration_id": [_id(50), _id(51), _id(52)], "crm_id": [_id(60), _id(61), _id(62)],
        "bc_record_id": ["Sales Line: Invoice,1001,10000", "Customer: 10000", None],
        "crm_description": [None, "Adatum", "Gone Firm"], "skipped": True})
    ws.ingest({"couplings": couplings}, source="t", kind="test")
    page = tmp_path / "Coupled Data Synchronization Errors.csv"
    page.write_text(
        "Table ID,Table Name,Description,Record Exists,Coupled To,Coupled Record Exists,Error Message,Failed On\n"
        "37,Sales Line,\"Invoice,1001,10000\",Yes,SO-1,Yes,x,1/2/2026 10:00:00 AM\n"
        "18,Customer,,No,Gone Firm,Yes,y,1/2/2026 10:01:00 AM\n"
        "18,Customer,,No,Another Gone Firm,Yes,z,1/2/2026 10:02:00 AM\n", encoding="utf-8")
    load_files(ws, [page], environment="E", company="C", progress=False)
    got = ws.sql("SELECT description, coupled_to, CAST(integration_id AS VARCHAR) AS i FROM skipped_records "
                 "ORDER BY coupled_to").fillna("none")
    assert got.to_dict("records") == [
        {"description": "", "coupled_to": "Another Gone Firm", "i": "none"},  # two blank Descriptions both kept
        {"description": "", "coupled_to": "Gone Firm", "i": _id(52)},
        {"description": "Invoice,1001,10000", "coupled_to": "SO-1", "i": _id(50)}]
