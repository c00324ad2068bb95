"""Charts (syncanalysis.plots): a Figure with a title and labels, empty data handled, no overlapping labels."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from syncanalysis import plots as P
from syncanalysis.analysis import backlog as B
from syncanalysis.analysis import trends as T
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish
from syncanalysis.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    ws = Workspace(tmp_path_factory.mktemp("plots") / "twin.duckdb")
    publish(ws, sim, scenario="h6-plots")
    from syncanalysis.analysis.signatures import assign_signatures

    assign_signatures(ws)
    yield ws
    ws.close()


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in [ax.title, ax._left_title, *ax.texts] if t.get_text()]


def _boxes_overlap(texts: list, renderer) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
    bad = []
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        # overlap by more than one pixel each way (touching boxes are fine)
        if min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > 1 and min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > 1:
            bad.append((a, b))
    return bad


def assert_readable(fig: Figure, *, title: str | None = None, extra_texts: bool = False) -> None:
    """A titled figure whose tick labels (and optionally free texts) do not overlap."""
    assert isinstance(fig, Figure)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [t for ax in fig.axes for t in (ax.get_title(loc="left"), ax.get_title()) if t]
    assert titles, "every chart has a title"
    if title is not None:
        assert title in titles
    for ax in fig.axes:
        assert not _boxes_overlap(ax.get_xticklabels(), renderer), ax.get_title(loc="left")
        assert not _boxes_overlap(ax.get_yticklabels(), renderer), ax.get_title(loc="left")
        if extra_texts:
            assert not _boxes_overlap(ax.texts, renderer)


def _labelled(fig: Figure) -> bool:
    return any(ax.get_xlabel() or ax.get_ylabel() for ax in fig.axes)


def test_cause_pareto(ws: Workspace) -> None:
    fig = P.cause_pareto(T.error_totals(ws, by="cause"), title="Errors by cause")
    assert_readable(fig, title="Errors by cause")
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("Errors") and fig.axes[1].get_xlabel().startswith("Cumulative")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    totals = T.error_totals(ws, by="cause")
    assert labels[0] == totals["key"].iloc[0]
    # the same cause has the same colour in every chart
    assert to_hex(ax.patches[0].get_facecolor()) == P.cause_color(labels[0])
    sig = T.signature_history(ws).rename(columns={"signature": "key"})
    fig = P.cause_pareto(sig, top=5, title="Errors by signature")
    assert_readable(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 6 and labels[-1] == P.OTHER  # the rest summed in "other"
    assert all(len(x) <= 60 for x in labels)
    assert to_hex(fig.axes[0].patches[0].get_facecolor()) == P.cause_color(sig["cause"].iloc[0])


def test_trends_heatmap_and_novelty(ws: Workspace) -> None:
    daily = T.errors_over_time(ws, by="cause")
    fig = P.trends_by_cause(daily)
    assert_readable(fig)
    assert _labelled(fig) and fig.axes[0].get_legend() is not None
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert set(legend) <= set(daily["key"]) | {P.OTHER}
    assert_readable(P.trends_by_cause(T.errors_over_time(ws, by="mapping", freq="week"), freq="week"))
    fig = P.mapping_heatmap(T.failure_rate(ws))
    assert_readable(fig)
    assert {t.get_text() for t in fig.axes[0].get_yticklabels()} == set(T.failure_rate(ws)["mapping_name"])
    assert "%" in fig.axes[1].get_ylabel()  # the colour bar says its unit
    assert_readable(P.mapping_heatmap(T.errors_over_time(ws, by="mapping"), value="errors"))
    assert_readable(P.new_vs_recurring(T.signature_novelty(ws)))


def test_job_timeline_marks_incidents(ws: Workspace) -> None:
    fig = P.job_timeline(ws)
    assert_readable(fig)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    kinds = ws.con.execute("SELECT kind FROM incidents").df()["kind"]
    assert all(any(t.startswith(k) for t in ticks) for k in kinds)
    assert {"CUSTOMER", "CONTACT"} <= set(ticks)
    fig = P.job_timeline(T.job_activity(ws), pd.DataFrame({"mapping_name": ["CUSTOMER"], "gap_start":
                         [pd.Timestamp("2026-09-01")], "gap_end": [pd.Timestamp("2026-09-02")], "kind": ["stopped"]}))
    assert_readable(fig)
    assert any("stopped" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_durations_and_backlog(ws: Workspace) -> None:
    fig = P.duration_distribution(T.job_activity(ws))
    assert_readable(fig)
    assert "log" in fig.axes[0].get_xlabel() and fig.axes[0].get_xscale() == "log"
    fig = P.backlog_ageing(B.backlog_ageing_over_time(ws))
    assert_readable(fig)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(B.AGE_BUCKETS)
    assert_readable(P.backlog_ageing(B.backlog_ageing(ws, by="mapping")))
    assert_readable(P.backlog_over_time(B.backlog(ws, by="cause")))
    assert_readable(P.resolution_times(B.resolution_summary(ws)))


def test_dependency_graph(ws: Workspace) -> None:
    from syncanalysis.analysis.dependencies import dependency_graph

    g = dependency_graph(ws)
    assert len(g), "the scenario plants parents that are not coupled"
    fig = P.dependency_graph(g, top=6)
    assert_readable(fig, extra_texts=True)
    texts = _texts(fig)
    first = g.sort_values("fix_order").iloc[0]
    assert any(t.startswith(f"1. {first['parent_table']}: {first['parent_key']}") for t in texts)
    assert any(t.startswith(first["child_mapping"]) for t in texts)


@pytest.mark.parametrize("draw", [
    lambda f: P.cause_pareto(f), lambda f: P.trends_by_cause(f), lambda f: P.mapping_heatmap(f),
    lambda f: P.new_vs_recurring(f), lambda f: P.job_timeline(f), lambda f: P.duration_distribution(f),
    lambda f: P.backlog_ageing(f), lambda f: P.backlog_over_time(f), lambda f: P.resolution_times(f),
    lambda f: P.dependency_graph(f)])
def test_empty_data_gives_a_titled_figure(draw) -> None:
    for frame in (pd.DataFrame(), None):
        fig = draw(frame)
        assert isinstance(fig, Figure)
        fig.canvas.draw()
        assert fig.axes[0].get_title(loc="left")
        assert any("No " in t for t in _texts(fig))


def test_labels_are_truncated_and_never_mathtext() -> None:
    assert P.truncate("x" * 50, 10) == "x" * 9 + P.ELLIPSIS
    assert P.truncate("a\n  b", 10) == "a b"
    frame = pd.DataFrame({"key": ["Price $5 and $6 " + "y" * 80, "short"], "errors": [3, 1]})
    fig = P.cause_pareto(frame)
    assert_readable(fig)  # drawing does not choke on the dollars
    assert fig.axes[0].get_yticklabels()[0].get_text().startswith("Price \\$5")
    assert P.cause_color("conflict") == P.cause_color("conflict") != P.cause_color("deleted")
    assert P.cause_color("made-up") == P.cause_color("made-up")


def test_the_overlap_check_catches_crowded_labels() -> None:
    fig = P._figure(3, 2)
    ax = fig.add_subplot()
    ax.set_title("crowded", loc="left")
    ax.set_yticks(range(60), [f"label {i}" for i in range(60)])
    with pytest.raises(AssertionError):
        assert_readable(fig)


def test_a_single_period_or_value_draws() -> None:
    d = pd.Timestamp("2026-01-05")
    figs = [
        P.trends_by_cause(pd.DataFrame({"period": [d], "key": ["conflict"], "errors": [3]})),
        P.mapping_heatmap(pd.DataFrame({"period": [d], "mapping_name": ["CUSTOMER"], "failure_rate": [0.0]})),
        P.mapping_heatmap(pd.DataFrame({"period": [d], "mapping_name": ["CUSTOMER"], "failure_rate": [float("nan")]})),
        P.new_vs_recurring(pd.DataFrame({"period": [d], "new_signatures": [1], "recurring_signatures": [0]})),
        P.backlog_ageing(pd.DataFrame({"period": [d], "bucket": ["< 1 day"], "records": [2]})),
        P.duration_distribution(pd.DataFrame({"mapping_name": ["A"], "duration_s": [2.0]})),
        P.dependency_graph(pd.DataFrame({"parent_table": ["Currency"], "parent_key": ["NOK"],
                                         "child_mapping": ["CUSTOMER"], "blocked_records": [3]})),
        P.job_timeline(pd.DataFrame({"mapping_name": ["A"], "start": [d], "failed": [0]}),
                       incidents=pd.DataFrame({"kind": ["x"], "mapping": ["A"], "start": [d], "end": [pd.NaT]})),
    ]
    for fig in figs:
        assert_readable(fig)


def test_cause_pareto_keeps_cause_colours_with_an_other_bar():
    from syncanalysis import plots

    totals = pd.DataFrame({"key": [f"cause-{i}" for i in range(16)], "errors": range(100, 116)})
    fig = plots.cause_pareto(totals, top=12)
    bars = fig.axes[0].patches
    assert len(bars) == 13 and len({tuple(b.get_facecolor()) for b in bars[:12]}) > 1
