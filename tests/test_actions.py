"""Resolution actions on the twin (syncanalysis.actions): BC's enablement, every action, its effect on the
next run, dry runs, audit, rollback, idempotence. Each test works on its own copy of a small workspace."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from syncanalysis import Workspace, bc
from syncanalysis import actions as act
from syncanalysis.analysis.records import Selection, records
from syncanalysis.twin import operations as ops
from syncanalysis.twin.model import BC, DV, FROM, TO
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import load_twin, publish

ENV, COMPANY = "PRODUCTION", "CRONUS International Ltd."
BLOCK_MSG = "Salesperson/Purchaser TESTSP must be coupled to a Dataverse row."


def build_base(path) -> dict:
    """A 21-day twin with planted situations, published into ``path``; returns the keys of each situation."""
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    w = sim.world
    sp, cu, it = w.table("SALESPEOPLE"), w.table("CUSTOMER"), w.table("ITEM-PRODUCT")
    # a new salesperson that is not coupled is assigned to five customers: they fail twice and become Skipped
    sp_row = sp.add(np.array(["TESTSP"], object), np.array(["Tess Sander"], object), bc_ids=w.new_ids(1),
                    dv_ids=w.new_ids(1), bc_exists=True, dv_exists=False, coupled=False, mod=sim.clock,
                    vals=np.ones((1, len(sp.config.fields)), np.int32),
                    lens=np.full((1, len(sp.config.fields)), 5, np.int16))[0]
    healthy = np.flatnonzero(cu.coupled & cu.exists[BC] & cu.exists[DV] & ~cu.skipped
                             & (cu.result[TO] == bc.RESULT_SUCCESS) & (cu.result[FROM] != bc.RESULT_FAILURE)
                             & (cu.parents["currency"] < 0))
    blocked, name_diff, credit_diff, bc_gone = healthy[:5], healthy[5:7], healthy[7:9], healthy[9:10]
    cu.parents["salesperson"][blocked] = sp_row
    cu.mod[BC][blocked] = sim.clock
    cu.by_integration[BC][blocked] = False
    # field values that differ without a new modification (nothing picks them up on its own)
    cu.vals[DV][name_diff, 0] += 7  # Name: a bidirectional field
    cu.vals[BC][credit_diff, 5] += 7  # Credit Limit (LCY): to Dataverse only
    items = np.flatnonzero(it.coupled & it.exists[BC] & it.exists[DV] & ~it.skipped)[:3]
    ops.delete_record(w, "ITEM-PRODUCT", None, BC, sim.clock, rows=items)
    ops.delete_record(w, "CUSTOMER", None, BC, sim.clock, rows=bc_gone)
    sim.wake("CUSTOMER")
    sim.advance(2)
    assert cu.skipped[blocked].all(), "planted customers did not become Skipped"
    with Workspace(path) as ws:
        publish(ws, sim, scenario="actions-test")
    dv_gone = np.flatnonzero(cu.coupled & cu.exists[BC] & ~cu.exists[DV])
    key = {"CUSTOMER": cu, "ITEM-PRODUCT": it}

    def rid(mapping: str, rows: np.ndarray) -> list[str]:
        return [f"{key[mapping].config.bc_caption}: {k}" for k in key[mapping].key[rows]]

    return {"blocked": rid("CUSTOMER", blocked), "name_diff": rid("CUSTOMER", name_diff),
            "credit_diff": rid("CUSTOMER", credit_diff), "bc_gone": rid("CUSTOMER", bc_gone),
            "items_gone": rid("ITEM-PRODUCT", items), "dv_gone": rid("CUSTOMER", dv_gone)}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("actions") / "base.duckdb"
    return SimpleNamespace(path=path, rids=build_base(path))


@pytest.fixture
def ws(base, tmp_path):
    copy = tmp_path / "ws.duckdb"
    shutil.copy(base.path, copy)
    with Workspace(copy) as w:
        yield w


def sel_of(ws, rids: list[str]) -> Selection:
    """A selection of explicit keys for BC record ids."""
    df = ws.con.execute(
        "SELECT environment, company, table_id, CAST(integration_id AS VARCHAR) FROM couplings "
        "WHERE bc_record_id IN (SELECT unnest(?))", [rids]).fetchall()
    assert len(df) == len(rids), f"not all of {rids} are coupled"
    return Selection(keys=tuple((e, c, int(t), i) for e, c, t, i in df))


def coupling(ws, rid: str) -> dict | None:
    df = ws.sql("SELECT * FROM couplings WHERE bc_record_id = ?", [rid])
    return None if df.empty else df.iloc[0].to_dict()


def snapshot(ws) -> tuple:
    """Everything an action may change: couplings, jobs, errors, the stored twin, loads."""
    return ws.con.execute(
        "SELECT (SELECT md5(string_agg(c::VARCHAR, '|' ORDER BY table_id, integration_id)) FROM couplings c), "
        "(SELECT count(*) FROM jobs), (SELECT count(*) FROM job_errors), (SELECT md5(state) FROM twin_state), "
        "(SELECT count(*) FROM loads)").fetchall()[0]


def twin_row(ws, mapping: str, rid: str):
    sim = load_twin(ws, ENV, COMPANY)
    t = sim.world.table(mapping)
    return t, int(np.flatnonzero(t.key == rid.split(": ", 1)[1])[0])


# -- enablement --------------------------------------------------------------------------------
def test_enablement_follows_which_records_exist():
    rows = pd.DataFrame({"bc_record_exists": [True, True, False, None],
                         "crm_record_exists": [True, False, False, True]})
    assert act.enabled_actions(rows.iloc[[0]]) == {
        "retry": True, "retry-all": True, "synchronize": True, "remove-coupling": True, "restore-records": False,
        "delete-records": False, "find-for-deleted": True, "set-up-coupling": True}
    one = act.enabled_actions(rows.iloc[[1]])
    assert one["restore-records"] and one["delete-records"] and not one["retry"] and not one["synchronize"]
    neither = act.enabled_actions(rows.iloc[[2]])
    assert neither["remove-coupling"] and not any(neither[a] for a in ("retry", "synchronize", "restore-records",
                                                                       "delete-records", "set-up-coupling"))
    assert act.enabled_actions(rows.iloc[[3]])["retry"]  # unknown existence (page export) counts as existing
    mixed = act.enabled_actions(rows)
    assert mixed["retry"] and mixed["restore-records"]  # a mixed selection is split, not disabled
    empty = act.enabled_actions(rows.iloc[:0])
    assert not empty["retry"] and not empty["remove-coupling"] and empty["retry-all"]


def test_mixed_selection_is_split_with_reasons_and_the_action_that_fits(ws, base):
    blocked, dv_gone, bc_gone = base.rids["blocked"][0], base.rids["dv_gone"][0], base.rids["bc_gone"][0]
    p = act.plan(ws, "retry", sel_of(ws, [blocked, dv_gone, bc_gone]))
    by = p.targets.set_index("bc_record_id")
    assert by.loc[blocked, "status"] == "change"
    assert by.loc[blocked, "outcome"] == "will un-skip (the next scheduled run synchronizes it again)"
    assert by.loc[dv_gone, "status"] == "refused" and not by.loc[dv_gone, "enabled"]
    assert by.loc[dv_gone, "outcome"] == ("refused: the Dataverse row was deleted – use Restore Records or "
                                          "Delete Records")
    assert "Business Central record was deleted" in by.loc[bc_gone, "outcome"]
    assert p.counts == {"targets": 3, "will_change": 1, "no_op": 0, "refused": 2}
    r = act.execute(ws, p)
    assert r.counts["changed"] == 1 and r.counts["refused"] == 2
    assert not coupling(ws, blocked)["skipped"]
    # Restore/Delete Records are the mirror image: only where exactly one record exists
    p = act.plan(ws, "restore-records", sel_of(ws, [blocked, dv_gone]))
    by = p.targets.set_index("bc_record_id")
    assert by.loc[dv_gone, "status"] == "change"
    assert by.loc[blocked, "outcome"] == "refused: both records exist – use Synchronize or Retry"


# -- Retry, Retry All and the next run -----------------------------------------------------------
def test_retry_with_parent_still_uncoupled_fails_again_and_is_skipped_again(ws, base):
    blocked = base.rids["blocked"]
    errors_before = ws.count("job_errors")
    r = act.run(ws, "retry", sel_of(ws, blocked))
    assert r.counts["changed"] == 5 and r.jobs.empty  # Retry synchronizes nothing at once
    assert any("next scheduled run" in n for n in r.notes)
    for rid in blocked:
        c = coupling(ws, rid)
        assert not c["skipped"] and c["last_synch_crm_result"] == "Failure"  # the result stays Failure
    adv = act.advance_twin(ws, 13)
    assert adv.after["skipped"] >= adv.before["skipped"] + 5  # they are back in the backlog
    for rid in blocked:
        assert coupling(ws, rid)["skipped"]
    new = ws.sql("SELECT e.message, j.mapping_name FROM job_errors e JOIN jobs j USING (environment, company, job_id) "
                 "WHERE e.error_no > ? AND e.source_record_id IN (SELECT unnest(?))", [errors_before, blocked])
    assert len(new) == 5 and set(new["message"]) == {BLOCK_MSG} and set(new["mapping_name"]) == {"CUSTOMER"}


def test_retry_after_fixing_the_parent_succeeds_on_the_next_run(ws, base):
    sim = load_twin(ws, ENV, COMPANY)
    sp = sim.world.table("SALESPEOPLE")
    row = np.flatnonzero(sp.key == "TESTSP")
    sp.exists[DV][row] = True
    sp.couple(row, sim.clock)  # the admin couples the salesperson to a Dataverse user
    publish(ws, sim)
    act.run(ws, "retry", sel_of(ws, base.rids["blocked"]))
    act.advance_twin(ws, 13)
    for rid in base.rids["blocked"]:
        c = coupling(ws, rid)
        assert not c["skipped"] and c["last_synch_crm_result"] == "Success"


def test_retry_all_unskips_every_skipped_coupling(ws):
    skipped = ws.count("couplings", filters={"skipped": True})
    assert skipped >= 5
    with pytest.raises(act.ActionError, match="takes no selection"):
        act.plan(ws, "retry-all", Selection(mapping="CUSTOMER"))
    r = act.run(ws, "retry-all")
    assert r.counts["changed"] == skipped == r.counts["targets"]
    assert ws.count("couplings", filters={"skipped": True}) == 0
    sim = load_twin(ws, ENV, COMPANY)
    assert not any(tb.skipped.any() for tb in sim.world.tables.values())


def test_running_an_action_twice_reports_no_ops(ws, base):
    sel = sel_of(ws, base.rids["blocked"])
    first = act.run(ws, "retry", sel)
    second = act.run(ws, "retry", sel)
    assert first.counts["changed"] == 5
    assert second.counts["changed"] == 0 and second.counts["no_op"] == 5
    assert set(second.outcome["detail"]) == {"no-op: not skipped"}
    gone = sel_of(ws, base.rids["name_diff"][:1])
    assert act.run(ws, "remove-coupling", gone).counts["changed"] == 1
    again = act.run(ws, "remove-coupling", gone)
    assert again.counts["no_op"] == 1 and "no coupling with this key" in again.outcome["detail"].iloc[0]
    assert ws.count("actions") == 4


# -- Synchronize -------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction, winner", [("to-dataverse", BC), ("from-dataverse", DV)])
def test_synchronize_makes_the_chosen_side_win_in_a_one_off_job(ws, base, direction, winner):
    rid = base.rids["name_diff"][0]
    p = act.plan(ws, "synchronize", sel_of(ws, [rid]), direction=direction)
    row = p.targets.iloc[0]
    assert row["status"] == "change" and row["fields"] == "Name"
    assert row["winner"] == ("Business Central" if winner == BC else "Dataverse")
    jobs_before = ws.count("jobs")
    r = act.execute(ws, p)
    assert r.counts["changed"] == 1 and len(r.job_ids) == 1
    t, i = twin_row(ws, "CUSTOMER", rid)
    assert t.vals[BC][i, 0] == t.vals[DV][i, 0]
    with Workspace(base.path, read_only=True) as original:
        base_t, base_i = twin_row(original, "CUSTOMER", rid)
    assert t.vals[BC][i, 0] == base_t.vals[winner][base_i, 0]
    job = ws.sql("SELECT * FROM jobs WHERE job_id = ?", [r.job_ids[0]]).iloc[0]
    assert ws.count("jobs") == jobs_before + 1
    assert job["mapping_name"] == "CUSTOMER" and job["type"] == "Synchronization" and job["modified"] == 1
    assert job["job_queue_log_entry_no"] != 0 and job["trigger"] == "job queue"
    assert job["synch_direction"] == (bc.TO_INTEGRATION if winner == BC else bc.FROM_INTEGRATION)


def test_merge_is_refused_where_a_bidirectional_field_differs_and_runs_where_none_does(ws, base):
    name_rid, credit_rid = base.rids["name_diff"][0], base.rids["credit_diff"][0]
    p = act.plan(ws, "synchronize", sel_of(ws, [name_rid, credit_rid]), direction="merge")
    by = p.targets.set_index("bc_record_id")
    assert by.loc[name_rid, "status"] == "refused"
    assert "bidirectional field(s) Name differ" in by.loc[name_rid, "outcome"]
    assert "Synchronize to-dataverse or from-dataverse (recommended:" in by.loc[name_rid, "outcome"]
    assert by.loc[credit_rid, "status"] == "change" and by.loc[credit_rid, "fields"] == "Credit Limit (LCY) → Dataverse"
    r = act.execute(ws, p)
    assert r.counts == {"targets": 2, "changed": 1, "planned": 0, "no_op": 0, "refused": 1, "failed": 0}
    assert len(r.job_ids) == 2  # merge = to Dataverse, then from Dataverse
    t, i = twin_row(ws, "CUSTOMER", credit_rid)
    assert t.vals[BC][i, 5] == t.vals[DV][i, 5]
    t, i = twin_row(ws, "CUSTOMER", name_rid)
    assert t.vals[BC][i, 0] != t.vals[DV][i, 0]  # the refused one was left alone


def test_T122_SynchronizeMultipleBidirectionalRecords_one_way_records_run_in_their_mappings_direction(ws):
    """BC's T122 (CRMSynchSkippedRecords): the direction chosen applies to Bidirectional mappings; records of a
    one-way mapping are synchronized in their mapping's own direction, not refused."""
    sel = Selection(mapping="ITEM-PRODUCT", state="ok")
    other = act.plan(ws, "synchronize", sel, direction="from-dataverse")
    assert (other.targets["status"] != "refused").all()
    assert set(other.targets["direction"].dropna()) == {"to-dataverse"}
    merge = act.plan(ws, "synchronize", sel, direction="merge")
    assert merge.targets["reason"].iloc[0].startswith("Merge needs a Bidirectional mapping")
    implied = act.plan(ws, "synchronize", sel)  # no direction: a one-way mapping runs in its own
    assert set(implied.targets["direction"].dropna()) == {"to-dataverse"}
    assert (implied.targets["status"] != "refused").all()
    with pytest.raises(act.ActionError, match="Only Synchronize and Set Up Coupling take a direction"):
        act.plan(ws, "retry", sel, direction="merge")


def test_synchronize_on_records_already_in_sync_still_runs_the_job_and_counts_them_modified(ws):
    """BC runs the one-off job of Synchronize whatever the records' state, and its ForceModify write counts a
    record Modified even when no field changes (spec §6.3 step 8, IntegrationTableSynchTest's Force* tests)."""
    sel = Selection(mapping="ITEM-PRODUCT", state="ok")
    p = act.plan(ws, "synchronize", sel, direction="to-dataverse")
    assert (p.targets["status"] == "change").all()
    assert p.targets["outcome"].str.contains("already in sync").all()
    assert set(p.targets["fields"]) == {"nothing (no mapped field differs)"}
    r = act.execute(ws, p)
    jobs = ws.sql("SELECT modified, unchanged, failed FROM jobs WHERE CAST(job_id AS VARCHAR) IN (SELECT unnest(?))",
                  [r.job_ids])
    assert int(jobs["modified"].sum()) == len(p.targets) and int(jobs["unchanged"].sum()) == 0


def test_synchronize_failure_is_reported_and_skipped_again(ws, base):
    r = act.run(ws, "synchronize", sel_of(ws, base.rids["blocked"][:2]), direction="to-dataverse")
    assert r.counts["failed"] == 2
    assert set(r.outcome["detail"]) == {f"failed and Skipped again: {BLOCK_MSG}"}
    assert coupling(ws, base.rids["blocked"][0])["skipped"]


# -- Remove Coupling, Restore Records, Delete Records, Find for Deleted ------------------------------
def test_remove_coupling_runs_an_uncoupling_job(ws, base):
    rids = base.rids["blocked"][:3]
    r = act.run(ws, "remove-coupling", sel_of(ws, rids))
    assert r.counts["changed"] == 3 and set(r.outcome["detail"]) == {"coupling removed (uncoupling job)"}
    job = ws.sql("SELECT * FROM jobs WHERE job_id = ?", [r.job_ids[0]]).iloc[0]
    assert job["type"] == "Uncoupling" and job["uncoupled"] == 3 and job["mapping_name"] == "CUSTOMER"
    assert all(coupling(ws, rid) is None for rid in rids)
    t, i = twin_row(ws, "CUSTOMER", rids[0])
    assert not t.coupled[i] and t.exists[BC][i] and t.exists[DV][i]


def test_restore_records_recreates_the_deleted_dataverse_row_and_couples_it(ws, base):
    rid = base.rids["dv_gone"][0]
    before = coupling(ws, rid)
    p = act.plan(ws, "restore-records", sel_of(ws, [rid]))
    assert p.targets["winner"].iloc[0] == "Business Central"
    r = act.execute(ws, p)
    assert r.counts["changed"] == 1, r.outcome["detail"].tolist()
    after = coupling(ws, rid)
    assert after["crm_record_exists"] and after["bc_record_exists"] and not after["skipped"]
    assert after["crm_id"] != before["crm_id"] and after["integration_id"] == before["integration_id"]
    assert str(after["crm_id"]) == r.outcome["new_crm_id"].iloc[0]
    job = ws.sql("SELECT * FROM jobs WHERE job_id = ?", [r.job_ids[0]]).iloc[0]
    assert job["inserted"] == 1 and job["synch_direction"] == bc.TO_INTEGRATION


def test_restore_records_recreates_a_deleted_bc_record_with_a_new_system_id(ws, base):
    rid = base.rids["bc_gone"][0]
    before = coupling(ws, rid)
    p = act.plan(ws, "restore-records", sel_of(ws, [rid]))
    assert p.targets["winner"].iloc[0] == "Dataverse" and p.targets["fields"].iloc[0].startswith("Name, ")
    r = act.execute(ws, p)
    # BC re-creates it as a new customer: the next number of the No. Series, a new SystemId (T165)
    new_no = ws.sql("SELECT max(bc_record_id) AS m FROM couplings WHERE table_id = 18")["m"][0]
    assert r.outcome["detail"].tolist() == [f"re-created in Business Central as {new_no.replace(': ', ' ')} and coupled"]
    assert coupling(ws, rid) is None and int(new_no[-5:]) > int(rid[-5:])
    after = coupling(ws, new_no)
    assert after["bc_record_exists"] and after["crm_record_exists"]
    assert str(after["integration_id"]) == r.outcome["new_integration_id"].iloc[0] != str(before["integration_id"])
    assert after["crm_id"] == before["crm_id"]
    assert ws.count("couplings", filters={"integration_id": before["integration_id"]}) == 0


def test_remove_coupling_without_uncoupling_codeunit_deletes_the_row_at_once(ws):
    sel = Selection(mapping="CURRENCY", search="Currency: EUR")
    jobs = ws.count("jobs")
    r = act.run(ws, "remove-coupling", sel)
    assert r.counts["changed"] == 1 and r.outcome["detail"].tolist() == ["coupling removed (row deleted)"]
    assert r.job_ids == [] and ws.count("jobs") == jobs
    assert coupling(ws, "Currency: EUR") is None


def test_delete_records_removes_the_surviving_record_and_the_coupling(ws, base):
    rid = base.rids["dv_gone"][1]
    r = act.run(ws, "delete-records", sel_of(ws, [rid]))
    assert r.outcome["detail"].tolist() == ["deleted the Business Central record and the coupling"]
    assert coupling(ws, rid) is None
    t, i = twin_row(ws, "CUSTOMER", rid)
    assert not t.exists[BC][i] and not t.exists[DV][i] and not t.coupled[i]


def test_find_for_deleted_skips_only_couplings_of_one_way_mappings(ws, base):
    p = act.plan(ws, "find-for-deleted")
    by = p.targets.set_index("bc_record_id")
    assert set(by.index) >= set(base.rids["items_gone"]) | set(base.rids["bc_gone"])
    assert (by.loc[base.rids["items_gone"], "status"] == "change").all()
    assert by.loc[base.rids["bc_gone"][0], "status"] == "no-op"
    assert "Bidirectional mapping" in by.loc[base.rids["bc_gone"][0], "outcome"]
    act.execute(ws, p)
    assert all(coupling(ws, rid)["skipped"] for rid in base.rids["items_gone"])
    assert not coupling(ws, base.rids["bc_gone"][0])["skipped"]
    assert act.run(ws, "find-for-deleted").counts["changed"] == 0  # the second time: nothing left to mark


# -- dry run, audit, rollback, selections ----------------------------------------------------------
def test_dry_run_changes_nothing_but_audits_the_plan(ws, base):
    before = snapshot(ws)
    r = act.run(ws, "remove-coupling", sel_of(ws, base.rids["blocked"]), dry_run=True, who="ann")
    assert r.dry_run and r.counts["planned"] == 5 and r.counts["changed"] == 0
    assert snapshot(ws) == before
    row = ws.sql("SELECT * FROM actions").iloc[0]
    assert row["dry_run"] and row["who"] == "ann" and row["action"] == "remove-coupling" and row["backend"] == "twin"
    targets = ws.sql("SELECT * FROM action_targets WHERE action_id = ?", [r.action_id])
    assert len(targets) == 5 and set(targets["result"]) == {"planned"} and set(targets["mapping_name"]) == {"CUSTOMER"}
    outcome = json.loads(row["outcome"])
    assert outcome["counts"]["planned"] == 5 and "results" not in outcome
    trail = act.audit_trail(ws)
    assert trail.iloc[0]["caption"] == "Remove Coupling" and trail.iloc[0]["targets"] == 5


def test_audit_row_holds_who_what_parameters_and_outcome_per_target(ws, base):
    sel = Selection(mapping="CUSTOMER", state="skipped")
    r = act.run(ws, "retry", sel, who="bob")
    row = ws.sql("SELECT * FROM actions WHERE action_id = ?", [r.action_id]).iloc[0]
    params = json.loads(row["parameters"])
    assert params["selection"] == {"mapping": "CUSTOMER", "state": "skipped"}  # kept as a filter, not keys
    assert params["parents_first"] is False and params["direction"] is None
    assert row["environment"] == ENV and row["company"] == COMPANY and row["who"] == "bob" and not row["dry_run"]
    targets = ws.sql("SELECT integration_id, result FROM action_targets WHERE action_id = ?", [r.action_id])
    per_target = dict(zip(targets["integration_id"].astype(str), targets["result"]))
    assert len(per_target) == r.counts["targets"]
    assert sum(v == "changed" for v in per_target.values()) == r.counts["changed"] >= 5
    assert "password" not in row["parameters"].lower()
    r = act.run(ws, "retry", sel_of(ws, base.rids["blocked"]))
    params = json.loads(ws.sql("SELECT parameters FROM actions WHERE action_id = ?", [r.action_id])["parameters"][0])
    assert params["selection"] == {"keys_count": 5}  # explicit keys are the targets, not repeated


def test_a_failure_inside_execute_rolls_everything_back(ws, base, monkeypatch):
    before = snapshot(ws)
    p = act.plan(ws, "remove-coupling", sel_of(ws, base.rids["blocked"]))
    real_upsert, real_replace = Workspace.upsert, Workspace.replace

    def failing(real):
        def write(self, table, frame, **kw):
            if table == "couplings":
                raise RuntimeError("disk full")
            return real(self, table, frame, **kw)
        return write

    # the couplings are the last history the action writes (after the audit row and the one-off jobs)
    monkeypatch.setattr(Workspace, "upsert", failing(real_upsert))
    monkeypatch.setattr(Workspace, "replace", failing(real_replace))
    with pytest.raises(RuntimeError, match="disk full"):
        act.execute(ws, p)
    monkeypatch.undo()
    assert snapshot(ws) == before and ws.count("actions") == 0
    # the plan still runs afterwards (the twin is loaded again, not the half-changed copy)
    assert act.execute(ws, p).counts["changed"] == 5


def test_filter_selection_stays_a_filter_and_resolves_in_sql(ws, base):
    sig = "sig-test"
    ws.con.execute("UPDATE job_errors SET signature = ? WHERE message = ?", [sig, BLOCK_MSG])
    sel = Selection(mapping="CUSTOMER", state="skipped", signature=sig)
    p = act.plan(ws, "retry", sel)
    assert sorted(p.targets["bc_record_id"]) == sorted(base.rids["blocked"])
    assert p.selection is sel and p.parameters["selection"]["signature"] == sig
    assert act.execute(ws, p).counts["changed"] == 5


def test_parents_first_adds_the_named_parent_and_runs_its_job_first(ws, base):
    sim = load_twin(ws, ENV, COMPANY)
    sp = sim.world.table("SALESPEOPLE")
    row = np.flatnonzero(sp.key == "TESTSP")
    sp.exists[DV][row] = True
    sp.couple(row, sim.clock)
    sp.vals[DV][row, 0] += 1  # the Dataverse user's name differs: the parent has something to synchronize
    publish(ws, sim)
    ws.con.execute("INSERT INTO signatures VALUES (?, 'must-be-coupled', NULL, 'not-coupled', NULL, "
                   "'Salesperson/Purchaser', 'TESTSP', 'template', NULL, 'en')", [BLOCK_MSG])
    p = act.plan(ws, "synchronize", sel_of(ws, base.rids["blocked"]), direction="to-dataverse", parents_first=True)
    first = p.targets.iloc[0]
    assert first["role"] == "parent" and first["bc_record_id"] == "Salesperson/Purchaser: TESTSP"
    assert first["direction"] == "from-dataverse"  # SALESPEOPLE synchronizes only from Dataverse
    r = act.execute(ws, p)
    jobs = ws.sql("SELECT mapping_name, start_datetime FROM jobs WHERE CAST(job_id AS VARCHAR) IN "
                  "(SELECT unnest(?)) ORDER BY start_datetime", [r.job_ids])
    assert jobs["mapping_name"].tolist() == ["SALESPEOPLE", "CUSTOMER"]
    assert r.counts["changed"] == 6
    assert all(coupling(ws, rid)["last_synch_crm_result"] == "Success" for rid in base.rids["blocked"])


def test_parents_that_are_not_coupled_are_named_in_the_plan(ws, base):
    ws.con.execute("INSERT INTO signatures VALUES (?, 'must-be-coupled', NULL, 'not-coupled', NULL, "
                   "'Salesperson/Purchaser', 'TESTSP', 'template', NULL, 'en')", [BLOCK_MSG])
    p = act.plan(ws, "retry", sel_of(ws, base.rids["blocked"]), parents_first=True)
    assert (p.targets["role"] == "target").all()
    assert any("Salesperson/Purchaser: TESTSP is not coupled at all" in n for n in p.notes)


def test_selection_across_environments_is_refused(ws):
    ws.con.execute("UPDATE couplings SET environment = 'SANDBOX' WHERE table_id = 23")
    with pytest.raises(act.ActionError, match="spans 2 environments"):
        act.plan(ws, "remove-coupling", Selection(state="ok"))
    with pytest.raises(act.ActionError, match="Unknown action"):
        act.plan(ws, "undo", Selection())


# -- Synchronization Log ---------------------------------------------------------------------------
def test_sync_log_shows_errors_jobs_timeline_and_both_versions(ws, base):
    rid = base.rids["blocked"][0]
    act.run(ws, "retry", sel_of(ws, [rid]), who="eve")
    log = act.sync_log(ws, environment=ENV, company=COMPANY, bc_record_id=rid)
    assert log.record["state"] == "failed" and log.record["bc_record_id"] == rid
    assert len(log.errors) >= 2 and set(log.errors["message"]) == {BLOCK_MSG}
    assert set(log.errors["job_id"].astype(str)) <= set(log.jobs["job_id"].astype(str))
    assert log.jobs["why"].str.contains("error for this record").any()
    events = log.timeline["event"].tolist()
    assert "failed" in events and "failed, Skipped" in events and "action: Retry" in events
    assert events.index("failed, Skipped") < events.index("action: Retry")
    assert log.timeline.iloc[-1]["event"] == "now"
    v = log.versions
    assert list(v["field"]) == [f.bc_field for f in load_twin(ws).world.table("CUSTOMER").config.fields]
    assert not v["differs"].any()
    diff = act.sync_log(ws, environment=ENV, company=COMPANY, bc_record_id=base.rids["name_diff"][0]).versions
    assert diff.set_index("field")["differs"].to_dict()["Name"] and diff["differs"].sum() == 1
    with pytest.raises(act.ActionError):
        act.sync_log(ws, environment=ENV, company=COMPANY)


def test_sync_log_on_loaded_history_has_no_versions(ws, base):
    ws.con.execute("DELETE FROM twin_state")
    log = act.sync_log(ws, environment=ENV, company=COMPANY, bc_record_id=base.rids["blocked"][0])
    assert log.versions is None and len(log.errors) >= 2


def test_records_columns_feed_enablement(ws, base):
    rows = records(ws, sel_of(ws, [base.rids["dv_gone"][0]]))
    assert act.enabled_actions(rows)["restore-records"] and not act.enabled_actions(rows)["retry"]


def test_a_failed_publish_keeps_the_unwritten_history_in_the_twin(ws, monkeypatch):
    from syncanalysis.twin.state import publish

    sim = load_twin(ws, ENV, COMPANY)
    sim.advance(30, activity=True)
    logged = len(sim.world.errors)
    real = Workspace.upsert

    def failing(self, table, frame, **kw):
        if table == "job_errors":
            raise RuntimeError("disk full")
        return real(self, table, frame, **kw)

    monkeypatch.setattr(Workspace, "upsert", failing)
    with pytest.raises(RuntimeError):
        publish(ws, sim)
    monkeypatch.undo()
    assert logged and len(sim.world.errors) == logged  # nothing lost: publishing again writes them
    before = ws.count("job_errors")
    publish(ws, sim)
    assert ws.count("job_errors") == before + logged


# -- issue 12: BC's rules for several records, notifications, Set Up Coupling, Delete Entries ---------
def test_T123_SetSelectionFilterShouldExcludeDeletedCouplings(ws, base):
    """T123: of the selected lines, Synchronize takes only those whose both records exist (SetSelectionFilter);
    the line whose customer was deleted is left out."""
    p = act.plan(ws, "synchronize", sel_of(ws, base.rids["blocked"][:2] + base.rids["bc_gone"]),
                 direction="to-dataverse")
    by = p.targets.set_index("bc_record_id")
    assert by.loc[base.rids["bc_gone"][0], "status"] == "refused"
    assert (by.loc[base.rids["blocked"][:2], "status"] == "change").all()


def test_UpdateMultipleNow_skips_records_whose_destination_changed_since_the_last_synchronization(ws, base):
    """CRMIntegrationManagement.UpdateMultipleNow / WasRecordModifiedAfterLastSynch: with several records
    selected, BC does not synchronize a record whose destination changed since its last synchronization
    (it would overwrite it) and counts it skipped in its notification; the same record alone runs."""
    sim = load_twin(ws, ENV, COMPANY)
    t = sim.world.table("CUSTOMER")
    changed, other = base.rids["name_diff"]
    row = int(np.flatnonzero(t.key == changed.split(": ")[1])[0])
    t.mod[DV][row] = t.wm[DV][row] + 5000  # someone edited the account in Dataverse since
    publish(ws, sim)
    p = act.plan(ws, "synchronize", sel_of(ws, [changed, other]), direction="to-dataverse")
    by = p.targets.set_index("bc_record_id")
    assert by.loc[changed, "status"] == "refused" and by.loc[other, "status"] == "change"
    assert by.loc[changed, "reason"].startswith("BC skips it in a Synchronize of several records: its Dataverse row")
    assert by.loc[changed, "suggest"] == "Synchronize this record alone (BC then asks which side wins)"
    r = act.execute(ws, p)
    assert r.counts["changed"] == 1
    assert ("BC shows: “The synchronization has been scheduled for 1 of 2 records. 0 records failed. "
            "1 records were skipped.”") in r.notes
    alone = act.plan(ws, "synchronize", sel_of(ws, [changed]), direction="to-dataverse")
    assert alone.targets["status"].tolist() == ["change"]
    assert "BC shows: “The synchronization has been scheduled.”" in act.execute(ws, alone).notes


def test_results_say_what_bc_shows_afterwards(ws, base):
    """The notifications BC shows after Retry and Retry All, in its words (CRMSynchSkippedRecords T110/T111/T116)."""
    r = act.run(ws, "retry", sel_of(ws, base.rids["blocked"][:1]))
    assert "BC shows: “The record has been restored for synchronization.”" in r.notes
    r = act.run(ws, "retry", sel_of(ws, base.rids["blocked"][1:3]))
    assert "BC shows: “2 records have been restored for synchronization.”" in r.notes
    skipped = ws.count("couplings", filters={"skipped": True})
    r = act.run(ws, "retry-all")
    assert f"BC shows: “{skipped} records have been restored for synchronization.”" in r.notes


def _new_account(ws, name: str = "Brand New Account Ltd.") -> str:
    """A Dataverse account nobody coupled yet, published into the workspace; returns its id."""
    sim = load_twin(ws, ENV, COMPANY)
    w = sim.world
    t = w.table("CUSTOMER")
    row = t.add(np.array(["C99990"], object), np.array([name], object), bc_ids=w.new_ids(1), dv_ids=w.new_ids(1),
                bc_exists=False, dv_exists=True, coupled=False, mod=sim.clock,
                vals=np.ones((1, len(t.config.fields)), np.int32),
                lens=np.full((1, len(t.config.fields)), 5, np.int16))[0]
    publish(ws, sim)
    return str(t.ids[DV][row])


def test_set_up_coupling_couples_the_record_to_another_dataverse_row(ws, base, tmp_path):
    """Set Up Coupling (CRMSynchSkippedRecords T175): the record is coupled to the chosen account, not Skipped;
    the account it was coupled to stays in Dataverse; the plan file says how to do it in BC."""
    rid = base.rids["blocked"][0]
    before = coupling(ws, rid)
    new_id = _new_account(ws)
    p = act.plan(ws, "set-up-coupling", sel_of(ws, [rid]), couple_to=new_id)
    assert p.targets["status"].tolist() == ["change"]
    assert p.targets["outcome"].iloc[0] == f"will couple it to Dataverse Account “Brand New Account Ltd.” ({new_id})"
    doc = act.plan(ws, "set-up-coupling", sel_of(ws, [rid]), couple_to=new_id, backend="plan")
    written = act.execute(ws, doc)
    md = written.plan_file.with_suffix(".md").read_text()
    assert "Set Up Coupling" in md and "Coupled To" in md and "Synchronize After Coupling off" in md
    r = act.execute(ws, p)
    assert r.counts["changed"] == 1 and r.outcome["detail"].iloc[0] == f"coupled to Dataverse Account {new_id}"
    after = coupling(ws, rid)
    assert str(after["crm_id"]) == new_id and not after["skipped"] and after["integration_id"] == before["integration_id"]
    t, i = twin_row(ws, "CUSTOMER", rid)
    assert t.ids[DV][i] == new_id and t.coupled[i]
    old = np.flatnonzero(t.ids[DV] == str(before["crm_id"]))
    assert len(old) == 1 and t.exists[DV][old[0]] and not t.coupled[old[0]]  # the old account stays, uncoupled


def test_set_up_coupling_is_refused_for_a_row_coupled_elsewhere_and_checks_its_input(ws, base):
    rid, other = base.rids["name_diff"]
    taken = str(coupling(ws, other)["crm_id"])
    p = act.plan(ws, "set-up-coupling", sel_of(ws, [rid]), couple_to=taken)
    assert p.targets["status"].tolist() == ["refused"]
    assert p.targets["reason"].iloc[0] == f"that Dataverse Account row is already coupled to {other.replace(': ', ' ')}"
    with pytest.raises(act.ActionError, match="needs the Dataverse row"):
        act.plan(ws, "set-up-coupling", sel_of(ws, [rid]))
    with pytest.raises(act.ActionError, match="is not a GUID"):
        act.plan(ws, "set-up-coupling", sel_of(ws, [rid]), couple_to="ACME")
    with pytest.raises(act.ActionError, match="one GUID fits one record"):
        act.plan(ws, "set-up-coupling", sel_of(ws, [rid, other]), couple_to=taken)
    gone = act.plan(ws, "set-up-coupling", sel_of(ws, base.rids["bc_gone"]), couple_to=taken)
    assert gone.targets["status"].tolist() == ["refused"]  # BC disables it when the BC record is gone (T170)


def test_delete_records_is_refused_without_the_delete_privilege(ws, base):
    """T163: when the integration user may not delete accounts, BC stops with its message and deletes nothing."""
    sim = load_twin(ws, ENV, COMPANY)
    sim.world.missing_delete_privilege.add("account")
    publish(ws, sim)
    before = snapshot(ws)
    p = act.plan(ws, "delete-records", sel_of(ws, base.rids["bc_gone"] + base.rids["dv_gone"][:1]))
    assert (p.targets["status"] == "refused").all()
    assert p.targets["reason"].str.contains("You do not have permission to delete entities in Dynamics 365 Sales.").all()
    r = act.execute(ws, p)
    assert r.counts["changed"] == 0 and snapshot(ws)[:3] == before[:3]


def test_delete_entries_keeps_jobs_skipped_couplings_point_at(ws, tmp_path):
    """Delete All Entries on the twin (BC's T138): failed jobs a Skipped coupling points at stay, with their
    errors; every other finished job goes (a failed one with its errors); one audit row; the page's Error
    Message of the Skipped couplings is still found."""
    from syncanalysis.actions import delete_entries

    referenced = {str(j) for j in ws.sql(
        "SELECT last_synch_crm_job_id AS j FROM couplings WHERE skipped AND last_synch_crm_job_id IS NOT NULL "
        "UNION SELECT last_synch_job_id FROM couplings WHERE skipped AND last_synch_job_id IS NOT NULL")["j"]}
    failed_referenced = set(ws.sql("SELECT CAST(job_id AS VARCHAR) AS j FROM jobs WHERE failed > 0")["j"]) & referenced
    assert failed_referenced
    page_before = records(ws, Selection(state="skipped"), limit=None)[["integration_id", "error_message"]]
    dry = delete_entries(ws, 0, dry_run=True)
    assert set(dry.kept["job_id"]) == failed_referenced and ws.count("actions") == 1
    plan_file = delete_entries(ws, 0, backend="plan", plan_file=tmp_path / "entries.md")
    assert "Delete All Entries" in plan_file.plan_file.read_text() and ws.count("jobs") > len(failed_referenced)
    r = delete_entries(ws, 0)
    assert len(r.jobs) == len(dry.jobs) and set(r.kept["job_id"]) == failed_referenced
    left = set(ws.sql("SELECT CAST(job_id AS VARCHAR) AS j FROM jobs")["j"])
    assert failed_referenced <= left and not (left - failed_referenced - set(r.kept["job_id"]))
    orphaned = ws.sql("SELECT count(*) AS n FROM job_errors e WHERE NOT EXISTS (SELECT 1 FROM jobs j "
                      "WHERE j.job_id = e.job_id) AND e.job_id IN (SELECT CAST(unnest(?) AS UUID))",
                      [list(r.jobs.loc[r.jobs["failed"] > 0, "job_id"])])["n"][0]
    assert orphaned == 0  # a failed job's errors went with it
    page_after = records(ws, Selection(state="skipped"), limit=None)[["integration_id", "error_message"]]
    assert page_after.merge(page_before, on="integration_id", suffixes=("", "_before")).eval(
        "error_message == error_message_before | error_message.isna()").all()
    trail = act.audit_trail(ws)
    assert trail["caption"].iloc[0] == "Delete Entries" and trail["changed"].iloc[0] == len(r.jobs)
    assert delete_entries(ws, 0).jobs.empty  # the second time nothing is left to delete


def test_find_for_deleted_takes_records_outside_the_table_filter_as_bc_does(ws, base):
    """MarkLocalDeletedAsSkipped looks each coupling's BC record up within the mapping's Table Filter: an item
    that exists but the filter excludes (e.g. blocked) is marked Skipped too; the plan says why."""
    sim = load_twin(ws, ENV, COMPANY)
    it = sim.world.table("ITEM-PRODUCT")
    row = int(np.flatnonzero(it.coupled & it.exists[BC] & ~it.skipped)[0])
    it.in_filter[row] = False  # the item was blocked; the mapping's Table Filter leaves blocked items out
    publish(ws, sim)
    rid = f"Item: {it.key[row]}"
    p = act.plan(ws, "find-for-deleted")
    by = p.targets.set_index("bc_record_id")
    assert by.loc[rid, "outcome"] == "will mark Skipped (its Business Central record is outside the mapping's Table Filter)"
    act.execute(ws, p)
    assert coupling(ws, rid)["skipped"]
    loaded = act.plan(ws, "find-for-deleted", backend="plan")
    assert any("outside the mapping's Table Filter" in n for n in loaded.notes)


def test_T131_ShowSynchLogOpensLogForCurrentRec(ws, base):
    """T131: the Synchronization Log of a record shows the jobs its coupling points at (BC's ShowLog filters page
    5338 on Last Synch. Job ID | Last Synch. CRM Job ID), each saying why it is there."""
    rid = base.rids["blocked"][0]
    c = coupling(ws, rid)
    log = act.sync_log(ws, environment=ENV, company=COMPANY, bc_record_id=rid)
    why = dict(zip(log.jobs["job_id"].astype(str), log.jobs["why"]))
    assert "Last Synch. CRM Job ID" in why[str(c["last_synch_crm_job_id"])]


def test_T132_ShowSynchLogIsNotOpenLogIfIntegrationRecNotFound(ws):
    """T132: BC refuses the Synchronization Log of a record of a table no mapping synchronizes."""
    with pytest.raises(act.ActionError, match="No Integration Table Mapping was found for table G/L Account"):
        act.sync_log(ws, environment=ENV, company=COMPANY, bc_record_id="G/L Account: 1000")


def test_T175_set_up_coupling_of_a_record_whose_row_is_gone_synchronizes_it_by_default(ws, base):
    """T175: coupled to a deleted account, the page proposes to synchronize after coupling (in the table's
    default direction), and BC says the synchronization has been scheduled; "none" only couples."""
    rid = base.rids["dv_gone"][0]
    new_id = _new_account(ws, "Replacement Account")
    p = act.plan(ws, "set-up-coupling", sel_of(ws, [rid]), couple_to=new_id)
    assert p.targets["direction"].tolist() == ["to-dataverse"]
    assert p.targets["outcome"].iloc[0].endswith(", then synchronize to Dataverse (Business Central wins)")
    only = act.plan(ws, "set-up-coupling", sel_of(ws, [rid]), couple_to=new_id, direction="none")
    assert only.targets["direction"].isna().all()
    r = act.execute(ws, p)
    assert r.outcome["detail"].iloc[0].startswith("coupled, then synchronized to Dataverse")
    assert "BC shows: “The synchronization has been scheduled.”" in r.notes and len(r.job_ids) == 1
    t, i = twin_row(ws, "CUSTOMER", rid)
    assert t.ids[DV][i] == new_id and t.vals[DV][i, 0] == t.vals[BC][i, 0]
