"""Every rule of spec §6 on hand-built worlds; each test can fail on its own."""

from __future__ import annotations

import numpy as np
import pytest
from twinworld import T0, edit, small_world

from syncanalysis import bc
from syncanalysis.errors import TwinError
from syncanalysis.twin import BC, DV, FROM, TO, run_mapping, synchronize
from syncanalysis.twin import operations as ops

MIN = 60_000


def counts(job):
    return {k: v for k, v in job.counts.items() if v}


def test_unchanged_records_are_not_selected_and_modified_ones_are_written():
    w = small_world()
    t = w.table("CUSTOMER")
    edit(w, BC, 1, T0 - 1000)
    job = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(job) == {"modified": 1}
    assert t.vals[DV][1, 0] == t.vals[BC][1, 0]
    assert t.by_integration[DV][1] and t.mod[DV][1] >= T0
    assert t.result[TO][1] == bc.RESULT_SUCCESS and t.job[TO][1] == job.index


def test_coupling_watermarks_are_raised_to_max_and_source_change_detected_against_its_own():
    w = small_world()
    t = w.table("CUSTOMER")
    edit(w, BC, 0, T0 - 1000)
    synchronize(w, "CUSTOMER", TO, T0)
    # Last Synch. Modified On follows BC, Last Synch. CRM Modified On follows Dataverse (naming trap §3)
    assert t.wm[BC][0] == t.mod[BC][0] == T0 - 1000
    assert t.wm[DV][0] == t.mod[DV][0] > T0
    # a mapping watermark reset re-selects the record, but the coupling watermark says unchanged
    t.mapping_wm[BC] = -1
    job = synchronize(w, "CUSTOMER", TO, T0 + MIN)
    assert job.counts["unchanged"] == 3 and job.counts["modified"] == 0
    # watermarks are kept as max: an older modified-on does not lower them
    before = t.wm[DV][0]
    t.mod[DV][0] = before - 5000
    t.mapping_wm[BC] = -1
    synchronize(w, "CUSTOMER", TO, T0 + 2 * MIN)
    assert t.wm[DV][0] == before


def test_mapping_watermark_is_the_latest_modified_on_not_failed_and_dataverse_side_has_999ms_slack():
    """Codeunit 5340: the mapping's watermark becomes the latest modified-on of the records Synchronize did not
    fail, uncapped (a row stamped after the job start moves it there, as CRMSynchJobScenarios'
    SynchUpdatesLastSynchModifiedOnWhenDataChanges asserts); a failed record does not move it."""
    w = small_world(direction=bc.FROM_INTEGRATION)
    t = w.table("CUSTOMER")
    edit(w, DV, 0, T0 + 5 * MIN)  # modified after the job starts (clock skew)
    synchronize(w, "CUSTOMER", FROM, T0)
    assert t.mapping_wm[DV] == T0 + 5 * MIN
    failing = small_world(with_parent=True)
    ft = failing.table("CUSTOMER")
    ft.parents["salesperson"][1] = 1  # C00001 fails (its salesperson is not coupled)
    edit(failing, BC, 0, T0 - 3000)
    edit(failing, BC, 1, T0 - 1000)
    job = synchronize(failing, "CUSTOMER", TO, T0)
    assert counts(job) == {"modified": 1, "failed": 1} and ft.mapping_wm[BC] == T0 - 3000
    # within 999 ms before the watermark: a Dataverse row is still selected, a BC record is not
    w2 = small_world()
    t2 = w2.table("CUSTOMER")
    edit(w2, DV, 0, t2.mapping_wm[DV] - 500)
    edit(w2, BC, 1, t2.mapping_wm[BC] - 500)
    assert sum(synchronize(w2, "CUSTOMER", TO, T0).counts.values()) == 0
    assert sum(synchronize(w2, "CUSTOMER", FROM, T0 + MIN).counts.values()) == 1


def test_skipped_coupling_is_counted_skipped_and_not_written():
    w = small_world()
    t = w.table("CUSTOMER")
    edit(w, BC, 0, T0 - 1000)
    t.skipped[0] = True
    job = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(job) == {"skipped": 1}
    assert t.vals[DV][0, 0] != t.vals[BC][0, 0]


def test_only_coupled_ignores_uncoupled_records_in_both_directions_but_skips_explicit_ones():
    w = small_world(only_coupled=True, coupled=False)
    t = w.table("CUSTOMER")
    edit(w, BC, 0, T0 - 1000)
    edit(w, DV, 1, T0 - 1000)
    to_job, from_job = run_mapping(w, "CUSTOMER", T0)
    assert counts(to_job) == {} and counts(from_job) == {}  # §6.2: not selected, not counted
    assert not t.coupled.any()
    # a caller that passes the record explicitly reaches §6.3 step 4: Skipped
    assert counts(synchronize(w, "CUSTOMER", FROM, T0 + MIN, rows=[1])) == {"skipped": 1}
    assert not t.coupled.any()


def test_uncoupled_record_is_inserted_and_coupled_when_only_coupled_is_off():
    w = small_world(coupled=False)
    t = w.table("CUSTOMER")
    t.exists[DV][:] = False
    edit(w, BC, 2, T0 - 1000)
    job = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(job) == {"inserted": 1}
    assert t.coupled[2] and t.exists[DV][2] and t.result[TO][2] == bc.RESULT_SUCCESS


@pytest.mark.parametrize("bi_differs", [True, False])
def test_update_conflict_without_resolution_fails_only_when_a_bidirectional_field_differs(bi_differs):
    w = small_world(update="None")
    t = w.table("CUSTOMER")
    edit(w, BC, 0, T0 - 2000, field=0 if bi_differs else 1)  # field 1 is to-only
    t.mod[DV][0] = T0 - 1500  # Dataverse changed too (an unmapped field)
    job = synchronize(w, "CUSTOMER", TO, T0)
    if bi_differs:
        assert counts(job) == {"failed": 1}
        text = np.concatenate(w.errors.text)[0]
        assert text.startswith("Cannot update a record in the Dataverse Account table. The mapping between Name field "
                               "on the Customer table and the Account Name field")
        assert t.result[TO][0] == bc.RESULT_FAILURE
    else:
        assert counts(job) == {"modified": 1}
        # after a both-changed write the destination watermark is lowered so the other direction runs
        assert t.wm[DV][0] == t.mod[DV][0] - 999


@pytest.mark.parametrize("resolution,to_outcome,from_outcome", [
    # BC wins: written to Dataverse; the From-job then ignores the integration user's own write (echo)
    ("Send Update to Integration", "modified", None),
    ("Get Update from Integration", "skipped", "modified"),
])
def test_update_conflict_resolved_per_mapping_setting(resolution, to_outcome, from_outcome):
    w = small_world(update=resolution)
    t = w.table("CUSTOMER")
    edit(w, BC, 0, T0 - 2000, value=111)
    edit(w, DV, 0, T0 - 1500, value=222)
    to_job, from_job = run_mapping(w, "CUSTOMER", T0)
    assert to_job.counts[to_outcome] == 1
    if from_outcome:
        assert from_job.counts[from_outcome] == 1
    else:
        assert sum(from_job.counts.values()) == 0
    winner = 111 if resolution.startswith("Send") else 222
    assert t.vals[BC][0, 0] == t.vals[DV][0, 0] == winner
    assert not t.skipped[0] and to_job.counts["failed"] == 0 and from_job.counts["failed"] == 0


def test_deletion_conflict_none_fails_with_bc_message():
    w = small_world(deletion="None")
    t = w.table("CUSTOMER")
    t.exists[DV][0] = False
    edit(w, BC, 0, T0 - 1000)
    job = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(job) == {"failed": 1}
    assert np.concatenate(w.errors.text)[0] == "The Customer record cannot be updated because it is coupled to a deleted record."
    assert t.coupled[0]


def test_deletion_conflict_remove_coupling_uncouples_and_counts_unchanged():
    w = small_world(deletion="Remove Coupling")
    t = w.table("CUSTOMER")
    t.exists[DV][0] = False
    edit(w, BC, 0, T0 - 1000)
    job = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(job) == {"unchanged": 1}  # §6.3 step 3: the coupling goes before change detection
    assert not t.coupled[0]


def test_deletion_conflict_restore_records_recreates_and_recouples():
    w = small_world(deletion="Restore Records")
    t = w.table("CUSTOMER")
    old_id = t.ids[DV][0]
    t.exists[DV][0] = False
    edit(w, BC, 0, T0 - 1000)
    job = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(job) == {"inserted": 1}
    assert t.exists[DV][0] and t.coupled[0] and t.ids[DV][0] != old_id


def test_same_message_on_two_consecutive_runs_sets_skipped_a_different_one_does_not():
    w = small_world(with_parent=True)
    t = w.table("CUSTOMER")
    t.parents["salesperson"][0] = 1  # NEW: not coupled
    edit(w, BC, 0, T0 - 1000)
    first = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(first) == {"failed": 1} and not t.skipped[0]
    assert np.concatenate(w.errors.text)[0] == "Salesperson/Purchaser NEW must be coupled to a Dataverse row."
    # the failed coupling is retried on the next run although nothing changed
    second = synchronize(w, "CUSTOMER", TO, T0 + 30 * MIN)
    # the failure that makes the coupling Skipped counts Skipped in its job (§6.3 step 9); its error row stays
    assert counts(second) == {"skipped": 1} and t.skipped[0]
    assert len(np.concatenate(w.errors.text)) == 2
    # a skipped coupling is no longer retried as a failure, but its failures never raised the mapping's
    # watermark, so the record is selected again by its modified-on and counted Skipped in every run
    assert counts(synchronize(w, "CUSTOMER", TO, T0 + 60 * MIN)) == {"skipped": 1}
    edit(w, BC, 0, T0 + 70 * MIN)
    assert counts(synchronize(w, "CUSTOMER", TO, T0 + 90 * MIN)) == {"skipped": 1}
    # a different message on the second failure does not skip
    w2 = small_world(with_parent=True)
    t2 = w2.table("CUSTOMER")
    t2.parents["salesperson"][0] = 1
    edit(w2, BC, 0, T0 - 1000)
    synchronize(w2, "CUSTOMER", TO, T0)
    t2.parents["salesperson"][0] = 0
    t2.lens[BC][0, 0] = 200  # now the name is too long for Dataverse (160)
    synchronize(w2, "CUSTOMER", TO, T0 + 30 * MIN)
    assert t2.result[TO][0] == bc.RESULT_FAILURE and not t2.skipped[0]


def test_failed_retry_succeeds_once_cause_is_fixed():
    w = small_world(with_parent=True)
    t = w.table("CUSTOMER")
    t.parents["salesperson"][0] = 1
    edit(w, BC, 0, T0 - 1000)
    synchronize(w, "CUSTOMER", TO, T0)
    sp = w.table("SALESPEOPLE")
    sp.exists[DV][1] = True
    sp.couple(np.array([1]), T0)
    job = synchronize(w, "CUSTOMER", TO, T0 + 30 * MIN)
    assert counts(job) == {"modified": 1} and t.result[TO][0] == bc.RESULT_SUCCESS


def test_bidirectional_run_writes_two_jobs_to_dataverse_first_with_one_job_queue_entry():
    w = small_world()
    to_job, from_job = run_mapping(w, "CUSTOMER", T0)
    assert (to_job.direction, from_job.direction) == (TO, FROM)
    assert from_job.start > to_job.finish >= to_job.start
    assert to_job.job_queue_log_entry_no == from_job.job_queue_log_entry_no > 0
    fg = run_mapping(w, "CUSTOMER", T0 + MIN, job_queue_log_entry_no=0)
    assert {j.job_queue_log_entry_no for j in fg} == {0}
    with pytest.raises(TwinError):
        synchronize(w, "SALESPEOPLE", 5, T0)


def test_echo_suppression_skips_rows_last_modified_by_the_integration_user():
    w = small_world()
    t = w.table("CUSTOMER")
    edit(w, BC, 0, T0 - 1000)
    to_job, from_job = run_mapping(w, "CUSTOMER", T0)
    assert to_job.counts["modified"] == 1 and sum(from_job.counts.values()) == 0
    w2 = small_world(extra_from_field=True)  # a From-only field turns echo suppression off
    edit(w2, BC, 0, T0 - 1000)
    _, from2 = run_mapping(w2, "CUSTOMER", T0)
    assert from2.counts["unchanged"] == 1
    assert t.wm[DV][0] == t.mod[DV][0]


def test_missing_create_privilege_fails_inserts_and_disables_the_connection():
    w = small_world(coupled=False)
    w.table("CUSTOMER").exists[DV][:] = False
    edit(w, BC, 0, T0 - 1000)
    w.missing_create_privilege["account"] = 5
    job = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(job) == {"failed": 1}
    text = np.concatenate(w.errors.text)[0]
    assert "CrmCreate" in text and "prvCreateAccount" in text
    assert not w.connection_enabled and "insufficient privileges" in w.disable_reason
    assert np.concatenate(w.errors.destination)[0] == ""  # failed insert: no destination yet


def test_error_rows_carry_bc_formatted_record_ids_and_length_limits():
    w = small_world(direction=bc.FROM_INTEGRATION)
    t = w.table("CUSTOMER")
    edit(w, DV, 0, T0 - 1000)
    t.lens[DV][0, 0] = 130  # longer than BC's Name (Text[100])
    synchronize(w, "CUSTOMER", FROM, T0)
    log = w.errors
    assert np.concatenate(log.source)[0] == f"Dataverse Account: {bc.format_guid(t.ids[DV][0])}"
    assert np.concatenate(log.destination)[0] == "Customer: C00000"
    text = np.concatenate(log.text)[0]
    assert text.startswith("Modifying Customer failed because of the following error: The length of the string is 130, "
                           "but it must be less than or equal to 100 characters. Value: ")


# -- operations the resolution actions need --------------------------------------------------
def test_synchronize_now_unskips_and_force_modifies_past_a_conflict():
    w = small_world(update="None")
    t = w.table("CUSTOMER")
    edit(w, BC, 0, T0 - 2000, value=5)
    edit(w, DV, 0, T0 - 1500, value=6)
    t.skipped[0] = True
    jobs = ops.synchronize_now(w, "CUSTOMER", ["C00000"], FROM, T0)
    assert len(jobs) == 1 and jobs[0].counts["modified"] == 1 and jobs[0].one_off
    assert t.vals[BC][0, 0] == 6 and not t.skipped[0]
    assert jobs[0].mapping == "CUSTOMER" and jobs[0].job_queue_log_entry_no > 0
    with pytest.raises(TwinError, match="C99999"):
        ops.synchronize_now(w, "CUSTOMER", ["C99999"], TO, T0)


def test_synchronize_now_creates_missing_destination_with_only_coupled_off():
    w = small_world(only_coupled=True, coupled=False)
    t = w.table("CUSTOMER")
    t.exists[DV][1] = False
    job = ops.synchronize_now(w, "CUSTOMER", ["C00001"], TO, T0)[0]
    assert job.counts["inserted"] == 1 and t.coupled[1]


def test_retry_unskips_only_where_bc_record_exists_and_retry_all_everything():
    w = small_world()
    t = w.table("CUSTOMER")
    t.skipped[:] = True
    t.exists[BC][1] = False
    rows = ops.retry(w, "CUSTOMER", ["C00000", "C00001"])
    assert rows.tolist() == [0] and not t.skipped[0] and t.skipped[1]
    assert ops.retry_all(w) == 2 and not t.skipped.any()


def test_remove_coupling_writes_an_uncoupling_job():
    w = small_world()
    t = w.table("CUSTOMER")
    job = ops.remove_coupling(w, "CUSTOMER", ["C00000", "C00001"], T0)
    assert job.type == "Uncoupling" and job.counts["uncoupled"] == 2
    assert t.coupled.tolist() == [False, False, True]


def test_restore_and_delete_records_act_only_where_exactly_one_side_exists():
    w = small_world()
    t = w.table("CUSTOMER")
    ops.delete_record(w, "CUSTOMER", ["C00000", "C00001"], DV, T0)
    jobs = ops.restore_records(w, "CUSTOMER", ["C00000", "C00002"], T0 + MIN)  # C00002 has both: refused
    assert sum(j.counts["inserted"] for j in jobs) == 1
    assert t.exists[DV][0] and t.coupled[0]
    deleted = ops.delete_records(w, "CUSTOMER", ["C00001", "C00002"], T0 + 2 * MIN)
    assert deleted.tolist() == [1]
    assert not t.exists[BC][1] and not t.coupled[1] and t.exists[BC][2]
