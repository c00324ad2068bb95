"""Skipped backlog, ageing and time to resolution (syncanalysis.analysis.backlog)."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pytest

from syncanalysis.analysis import backlog as B
from syncanalysis.errors import SchemaError
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish
from syncanalysis.workspace import Workspace

ENV, CO = "PROD", "Co"
T0 = dt.datetime(2026, 1, 5, 8, 0)
X = "The Customer record cannot be updated because it is coupled to a deleted record."
Y = "Cannot find the currency with the value 'NOK' in Dataverse."


def _job(i: int) -> tuple[uuid.UUID, dt.datetime, dt.datetime]:
    start = T0 + dt.timedelta(minutes=30 * i)
    return uuid.UUID(int=i), start, start + dt.timedelta(minutes=1)


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Six To-jobs of CUSTOMER and records whose errors exercise each rule of the reconstruction."""
    ws = Workspace(tmp_path_factory.mktemp("backlog") / "hand.duckdb")
    jobs = pd.DataFrame([{
        "environment": ENV, "company": CO, "job_id": _job(i)[0], "start_datetime": _job(i)[1],
        "finish_datetime": _job(i)[2], "mapping_name": "CUSTOMER", "inserted": 0, "modified": 1, "deleted": 0,
        "unchanged": 5, "skipped": 0, "failed": 1, "synch_direction": "ToIntegrationTable",
        "job_queue_log_entry_no": 100 + i, "type": "Synchronization", "uncoupled": 0, "coupled": 0}
        for i in range(1, 7)])
    ids = {r: uuid.uuid4() for r in "ABCDE"}
    crm = {r: uuid.uuid4() for r in "ABCDE"}
    # record, job, message; D is a failed insert (no destination yet)
    plan = [("A", 1, X), ("A", 2, X), ("A", 5, X),      # skipped at J2, retried and re-skipped at J5
            ("B", 1, X), ("B", 3, X),                   # J2 passed: two separate episodes, never skipped
            ("C", 1, X), ("C", 2, Y), ("C", 3, Y),      # message changed, then repeated: skipped at J3
            ("D", 1, Y), ("D", 2, Y),                   # failed insert: never skipped
            ("E", 4, X)]                                # healed at J5, but an admin acted on it
    errors = pd.DataFrame([{
        "environment": ENV, "company": CO, "error_no": n + 1, "job_id": _job(j)[0],
        "logged_at": _job(j)[1] + dt.timedelta(seconds=10 + n), "source_record_id": f"Customer: {r}",
        "destination_record_id": "" if r == "D" else f"Dataverse Account: {{{str(crm[r]).upper()}}}",
        "source_table": "Customer", "source_key": r, "message": msg, "error_message": msg}
        for n, (r, j, msg) in enumerate(plan)])
    j6 = _job(6)[0]
    couplings = pd.DataFrame([
        {"environment": ENV, "company": CO, "table_id": 18, "integration_id": ids[r], "crm_id": crm[r],
         "bc_record_id": f"Customer: {r}", "skipped": r == "A", "bc_record_exists": True, "crm_record_exists": True,
         "last_synch_crm_result": "Failure" if r == "A" else "Success",
         "last_synch_crm_job_id": _job(5)[0] if r == "A" else j6}
        for r in "ABCE"])
    mappings = pd.DataFrame([{"environment": ENV, "company": CO, "name": "CUSTOMER", "table_id": 18,
                              "direction": "ToIntegrationTable"}])
    ws.ingest({"mappings": mappings, "jobs": jobs, "job_errors": errors, "couplings": couplings},
              source="hand", kind="test")
    acted_at = _job(4)[1] + dt.timedelta(minutes=5)
    # as write_audit records a run: the actions row, and per target its result
    def action(action_id, at, dry_run, target, result):
        ws.con.execute("INSERT INTO actions BY NAME SELECT ? AS action_id, ? AS environment, ? AS company, "
                       "? AS \"at\", 'tester' AS who, 'retry' AS action, '{}' AS parameters, 'twin' AS backend, "
                       "? AS dry_run, '{}' AS outcome", [action_id, ENV, CO, at, dry_run])
        ws.con.execute("INSERT INTO action_targets VALUES (?, 18, ?, 'CUSTOMER', ?, NULL)",
                       [action_id, str(ids[target]), result])

    action(1, acted_at, False, "E", "changed")
    action(2, _job(3)[1], True, "A", "planned")  # a dry run names A, but changes nothing: not acting on A
    action(3, _job(3)[1], False, "A", "refused")  # nor does a run that refused A
    err_at = {(r, j): errors.loc[(errors.source_record_id == f"Customer: {r}") & (errors.job_id == _job(j)[0]),
                                 "logged_at"].iloc[0] for r, j, _ in plan}
    yield {"ws": ws, "err_at": err_at}
    ws.close()


def test_skip_periods_follow_bc_rules(hand: dict) -> None:
    ws, at = hand["ws"], hand["err_at"]
    p = B.skip_periods(ws).set_index(["record_id", "start"])
    assert sorted(p.index.get_level_values(0)) == ["Customer: A", "Customer: A", "Customer: C"]
    a1 = p.loc[("Customer: A", at["A", 2])]
    assert a1["end"] == at["A", 5] and a1["end_reason"] == "retried"
    a2 = p.loc[("Customer: A", at["A", 5])]
    assert a2["ongoing"] and a2["end_reason"] == "still skipped"
    assert a2["skipped_since"] == at["A", 2]  # re-skipped at once: stuck since the first skip
    c = p.loc[("Customer: C", at["C", 3])]
    # synced later by the snapshot (J6); the retry wave of A at J5 shows the un-skip came earlier
    assert c["end_reason"] == "synced" and c["end"] == at["A", 5]
    assert c["message"] == Y


def test_backlog_and_ageing(hand: dict) -> None:
    ws = hand["ws"]
    b = B.backlog(ws)
    assert list(b["key"]) == ["all"] and b["skipped"].iloc[-1] == 1
    assert b["became_skipped"].sum() == 3 and b["cleared"].sum() == 2
    ageing = B.backlog_ageing(ws, by=None)
    assert list(ageing["bucket"]) == list(B.AGE_BUCKETS)
    assert ageing.set_index("bucket")["records"].to_dict() == {"< 1 day": 1, "1-7 days": 0, "7-30 days": 0,
                                                               "> 30 days": 0}
    later = B.backlog_ageing(ws, by=None, at=T0 + dt.timedelta(days=10))
    assert later.set_index("bucket").loc["7-30 days", "records"] == 1


def test_episodes_resolution_and_self_healing(hand: dict) -> None:
    ws = hand["ws"]
    e = B.failure_episodes(ws)
    by = {r: g.sort_values("first_failure") for r, g in e.groupby("record_id")}
    a = by["Customer: A"].iloc[0]
    assert len(by["Customer: A"]) == 1 and a["errors"] == 3 and a["resolution"] == "still skipped" and a["ongoing"]
    assert not a["acted"]  # only a dry run named A
    b = by["Customer: B"]
    assert list(b["resolution"]) == ["next run", "next run"] and b["self_healed"].all()
    assert list(b["resolved_at"]) == [_job(2)[2], _job(4)[2]]
    c = by["Customer: C"].iloc[0]
    assert c["errors"] == 3 and c["was_skipped"] and c["resolution"] == "synced" and not c["self_healed"]
    d = by["Customer: D"]
    assert len(d) == 1 and d["resolution"].iloc[0] == "unknown"
    ee = by["Customer: E"].iloc[0]
    assert ee["resolution"] == "next run" and ee["acted"] and not ee["self_healed"]
    assert ee["hours_to_resolution"] == pytest.approx((_job(5)[2] - ee["first_failure"]).total_seconds() / 3600)


def test_resolution_summary(hand: dict) -> None:
    s = B.resolution_summary(hand["ws"], by="signature").set_index("key")
    # without assigned signatures the raw message is the signature
    # X starts episodes of A, B (twice), C and E; only B's healed by themselves (E was acted on)
    assert s.loc[X, "episodes"] == 5 and s.loc[X, "records"] == 4 and s.loc[X, "self_healed"] == 2
    assert s.loc[X, "self_healed_records"] == 1 and s.loc[X, "self_heal_share"] == pytest.approx(1 / 4)
    assert s.loc[X, "episode_self_heal_share"] == pytest.approx(2 / 5)
    assert s.loc[Y, "records"] == 1 and s.loc[Y, "self_heal_share"] == 0  # D, a failed insert
    with pytest.raises(SchemaError):
        B.resolution_summary(hand["ws"], by="colour")
    with pytest.raises(SchemaError):
        B.backlog(hand["ws"], by="colour")


# -- on a twin: the reconstruction agrees with the snapshot ---------------------------------------------
@pytest.fixture(scope="module")
def twin_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    ws = Workspace(tmp_path_factory.mktemp("backlog") / "twin.duckdb")
    publish(ws, sim, scenario="h6-backlog")
    from syncanalysis.analysis.signatures import assign_signatures

    assign_signatures(ws)
    yield ws
    ws.close()


def test_reconstruction_matches_the_snapshot(twin_ws: Workspace) -> None:
    snap = set(twin_ws.con.execute("SELECT bc_record_id FROM couplings WHERE skipped").df()["bc_record_id"])
    assert snap, "the scenario should leave skipped couplings"
    p = B.skip_periods(twin_ws)
    ongoing = p[p["ongoing"]]
    assert set(ongoing["record_id"]) == snap
    assert (ongoing["source"] == "history").all()  # each one explained by a repeated error, none added blindly
    assert (p["end"].dropna() >= p.loc[p["end"].notna(), "start"]).all()
    b = B.backlog(twin_ws)
    assert b["skipped"].iloc[-1] == len(snap)
    assert (b["skipped"] == (b["became_skipped"] - b["cleared"]).cumsum()).all()
    per_mapping = B.backlog(twin_ws, by="mapping").groupby("period")["skipped"].sum()
    assert per_mapping.to_dict() == b.set_index("period")["skipped"].to_dict()
    over_time = B.backlog_ageing_over_time(twin_ws)
    assert over_time.groupby("period")["records"].sum().iloc[-1] == len(snap)
    assert B.backlog_ageing(twin_ws)["records"].sum() == len(snap)


def test_transient_errors_heal_by_themselves(twin_ws: Workspace) -> None:
    s = B.resolution_summary(twin_ws, by="cause").set_index("key")
    assert len(B.failure_episodes(twin_ws)) == s["episodes"].sum()
    transient = s.loc[s.index.intersection(["throttling", "timeout"])]
    assert len(transient) and (transient["self_heal_share"] > 0.5).all()
    for cause in s.index.intersection(["conflict", "deleted", "not-coupled"]):
        assert s.loc[cause, "self_heal_share"] < 0.2, cause
    e = B.failure_episodes(twin_ws)
    healed = e[e["self_healed"]]
    assert (healed["resolution"] == "next run").all() and not healed["was_skipped"].any()
    assert (e.loc[e["resolved_at"].notna(), "resolved_at"] > e.loc[e["resolved_at"].notna(), "first_failure"]).all()


def test_filters(twin_ws: Workspace) -> None:
    p = B.skip_periods(twin_ws, mapping="CUSTOMER")
    assert len(p) and set(p["mapping_name"]) == {"CUSTOMER"}
    everything = B.skip_periods(twin_ws)
    mid = everything["start"].min() + (everything["start"].max() - everything["start"].min()) / 2
    late = B.skip_periods(twin_ws, since=mid)
    assert len(late) < len(everything)
    assert (late["end"].isna() | (late["end"] >= mid)).all()
    assert B.skip_periods(twin_ws, company="nobody").empty


def test_empty_workspace_and_fresh_results(hand: dict) -> None:
    with Workspace() as empty:
        for f in (B.skip_periods, B.backlog, B.backlog_ageing, B.backlog_ageing_over_time, B.failure_episodes,
                  B.resolution_summary):
            assert f(empty).empty, f.__name__
    # results follow the workspace: a new repeated error is seen at once (the cached build is rebuilt)
    ws = hand["ws"]
    before = len(B.skip_periods(ws))
    j6, start, _ = _job(6)
    ws.ingest({"job_errors": pd.DataFrame([{
        "environment": ENV, "company": CO, "error_no": 100, "job_id": j6, "logged_at": start + dt.timedelta(seconds=5),
        "source_record_id": "Customer: E", "destination_record_id": "Dataverse Account: {X}", "source_table": "Customer",
        "message": X, "error_message": X}])}, source="more", kind="test")
    try:
        p = B.skip_periods(ws)
        assert len(p) == before  # E failed at J4 and J6, but J5 passed: not skipped
        e = B.failure_episodes(ws)
        assert (e["record_id"] == "Customer: E").sum() == 2
    finally:
        ws.con.execute("DELETE FROM job_errors WHERE error_no = 100")


def test_the_synchronization_log_applies_the_same_skip_rule(hand: dict) -> None:
    from syncanalysis.actions import sync_log

    def skipped_at(record: str) -> list:
        t = sync_log(hand["ws"], environment=ENV, company=CO, bc_record_id=f"Customer: {record}").timeline
        return sorted(t.loc[t["event"] == "failed, Skipped", "time"].tolist())

    err_at = hand["err_at"]
    assert skipped_at("A") == [err_at[("A", 2)], err_at[("A", 5)]]  # skipped at J2, retried, re-skipped at J5
    assert skipped_at("B") == []  # J2 ran between its two failures and did not fail it
    assert skipped_at("C") == [err_at[("C", 3)]]  # the message changed at J2, repeated at J3
