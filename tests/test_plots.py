"""Charts (syncanalysis.plots): a Figure with a title and labels, empty data handled, no overlapping labels."""

from __future__ import annotations

import inspect
import itertools
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from syncanalysis import plots as P
from syncanalysis.analysis import backlog as B
from syncanalysis.analysis import trends as T
from syncanalysis.analysis.causes import cause_info
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


def _x_axes_with_ticklabels(fig: Figure) -> int:
    """How many x-axes of ``fig`` show tick labels (a twin axis counts as a second one)."""
    fig.canvas.draw()
    return sum(1 for ax in fig.axes if ax.axison and ax.xaxis.get_visible()
               and any(t.get_visible() and t.get_text() for t in ax.get_xticklabels()))


def _bar_notes(fig: Figure) -> list[str]:
    """The texts written at the end of the Pareto bars (errors · cumulative share)."""
    return [t.get_text() for t in fig.axes[0].texts if "\u00b7" in t.get_text() and t.get_text()[0].isdigit()]


def _legends(fig: Figure) -> list:
    return [lg for lg in [*(ax.get_legend() for ax in fig.axes), *fig.legends] if lg is not None]


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for lg in _legends(fig) for t in lg.get_texts()]


def test_cause_pareto(ws: Workspace) -> None:
    fig = P.cause_pareto(T.error_totals(ws, by="cause"), title="Errors by cause")
    assert_readable(fig, title="Errors by cause", extra_texts=True)
    assert len(fig.axes) == 1 and _x_axes_with_ticklabels(fig) == 1  # one x-axis: no twin axis
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("Errors")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    totals = T.error_totals(ws, by="cause")
    # causes by title, not code
    assert labels[0] == cause_info(totals["key"].iloc[0]).title and totals["key"].iloc[0] not in labels
    # the same cause has the same colour in every chart; the bar labels name the colours: no legend
    assert to_hex(ax.patches[0].get_facecolor()) == P.cause_color(totals["key"].iloc[0])
    assert not _legends(fig)
    # the cumulative share is written at each bar and agrees with error_totals
    notes = _bar_notes(fig)
    assert len(notes) == len(labels)
    first = totals.iloc[0]
    assert notes[0] == f"{first['errors']:,} \u00b7 {first['cumulative_share'] * 100:.0f} %"
    assert notes[-1].endswith("100 %")
    sig = T.signature_history(ws).rename(columns={"signature": "key"})
    fig = P.cause_pareto(sig, top=5, title="Errors by signature")
    assert_readable(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 6 and labels[-1] == P.OTHER  # the rest summed in "other"
    assert all(len(x) <= 60 for x in labels)
    assert to_hex(fig.axes[0].patches[0].get_facecolor()) == P.cause_color(sig["cause"].iloc[0])
    assert _x_axes_with_ticklabels(fig) == 1
    # coloured by cause while the labels are signatures: a legend titled "cause" says which colour is which
    legend = fig.axes[0].get_legend()
    assert legend is not None and legend.get_title().get_text() == "cause"
    top5 = sig.groupby("key").agg(errors=("errors", "sum"), cause=("cause", "first"))
    top5 = top5.reset_index().sort_values(["errors", "key"], ascending=[False, True]).head(5)
    assert set(_legend_texts(fig)) == {P.truncate(P.cause_label(c), 44) for c in top5["cause"]} | {P.OTHER}
    assert not set(top5["cause"]) & set(_legend_texts(fig))  # titles, not codes
    shown = {to_hex(b.get_facecolor()) for b in fig.axes[0].patches}
    assert {to_hex(h.get_facecolor()) for h in legend.legend_handles} == shown  # every colour explained


def test_cause_pareto_one_colour_when_colour_means_nothing() -> None:
    totals = pd.DataFrame({"key": ["CUSTOMER", "CONTACT", "VENDOR", "CURRENCY"], "errors": [1200, 300, 40, 2]})
    fig = P.cause_pareto(totals, top=3, title="Errors by mapping")
    assert_readable(fig, extra_texts=True)
    colours = [to_hex(b.get_facecolor()) for b in fig.axes[0].patches]
    assert len(set(colours[:3])) == 1 and colours[3] == P.CAUSE_COLORS[P.OTHER]  # "other" in grey
    assert not _legends(fig)
    assert fig.axes[0].get_xticklabels()[-1].get_text().replace(",", "").isdigit()
    assert any("," in t.get_text() for t in fig.axes[0].get_xticklabels())  # 1,200: thousands separators
    assert _bar_notes(fig) == ["1,200 \u00b7 78 %", "300 \u00b7 97 %", "40 \u00b7 100 %",
                                                         "2 \u00b7 100 %"]


def test_the_x_axis_count_sees_a_twin_axis() -> None:
    fig = P._figure(4, 3)
    ax = fig.add_subplot()
    ax.barh([0, 1], [3, 1])
    ax.twiny().plot([50, 100], [0, 1])
    assert _x_axes_with_ticklabels(fig) == 2


def test_trends_heatmap_and_novelty(ws: Workspace) -> None:
    daily = T.errors_over_time(ws, by="cause")
    fig = P.trends_by_cause(daily)
    assert_readable(fig)
    assert _labelled(fig) and fig.axes[0].get_legend() is not None
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert set(legend) <= {P.truncate(P.cause_label(k), 40) for k in daily["key"]} | {P.OTHER}
    assert not set(legend) & set(daily["key"])  # causes by title
    assert fig.axes[0].get_legend().get_title().get_text() == "cause"
    fig = P.trends_by_cause(T.errors_over_time(ws, by="mapping", freq="week"), freq="week", legend_title="mapping")
    assert_readable(fig, title="Errors per week by mapping")
    assert fig.axes[0].get_legend().get_title().get_text() == "mapping"
    fig = P.mapping_heatmap(T.failure_rate(ws))
    assert_readable(fig)
    assert {t.get_text() for t in fig.axes[0].get_yticklabels()} == set(T.failure_rate(ws)["mapping_name"])
    assert "%" in fig.axes[1].get_ylabel()  # the colour bar says its unit
    fig = P.mapping_heatmap(T.errors_over_time(ws, by="mapping"), value="errors")
    assert_readable(fig)
    assert fig.axes[1].get_ylabel() == "Errors per day"
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
    fig = P.backlog_over_time(B.backlog(ws, by="cause"))
    assert_readable(fig)
    assert fig.axes[0].get_legend().get_title().get_text() == "cause"
    fig = P.backlog_over_time(B.backlog(ws))  # one key, "all": one line, the colour says nothing
    assert_readable(fig)
    assert len(fig.axes[0].lines) == 1 and not _legends(fig)
    summary = B.resolution_summary(ws)
    fig = P.resolution_times(summary)
    assert_readable(fig)
    titles = {lg.get_title().get_text() for lg in _legends(fig)}
    assert titles == {"bar", "cause (median bar)"}
    shown = summary.dropna(subset=["median_hours"]).sort_values("episodes", ascending=False).head(12)
    assert {P.truncate(P.cause_label(c), 36) for c in shown["cause"]} <= set(_legend_texts(fig))


def test_every_legend_has_a_title(ws: Workspace) -> None:
    from syncanalysis.analysis.dependencies import dependency_graph

    figs = [P.cause_pareto(T.signature_history(ws).rename(columns={"signature": "key"})),
            P.trends_by_cause(T.errors_over_time(ws, by="cause")), P.new_vs_recurring(T.signature_novelty(ws)),
            P.job_timeline(ws), P.backlog_ageing(B.backlog_ageing(ws, by="mapping")),
            P.backlog_over_time(B.backlog(ws, by="mapping")), P.resolution_times(B.resolution_summary(ws)),
            P.dependency_graph(dependency_graph(ws))]
    for fig in figs:
        legends = _legends(fig)
        assert legends, fig.axes[0].get_title(loc="left")
        assert all(lg.get_title().get_text() for lg in legends), fig.axes[0].get_title(loc="left")


def test_dependency_graph(ws: Workspace) -> None:
    from syncanalysis.analysis.dependencies import dependency_graph

    g = dependency_graph(ws)
    assert len(g), "the scenario plants parents that are not coupled"
    assert (g["parent_state"] == "ok").any(), "the scenario couples some parents later (fixed)"
    fig = P.dependency_graph(g, top=6)
    assert_readable(fig, extra_texts=True)
    texts = _texts(fig)
    blocking = g[(g["parent_state"] != "ok") & (g["still_blocking"] > 0)]
    first = blocking.sort_values("fix_order").iloc[0]
    assert any(t.startswith(f"1. {first['parent_table']}: {first['parent_key']}") for t in texts)
    assert any(t.startswith(first["child_mapping"]) for t in texts)
    fixed = set(g.loc[g["parent_state"] == "ok", "parent_record_id"])
    assert not any(t.startswith("1. ") and t[3:] in fixed for t in texts)  # a fixed parent is never #1
    assert set(_legend_texts(fig)) >= {P.STATE_LABELS[s] for s in blocking.head(6)["parent_state"]}


def _parent_rows(fig: Figure, parents: list[str]) -> list[str]:
    """The parent labels of a dependency graph, top to bottom."""
    texts = [t for t in fig.axes[0].texts if any(p in t.get_text() for p in parents)]
    return [t.get_text() for t in sorted(texts, key=lambda t: t.get_position()[1])]


def test_dependency_graph_puts_blocking_parents_first_and_colours_by_state() -> None:
    frame = pd.DataFrame({
        "parent_table": ["Salesperson/Purchaser", "Currency", "Customer", "Unit of Measure"],
        "parent_key": ["BIG", "NOK", "C1", "BOX"],
        "child_mapping": ["CUSTOMER", "CUSTOMER", "CONTACT", "ITEM-PRODUCT"],
        "blocked_records": [5000, 5, 2, 4],
        "parent_state": ["ok", "not coupled", "broken", "skipped"],
        "still_blocking": [0, 3, 1, 0],
        "fix_order": [1, 2, 3, 4],  # the analysis ranks the biggest parent first although it is fixed
    })
    fig = P.dependency_graph(frame)
    assert_readable(fig, extra_texts=True)
    rows = _parent_rows(fig, ["BIG", "NOK", "C1", "BOX"])
    # still blocking first (in fix order), then not coupled but no longer named, the fixed parent last
    assert rows == ["1. Currency: NOK", "2. Customer: C1", "3. Unit of Measure: BOX",
                    "Salesperson/Purchaser: BIG  (fixed)"]
    legend = fig.legends[0]
    assert legend.get_title().get_text().startswith("parent state")
    assert [t.get_text() for t in legend.get_texts()] == [P.STATE_LABELS[s] for s in
                                                          ("not coupled", "broken", "skipped", "ok")]
    dots = [ln for ln in fig.axes[0].lines if ln.get_marker() == "o"]
    assert [to_hex(d.get_color()) for d in dots] == [P.STATE_COLORS[s] for s in
                                                      ("not coupled", "broken", "skipped", "ok")]
    # only the two first parents drawn: the fixed one is among the summed rest, never on top
    fig = P.dependency_graph(frame, top=2)
    rows = _parent_rows(fig, ["BIG", "NOK", "C1", "BOX", "more parents"])
    assert rows[0] == "1. Currency: NOK" and rows[-1].endswith("2 more parents")
    assert "several (summed parents)" in _legend_texts(fig)


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
    text = "Cannot find the currency with the value NOK in Dataverse."
    assert P.truncate(text, 28) == "Cannot find the currency" + P.ELLIPSIS  # not "...currency wi…"
    assert P.truncate(text, 30) == "Cannot find the currency with" + P.ELLIPSIS
    assert P.truncate(text, 80) == text
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
    causes = [c for c in P.CAUSE_COLORS if c != P.OTHER][:16]
    totals = pd.DataFrame({"key": causes, "errors": range(116, 100, -1)})
    fig = P.cause_pareto(totals, top=12)
    bars = fig.axes[0].patches
    assert len(bars) == 13
    assert [to_hex(b.get_facecolor()) for b in bars] == [P.cause_color(c) for c in causes[:12]] + \
        [P.CAUSE_COLORS[P.OTHER]]


# -- saving ----------------------------------------------------------------------------------------------
def test_save_writes_png_svg_and_pdf(tmp_path: Path) -> None:
    fig = P.cause_pareto(pd.DataFrame({"key": ["conflict", "deleted"], "errors": [3, 1]}))
    png = P.save(fig, tmp_path / "deck" / "charts" / "pareto.png")  # parent folders are created
    assert png == tmp_path / "deck" / "charts" / "pareto.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = P.save(fig, str(tmp_path / "pareto.svg"))
    assert "<svg" in svg.read_text(encoding="utf-8")
    assert P.save(fig, tmp_path / "pareto.PDF").read_bytes().startswith(b"%PDF")
    small, large = P.save(fig, tmp_path / "a.png", dpi=50), P.save(fig, tmp_path / "b.png", dpi=200)
    assert large.stat().st_size > small.stat().st_size


@pytest.mark.parametrize("name", ["pareto.jpg", "pareto", "pareto.png.txt"])
def test_save_refuses_other_suffixes(tmp_path: Path, name: str) -> None:
    fig = P.cause_pareto(None)
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf") as info:
        P.save(fig, tmp_path / name)
    assert (Path(name).suffix or "(no suffix)") in str(info.value)
    assert not list(tmp_path.iterdir())


CHARTS = [P.cause_pareto, P.trends_by_cause, P.mapping_heatmap, P.new_vs_recurring, P.job_timeline,
          P.duration_distribution, P.backlog_ageing, P.backlog_over_time, P.resolution_times, P.dependency_graph]


def test_every_chart_takes_save() -> None:
    public = {n for n, f in inspect.getmembers(P, inspect.isfunction)
              if f.__module__ == P.__name__ and not n.startswith("_")
              and inspect.signature(f).return_annotation in ("Figure", Figure)}
    assert public == {f.__name__ for f in CHARTS}
    for draw in CHARTS:
        param = inspect.signature(draw).parameters["save"]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is None


@pytest.mark.parametrize("draw", CHARTS, ids=lambda f: f.__name__)
def test_a_chart_draws_and_saves_in_one_call(draw, tmp_path: Path) -> None:
    target = tmp_path / "out" / f"{draw.__name__}.svg"
    fig = draw(pd.DataFrame(), save=target)
    assert isinstance(fig, Figure) and "<svg" in target.read_text(encoding="utf-8")


def test_a_drawn_chart_saves_as_png(ws: Workspace, tmp_path: Path) -> None:
    fig = P.trends_by_cause(T.errors_over_time(ws, by="cause"), save=tmp_path / "trends.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "trends.png").read_bytes()[:4] == b"\x89PNG"
