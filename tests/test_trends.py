"""Error trends, failure rates and new signatures (syncanalysis.analysis.trends), checked against pandas."""

from __future__ import annotations

import pandas as pd
import pytest

from syncanalysis.analysis import trends as T
from syncanalysis.errors import SchemaError
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish
from syncanalysis.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    ws = Workspace(tmp_path_factory.mktemp("trends") / "twin.duckdb")
    publish(ws, sim, scenario="h6-trends")
    from syncanalysis.analysis.signatures import assign_signatures

    assign_signatures(ws)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def raw(ws: Workspace) -> pd.DataFrame:
    """Errors joined to their jobs, in pandas: the independent reference."""
    errors = ws.con.execute("SELECT * FROM job_errors").df()
    jobs = ws.con.execute("SELECT environment, company, job_id, mapping_name, synch_direction FROM jobs").df()
    return errors.merge(jobs, on=["environment", "company", "job_id"], how="left")


def test_errors_per_week_by_direction_match_pandas(ws: Workspace, raw: pd.DataFrame) -> None:
    got = T.errors_over_time(ws, by="direction", freq="week")
    ref = raw.assign(period=raw["logged_at"].dt.to_period("W-SUN").dt.start_time,
                     key=raw["synch_direction"].fillna("unknown"))
    ref = ref.groupby(["period", "key"]).size().rename("errors").reset_index()
    merged = got.merge(ref, on=["period", "key"], suffixes=("", "_ref"), how="outer")
    assert len(merged) == len(got) == len(ref)
    assert (merged["errors"] == merged["errors_ref"]).all()
    assert set(got["key"]) <= {"ToIntegrationTable", "FromIntegrationTable", "unknown"}
    assert (got["period"].dt.day_of_week == 0).all()  # ISO weeks start on Monday
    assert (got["records"] <= got["errors"]).all() and (got["records"] > 0).all()


@pytest.mark.parametrize("by", ["cause", "signature", "mapping"])
def test_errors_per_day_cover_every_error(ws: Workspace, raw: pd.DataFrame, by: str) -> None:
    got = T.errors_over_time(ws, by=by)
    assert got["errors"].sum() == len(raw)
    column = {"cause": "cause", "signature": "signature", "mapping": "mapping_name"}[by]
    ref = raw.groupby(raw[column].fillna("unknown"))["error_no"].count()
    assert got.groupby("key")["errors"].sum().to_dict() == ref.to_dict()
    assert (got["period"] == got["period"].dt.normalize()).all()


def test_filters_and_bad_arguments(ws: Workspace, raw: pd.DataFrame) -> None:
    cust = T.errors_over_time(ws, by="mapping", mapping="CUSTOMER")
    assert set(cust["key"]) == {"CUSTOMER"}
    assert cust["errors"].sum() == (raw["mapping_name"] == "CUSTOMER").sum()
    mid = raw["logged_at"].min() + (raw["logged_at"].max() - raw["logged_at"].min()) / 2
    late = T.errors_over_time(ws, since=mid)
    assert late["errors"].sum() == (raw["logged_at"] >= mid).sum()
    assert T.errors_over_time(ws, company="nobody").empty
    with pytest.raises(SchemaError, match="colour"):
        T.errors_over_time(ws, by="colour")
    with pytest.raises(SchemaError, match="month"):
        T.failure_rate(ws, freq="month")


def test_error_totals_is_a_pareto(ws: Workspace, raw: pd.DataFrame) -> None:
    t = T.error_totals(ws, by="cause")
    assert t["errors"].is_monotonic_decreasing and t["errors"].sum() == len(raw)
    assert t["cumulative_share"].is_monotonic_increasing
    assert t["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    assert t["share"].sum() == pytest.approx(1.0)


def test_failure_rate_matches_pandas(ws: Workspace) -> None:
    jobs = ws.con.execute("SELECT * FROM jobs WHERE type = 'Synchronization'").df()
    cols = ["inserted", "modified", "deleted", "unchanged", "skipped", "failed"]
    jobs["processed"] = jobs[cols].sum(axis=1)
    ref = jobs.groupby([jobs["start_datetime"].dt.normalize().rename("period"), "mapping_name"]).agg(
        processed=("processed", "sum"), failed=("failed", "sum"), jobs=("job_id", "size")).reset_index()
    got = T.failure_rate(ws)
    m = got.merge(ref, on=["period", "mapping_name"], suffixes=("", "_ref"))
    assert len(m) == len(got) == len(ref)
    assert (m["processed"] == m["processed_ref"]).all() and (m["failed"] == m["failed_ref"]).all()
    ok = m["processed"] > 0
    assert (m.loc[ok, "failure_rate"] - m.loc[ok, "failed"] / m.loc[ok, "processed"]).abs().max() < 1e-12
    assert m.loc[~ok, "failure_rate"].isna().all()


def test_new_versus_recurring_signatures(ws: Workspace, raw: pd.DataFrame) -> None:
    nov = T.signature_novelty(ws)
    assert nov["new_signatures"].sum() == raw["signature"].nunique()
    week = raw["logged_at"].dt.to_period("W-SUN").dt.start_time
    first = week.groupby(raw["signature"]).transform("min")
    per_week = raw.assign(week=week, new=week == first).groupby("week")
    ref_new = per_week.apply(lambda g: g.loc[g["new"], "signature"].nunique())
    ref_rec = per_week.apply(lambda g: g.loc[~g["new"], "signature"].nunique())
    got = nov.set_index("period")
    assert got["new_signatures"].to_dict() == ref_new.to_dict()
    assert got["recurring_signatures"].to_dict() == ref_rec.to_dict()
    assert (got["new_errors"] + got["recurring_errors"]).sum() == len(raw)
    # a window does not make old signatures new
    later = T.signature_novelty(ws, since=nov["period"].iloc[1]).set_index("period")
    assert later["new_signatures"].to_dict() == {k: v for k, v in got["new_signatures"].to_dict().items()
                                                  if k >= nov["period"].iloc[1]}


def test_signature_history_and_job_activity(ws: Workspace, raw: pd.DataFrame) -> None:
    h = T.signature_history(ws)
    assert h["errors"].sum() == len(raw) and h["signature"].is_unique
    first = raw.groupby("signature")["logged_at"].min()
    assert (h.set_index("signature")["first_seen"] == first.reindex(h["signature"]).values).all()
    mid = raw["logged_at"].min() + (raw["logged_at"].max() - raw["logged_at"].min()) / 2
    late = T.signature_history(ws, since=mid).set_index("signature")
    assert (late["first_seen"] == first.reindex(late.index)).all()  # first seen over the whole history
    jobs = T.job_activity(ws)
    n = ws.con.execute("SELECT count(*) FROM jobs WHERE type = 'Synchronization'").fetchall()[0][0]
    assert len(jobs) == n and jobs["start"].is_monotonic_increasing
    assert (jobs["duration_s"].dropna() >= 0).all()
    first_job, last = T.history_range(ws)
    assert first_job == jobs["start"].min() and last >= jobs["start"].max()
