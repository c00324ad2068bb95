"""The diagnosis: job health, bursts, dependencies, coded findings, and the planted incidents recovered."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest

from syncanalysis import Workspace
from syncanalysis.analysis.dependencies import dependency_graph
from syncanalysis.analysis.findings import _episode_end, _find_bursts, diagnose, findings_frame, kpis
from syncanalysis.analysis.health import gaps, job_health, stopped_periods
from syncanalysis.analysis.records import count_records
from syncanalysis.cli import main
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish

ENV, CO = "PROD", "CRONUS"
TOLERANCE = pd.Timedelta(minutes=30)  # one job interval


def _jobs(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    """rows: (mapping, start, entry no, failed-or-written count); one To job per run, 3 s long."""
    start = pd.to_datetime([r[1] for r in rows], format="ISO8601")
    return pd.DataFrame({
        "environment": ENV, "company": CO, "job_id": [str(uuid.uuid4()) for _ in rows], "start_datetime": start,
        "finish_datetime": start + pd.Timedelta(seconds=3), "mapping_name": [r[0] for r in rows],
        "modified": [r[3] for r in rows], "inserted": 0, "deleted": 0, "unchanged": 0, "skipped": 0, "failed": 0,
        "synch_direction": "ToIntegrationTable", "job_queue_log_entry_no": [r[2] for r in rows],
        "type": "Synchronization"})


def _every(mapping: str, start: str, n: int, busy: int = 1, first_no: int = 1, step: str = "30min") -> list:
    times = pd.date_range(start, periods=n, freq=step)
    return [(mapping, str(t), first_no + i, busy) for i, t in enumerate(times)]


def test_gaps_tell_a_stop_from_an_inactivity_hold_and_a_one_off_run():
    rows = (_every("CUSTOMER", "2026-01-05 08:00", 6)  # busy every 30 min until 10:30 ...
            + [("CUSTOMER", "2026-01-05 14:00", 50, 1)]  # ... then nothing for 3.5 h: stopped
            + _every("CONTACT", "2026-01-05 08:00", 2, busy=0, first_no=100)  # idle: on hold ...
            + [("CONTACT", "2026-01-05 20:00", 110, 1)]  # ... woken 11.5 h later by a change
            + [("CONTACT", "2026-01-07 20:00", 120, 0)]  # a lone busy run, then 48 h quiet: > longest timeout
            + [("CURRENCY", "2026-01-05 08:00", 200, 0), ("CURRENCY", "2026-01-05 20:00", 201, 1),
               ("CURRENCY", "2026-01-06 12:00", 202, 0)])  # a busy run after a long pause (one-off): not a stop
    ws = Workspace()
    ws.ingest({"jobs": _jobs(rows)}, source="t", kind="t")
    g = gaps(ws).set_index(["mapping_name", "gap_end"])
    assert g.loc[("CUSTOMER", pd.Timestamp("2026-01-05 14:00")), "kind"] == "stopped"
    assert g.loc[("CUSTOMER", pd.Timestamp("2026-01-05 14:00")), "due"] == pd.Timestamp("2026-01-05 11:00")
    assert g.loc[("CONTACT", pd.Timestamp("2026-01-05 20:00")), "kind"] == "on-hold-inactivity"
    assert g.loc[("CONTACT", pd.Timestamp("2026-01-07 20:00")), "kind"] == "stopped"  # 48 h > 24.5 h
    assert g.loc[("CURRENCY", pd.Timestamp("2026-01-06 12:00")), "kind"] == "after-one-off-run"
    h = job_health(ws).set_index("mapping_name")
    assert h.loc["CUSTOMER", "cadence_min"] == pytest.approx(30)
    assert h.loc["CUSTOMER", "duration_p50_s"] == pytest.approx(3)


def test_a_stop_of_every_mapping_is_one_period_and_needs_two_stopped_mappings():
    rows = (_every("CUSTOMER", "2026-01-05 08:00", 4) + _every("CUSTOMER", "2026-01-06 12:00", 2, first_no=20)
            + _every("VENDOR", "2026-01-05 08:10", 4, first_no=40) + _every("VENDOR", "2026-01-06 12:10", 2, first_no=60))
    ws = Workspace()
    ws.ingest({"jobs": _jobs(rows)}, source="t", kind="t")
    p = stopped_periods(ws)
    assert len(p) == 1 and sorted(p.loc[0, "mappings"]) == ["CUSTOMER", "VENDOR"]
    assert p.loc[0, "end"] == pd.Timestamp("2026-01-06 12:00")
    # without errors naming a privilege, the diagnosis calls it a stop of everything, not a disabled connection
    codes = {f.code for f in diagnose(ws)}
    assert "SYNC_STOPPED_ALL" in codes and "CONNECTION_DISABLED" not in codes
    one = Workspace()
    one.ingest({"jobs": _jobs(rows[:6])}, source="t", kind="t")
    assert stopped_periods(one).empty  # a single stopped mapping is SYNC_STOPPED, not a global stop
    assert [f.code for f in diagnose(one) if f.code.startswith("SYNC_STOPPED")] == ["SYNC_STOPPED"]


def test_bursts_start_where_records_start_failing_together():
    starts = pd.date_range("2026-01-01", periods=400, freq="30min").to_numpy()
    rng = np.random.default_rng(3)
    counts = (rng.random(400) < 0.03).astype(float)  # a lone background failure now and then
    assert _find_bursts(starts, counts) == []
    counts[200:206] = [1, 7, 9, 6, 8, 2]  # the incident begins between runs 199 and 200
    counts[199] = 0
    (first, last), = _find_bursts(starts, counts)
    assert first == 200 and last >= 204
    counts[198] = 1  # a lone background failure two runs earlier does not move the start
    assert _find_bursts(starts, counts)[0][0] == 200
    counts[199], counts[200] = 1, 0  # one failure right before the burst, a quiet run, then many
    assert _find_bursts(starts, counts)[0][0] in (199, 201)


def test_a_weekly_rhythm_is_background_and_an_incident_off_it_is_a_burst():
    # 13 weeks of runs every 30 minutes; Monday mornings bring a few failures every week (people edit)
    starts = pd.date_range("2026-08-24", periods=13 * 7 * 48, freq="30min")  # 2026-08-24 is a Monday
    rng = np.random.default_rng(5)
    counts = (rng.random(len(starts)) < 0.02).astype(float)
    monday = (starts.day_of_week == 0) & (starts.hour >= 7) & (starts.hour < 9)
    counts[monday] = rng.poisson(6, monday.sum())
    assert _find_bursts(starts.to_numpy(), counts) == []  # each Monday is the usual, not an incident
    saturday = np.flatnonzero((starts.day_of_week == 5) & (starts.hour == 16))[5]
    counts[saturday:saturday + 3] = [12, 15, 9]
    (first, last), = _find_bursts(starts.to_numpy(), counts)
    assert first == saturday and last >= saturday + 2
    # with fewer than six weeks of history a weekly rhythm cannot be told: the quiet rate is the background
    short = slice(0, 4 * 7 * 48)
    assert len(_find_bursts(starts.to_numpy()[short], counts[short])) >= 1


def test_an_episode_ends_when_its_records_stopped_failing_not_with_one_straggler_in_thousands():
    day = pd.Timestamp("2026-11-19 10:00")
    bulk = (day + pd.to_timedelta(np.arange(3000), unit="s")).to_numpy()
    straggler = np.array([day + pd.Timedelta(hours=3)], dtype="datetime64[ns]")
    assert _episode_end(np.concatenate([bulk, straggler])) == bulk.max()
    assert _episode_end(np.concatenate([bulk[:100], straggler])) == straggler[0]  # a small episode's tail


def test_dependency_graph_orders_fixes_by_mapping_dependencies():
    sim = Simulation(ScenarioConfig(days=30, scale=0.3, seed=4))
    sim.run()
    ws = Workspace()
    publish(ws, sim, scenario="t")
    diagnose(ws)  # assigns signatures
    g = dependency_graph(ws)
    parents = g.set_index("parent_record_id")
    assert parents.loc["Salesperson/Purchaser: NEWSP", "child_mapping"] == "CUSTOMER"
    assert parents.loc["Salesperson/Purchaser: NEWSP", "blocked_records"] >= 20
    assert parents.loc["Currency: NOK", "parent_state"] == "ok"  # fixed by the scenario
    # parents still blocking come first (a parent coupled since is not the one to fix first); among them,
    # setup parents (salespeople, currencies, units) come before customers blocking contacts
    done = (g["parent_state"] == "ok") | (g["still_blocking"] == 0)
    assert done.any() and (~done).any()
    assert g.loc[~done, "fix_order"].max() < g.loc[done, "fix_order"].min()
    todo = g[~done].set_index("parent_record_id")
    setup = todo[~todo.index.str.startswith(("Customer:", "Vendor:", "Contact:"))]
    customers = todo[todo.index.str.startswith("Customer:")]
    assert len(setup) and len(customers)  # this history has both (a rate, a unit group; customers of contacts)
    assert setup["fix_order"].max() < customers["fix_order"].min()
    assert g["fix_order"].tolist() == list(range(1, len(g) + 1))


@pytest.fixture(scope="module")
def seeds() -> dict[int, Workspace]:
    out = {}
    for seed in (4, 5, 20):
        sim = Simulation(ScenarioConfig(days=30, scale=0.3, seed=seed))
        sim.run()
        ws = Workspace()
        publish(ws, sim, scenario=f"seed {seed}")
        out[seed] = ws
    return out


@pytest.mark.parametrize("seed", [4, 5, 20])
def test_the_findings_recover_every_planted_incident_with_its_mapping_and_window(seeds, seed):
    ws = seeds[seed]
    findings = diagnose(ws)
    truth = ws.sql('SELECT kind, mapping, start, "end" FROM incidents')
    assert len(truth) == 10
    for inc in truth.itertuples():
        # (one finding for several mappings names them in evidence['per_mapping'])
        hits = [f for f in findings if (f.mapping == inc.mapping or inc.mapping in f.evidence.get("per_mapping", {}))
                and f.start is not None and f.end is not None
                and abs(pd.Timestamp(f.start) - inc.start) <= TOLERANCE
                and abs(pd.Timestamp(f.end) - inc.end) <= TOLERANCE]
        assert hits, f"seed {seed}: no finding for {inc.kind} on {inc.mapping} {inc.start} .. {inc.end}"
    # each kind of incident is named by the finding a consultant would look for (a burst whose blank
    # mapping setting is behind it is part of the setting's finding: evidence['merged'])
    codes = {f.code for f in findings} | {c for f in findings for c in f.evidence.get("merged", {})}
    assert {"CONNECTION_DISABLED", "SYNC_STOPPED", "PARENT_NOT_COUPLED", "DELETED_BURST", "CONFLICT_BURST",
            "FIELD_LENGTH_BURST", "TRANSIENT_ERRORS"} <= codes


def test_findings_are_coded_sorted_explained_and_open_a_selection(seeds):
    ws = seeds[4]
    findings = diagnose(ws)
    assert len({f.code for f in findings}) >= 10
    # what is happening now first, causes before symptoms, then the most records blocked now
    assert [f.status for f in findings] == sorted((f.status for f in findings), key=lambda s: s != "now")
    now = [f for f in findings if f.status == "now"]
    causes = [f.now for f in now if f.code not in {"SKIPPED_BACKLOG", "BROKEN_COUPLINGS", "RETRY_WITHOUT_FIX",
                                                   "HIGH_FAILURE_RATE", "SLOW_RUNS", "UNFINISHED_JOBS"}]
    assert causes == sorted(causes, reverse=True) and causes[0] > 0
    assert all(f.status == "over" and f.now == 0 for f in findings if f not in now)
    assert len({f.id for f in findings}) == len(findings)  # each can be named
    for f in findings:
        assert f.title and f.remedy and f.environment and f.company
        # "affected" counts records: exactly those the selection lists (none for a job-queue finding)
        if f.selection is not None:
            assert f.affected > 0 and count_records(ws, f.selection) == f.affected, f.code
        else:
            assert f.affected == 0 and f.code in {"SYNC_STOPPED", "SYNC_STOPPED_ALL", "SLOW_RUNS", "UNFINISHED_JOBS"}
        if f.action is not None:
            assert f.action in {"Retry", "Retry All", "Synchronize", "Remove Coupling", "Restore Records",
                                "Delete Records", "Find for Deleted"}
    deleted = next(f for f in findings if f.evidence.get("cause") == "deleted" and f.mapping == "CUSTOMER")
    assert deleted.action == "Restore Records" and "DELETED_BURST" in deleted.evidence["merged"]
    frame = findings_frame(findings)
    back = json.loads(json.dumps(frame.to_dict("records")))  # JSON-ready as it is (no default= needed)
    assert [r["code"] for r in back] == [f.code for f in findings]
    assert back[0]["selection"] is None or isinstance(back[0]["selection"], dict)
    k = kpis(ws)
    assert k["errors"] > 0 and 0 < k["failure_rate"] < 1 and k["skipped"] == ws.count("couplings", filters={"skipped": True})


def test_configuration_findings_follow_the_mapping_settings(seeds):
    ws = seeds[5]
    codes = {f.code: f for f in diagnose(ws)}
    assert codes["NO_DELETION_RULE"].mapping == "CUSTOMER" and codes["NO_CONFLICT_RULE"].mapping == "CUSTOMER"
    ws.con.execute("UPDATE mappings SET deletion_conflict_resolution = 'Restore Records', "
                   "update_conflict_resolution = 'Send Update to Integration' WHERE name = 'CUSTOMER'")
    codes = {f.code for f in diagnose(ws)}
    assert "NO_DELETION_RULE" not in codes and "NO_CONFLICT_RULE" not in codes


def test_diagnose_cli_prints_findings_and_json(tmp_path, capsys):
    path = tmp_path / "w.duckdb"
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    with Workspace(path) as ws:
        publish(ws, sim, scenario="t")
    assert main(["diagnose", "--workspace", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data and {"code", "severity", "title", "start", "end", "evidence", "remedy", "selection"} <= set(data[0])
    assert main(["diagnose", "--workspace", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Top fixes") and "happening now" in out and "Over (nothing failing any more):" in out
    assert "Remedy:" in out and "Affected records:" in out
