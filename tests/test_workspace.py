from __future__ import annotations

import json
import uuid

import duckdb
import pandas as pd
import pytest

from syncanalysis import Workspace
from syncanalysis import actions as act
from syncanalysis.errors import SchemaError, WorkspaceError
from syncanalysis.schema import HISTORY_TABLES, SCHEMA_VERSION, TABLES


def jobs_frame(n: int = 3, env: str = "PROD") -> pd.DataFrame:
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    start = pd.date_range("2026-01-01", periods=n, freq="30min")
    return pd.DataFrame({"environment": env, "company": "CRONUS", "job_id": ids, "start_datetime": start,
                         "finish_datetime": start + pd.Timedelta(seconds=2), "mapping_name": "CUSTOMER",
                         "failed": range(n), "job_queue_log_entry_no": [0] + [7] * (n - 1)})


def test_every_canonical_table_exists_with_environment_and_company_and_a_schema_version(tmp_path):
    with Workspace(tmp_path / "w.duckdb") as ws:
        assert ws.schema_version == SCHEMA_VERSION
        for name, table in TABLES.items():
            cols = ws.sql(f"DESCRIBE {name}")["column_name"].tolist()
            assert cols == table.column_names
            if name in HISTORY_TABLES:
                assert {"environment", "company"} <= set(cols)


def test_upsert_is_idempotent_and_counts_updates(tmp_path):
    ws = Workspace(tmp_path / "w.duckdb")
    first = ws.ingest({"jobs": jobs_frame()}, source="a.csv", kind="test")
    assert (first.rows_inserted, first.rows_updated, first.load_id) == (3, 0, 1)
    again = ws.ingest({"jobs": jobs_frame()}, source="a.csv", kind="test")
    assert (again.rows_inserted, again.rows_updated, again.load_id) == (0, 0, None)
    assert ws.count("loads") == 1  # an identical reload leaves the workspace as it was
    changed = jobs_frame()
    changed.loc[1, "failed"] = 99
    r = ws.ingest({"jobs": changed}, source="b.csv", kind="test")
    assert (r.rows_inserted, r.rows_updated) == (0, 1)
    assert ws.query("jobs", filters={"failed": 99})["job_id"].astype(str).tolist() == [str(uuid.UUID(int=2))]
    # derived columns
    row = ws.query("jobs", limit=1, order_by="start_datetime").iloc[0]
    assert row["duration_ms"] == 2000 and row["trigger"] == "foreground"
    ws.close()


def test_a_failing_ingest_writes_nothing(tmp_path):
    ws = Workspace(tmp_path / "w.duckdb")
    ws.ingest({"jobs": jobs_frame(2)}, source="a", kind="t")
    bad = jobs_frame(3).assign(failed=["1", "2", "many"])
    with pytest.raises(SchemaError, match=r"row 3, column 'failed': value 'many'"):
        ws.ingest({"jobs": jobs_frame(5, env="OTHER"), "job_errors": bad.iloc[:0], "mappings": pd.DataFrame(),
                   "couplings": pd.DataFrame()} | {"jobs": bad}, source="b", kind="t")
    with pytest.raises(SchemaError, match="repeat the key"):
        ws.ingest({"mappings": pd.DataFrame({"environment": ["E", "E"], "company": ["C", "C"], "name": ["X", "X"]}),
                   "jobs": jobs_frame(4, env="NEW")}, source="c", kind="t")
    assert ws.count("jobs") == 2 and ws.count("mappings") == 0 and ws.count("loads") == 1


def test_schema_errors_name_table_and_column():
    ws = Workspace()
    with pytest.raises(SchemaError, match="no column"):
        ws.upsert("jobs", jobs_frame().assign(colour="red"))
    with pytest.raises(SchemaError, match="Unknown table 'nope'"):
        ws.query("nope")
    with pytest.raises(SchemaError, match="empty key"):
        ws.upsert("jobs", jobs_frame().assign(job_id=None))
    with pytest.raises(SchemaError, match="order"):
        ws.query("jobs", order_by="-colour")


def test_paged_filtered_queries():
    ws = Workspace()
    ws.ingest({"jobs": jobs_frame(10)}, source="a", kind="t")
    page = ws.query("jobs", order_by="-failed", limit=3, offset=3, columns=["failed"])
    assert page["failed"].tolist() == [6, 5, 4]
    assert ws.count("jobs", filters={"failed": (2, 4)}) == 3
    assert ws.count("jobs", filters={"failed": [1, 9]}) == 2
    assert ws.count("jobs", search="custom") == 10
    assert ws.count("jobs", filters={"failed": []}) == 0


def test_info_and_version_checks(tmp_path):
    path = tmp_path / "w.duckdb"
    with Workspace(path) as ws:
        ws.ingest({"jobs": jobs_frame(4)}, source="a", kind="t")
        ws.con.execute("UPDATE meta SET value = '999'")
    with pytest.raises(WorkspaceError, match="schema version 999"):
        Workspace(path, read_only=True)
    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace(tmp_path / "missing.duckdb", read_only=True)
    (tmp_path / "junk.duckdb").write_bytes(b"not a database at all" * 100)
    with pytest.raises(WorkspaceError, match="junk.duckdb"):
        Workspace(tmp_path / "junk.duckdb")
    info = Workspace().info()
    assert info["rows"]["jobs"] == 0 and info["first_job"] is None


def errors_frame(**over) -> pd.DataFrame:
    base = {"environment": ["PROD"] * 2, "company": ["CRONUS"] * 2, "error_no": [1, 2],
            "logged_at": pd.to_datetime(["2026-01-01 10:00:01.234", "2026-01-01 10:05:00.5"]),
            "error_message": ["The Customer record cannot be updated because it is coupled to a deleted record.",
                              "Cannot find the currency with the value 'NOK' in Dataverse."],
            "job_id": [str(uuid.UUID(int=1))] * 2}
    base.update(over)
    return pd.DataFrame(base)


def test_a_page_export_only_fills_what_a_table_export_left_empty():
    from syncanalysis.schema import FIDELITY_PAGE

    ws = Workspace()
    ws.upsert("job_errors", errors_frame(source_record_id=[None, "Customer: C1"]))
    # the page export has second-precision times, no job id, and knows nothing better
    page = errors_frame(logged_at=pd.to_datetime(["2026-01-01 10:00:01", "2026-01-01 10:05:00"]),
                        source_record_id=["Customer: C0", "Customer: C9"]).drop(columns=["job_id"])
    r = ws.upsert("job_errors", page, fidelity=FIDELITY_PAGE)
    assert (r.inserted, r.updated) == (0, 1)  # only row 1 had an empty column to fill
    got = ws.query("job_errors", order_by="error_no")
    assert got["logged_at"].dt.microsecond.tolist() == [234000, 500000]
    assert got["source_record_id"].tolist() == ["Customer: C0", "Customer: C1"]
    assert got["job_id"].notna().all() and (got["fidelity"] == 2).all()
    # a table export over page rows replaces what it provides and raises the fidelity
    ws2 = Workspace()
    ws2.upsert("job_errors", page, fidelity=FIDELITY_PAGE)
    r = ws2.upsert("job_errors", errors_frame())
    assert r.updated == 2
    got = ws2.query("job_errors", order_by="error_no")
    assert got["logged_at"].dt.microsecond.tolist() == [234000, 500000] and (got["fidelity"] == 2).all()
    assert got["source_record_id"].tolist() == ["Customer: C0", "Customer: C9"]  # not provided: kept


def test_analysis_columns_survive_a_reload_and_clear_when_the_text_changes():
    ws = Workspace()
    ws.upsert("job_errors", errors_frame())
    ws.con.execute("UPDATE job_errors SET signature = 'sig', cause = 'deleted'")
    assert ws.upsert("job_errors", errors_frame()).updated == 0
    assert ws.count("job_errors", filters={"cause": "deleted"}) == 2
    changed = errors_frame(error_message=["other text", errors_frame()["error_message"][1]])
    assert ws.upsert("job_errors", changed).updated == 1
    assert ws.query("job_errors", order_by="error_no")["cause"].isna().tolist() == [True, False]


def test_a_failed_load_leaves_the_file_byte_for_byte_unchanged(tmp_path):
    import hashlib

    path = tmp_path / "w.duckdb"
    with Workspace(path) as ws:
        ws.ingest({"jobs": jobs_frame(3)}, source="a", kind="t")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with Workspace(path) as ws, pytest.raises(SchemaError):
        with ws.loading(source="b", kind="t") as load:
            load.upsert("jobs", jobs_frame(5, env="OTHER"))
            load.upsert("jobs", jobs_frame(2).assign(failed=["x", "y"]))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    with Workspace(path, read_only=True) as ws:
        assert ws.count("jobs") == 3 and ws.count("loads") == 1


def test_replace_writes_rows_over_their_keys_without_comparing_and_inserts_new_ones():
    ws = Workspace()
    ws.ingest({"jobs": jobs_frame(3).assign(message="old")}, source="a", kind="t")
    new = jobs_frame(4).drop(columns=["failed"]).assign(message="new")  # one more key; 'failed' not given
    r = ws.replace("jobs", new)
    assert (r.read, r.updated, r.inserted) == (4, 3, 1)
    got = ws.query("jobs", order_by="start_datetime")
    assert got["message"].tolist() == ["new"] * 4
    assert got["failed"].isna().all()  # columns the frame lacks are written as NULL
    assert got["duration_ms"].tolist() == [2000] * 4 and got["trigger"].tolist()[0] == "foreground"


def test_a_page_reload_that_cannot_change_the_text_keeps_its_signature():
    from syncanalysis.schema import FIDELITY_PAGE

    ws = Workspace()
    ws.upsert("job_errors", errors_frame())
    ws.con.execute("UPDATE job_errors SET signature = 'sig', cause = 'deleted'")
    page = errors_frame(error_message=["cut text", "cut too"]).drop(columns=["job_id"])
    assert ws.upsert("job_errors", page, fidelity=FIDELITY_PAGE).updated == 0  # the table text stays
    assert ws.count("job_errors", filters={"cause": "deleted"}) == 2


def test_a_v3_workspace_keys_page_5333_lines_by_coupled_to_after_the_upgrade(tmp_path):
    """v3 keyed page 5333 lines by table and Description only; BC leaves Description blank for every line
    whose BC record is gone, so two such lines could not both be kept. The upgrade keeps the rows."""
    import duckdb

    path = tmp_path / "v3.duckdb"
    line = {"environment": "E", "company": "C", "table_id": [18], "description": ["C00010"], "coupled_to": ["Firm"],
            "error_message": ["x"]}
    with Workspace(path) as ws:
        ws.ingest({"skipped_records": pd.DataFrame(line)}, source="t", kind="test")
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE old AS SELECT * FROM skipped_records")
    con.execute("DROP TABLE skipped_records")
    v3 = TABLES["skipped_records"].ddl().replace('"description", "coupled_to")', '"description")')
    assert v3 != TABLES["skipped_records"].ddl()
    con.execute(v3)
    con.execute("INSERT INTO skipped_records SELECT * FROM old")
    con.execute("DROP TABLE old")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    with Workspace(path) as ws:
        assert ws.schema_version == SCHEMA_VERSION
        assert ws.query("skipped_records", limit=None)["description"].tolist() == ["C00010"]
        gone = pd.DataFrame({"environment": "E", "company": "C", "table_id": [18, 18], "description": ["", ""],
                             "coupled_to": ["Gone One", "Gone Two"], "record_exists": [False, False]})
        ws.ingest({"skipped_records": gone}, source="t2", kind="test")
        assert ws.count("skipped_records") == 3


def test_a_v5_audit_trail_moves_its_targets_into_action_targets(tmp_path):
    # a v5 actions row as v5's write_audit stored it: targets and per-result outcomes as JSON
    path = tmp_path / "v5.duckdb"
    Workspace(path).close()
    a, b = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
    targets = {"count": 2, "tables": [{"table_id": 18, "mapping": "CUSTOMER", "integration_ids": [a, b]}]}
    outcome = {"counts": {"changed": 1}, "jobs": [], "results": [
        {"table_id": 18, "result": "changed", "detail": "retried", "integration_ids": [a]},
        {"table_id": 18, "result": "refused", "detail": "not coupled", "integration_ids": [b]}]}
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE actions ADD COLUMN targets JSON")
    con.execute("INSERT INTO actions BY NAME SELECT 1 AS action_id, 'E' AS environment, 'C' AS company, "
                "TIMESTAMP '2026-01-01' AS \"at\", 'ann' AS who, 'retry' AS action, '{}' AS parameters, "
                "'twin' AS backend, false AS dry_run, ? AS outcome, ? AS targets",
                [json.dumps(outcome), json.dumps(targets)])
    con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    con.close()
    with Workspace(path) as ws:
        assert ws.schema_version == SCHEMA_VERSION
        got = ws.sql("SELECT CAST(integration_id AS VARCHAR) AS i, mapping_name, result, detail FROM action_targets "
                     "ORDER BY i")
        assert got.values.tolist() == [[a, "CUSTOMER", "changed", "retried"], [b, "CUSTOMER", "refused", "not coupled"]]
        assert "targets" not in ws.sql("SELECT * FROM actions").columns
        assert "results" not in json.loads(ws.sql("SELECT outcome FROM actions")["outcome"][0])
        assert act.audit_trail(ws)["targets"].tolist() == [2]
