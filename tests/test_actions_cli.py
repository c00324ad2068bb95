"""The plan-file backend (loaded history) and the ``act`` / ``twin advance`` command line, end to end."""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
from test_actions import BLOCK_MSG, COMPANY, ENV, build_base, coupling, sel_of, snapshot

from syncanalysis import SyncAnalysisError, Workspace
from syncanalysis import actions as act
from syncanalysis.actions.cli import register
from syncanalysis.analysis.records import Selection


def cli(argv: list[str]) -> int:
    """``syncanalysis`` with the subcommands of actions.cli, and main's error contract (exit 2, ``error: ...``)."""
    parser = argparse.ArgumentParser(prog="syncanalysis")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SyncAnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("actions-cli") / "base.duckdb"
    return SimpleNamespace(path=path, rids=build_base(path))


@pytest.fixture
def path(base, tmp_path):
    copy = tmp_path / "ws.duckdb"
    shutil.copy(base.path, copy)
    return copy


@pytest.fixture
def loaded(path):
    """A workspace of loaded history: the same data, no twin behind it."""
    with Workspace(path) as ws:
        ws.con.execute("DELETE FROM twin_state")
        yield ws


# -- plan-file backend -----------------------------------------------------------------------------
def test_plan_file_backend_writes_a_grouped_reviewable_change_set_and_changes_no_data(loaded, base, tmp_path):
    before = snapshot(loaded)
    # every Skipped CUSTOMER coupling, also those whose Dataverse row is gone (their state is "broken")
    skipped = loaded.sql("SELECT bc_record_id FROM couplings WHERE skipped AND table_id = 18")["bc_record_id"]
    p = act.plan(loaded, "retry", sel_of(loaded, list(skipped)).replace(mapping="CUSTOMER"))
    assert p.backend == "plan"
    assert p.targets.loc[p.targets["status"] == "change", "bc_record_id"].isin(base.rids["blocked"]).sum() == 5
    r = act.execute(loaded, p, who="carol")
    assert snapshot(loaded) == before  # the workspace data is not changed
    assert r.plan_file.parent == loaded.path.parent / "plans" and r.plan_file.suffix == ".json"  # beside it
    assert r.counts["planned"] == p.counts["will_change"] and r.counts["changed"] == 0
    doc = json.loads(r.plan_file.read_text(encoding="utf-8"))
    assert doc["action"] == "retry" and doc["action_id"] == r.action_id and doc["who"] == "carol"
    (step,) = doc["steps"]
    assert (step["page"], step["page_id"], step["mapping"], step["table_id"], step["bc_action"]) == (
        "Coupled Data Synchronization Errors", 5333, "CUSTOMER", 18, "Retry")
    records = [rec for b in step["batches"] for rec in b["records"]]
    assert len(records) == step["count"] == p.counts["will_change"]
    assert all(len(b["records"]) <= 100 for b in step["batches"])  # page 5333 loads 100 lines at a time
    first = step["batches"][0]
    keys = [rec["description"] for rec in first["records"]]
    assert first["filter"] == f"Table ID: 18; Description: {'|'.join(keys)}"
    blocked = {rid.split(": ")[1] for rid in base.rids["blocked"]}
    shown = {rec["description"]: rec["coupled_to"] for rec in records}
    assert blocked <= set(shown) and all(shown[k] for k in blocked)  # Description and Coupled To as BC shows
    refused = {g["reason"]: g for g in doc["not_applied"]}
    assert refused["the Dataverse row was deleted"]["suggest"] == "Restore Records or Delete Records"
    md = r.plan_file.with_suffix(".md").read_text(encoding="utf-8")
    assert "## Step 1. Coupled Data Synchronization Errors (page 5333): Retry – CUSTOMER" in md
    assert f"`{first['filter']}`" in md and "## Not applied" in md
    csv = pd.read_csv(r.plan_file.with_suffix(".csv"))
    assert len(csv) == p.counts["targets"] and set(csv["status"]) == {"change", "refused"}
    row = loaded.sql("SELECT * FROM actions").iloc[0]
    assert row["backend"] == "plan" and not row["dry_run"]
    assert json.loads(row["outcome"])["plan_file"] == str(r.plan_file)


def test_plan_file_points_non_skipped_records_to_the_error_list(loaded, base, tmp_path):
    loaded.con.execute("UPDATE couplings SET skipped = false WHERE bc_record_id IN (SELECT unnest(?))",
                       [base.rids["blocked"]])
    target = tmp_path / "plans" / "sync.md"
    p = act.plan(loaded, "synchronize", sel_of(loaded, base.rids["blocked"]), direction="from-dataverse",
                 backend=act.PlanFileBackend(target))
    assert set(p.targets["fields"]) == {"fields mapped from Dataverse (field list unknown on loaded history)"}
    r = act.execute(loaded, p)
    assert r.plan_file == tmp_path / "plans" / "sync.json"
    assert all((tmp_path / "plans" / f"sync.{ext}").exists() for ext in ("json", "md", "csv"))
    (step,) = json.loads(r.plan_file.read_text(encoding="utf-8"))["steps"]
    assert step["page_id"] == 5339 and step["bc_action"] == "Synchronize"
    assert step["choose"] == "Get data update from Dataverse."
    latest = loaded.sql("SELECT max(error_no) AS n FROM job_errors WHERE source_record_id IN (SELECT unnest(?)) "
                        "GROUP BY source_record_id ORDER BY n", [base.rids["blocked"]])["n"].tolist()
    assert step["batches"][0]["filter"] == "No.: " + "|".join(str(n) for n in sorted(latest, key=str))


def test_twin_backend_is_the_default_only_where_a_twin_exists(path):
    with Workspace(path) as ws:
        assert act.plan(ws, "retry-all").backend == "twin"
        assert act.plan(ws, "retry-all", backend="plan").backend == "plan"
        ws.con.execute("DELETE FROM twin_state")
        assert act.plan(ws, "retry-all").backend == "plan"
        with pytest.raises(act.ActionError, match="holds no twin"):
            act.plan(ws, "retry-all", backend="twin")


# -- command line ----------------------------------------------------------------------------------
def test_cli_dry_run_prints_the_plan_and_audits_it(path, capsys):
    assert cli(["act", "retry", "--workspace", str(path), "--table", "Customer", "--state", "skipped",
                "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Retry on CUSTOMER, skipped" in out and "will un-skip" in out and "nothing was changed" in out
    with Workspace(path) as ws:
        assert ws.sql("SELECT dry_run FROM actions")["dry_run"].tolist() == [True]
        assert ws.count("couplings", filters={"skipped": True}) > 0


def test_cli_destructive_action_needs_yes_without_a_terminal(path, base, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a TTY
    keys = path.parent / "keys.csv"
    pd.DataFrame({"bc_record_id": base.rids["blocked"] + ["Customer: NOPE"]}).to_csv(keys, index=False)
    argv = ["act", "remove-coupling", "--workspace", str(path), "--keys", str(keys)]
    assert cli(argv) == 2
    captured = capsys.readouterr()
    assert "Remove Coupling is destructive" in captured.err and "--yes" in captured.err
    assert "no coupling" in captured.err  # the unknown record id is reported, not fatal
    with Workspace(path) as ws:
        assert ws.count("actions") == 0 and coupling(ws, base.rids["blocked"][0]) is not None
    assert cli(argv + ["--yes"]) == 0
    out = capsys.readouterr().out
    assert "5 changed" in out and "Jobs run now: CUSTOMER uncoupling" in out
    with Workspace(path) as ws:
        assert coupling(ws, base.rids["blocked"][0]) is None


def test_cli_synchronize_with_direction_and_plan_file(path, base, tmp_path, capsys):
    keys = tmp_path / "keys.csv"
    with Workspace(path) as ws:
        sel = sel_of(ws, base.rids["name_diff"])
    pd.DataFrame([{"table_id": k[2], "integration_id": "{" + k[3].upper() + "}"} for k in sel.keys]).to_csv(
        keys, index=False)
    assert cli(["act", "synchronize", "--workspace", str(path), "--keys", str(keys), "--direction", "merge"]) == 0
    out = capsys.readouterr().out
    assert "Merge not offered: the bidirectional field(s) Name differ" in out
    plan_file = tmp_path / "out" / "p.json"
    assert cli(["act", "synchronize", "--workspace", str(path), "--keys", str(keys), "--direction", "to-dataverse",
                "--plan-file", str(plan_file)]) == 0
    assert "Plan file:" in capsys.readouterr().out and plan_file.exists()


def test_cli_twin_advance_shows_the_runs_and_the_backlog_before_and_after(path, base, capsys):
    assert cli(["act", "retry", "--workspace", str(path), "--table", "CUSTOMER", "--state", "skipped"]) == 0
    capsys.readouterr()
    assert cli(["twin", "advance", "--workspace", str(path), "--hours", "13"]) == 0
    out = capsys.readouterr().out
    assert f"Twin {ENV} / {COMPANY}: advanced 13 h" in out and "CUSTOMER" in out
    before, after = (int(x.replace(",", "")) for x in re.search(r"skipped ([\d,]+) → ([\d,]+)", out).groups())
    assert after >= before + 5  # the retried records whose salesperson is still uncoupled are Skipped again
    with Workspace(path) as ws:
        assert all(coupling(ws, rid)["skipped"] for rid in base.rids["blocked"])


def test_cli_finding_selects_what_the_diagnosis_found(path, base, capsys, monkeypatch):
    import syncanalysis.analysis.findings as findings

    sel = Selection(environment=ENV, company=COMPANY, mapping="CUSTOMER", state="skipped", search="TESTSP",
                    finding="parent-aaaaaa")
    other = Selection(environment=ENV, company=COMPANY, mapping="CUSTOMER", search="nothing matches this",
                      finding="parent-bbbbbb")
    # two findings with the same code and mapping: each is named by its id (or its rank)
    fake = [SimpleNamespace(id="parent-bbbbbb", code="PARENT_NOT_COUPLED", mapping="CUSTOMER", title="other",
                            selection=other),
            SimpleNamespace(id="parent-aaaaaa", code="PARENT_NOT_COUPLED", mapping="CUSTOMER",
                            title="TESTSP blocks customers", selection=sel),
            SimpleNamespace(id="sync-cccccc", code="SYNC_STOPPED", mapping="CONTACT", title="stopped", selection=None)]
    monkeypatch.setattr(findings, "diagnose", lambda ws, **kw: fake)
    with Workspace(path) as ws:
        ws.con.execute("UPDATE couplings SET crm_description = 'TESTSP client' WHERE bc_record_id IN "
                       "(SELECT unnest(?))", [base.rids["blocked"]])
    # by rank, before anything ran: 2 is parent-aaaaaa with its 5 records, 1 the other one with none
    assert cli(["act", "retry", "--workspace", str(path), "--finding", "2", "--dry-run"]) == 0
    assert "5 will change" in capsys.readouterr().out
    assert cli(["act", "retry", "--workspace", str(path), "--finding", "1", "--dry-run"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert cli(["act", "retry", "--workspace", str(path), "--finding", "parent-aaaaaa"]) == 0
    assert "5 changed" in capsys.readouterr().out
    with Workspace(path) as ws:
        params = json.loads(ws.sql("SELECT parameters FROM actions")["parameters"].iloc[0])
    assert params["selection"]["finding"] == "parent-aaaaaa" and "keys" not in params["selection"]
    assert cli(["act", "retry", "--workspace", str(path), "--finding", "NOPE"]) == 2
    err = capsys.readouterr().err
    assert "No finding 'NOPE'" in err and "parent-aaaaaa (PARENT_NOT_COUPLED)" in err
    assert cli(["act", "retry", "--workspace", str(path), "--finding", "sync-cccccc"]) == 2
    assert "about the job queue" in capsys.readouterr().err


def test_cli_whole_company_action_of_a_finding_runs_on_its_company(path, capsys, monkeypatch):
    import syncanalysis.analysis.findings as findings

    keys = Selection(environment=ENV, company=COMPANY, keys=(("x", "y", 18, "00000000-0000-0000-0000-000000000001"),),
                     finding="connection-dddddd")
    fake = [SimpleNamespace(id="connection-dddddd", code="CONNECTION_DISABLED", mapping=None, title="disabled",
                            selection=keys)]
    monkeypatch.setattr(findings, "diagnose", lambda ws, **kw: fake)
    # Retry All takes no keys in BC: the finding's records are counted, the company is what it runs on
    assert cli(["act", "retry-all", "--workspace", str(path), "--finding", "connection-dddddd", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Retry All" in out and f"{ENV} / {COMPANY}" in out


def test_cli_errors_are_clear(path, tmp_path, capsys):
    assert cli(["act", "retry", "--workspace", str(path), "--table", "Spaceships"]) == 2
    assert "--table 'Spaceships' is neither a mapping" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("table_id,integration_id\n18,not-a-guid\n")
    assert cli(["act", "retry", "--workspace", str(path), "--keys", str(bad)]) == 2
    assert f"{bad}, row 2, column integration_id" in capsys.readouterr().err
    assert cli(["act", "retry", "--workspace", str(tmp_path / "none.duckdb")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["twin", "advance", "--workspace", str(path), "--hours", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert BLOCK_MSG  # the planted history is the one the library tests use


def test_cli_set_up_coupling_and_delete_entries(path, base, capsys, tmp_path):
    """``act set-up-coupling --couple-to`` (a GUID, or a CSV of pairs) and ``delete-entries`` end to end."""
    rid, other = base.rids["name_diff"]
    with Workspace(path) as ws:
        key = str(coupling(ws, rid)["integration_id"])
        taken = str(coupling(ws, other)["crm_id"])
    bad = tmp_path / "pairs.csv"
    bad.write_text("integration_id,crm\n" + f"{key},{taken}\n")
    assert cli(["act", "set-up-coupling", "--workspace", str(path), "--keys", str(_keys_file(tmp_path, key)),
                "--couple-to", str(bad), "--yes"]) == 2
    assert "needs the columns integration_id and crm_id; it lacks crm_id" in capsys.readouterr().err
    good = tmp_path / "good.csv"
    good.write_text("integration_id,crm_id\n" + f"{key},{taken}\n")
    assert cli(["act", "set-up-coupling", "--workspace", str(path), "--keys", str(_keys_file(tmp_path, key)),
                "--couple-to", str(good), "--yes"]) == 0
    assert "already coupled to Customer" in capsys.readouterr().out  # refused: that account has its customer
    assert cli(["delete-entries", "--workspace", str(path), "--days", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Delete All Entries .*will delete [\d,]+ job\(s\)", out)
    with Workspace(path) as ws:
        jobs = ws.count("jobs")
    assert cli(["delete-entries", "--workspace", str(path), "--days", "0", "--yes"]) == 0
    assert "deleted" in capsys.readouterr().out
    with Workspace(path) as ws:
        assert 0 < ws.count("jobs") < jobs  # the jobs Skipped couplings point at stay


def _keys_file(tmp_path, integration_id: str):
    f = tmp_path / "keys.csv"
    f.write_text("table_id,integration_id\n" + f"18,{integration_id}\n")
    return f
