"""BC's own tests, ported to hand-built twin worlds (issue 12; checklists in docs/bc-tests/).

Each test is named after the BC test procedure it ports, whose codeunit and file are cited in its
docstring (``StefanMaron/MSDyn365BC.Code.History``, ``BaseApp/Test/Tests-CRM integration/``). BC's
"Synchronize(source, destination, ForceModify, IgnoreSynchOnlyCoupledRecords)" on one record is the
twin's ``synchronize(..., rows=[row], force_modify=..., ignore_only_coupled=...)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from twinworld import T0, edit, small_world

from syncanalysis import bc
from syncanalysis.twin import BC, DV, FROM, TO, run_mapping, synchronize

MIN = 60_000
MUST_BE_COUPLED = "Salesperson/Purchaser NEW must be coupled to a Dataverse row."


def counts(job) -> dict[str, int]:
    return {k: v for k, v in job.counts.items() if v}


def errors_of(w, job) -> list[str]:
    jobs = np.concatenate(w.errors.job) if w.errors.job else np.array([], int)
    texts = np.concatenate(w.errors.text) if w.errors.text else np.array([], object)
    return list(texts[jobs == job.index])


def _failing_customer():
    """A coupled customer whose salesperson (NEW) is not coupled: its sync to Dataverse fails."""
    w = small_world(with_parent=True)
    t = w.table("CUSTOMER")
    t.parents["salesperson"][0] = 1  # NEW
    edit(w, BC, 0, T0 - 1000)
    return w, t


# -- codeunit 139186 "CRM Synch. Skipped Records" (CRMSynchSkippedRecords.Codeunit.al) ------------------
def test_T100_SynchFailedOnceDoesNotMakeSkippedRec():
    """T100: one failure leaves the coupling failed, not skipped; once the parent is coupled it succeeds."""
    w, t = _failing_customer()
    first = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(first) == {"failed": 1} and errors_of(w, first) == [MUST_BE_COUPLED]
    assert not t.skipped[0]
    w.table("SALESPEOPLE").couple(np.array([1]), T0 + MIN)  # the salesperson coupling is put back
    w.table("SALESPEOPLE").exists[DV][1] = True
    second = synchronize(w, "CUSTOMER", TO, T0 + 30 * MIN)
    assert counts(second) == {"modified": 1} and errors_of(w, second) == []
    assert t.result[TO][0] == bc.RESULT_SUCCESS and not t.skipped[0]


def test_T101_SynchFailedDiffDoesNotMakeSkippedRec():
    """T101: two failures in a row with different messages: Failed both times, never Skipped."""
    w, t = _failing_customer()
    synchronize(w, "CUSTOMER", TO, T0)
    t.parents["salesperson"][0] = 0  # another salesperson (coupled), and a new failure:
    t.lens[BC][0, 0] = 200  # the name is now too long for Dataverse (160)
    edit(w, BC, 0, T0 + MIN)
    second = synchronize(w, "CUSTOMER", TO, T0 + 30 * MIN)
    assert counts(second) == {"failed": 1}
    assert errors_of(w, second) != [MUST_BE_COUPLED]
    assert t.result[TO][0] == bc.RESULT_FAILURE and not t.skipped[0]


def test_T105_SynchFailedTwiceMakesSkippedRec():
    """T105: the same failure twice makes the coupling Skipped and is counted Skipped (not Failed) in that
    job; the job's error row with the same text is still written."""
    w, t = _failing_customer()
    synchronize(w, "CUSTOMER", TO, T0)
    second = synchronize(w, "CUSTOMER", TO, T0 + 30 * MIN)
    assert counts(second) == {"skipped": 1}
    assert errors_of(w, second) == [MUST_BE_COUPLED]
    assert t.result[TO][0] == bc.RESULT_FAILURE and t.skipped[0]


def test_T106_SkippedRecIsSkippedByNormaljob():
    """T106: a skipped coupling stays skipped by a normal run (counted Skipped, not written)."""
    w = small_world()
    t = w.table("CUSTOMER")
    t.skipped[0] = True
    t.result[TO][0] = bc.RESULT_FAILURE
    edit(w, BC, 0, T0 - 1000)
    job = synchronize(w, "CUSTOMER", TO, T0)
    assert counts(job) == {"skipped": 1} and t.skipped[0]
    assert t.vals[DV][0, 0] != t.vals[BC][0, 0]


# -- codeunit 139165 "Integration Table Synch. Test" (IntegrationTableSynchTest.Codeunit.al) -------------
DIRECTIONS = [bc.BIDIRECTIONAL, bc.FROM_INTEGRATION]


def _deleted_customer(deletion: str, only_coupled: bool, direction: str):
    """The coupled customer was deleted in BC; its Dataverse account survives (a broken coupling)."""
    w = small_world(deletion=deletion, only_coupled=only_coupled, direction=direction)
    t = w.table("CUSTOMER")
    t.exists[BC][0] = False
    return w, t


@pytest.mark.parametrize("only_coupled", [True, False], ids=["OnlyCoupled", "All"])
@pytest.mark.parametrize("direction", DIRECTIONS, ids=["Bidirectional", "Unidirectional"])
def test_AutoResolveDeletedRecordNoStrategy(direction, only_coupled):
    """AutoResolveDeletedRecordNoStrategy{Bi,Uni}directional{OnlyCoupled,All}: with no deletion-conflict
    resolution the record fails (Failed 1), then the same failure makes it Skipped (Skipped 1, Failed 0);
    the coupling is kept."""
    w, t = _deleted_customer("None", only_coupled, direction)
    first = synchronize(w, "CUSTOMER", FROM, T0, rows=[0])
    assert counts(first) == {"failed": 1}
    (text,) = errors_of(w, first)
    assert text.endswith(" record cannot be updated because it is coupled to a deleted record.")
    second = synchronize(w, "CUSTOMER", FROM, T0 + MIN, rows=[0])
    assert counts(second) == {"skipped": 1}
    assert t.coupled[0] and t.skipped[0]


@pytest.mark.parametrize("only_coupled", [True, False], ids=["OnlyCoupled", "All"])
@pytest.mark.parametrize("direction", DIRECTIONS, ids=["Bidirectional", "Unidirectional"])
def test_AutoResolveDeletedRecordRemoveCoupling(direction, only_coupled):
    """AutoResolveDeletedRecordRemoveCoupling…: the coupling is removed and nothing is Skipped. BC's tests
    assert only Skipped = 0; codeunit 5345 removes the coupling before change detection, so the record
    counts Unchanged (spec §6.3 step 3)."""
    w, t = _deleted_customer("Remove Coupling", only_coupled, direction)
    job = synchronize(w, "CUSTOMER", FROM, T0, rows=[0])
    assert job.counts["skipped"] == 0
    assert counts(job) == {"unchanged": 1}
    assert not t.coupled[0] and t.exists[DV][0]


@pytest.mark.parametrize("only_coupled", [True, False], ids=["OnlyCoupled", "All"])
@pytest.mark.parametrize("direction", DIRECTIONS, ids=["Bidirectional", "Unidirectional"])
def test_AutoResolveDeletedRecordRestoreRecords(direction, only_coupled):
    """AutoResolveDeletedRecordRestoreRecords…: the deleted customer is re-created from the account (with its
    name) and coupled again; the account is untouched; nothing is Skipped."""
    w, t = _deleted_customer("Restore Records", only_coupled, direction)
    t.vals[DV][0, 0] = 77
    old_bc_id = t.ids[BC][0]
    job = synchronize(w, "CUSTOMER", FROM, T0, rows=[0])
    assert job.counts["skipped"] == 0 and counts(job) == {"inserted": 1}
    assert t.exists[BC][0] and t.exists[DV][0] and t.coupled[0]
    assert t.vals[BC][0, 0] == 77 and t.ids[BC][0] != old_bc_id


def test_InsertModifyRowsFromIntegrationTable():
    """InsertModifyRowsFromIntegrationTable: a ForceModify write counts Modified (here the source changed)."""
    w = small_world()
    edit(w, BC, 0, T0 - 1000)
    job = synchronize(w, "CUSTOMER", TO, T0, rows=[0], force_modify=True)
    assert counts(job) == {"modified": 1}


def test_ForceModify_counts_modified_even_when_no_field_changed():
    """Codeunit 5345 (no BC test asserts the counter): a ForceModify write is counted Modified even when
    nothing differs, while the same record on a normal run is Unchanged (spec §6.3 step 8)."""
    w = small_world()
    t = w.table("CUSTOMER")
    assert (t.vals[BC][0] == t.vals[DV][0]).all()
    forced = synchronize(w, "CUSTOMER", TO, T0, rows=[0], force_modify=True)
    assert counts(forced) == {"modified": 1}
    t.mapping_wm[BC] = -1  # select it again on a normal run
    normal = synchronize(w, "CUSTOMER", TO, T0 + MIN)
    assert normal.counts["unchanged"] == 3 and normal.counts["modified"] == 0


def test_UnchangedRowFromIntegrationTable():
    """UnchangedRowFromIntegrationTable: a record synchronized before and not changed since is Unchanged."""
    w = small_world(direction=bc.FROM_INTEGRATION)
    job = synchronize(w, "CUSTOMER", FROM, T0, rows=[0])
    assert counts(job) == {"unchanged": 1}


# -- codeunit "CRM Synch. Job Scenarios" (CRMSynchJobScenarios.Codeunit.al) -------------------------------
def test_SynchOnlyCoupledRecordsMapping():
    """SynchOnlyCoupledRecordsMapping: a from-Dataverse run of an only-coupled mapping updates the coupled
    customer and creates none from the uncoupled account — which is not counted at all (dropped before the
    run, spec §6.2 / §6.3 step 4), in either direction."""
    w = small_world(only_coupled=True, direction=bc.FROM_INTEGRATION, n=2)
    t = w.table("CUSTOMER")
    t.uncouple(np.array([1]))
    edit(w, DV, 0, T0 - 1000)
    edit(w, DV, 1, T0 - 1000)
    (job,) = run_mapping(w, "CUSTOMER", T0)
    assert counts(job) == {"modified": 1}
    assert t.vals[BC][0, 0] == t.vals[DV][0, 0]
    assert not t.coupled[1] and t.exists[BC].sum() == 2  # no customer created, nothing counted for it
    w2 = small_world(only_coupled=True, n=2)
    t2 = w2.table("CUSTOMER")
    t2.uncouple(np.array([1]))
    edit(w2, BC, 1, T0 - 1000)
    edit(w2, DV, 1, T0 - 1000)
    to_job, from_job = run_mapping(w2, "CUSTOMER", T0)
    assert counts(to_job) == {} and counts(from_job) == {}
