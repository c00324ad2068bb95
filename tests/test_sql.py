"""The SQL vocabulary (syncanalysis.sql) and the two wrong results it ended (issue 13)."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from syncanalysis import Workspace
from syncanalysis.analysis.records import Selection, records, selection_relation
from syncanalysis.sql import registered, scope


def _id(i: int) -> str:
    return str(uuid.UUID(int=2000 + i))


@pytest.mark.parametrize("dataverse, bc_table", [("Compte Dataverse", "Client"), ("Dataverse-Konto", "Debitor"),
                                                 ("Dataverse Account", "Customer")])
def test_errors_of_french_and_german_exports_find_their_bc_record(dataverse, bc_table):
    """A job from Dataverse logs the Dataverse row as its source; in a French or German export the BC record
    is its destination all the same, and the coupling gets its latest error."""
    ws = Workspace()
    ws.ingest({
        "couplings": pd.DataFrame({"environment": "E", "company": "C", "table_id": [18], "integration_id": [_id(1)],
                                   "crm_id": [_id(2)], "bc_record_id": [f"{bc_table}: 10000"], "skipped": True,
                                   "last_synch_job_id": [_id(3)], "last_synch_result": "Failure"}),
        "job_errors": pd.DataFrame({"environment": "E", "company": "C", "error_no": [1], "job_id": [_id(3)],
                                    "logged_at": pd.to_datetime(["2026-01-01 10:00"]),
                                    "source_table": [dataverse], "source_record_id": [f"{dataverse}: {{{_id(2)}}}"],
                                    "destination_record_id": [f"{bc_table}: 10000"], "message": ["Boom"],
                                    "error_message": ["Boom"]})}, source="t", kind="test")
    got = records(ws, limit=None)
    assert got["latest_error"].tolist() == ["Boom"] and got["error_message"].tolist() == ["Boom"]


def test_a_keyed_relation_keeps_its_own_keys_when_another_is_built():
    """records_relation used to register every keyed selection under one fixed name, so a relation built for
    one selection returned another's rows once a second one was built."""
    ws = Workspace()
    ws.ingest({"couplings": pd.DataFrame({"environment": "E", "company": "C", "table_id": 18,
                                          "integration_id": [_id(i) for i in range(3)],
                                          "bc_record_id": [f"Customer: {i}" for i in range(3)]})},
              source="t", kind="test")
    first = selection_relation(ws, Selection(keys=(("E", "C", 18, _id(0)),)))
    second = selection_relation(ws, Selection(keys=(("E", "C", 18, _id(1)), ("E", "C", 18, _id(2)))))
    assert first.df()["bc_record_id"].tolist() == ["Customer: 0"]
    assert sorted(second.df()["bc_record_id"]) == ["Customer: 1", "Customer: 2"]


def test_registered_frames_are_gone_after_the_block_even_on_error():
    ws = Workspace()
    with pytest.raises(RuntimeError), registered(ws.con, pd.DataFrame({"x": [1]})) as name:
        raise RuntimeError("boom")
    with pytest.raises(Exception, match=name):
        ws.con.execute(f"SELECT * FROM {name}")


def test_scope_builds_one_condition_with_parameters():
    where, params = scope("e", environment="E", company="C", time_column="logged_at", since="2026-01-01")
    assert where == "e.environment = ? AND e.company = ? AND e.logged_at >= ?" and params == ["E", "C", "2026-01-01"]


def test_coupling_state_macro_is_the_one_vocabulary():
    ws = Workspace()
    rows = ws.con.execute("SELECT sa_coupling_state(b, d, s, r, cr) FROM (VALUES (false, true, true, NULL, NULL), "
                          "(true, true, true, NULL, 'Failure'), (true, NULL, false, 'Failure', NULL), "
                          "(NULL, NULL, NULL, 'Success', NULL)) t(b, d, s, r, cr)").fetchall()
    assert [r[0] for r in rows] == ["broken", "skipped", "failed", "ok"]
