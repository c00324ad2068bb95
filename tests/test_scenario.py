"""The demo scenario: clock, incidents as ground truth, BC-shaped error rows, determinism."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from syncanalysis import Workspace, bc
from syncanalysis.twin import default_mappings
from syncanalysis.twin.export import canonical_frames, page_frames, write_sample_data
from syncanalysis.twin.scenario import ScenarioConfig, Simulation

PLANTED = {"salesperson-not-coupled", "contact-company-not-coupled", "deleted-in-dataverse", "update-conflicts",
           "connection-disabled", "throttling", "currency-missing", "uom-setup", "field-length", "job-queue-on-hold"}


@pytest.fixture(scope="module")
def frames(short_sim):
    return canonical_frames(short_sim)


def test_default_mappings_use_bc_names_directions_and_options():
    m = {c.name: c for c in default_mappings()}
    assert {n: c.direction for n, c in m.items()} == {
        "SALESPEOPLE": bc.FROM_INTEGRATION, "CURRENCY": bc.TO_INTEGRATION, "UNIT OF MEASURE": bc.TO_INTEGRATION,
        "ITEM-PRODUCT": bc.TO_INTEGRATION, "CUSTOMER": bc.BIDIRECTIONAL, "VENDOR": bc.BIDIRECTIONAL,
        "CONTACT": bc.BIDIRECTIONAL}
    assert {c.deletion_resolution for c in m.values()} <= set(bc.DELETION_RESOLUTIONS)
    assert {c.update_resolution for c in m.values()} == set(bc.UPDATE_RESOLUTIONS)
    assert any(f.direction != c.direction for c in m.values() for f in c.fields)  # fields have their own


def test_every_planted_incident_is_in_the_ground_truth_and_the_history(short_sim, frames):
    inc = frames["incidents"]
    assert set(inc["kind"]) == PLANTED
    assert inc["start"].notna().all() and inc["end"].notna().all() and (inc["end"] >= inc["start"]).all()
    err = frames["job_errors"]
    jobs = frames["jobs"]
    for row in inc.itertuples():
        if row.kind in ("job-queue-on-hold", "connection-disabled"):
            gap = jobs[(jobs["start_datetime"] > row.start + pd.Timedelta(minutes=1)) & (jobs["start_datetime"] < row.end)]
            mappings = set(gap["mapping_name"])
            # sync stopped: no job of the held mapping (or of any mapping while disconnected)
            assert (row.mapping not in mappings) if row.kind == "job-queue-on-hold" else not mappings, row.kind
        else:
            in_window = err[(err["logged_at"] >= row.start) & (err["logged_at"] <= row.end)]
            assert len(row.affected_keys) > 0, row.kind
            keys = set(in_window["source_key"]) | set(in_window["destination_key"].dropna())
            assert set(row.affected_keys) <= keys, row.kind


def test_incident_errors_have_the_expected_texts(frames):
    text = frames["job_errors"]["error_message"]
    for pattern in [r"^Salesperson/Purchaser NEWSP must be coupled to a Dataverse row\.$",
                    r"^The Customer record cannot be updated because it is coupled to a deleted record\.$",
                    r"^Cannot update a record in the .* table\. The mapping between .* is bi-directional",
                    r"CrmCreate failed\. Principal user \(Id=.*, type=8\) is missing prvCreateAccount privilege",
                    r"^Cannot find the currency with the value 'NOK' in Dataverse\.$",
                    r"^Cannot create or update the currency NOK in Dataverse, because there is no exchange rate",
                    r"^Cannot find the unit group 'PALLET' in Dataverse\.$",
                    r"The length of the string is \d+, but it must be less than or equal to 100 characters",
                    r"must have a contact company that has a business relation",
                    r"(?:Number of requests exceeded|The operation timed out)"]:
        assert text.str.contains(pattern, regex=True).any(), pattern


def test_error_rows_are_shaped_like_table_5339(frames):
    err = frames["job_errors"]
    assert err["message"].str.len().max() <= 250 and err["error_message"].str.len().max() <= 2048
    assert (err["message"] == err["error_message"].str[:250]).all()
    assert err["exception_detail"].str.contains(r'\(CodeUnit \d+\)', regex=True).all()
    rid = re.compile(r"^[A-Za-z/ .]+: (\S+|\{[0-9A-F-]{36}\})$")
    assert err["source_record_id"].map(lambda s: bool(rid.match(s))).all()
    assert err["job_id"].isin(frames["jobs"]["job_id"]).all()


def test_job_queue_clock(frames):
    jobs = frames["jobs"].sort_values("start_datetime")
    sync = jobs[jobs["type"] == "Synchronization"]
    cust = sync[(sync["mapping_name"] == "CUSTOMER") & (sync["job_queue_log_entry_no"] > 0)]
    to, fr = (cust[cust["synch_direction"] == d] for d in (bc.TO_INTEGRATION, bc.FROM_INTEGRATION))
    # bidirectional: two jobs per job queue run, To first
    pairs = to.merge(fr, on="job_queue_log_entry_no", suffixes=("_to", "_from"))
    assert len(pairs) >= 0.9 * len(to) and (pairs["start_datetime_from"] >= pairs["finish_datetime_to"]).all()
    gaps = to["start_datetime"].diff().dt.total_seconds().div(60).dropna()
    assert gaps.median() == pytest.approx(30, abs=1)
    # idle mappings go on hold with an inactivity timeout: CURRENCY runs far less often
    cur = sync[sync["mapping_name"] == "CURRENCY"]
    assert len(cur) < len(to) / 5
    # foreground runs (entry no. 0) and one-off runs in one direction (an entry without its From pair)
    assert (sync["job_queue_log_entry_no"] == 0).sum() > 0
    assert (~to["job_queue_log_entry_no"].isin(fr["job_queue_log_entry_no"])).any()


def test_couplings_carry_both_watermarks_results_and_skips(frames):
    cp = frames["couplings"]
    assert cp["skipped"].any()
    assert set(cp["last_synch_result"].dropna()) <= {"Success", "Failure"}
    assert cp["last_synch_result"].isna().any()  # never synchronized from Dataverse: blank, stored as NULL
    assert (cp["last_synch_crm_result"] == "Failure").any() and (cp["last_synch_result"] == "Success").any()
    assert cp["last_synch_modified_on"].notna().all() and cp["last_synch_crm_modified_on"].notna().all()
    assert (~cp["crm_record_exists"]).any()  # accounts deleted in Dataverse leave broken couplings


def test_same_seed_same_history_other_seed_other_history():
    def digest(seed: int) -> str:
        sim = Simulation(ScenarioConfig(days=14, scale=0.05, seed=seed))
        sim.run()
        f = canonical_frames(sim)
        return hashlib.sha256(pd.util.hash_pandas_object(f["job_errors"].astype(str)).to_numpy().tobytes()
                              + pd.util.hash_pandas_object(f["jobs"].astype(str)).to_numpy().tobytes()).hexdigest()

    assert digest(3) == digest(3) != digest(4)


def test_sample_files_are_byte_identical_for_a_seed(tmp_path):
    outs = []
    for d in ("a", "b"):
        sim = Simulation(ScenarioConfig(days=14, scale=0.05, seed=5))
        sim.run()
        paths = write_sample_data(sim, tmp_path / d)
        outs.append({p.relative_to(tmp_path / d): p.read_bytes() for p in paths})
    assert outs[0] == outs[1]
    assert any(str(p).endswith(".xlsx") for p in outs[0]) and any(str(p).endswith(".csv.gz") for p in outs[0])


def test_french_page_exports_use_french_captions_and_dates(short_sim, frames):
    fr = page_frames(short_sim, frames, "fr")
    jobs = fr["Integration Synchronization Jobs"]
    assert list(jobs.columns)[:3] == ["Date/heure de début", "Date/heure de fin", "Durée"]
    assert jobs["Date/heure de début"].str.match(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}$").all()
    assert jobs["Sens"].str.contains(" vers ").any() and "Inséré" in jobs.columns
    en = page_frames(short_sim, frames, "en")["Integration Synchronization Jobs"]
    assert en["Direction"].isin(["Customer to Dataverse Account.", "Dataverse Account to Customer."]).any()
    skipped = page_frames(short_sim, frames, "en")["Coupled Data Synchronization Errors"]
    assert len(skipped) == int(frames["couplings"]["skipped"].sum())
    assert (skipped["Error Message"] != "").mean() > 0.9


def test_loading_the_twin_into_a_workspace_is_idempotent(short_sim, frames):
    ws = Workspace()
    first = ws.ingest(frames, source="twin", kind="twin")
    assert first.tables["job_errors"].inserted == len(frames["job_errors"])
    assert ws.ingest(frames, source="twin", kind="twin").rows_inserted == 0
    assert ws.count("loads") == 1
    assert np.array_equal(ws.query("incidents", limit=None)["kind"].sort_values().to_numpy(),
                          frames["incidents"]["kind"].sort_values().to_numpy())


def test_advancing_with_activity_in_short_steps_creates_no_phantom_records():
    sim = Simulation(ScenarioConfig(days=14, scale=0.1, seed=3))
    sim.run()

    def nowhere() -> int:
        return sum(int((~t.exists[0] & ~t.exists[1] & ~t.coupled).sum()) for t in sim.world.tables.values())

    before, jobs = nowhere(), len(sim.world.jobs)
    for _ in range(48):  # two days, an hour at a time: every record planned then is created by midnight
        sim.advance(1, activity=True)
    new = sim.world.jobs[jobs:]
    assert nowhere() == before
    assert sum(j.counts.get("modified", 0) + j.counts.get("inserted", 0) for j in new) > 0  # users did edit
