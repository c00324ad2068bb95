"""Charts of the diagnosis: functions that take analysis frames (or a workspace) and return matplotlib Figures.

Every function returns a :class:`matplotlib.figure.Figure` drawn on the Agg canvas, never calls
``plt.show()`` and never touches pyplot's global figure list (nothing to close, safe in scripts, tests and
notebooks: ``display(fig)`` or leave the figure as the cell result). Charts are meant to be pasted into a
deck: a title, axis labels with units and thousands separators, concise date axes, labels shortened with an
ellipsis (at a word boundary when one is near), thinned ticks so no label overlaps, one colour per error
cause in every chart (:func:`cause_color`) and, wherever a colour means something, a titled legend that says
what; where it means nothing, one colour and no legend. Empty input gives a figure that says so.

:func:`save` writes a figure as PNG, SVG or PDF in one call; every chart function also takes
``save="path.png"`` to draw and save at once.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, PercentFormatter

from .analysis.causes import cause_info
from .sql import scope

ELLIPSIS = "\u2026"
OTHER = "other"

# One colour per cause of the catalogue (spec §7 categories + throttling), fixed so that every chart agrees.
CAUSE_COLORS: dict[str, str] = {
    "conflict": "#d62728", "deleted": "#8c564b", "not-coupled": "#2ca02c", "not-found": "#98df8a",
    "duplicate": "#bcbd22", "validation": "#ff7f0e", "field-length": "#ffbb78", "option-mapping": "#e377c2",
    "currency": "#17becf", "uom": "#9edae5", "ownership": "#c49c94", "company": "#f7b6d2",
    "permission": "#7b1fa2", "connection": "#1f77b4", "timeout": "#aec7e8", "throttling": "#6baed6",
    "configuration": "#9467bd", "coupling": "#c5b0d5", "pending": "#dbdb8d", "internal": "#393b79",
    "unclassified": "#9e9e9e", OTHER: "#d9d9d9",
}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
AGE_COLORS = ("#9ecae1", "#fdae6b", "#e6550d", "#7f2704")  # < 1 day .. > 30 days: older is darker
GAP_COLORS = {"stopped": "#d62728", "all-mappings-stopped": "#7f0000", "on-hold-inactivity": "#bdbdbd",
              "after-one-off-run": "#fdae6b"}
# The coupling state of a parent record now (syncanalysis.analysis.dependencies.dependency_graph), worst first.
STATE_COLORS: dict[str, str] = {"not coupled": "#d62728", "broken": "#8c564b", "failed": "#ff7f0e",
                                "skipped": "#e7ba52", "unknown": "#9e9e9e", "ok": "#2ca02c"}
STATE_LABELS: dict[str, str] = {"not coupled": "not coupled", "broken": "broken (a side's record is gone)",
                                "failed": "coupled, last sync failed", "skipped": "coupled, skipped",
                                "unknown": "unknown (no mapping of its table)", "ok": "ok: coupled since (fixed)"}
_MIXED = "#bdbdbd"  # the summed "... n more parents" node
SAVE_FORMATS: dict[str, str] = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
PathLike = str | os.PathLike


# -- helpers -------------------------------------------------------------------------------------------
def cause_color(cause: str | None) -> str:
    """The colour of a cause in every chart (a stable colour from a palette for unknown codes)."""
    if cause is None or (isinstance(cause, float) and np.isnan(cause)):
        return CAUSE_COLORS["unclassified"]
    if cause in CAUSE_COLORS:
        return CAUSE_COLORS[cause]
    return _PALETTE[zlib.crc32(str(cause).encode()) % len(_PALETTE)]


def key_colors(keys: Sequence[str], *, causes: bool) -> list[str]:
    """Colours for ``keys``: the cause colours when the keys are causes, else a palette in order."""
    if causes:
        return [cause_color(k) for k in keys]
    return [CAUSE_COLORS[OTHER] if k == OTHER else _PALETTE[i % len(_PALETTE)] for i, k in enumerate(keys)]


def truncate(text: Any, width: int = 32) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis.

    The cut falls at a word boundary when one lies in the last 40 % of the width (``Cannot find the
    currency…`` rather than ``Cannot find the curr…``); ``$`` is escaped so that a data text is never
    drawn as mathtext.

    Parameters
    ----------
    text
        Any value (drawn with ``str``).
    width
        The most characters returned, the ellipsis included.
    """
    s = " ".join(str(text).split())
    if len(s) > width:
        cut = s[: max(width - 1, 1)]
        space = cut.rfind(" ")
        if space >= 0.6 * width and s[len(cut)] != " ":  # mid-word: back up to the last word boundary
            cut = cut[:space]
        s = cut.rstrip(" ,.;:-/(") + ELLIPSIS
    return s.replace("$", r"\$")  # a data text is never mathtext


def save(fig: Figure, path: PathLike, *, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` as PNG, SVG or PDF (by the suffix), in one call.

    Parent folders are created; the margins are trimmed (``bbox_inches="tight"``) so that the file pastes
    into a deck without white borders.

    Parameters
    ----------
    fig
        A figure of this module (or any matplotlib Figure).
    path
        The file to write: ``.png``, ``.svg`` or ``.pdf`` (case-insensitive).
    dpi
        Pixels per inch of a PNG (SVG and PDF are vector; the value only sizes embedded images).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        When the suffix is not one of ``.png``, ``.svg``, ``.pdf``.
    """
    target = Path(path).expanduser()
    fmt = SAVE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"Cannot save a chart as {target.suffix or '(no suffix)'!r} ({target.name}): "
                         f"use one of {', '.join(SAVE_FORMATS)}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format=fmt, dpi=dpi, bbox_inches="tight")
    return target


def _done(fig: Figure, path: PathLike | None) -> Figure:
    """``fig``, saved first when the caller asked for ``save=path``."""
    if path is not None:
        save(fig, path)
    return fig


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained", dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _empty(fig: Figure, title: str, message: str = "No data for this selection") -> Figure:
    ax = fig.add_subplot()
    ax.set_title(title, loc="left", fontweight="bold")
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666666", fontsize=12)
    ax.set_axis_off()
    return fig


def _is_empty(frame: pd.DataFrame | None, *columns: str) -> bool:
    return frame is None or len(frame) == 0 or any(c not in frame.columns for c in columns)


def _date_axis(ax: Any, axis: str = "x") -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(locator)
    target.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _thousands(ax: Any, axis: str = "y") -> None:
    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _top_keys(totals: pd.Series, top: int) -> list[str]:
    keys = list(totals.sort_values(ascending=False).index[:top])
    return keys


def _looks_like_causes(keys: Sequence[Any]) -> bool:
    return len(keys) > 0 and all(k in CAUSE_COLORS for k in keys)


def cause_label(key: Any) -> str:
    """A cause code as a reader knows it: its title (``conflict`` -> "Update conflict: both sides changed")."""
    if key == OTHER or not isinstance(key, str) or key not in CAUSE_COLORS:
        return str(key)
    return cause_info(key).title


def _legend(ax: Any, handles: list, labels: list[str], title: str | None = None) -> None:
    ax.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize=8, title_fontsize=9)


def _title(ax: Any, title: str, subtitle: str | None = None) -> None:
    # the subtitle sits between the title and the axes; the title's pad leaves room for it
    ax.set_title(title, loc="left", fontweight="bold", pad=18 if subtitle else 6)
    if subtitle:
        ax.annotate(subtitle, xy=(0.0, 1.0), xycoords="axes fraction", xytext=(0, 4), textcoords="offset points",
                    ha="left", va="bottom", fontsize=8, color="#555555")


def _log_axis(ax: Any, fmt: Any, axis: str = "x") -> None:
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    target.set_major_formatter(FuncFormatter(fmt))
    target.set_minor_formatter(NullFormatter())


# -- causes ---------------------------------------------------------------------------------------------
def cause_pareto(totals: pd.DataFrame, *, top: int = 12, title: str = "Errors by cause",
                 label_width: int = 60, save: PathLike | None = None) -> Figure:
    """Pareto chart: errors per key (horizontal bars, most first), each labelled with its cumulative share.

    One category axis and one value axis (no twin axis): the bars are horizontal so that long keys
    (signatures) stay readable without rotated labels, and the cumulative share of errors is written at the
    end of each bar (``1,234 · 62 %``). A dashed line separates the bars that make up 80 % of the errors.

    Colours: when the keys are causes, each bar has its cause's colour (the same in every chart; the bar's
    label names it); with a ``cause`` column (keys such as signatures), bars are coloured by cause and a
    legend titled *cause* says which colour is which; otherwise every bar has one colour and there is no
    legend.

    Parameters
    ----------
    totals
        A frame with ``key`` and ``errors`` (e.g. :func:`syncanalysis.analysis.trends.error_totals`); an
        optional ``cause`` column colours each bar by its cause (e.g. when the keys are signatures).
    top
        Bars shown; the rest are summed into one ``other`` bar.
    title
        The chart title.
    label_width
        Characters of a key shown beside its bar (longer keys end with an ellipsis).
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    n = 0 if _is_empty(totals, "key", "errors") else min(totals["key"].nunique(), top + 1)
    # room for the labels (a cause's title is longer than its code)
    longest = 0 if not n else min(max(len(cause_label(k)) for k in totals["key"].dropna().unique()), label_width)
    by_cause = n > 0 and "cause" in totals.columns and not (totals["cause"].astype(str) == totals["key"].astype(str)).all()
    fig = _figure(7.0 + 0.07 * longest + (1.8 if by_cause else 0.0), max(3.0, 1.9 + 0.34 * n))
    if not n:
        return _done(_empty(fig, title), save)
    agg = {"errors": ("errors", "sum")}
    if "cause" in totals.columns:
        agg["cause"] = ("cause", "first")
    df = totals.groupby("key", as_index=False, sort=False).agg(**agg)
    df = df.sort_values(["errors", "key"], ascending=[False, True])
    if len(df) > top:
        rest = df.iloc[top:]
        df = pd.concat([df.iloc[:top], pd.DataFrame([{"key": OTHER, "errors": rest["errors"].sum(), "cause": OTHER}])],
                       ignore_index=True)
    total = df["errors"].sum()
    cum = (df["errors"].cumsum() / total * 100 if total else df["errors"] * 0).to_numpy()
    keys = [k for k in df["key"] if k != OTHER]
    if "cause" in totals.columns:  # the "other" row adds a cause column of its own: test the input's
        colors = [cause_color(c) for c in df["cause"]]
    elif _looks_like_causes(keys):
        colors = [cause_color(k) for k in df["key"]]
    else:  # the colour would mean nothing: one colour (the "other" bar in grey)
        colors = [CAUSE_COLORS[OTHER] if k == OTHER else _PALETTE[0] for k in df["key"]]
    ax = fig.add_subplot()
    pos = np.arange(len(df))
    ax.barh(pos, df["errors"], color=colors, edgecolor="white", linewidth=0.5, height=0.7)
    # causes by their titles, not their codes
    names = [cause_label(k) for k in df["key"]] if "cause" not in totals.columns and _looks_like_causes(keys) \
        else [str(k) for k in df["key"]]
    ax.set_yticks(pos, [truncate(k, label_width) for k in names], fontsize=8)
    ax.set_ylim(len(df) - 0.5, -0.5)
    ax.set_xlim(0, float(df["errors"].max()) * 1.3 or 1.0)  # room for the labels at the bar ends
    for i, (errors, share) in enumerate(zip(df["errors"], cum)):
        ax.annotate(f"{int(errors):,} \u00b7 {share:.0f} %", xy=(errors, i), xytext=(3, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=7, color="#333333")
    cut = int(np.searchsorted(cum, 80.0 - 1e-9))  # the first bar reaching 80 %
    if cut < len(df) - 1:
        ax.axhline(cut + 0.5, color="#888888", linestyle="--", linewidth=0.8)
    ax.set_xlabel("Errors (rows of table 5339)")
    _thousands(ax, "x")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.grid(axis="x", alpha=0.3)
    if by_cause:
        causes = list(dict.fromkeys(df["cause"]))
        _legend(ax, [Patch(color=cause_color(c)) for c in causes], [truncate(cause_label(c), 44) for c in causes],
                "cause")
    note = "at each bar: errors \u00b7 cumulative share of all errors"
    _title(ax, title, note + ("; above the dashed line: 80 % of the errors" if cut < len(df) - 1 else ""))
    return _done(fig, save)


# -- trends ---------------------------------------------------------------------------------------------
def _pivot_periods(frame: pd.DataFrame, value: str, freq: str, top: int) -> pd.DataFrame:
    df = frame.copy()
    df["period"] = pd.to_datetime(df["period"])
    keys = _top_keys(df.groupby("key")[value].sum(), top)
    df.loc[~df["key"].isin(keys), "key"] = OTHER
    wide = df.pivot_table(index="period", columns="key", values=value, aggfunc="sum", fill_value=0)
    step = "D" if freq == "day" else "7D"
    full = pd.date_range(wide.index.min(), wide.index.max(), freq=step)
    wide = wide.reindex(full, fill_value=0)
    order = keys + ([OTHER] if OTHER in wide.columns else [])
    return wide[[k for k in order if k in wide.columns]]


def trends_by_cause(frame: pd.DataFrame, *, freq: str = "day", top: int = 8, value: str = "errors",
                    title: str | None = None, legend_title: str | None = None,
                    save: PathLike | None = None) -> Figure:
    """Stacked bars of errors per day (or week) by cause (or any key of the long frame).

    Each key has a colour (its cause colour when the keys are causes) and the legend, titled by what the
    keys are, says which.

    Parameters
    ----------
    frame
        A long frame with ``period``, ``key`` and ``value`` (e.g.
        :func:`syncanalysis.analysis.trends.errors_over_time`).
    freq
        ``day`` or ``week``: the bar width and the missing periods filled with zero.
    top
        Keys shown; the rest are stacked as ``other``.
    value
        The column stacked (``errors`` or ``records``).
    title
        The chart title (default: *Errors per day by cause*, or by ``legend_title``).
    legend_title
        What the keys are (``cause``, ``mapping``, ``signature``...): the legend's title; by default
        ``cause`` when every key is a cause, else ``key``.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    wide = None if _is_empty(frame, "period", "key", value) else _pivot_periods(frame, value, freq, top)
    causes = wide is None or _looks_like_causes([k for k in wide.columns if k != OTHER])
    legend_title = legend_title or ("cause" if causes else "key")
    title = title or f"{value.capitalize()} per {freq} by {legend_title}"
    fig = _figure(11, 4.4)
    if wide is None:
        return _done(_empty(fig, title), save)
    ax = fig.add_subplot()
    colors = key_colors(list(wide.columns), causes=causes)
    width = 0.85 if freq == "day" else 6.0
    bottom = np.zeros(len(wide))
    handles = []
    for key, color in zip(wide.columns, colors):
        ax.bar(wide.index, wide[key].to_numpy(), width=width, bottom=bottom, color=color, linewidth=0, align="edge")
        bottom += wide[key].to_numpy()
        handles.append(Patch(color=color))
    _date_axis(ax)
    _thousands(ax)
    ax.set_ylabel(f"{value.capitalize()} per {freq}")
    ax.grid(axis="y", alpha=0.3)
    ax.margins(x=0.01)
    _legend(ax, handles, [truncate(cause_label(k), 40) for k in wide.columns], legend_title)
    _title(ax, title)
    return _done(fig, save)


def mapping_heatmap(frame: pd.DataFrame, *, value: str = "failure_rate", title: str | None = None,
                    freq: str = "day", save: PathLike | None = None) -> Figure:
    """Mapping x day heatmap of a value (default the failure rate, failed over processed).

    The colour is the value, read on the colour bar (its label says the unit).

    Parameters
    ----------
    frame
        Rows with ``period``, ``mapping_name`` (or ``key``) and ``value`` (e.g.
        :func:`syncanalysis.analysis.trends.failure_rate` or ``errors_over_time(by="mapping")``).
    value
        The column shown: ``failure_rate`` is drawn in percent; counts as they are. Empty cells (nothing
        processed, or none of the counted value) are light grey.
    title
        The chart title.
    freq
        ``day`` or ``week``: the width of a cell.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    rate = value == "failure_rate"
    title = title or ("Failure rate per mapping and day" if rate else f"{value.capitalize()} per mapping and {freq}")
    if frame is not None and "mapping_name" not in frame.columns and "key" in frame.columns:
        frame = frame.rename(columns={"key": "mapping_name"})
    n_rows = 0 if _is_empty(frame, "period", "mapping_name", value) else frame["mapping_name"].nunique()
    fig = _figure(11, max(2.6, 1.4 + 0.38 * n_rows))
    if not n_rows:
        return _done(_empty(fig, title), save)
    df = frame.copy()
    df["period"] = pd.to_datetime(df["period"])
    wide = df.pivot_table(index="mapping_name", columns="period", values=value, aggfunc="sum" if not rate else "mean",
                          dropna=False)
    step = pd.Timedelta(days=1 if freq == "day" else 7)
    cols = pd.date_range(df["period"].min(), df["period"].max(), freq=step)
    wide = wide.reindex(index=sorted(df["mapping_name"].unique()), columns=cols)
    data = wide.to_numpy(dtype=float) * (100.0 if rate else 1.0)
    edges = mdates.date2num(list(cols) + [cols[-1] + step])
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["YlOrRd"].with_extremes(bad="#f0f0f0")
    # a robust top of the scale: one 100 % day of a rarely used mapping must not wash out the rest
    finite = data[np.isfinite(data) & (data > 0)]
    vmax = float(np.percentile(finite, 98)) if finite.size else 1.0
    extend = "max" if finite.size and finite.max() > vmax else "neither"
    mesh = ax.pcolormesh(edges, np.arange(len(wide) + 1), np.ma.masked_invalid(data), cmap=cmap, shading="flat",
                         vmin=0, vmax=max(vmax, 1e-9))
    ax.set_yticks(np.arange(len(wide)) + 0.5, [truncate(m, 24) for m in wide.index], fontsize=8)
    ax.invert_yaxis()
    ax.xaxis_date()
    _date_axis(ax)
    cbar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.04, extend=extend)
    cbar.set_label("Failed / processed (%)" if rate else f"{value.capitalize()} per {freq}")
    cbar.formatter = PercentFormatter(decimals=1) if rate else FuncFormatter(lambda v, _: f"{v:,.0f}")
    if not rate:
        cbar.locator = MaxNLocator(nbins=6, integer=True)
    cbar.update_ticks()
    _title(ax, title, "grey: nothing processed" if rate else f"grey: no {value}")
    return _done(fig, save)


def new_vs_recurring(frame: pd.DataFrame, *, title: str = "New versus recurring signatures per week",
                     save: PathLike | None = None) -> Figure:
    """Stacked bars of new and recurring signatures per period; the legend says which colour is which.

    Parameters
    ----------
    frame
        ``period``, ``new_signatures``, ``recurring_signatures``
        (:func:`syncanalysis.analysis.trends.signature_novelty`).
    title
        The chart title.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    fig = _figure(10, 3.6)
    if _is_empty(frame, "period", "new_signatures", "recurring_signatures"):
        return _done(_empty(fig, title), save)
    df = frame.copy()
    df["period"] = pd.to_datetime(df["period"])
    ax = fig.add_subplot()
    width = 6.0 if len(df) < 2 or (df["period"].diff().dropna().min() >= pd.Timedelta(days=6)) else 0.85
    ax.bar(df["period"], df["recurring_signatures"], width=width, color="#9ecae1", label="recurring", align="edge")
    ax.bar(df["period"], df["new_signatures"], width=width, bottom=df["recurring_signatures"], color="#e6550d",
           label="new (first seen)", align="edge")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _thousands(ax)
    _date_axis(ax)
    ax.set_ylabel("Distinct signatures")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="signatures", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8,
              title_fontsize=9)
    _title(ax, title)
    return _done(fig, save)


# -- job health ------------------------------------------------------------------------------------------
def _timeline_inputs(data: Any, gaps: pd.DataFrame | None, incidents: pd.DataFrame | None,
                     filters: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    from .workspace import Workspace

    if not isinstance(data, Workspace):
        return data, gaps, incidents
    from .analysis.trends import job_activity

    ws = data
    jobs = job_activity(ws, **filters)
    if gaps is None:
        from .analysis.health import gaps as health_gaps

        gaps = health_gaps(ws, environment=filters.get("environment"), company=filters.get("company"),
                           mapping=filters.get("mapping"))
    if incidents is None:
        cond, params = scope(environment=filters.get("environment"), company=filters.get("company"))
        incidents = ws.con.execute(
            f'SELECT kind, mapping, start, "end", description FROM incidents WHERE {cond} ORDER BY start', params).df()
    return jobs, gaps, incidents


def job_timeline(data: Any, gaps: pd.DataFrame | None = None, incidents: pd.DataFrame | None = None, *,
                 title: str = "Job cadence per mapping", max_incidents: int = 14, save: PathLike | None = None,
                 **filters: Any) -> Figure:
    """Timeline of the runs of each mapping, with the gaps (sync stopped, on hold) and incidents marked.

    Parameters
    ----------
    data
        Jobs (:func:`syncanalysis.analysis.trends.job_activity`: ``mapping_name``, ``start``, ``failed``), or a
        workspace: then the jobs, the gaps (:func:`syncanalysis.analysis.health.gaps`) and the ``incidents``
        table (ground truth of a twin) are read from it, limited by ``filters`` (environment, company,
        since, until, mapping).
    gaps
        ``mapping_name``, ``gap_start``, ``gap_end``, ``kind`` (``stopped``, ``on-hold-inactivity``, ...).
    incidents
        ``kind``, ``mapping``, ``start``, ``end``: one lane each above the mappings.
    title
        The chart title.
    max_incidents
        Incidents drawn (the longest first); the rest are counted in the subtitle.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    filters
        ``environment``, ``company``, ``since``, ``until``, ``mapping``: used when ``data`` is a workspace.
    """
    jobs, gaps, incidents = _timeline_inputs(data, gaps, incidents, filters)
    mappings = [] if _is_empty(jobs, "mapping_name", "start") else sorted(jobs["mapping_name"].dropna().unique())
    inc = pd.DataFrame() if _is_empty(incidents, "start", "end") else incidents.copy()
    hidden = 0
    if len(inc) > max_incidents:
        dur = pd.to_datetime(inc["end"]) - pd.to_datetime(inc["start"])
        hidden = len(inc) - max_incidents
        inc = inc.loc[dur.sort_values(ascending=False).index[:max_incidents]].sort_values("start")
    rows = len(inc) + len(mappings)
    fig = _figure(12, max(2.8, 1.5 + 0.34 * rows))
    if not mappings:
        return _done(_empty(fig, title), save)
    ax = fig.add_subplot()
    lanes = {m: len(inc) + i for i, m in enumerate(mappings)}
    starts = pd.to_datetime(jobs["start"])
    failed = jobs["failed"].fillna(0).to_numpy() > 0 if "failed" in jobs.columns else np.zeros(len(jobs), bool)
    for m, lane in lanes.items():
        sel = (jobs["mapping_name"] == m).to_numpy()
        ok = mdates.date2num(starts[sel & ~failed])
        bad = mdates.date2num(starts[sel & failed])
        if len(ok):
            ax.eventplot([ok], lineoffsets=lane, linelengths=0.55, colors="#4a7fb5", linewidths=0.6)
        if len(bad):
            ax.eventplot([bad], lineoffsets=lane, linelengths=0.55, colors="#e6550d", linewidths=0.6)
    gap_kinds = set()
    if not _is_empty(gaps, "mapping_name", "gap_start", "gap_end"):
        g = gaps[gaps["mapping_name"].isin(lanes)]
        for kind, part in g.groupby(g["kind"] if "kind" in g.columns else pd.Series("stopped", index=g.index)):
            color = GAP_COLORS.get(kind, "#d62728")
            gap_kinds.add(kind)
            for m, sub in part.groupby("mapping_name"):
                x0 = mdates.date2num(pd.to_datetime(sub["gap_start"]))
                x1 = mdates.date2num(pd.to_datetime(sub["gap_end"]))
                ax.broken_barh(list(zip(x0, x1 - x0)), (lanes[m] - 0.38, 0.76), facecolors=color, alpha=0.45,
                               edgecolor="none")
    labels = {}
    for i, row in enumerate(inc.itertuples(index=False)):
        x0 = mdates.date2num(pd.Timestamp(row.start))
        x1 = mdates.date2num(pd.Timestamp(row.end)) if pd.notna(row.end) else x0
        x1 = max(x1, x0 + 1 / 48)  # at least half an hour wide, to stay visible
        ax.add_patch(Rectangle((x0, i - 0.35), x1 - x0, 0.7, facecolor="#756bb1", alpha=0.85, edgecolor="none"))
        mapping = getattr(row, "mapping", None)
        if isinstance(mapping, str) and mapping in lanes:  # the same window on the mapping's own lane
            ax.add_patch(Rectangle((x0, lanes[mapping] - 0.45), x1 - x0, 0.9, facecolor="none", edgecolor="#756bb1",
                                   linewidth=0.8, alpha=0.9))
        labels[i] = truncate(f"{row.kind}" + (f" ({mapping})" if isinstance(mapping, str) else ""), 38)
    if len(inc):
        ax.axhline(len(inc) - 0.5, color="#999999", linewidth=0.6)
    for m, lane in lanes.items():
        labels[lane] = truncate(m, 24)
    ax.set_yticks(list(labels), list(labels.values()), fontsize=8)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.xaxis_date()
    _date_axis(ax)
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color="#4a7fb5", label="run"), Patch(color="#e6550d", label="run with failures")]
    handles += [Patch(color=GAP_COLORS.get(k, "#d62728"), alpha=0.45, label=f"gap: {k}") for k in sorted(gap_kinds)]
    if len(inc):
        handles.append(Patch(color="#756bb1", label="incident (ground truth)"))
    if len(inc) and "mapping" in inc.columns and inc["mapping"].isin(lanes).any():
        handles.append(Patch(facecolor="none", edgecolor="#756bb1", label="incident window on its mapping"))
    ax.legend(handles=handles, title="on the timeline", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize=8, title_fontsize=9)
    _title(ax, title, f"{hidden:,} shorter incidents not shown" if hidden else None)
    return _done(fig, save)


def duration_distribution(jobs: pd.DataFrame, *, title: str = "Job duration per mapping",
                          save: PathLike | None = None) -> Figure:
    """Box plot of job durations per mapping on a log scale (box: p25-p75, whiskers: p5-p95, line: median).

    One colour (it means nothing): the mapping is on the axis; the median, p95 and number of jobs are
    written beside each box.

    Parameters
    ----------
    jobs
        ``mapping_name`` and ``duration_s`` (e.g. :func:`syncanalysis.analysis.trends.job_activity`).
    title
        The chart title.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    df = None if _is_empty(jobs, "mapping_name", "duration_s") else jobs.dropna(subset=["duration_s"])
    df = df[df["duration_s"] > 0] if df is not None else None
    mappings = [] if df is None or df.empty else sorted(df["mapping_name"].unique())
    fig = _figure(9, max(2.6, 1.3 + 0.42 * len(mappings)))
    if not mappings:
        return _done(_empty(fig, title), save)
    ax = fig.add_subplot()
    data = [df.loc[df["mapping_name"] == m, "duration_s"].to_numpy() for m in mappings]
    ax.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=False, widths=0.6, patch_artist=True,
               boxprops={"facecolor": "#c6dbef", "edgecolor": "#4a7fb5"}, medianprops={"color": "#08306b"})
    ax.set_xscale("log")
    _log_axis(ax, _seconds)
    ax.set_yticks(np.arange(1, len(mappings) + 1), [truncate(m, 24) for m in mappings], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("Duration per job (log scale)")
    ax.grid(axis="x", alpha=0.3, which="both")
    for i, values in enumerate(data, start=1):
        ax.annotate(f"p50 {_seconds(np.median(values))}, p95 {_seconds(np.percentile(values, 95))}, n={len(values):,}",
                    xy=(1.0, i), xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=7, color="#444444")
    _title(ax, title, "box: p25-p75, whiskers: p5-p95, line: median")
    return _done(fig, save)


def _seconds(v: float, _pos: Any = None) -> str:
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 60:
        return f"{v:.0f} s" if v >= 10 or v == int(v) else f"{v:.1f} s"
    if v < 3600:
        return f"{v / 60:.0f} min" if v >= 600 else f"{v / 60:.1f} min"
    if v < 48 * 3600:
        return f"{v / 3600:.0f} h" if v >= 10 * 3600 else f"{v / 3600:.1f} h"
    return f"{v / 86400:.0f} d"


# -- backlog ------------------------------------------------------------------------------------------------
def backlog_ageing(frame: pd.DataFrame, *, title: str = "Skipped backlog by age",
                   save: PathLike | None = None) -> Figure:
    """How long the skipped records have been skipped; the colour is the age (legend *skipped for*, older is darker).

    Parameters
    ----------
    frame
        Either ``period``, ``bucket``, ``records`` (:func:`syncanalysis.analysis.backlog.backlog_ageing_over_time`:
        a stacked area over time) or ``key``, ``bucket``, ``records``
        (:func:`syncanalysis.analysis.backlog.backlog_ageing`: stacked bars per key, now).
    title
        The chart title.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    from .analysis.backlog import AGE_BUCKETS

    over_time = frame is not None and "period" in frame.columns
    keys = [] if over_time or _is_empty(frame, "key", "bucket", "records") else list(dict.fromkeys(frame["key"]))
    fig = _figure(11 if over_time else 9, 4.2 if over_time else max(2.6, 1.4 + 0.4 * len(keys)))
    if _is_empty(frame, "bucket", "records") or frame["records"].sum() == 0:
        return _done(_empty(fig, title, "No skipped records"), save)
    ax = fig.add_subplot()
    buckets = [b for b in AGE_BUCKETS if b in set(frame["bucket"])]
    colors = [AGE_COLORS[AGE_BUCKETS.index(b)] for b in buckets]
    if over_time:
        wide = frame.pivot_table(index="period", columns="bucket", values="records", aggfunc="sum", fill_value=0)
        wide = wide.reindex(columns=buckets, fill_value=0)
        x = pd.to_datetime(wide.index)
        ax.stackplot(x, *[wide[b].to_numpy() for b in buckets], labels=buckets, colors=colors, alpha=0.9)
        _date_axis(ax)
        ax.set_ylabel("Skipped records (end of day)")
        ax.margins(x=0)
    else:
        wide = frame.pivot_table(index="key", columns="bucket", values="records", aggfunc="sum", fill_value=0)
        wide = wide.reindex(index=keys, columns=buckets, fill_value=0)
        left = np.zeros(len(wide))
        y = np.arange(len(wide))
        for b, c in zip(buckets, colors):
            ax.barh(y, wide[b].to_numpy(), left=left, color=c, label=b, height=0.6)
            left += wide[b].to_numpy()
        ax.set_yticks(y, [truncate(k, 40) for k in wide.index], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("Skipped records (now)")
        _thousands(ax, "x")
    if over_time:
        _thousands(ax)
    ax.grid(axis="y" if over_time else "x", alpha=0.3)
    ax.legend(title="skipped for", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8,
              title_fontsize=9)
    _title(ax, title)
    return _done(fig, save)


def backlog_over_time(frame: pd.DataFrame, *, title: str = "Skipped backlog per mapping", top: int = 8,
                      legend_title: str | None = None, save: PathLike | None = None) -> Figure:
    """Lines of the skipped backlog at the end of each day per key.

    One line per key, each in its own colour (its cause colour when the keys are causes) named in a legend;
    a single key (``by=None`` gives one key ``all``) is one line in one colour without a legend.

    Parameters
    ----------
    frame
        ``period``, ``key``, ``skipped`` (:func:`syncanalysis.analysis.backlog.backlog`).
    title
        The chart title.
    top
        Lines drawn: the keys with the largest backlog.
    legend_title
        What the keys are (``mapping``, ``cause``...): the legend's title; by default ``cause`` when every
        key is a cause, else ``key``.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    fig = _figure(11, 4.0)
    if _is_empty(frame, "period", "key", "skipped"):
        return _done(_empty(fig, title), save)
    wide = frame.assign(period=pd.to_datetime(frame["period"])).pivot_table(
        index="period", columns="key", values="skipped", aggfunc="sum", fill_value=0)
    keys = _top_keys(wide.max(), top)
    causes = _looks_like_causes(keys)
    ax = fig.add_subplot()
    colors = key_colors(keys, causes=causes) if len(keys) > 1 or causes else [_PALETTE[0]]
    for key, color in zip(keys, colors):
        ax.plot(wide.index, wide[key], color=color, linewidth=1.6, label=truncate(cause_label(key), 40))
    _date_axis(ax)
    _thousands(ax)
    ax.set_ylabel("Skipped records (end of day)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if len(keys) > 1 or causes:
        ax.legend(title=legend_title or ("cause" if causes else "key"), loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False, fontsize=8, title_fontsize=9)
    _title(ax, title)
    return _done(fig, save)


def resolution_times(summary: pd.DataFrame, *, top: int = 12,
                     title: str = "Time to resolution and self-healing per signature",
                     save: PathLike | None = None) -> Figure:
    """Median and p90 time to resolution (bars) and the share that heals by itself (label), per key.

    The wide light bar is the p90, the narrow bar the median; with a ``cause`` column the median bar has its
    cause's colour and a second legend titled *cause* says which, else it has one colour.

    Parameters
    ----------
    summary
        :func:`syncanalysis.analysis.backlog.resolution_summary` (``key``, ``median_hours``, ``p90_hours``,
        ``self_heal_share``, ``episodes``, optional ``cause``).
    top
        Keys shown: those with the most failure episodes.
    title
        The chart title.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    df = None if _is_empty(summary, "key", "median_hours", "p90_hours") else summary.dropna(subset=["median_hours"])
    df = df.sort_values("episodes", ascending=False).head(top) if df is not None else None
    n = 0 if df is None else len(df)
    fig = _figure(11, max(3.0, 1.9 + 0.42 * n))
    if not n:
        return _done(_empty(fig, title, "No resolved failures"), save)
    ax = fig.add_subplot()
    y = np.arange(n)
    by_cause = "cause" in df.columns
    colors = [cause_color(c) for c in df["cause"]] if by_cause else [_PALETTE[0]] * n
    ax.barh(y, df["p90_hours"].clip(lower=0.01), color="#dddddd", height=0.7)
    ax.barh(y, df["median_hours"].clip(lower=0.01), color=colors, height=0.45)
    ax.set_xscale("log")
    _log_axis(ax, lambda v, _: _seconds(v * 3600))
    ax.set_yticks(y, [truncate(k, 44) for k in df["key"]], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("Time from first failure to success (log scale; h = hours, d = days)")
    ax.grid(axis="x", alpha=0.3, which="both")
    if "self_heal_share" in df.columns:
        for i, share in enumerate(df["self_heal_share"]):
            ax.annotate(f"{share:.0%} heal by themselves", xy=(1.0, i), xycoords=("axes fraction", "data"),
                        xytext=(6, 0), textcoords="offset points", va="center", fontsize=7, color="#444444")
    # below the axes: the annotations on the right leave no room there
    fig.legend(handles=[Patch(color="#dddddd", label="p90"),
                        Patch(color="#777777" if by_cause else _PALETTE[0], label="median")],
               title="bar", loc="outside lower left", ncols=2, frameon=False, fontsize=8, title_fontsize=9)
    if by_cause:
        causes = list(dict.fromkeys(df["cause"]))
        fig.legend(handles=[Patch(color=cause_color(c), label=truncate(cause_label(c), 36)) for c in causes],
                   title="cause (median bar)", loc="outside lower right", ncols=min(len(causes), 4), frameon=False,
                   fontsize=8, title_fontsize=9)
    _title(ax, title)
    return _done(fig, save)


# -- dependencies -------------------------------------------------------------------------------------------
def _rank_parents(df: pd.DataFrame) -> pd.DataFrame:
    """One row per parent (``parent_record_id``, ``state``, ``blocked``, ``tier``), the ones to fix first on top.

    Tier 0: still blocking (state not ``ok`` and, when known, ``still_blocking > 0``); tier 1: not coupled
    (or broken...) but no child's latest error names it any more; tier 2: ``ok`` (coupled since: fixed).
    Within a tier, by ``fix_order`` (else by records blocked, most first).
    """
    g = df.groupby("parent_record_id", sort=False)
    out = pd.DataFrame({"blocked": g["blocked_records"].sum()})
    out["state"] = g["parent_state"].first().fillna("unknown").astype(str) if "parent_state" in df.columns \
        else "unknown"
    still = g["still_blocking"].max().fillna(0) > 0 if "still_blocking" in df.columns else True
    out["tier"] = np.where(out["state"] == "ok", 2, np.where(still, 0, 1))
    out["order"] = g["fix_order"].min() if "fix_order" in df.columns else -out["blocked"]
    out = out.rename_axis("parent_record_id").reset_index()
    return out.sort_values(["tier", "order", "parent_record_id"], kind="stable").reset_index(drop=True)


def dependency_graph(frame: pd.DataFrame, *, top: int = 14, title: str = "Parents blocking children",
                     save: PathLike | None = None) -> Figure:
    """A layered drawing of the dependency graph: blocking parent records (left, in fix order) -> child mappings.

    Each parent (its dot and its arrows) has the colour of its coupling state now, named in a legend titled
    *parent state*. Parents that still block come first, numbered in the order to fix them; a parent that is
    not coupled but no longer named by a child's latest error follows; a parent coupled since (state
    ``ok``: fixed) comes last, unnumbered, marked *(fixed)*, whatever the records it once blocked.

    Parameters
    ----------
    frame
        :func:`syncanalysis.analysis.dependencies.dependency_graph`: ``parent_table``, ``parent_key`` (or
        ``parent_record_id``), ``child_mapping``, ``blocked_records`` and optionally ``fix_order``,
        ``parent_state`` and ``still_blocking``.
    top
        Parents drawn (the first in that order); the rest are summed in one ``... n more parents`` node.
    title
        The chart title.
    save
        A ``.png``, ``.svg`` or ``.pdf`` path: the figure is also written there (:func:`save`).

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    df = None if _is_empty(frame, "child_mapping", "blocked_records") else frame.copy()
    if df is not None and "parent_record_id" not in df.columns:
        df["parent_record_id"] = df["parent_table"].astype(str) + ": " + df["parent_key"].astype(str)
    ranked = None if df is None else _rank_parents(df)
    parents = [] if ranked is None else list(ranked["parent_record_id"])
    rows = min(len(parents), top + 1)
    fig = _figure(11, max(3.4, 2.0 + 0.4 * max(rows, 1)))
    if not parents:
        return _done(_empty(fig, title, "No record is blocked by an uncoupled parent"), save)
    state = dict(zip(ranked["parent_record_id"], ranked["state"]))
    tier = dict(zip(ranked["parent_record_id"], ranked["tier"]))
    shown = parents[:top]
    rest = parents[top:]
    if rest:
        more = f"{ELLIPSIS} {len(rest):,} more parents"
        df.loc[df["parent_record_id"].isin(rest), "parent_record_id"] = more
        shown.append(more)
    color = {p: STATE_COLORS.get(state[p], STATE_COLORS["unknown"]) if p in state else _MIXED for p in shown}
    edges = df.groupby(["parent_record_id", "child_mapping"], as_index=False, sort=False)["blocked_records"].sum()
    ly = {p: float(i) for i, p in enumerate(shown)}
    # children at the weighted mean height of their parents (fewer crossings), then spread evenly
    edges["_y"] = edges["parent_record_id"].map(ly) * edges["blocked_records"]
    per_child = edges.groupby("child_mapping").agg(blocked=("blocked_records", "sum"), y=("_y", "sum"))
    per_child["y"] = per_child["y"] / per_child["blocked"]
    children = list(per_child.sort_values(["y", "blocked"], ascending=[True, False]).index)
    span = max(len(shown) - 1, 1)
    ry = {c: (i * span / max(len(children) - 1, 1)) if len(children) > 1 else span / 2 for i, c in enumerate(children)}
    ax = fig.add_subplot()
    ax.set_axis_off()
    lx, rx = 0.40, 0.66
    max_w = edges["blocked_records"].max()
    for e in edges.itertuples(index=False):
        w = 0.6 + 5.0 * e.blocked_records / max_w
        ax.add_patch(FancyArrowPatch((lx + 0.006, ly[e.parent_record_id]), (rx - 0.006, ry[e.child_mapping]),
                                     arrowstyle="-|>", mutation_scale=9, linewidth=w, color=color[e.parent_record_id],
                                     alpha=0.45, shrinkA=0, shrinkB=3))
    blocked = df.groupby("parent_record_id", sort=False)["blocked_records"].sum()
    number = 0
    for p in shown:
        if p in tier and tier[p] < 2:
            number += 1
            label = truncate(f"{number}. {p}", 44)
        else:
            label = truncate(p, 44) + ("  (fixed)" if p in tier else "")
        ax.text(lx - 0.012, ly[p], label, ha="right", va="center", fontsize=8,
                color="#777777" if tier.get(p) == 2 else "black")
        ax.plot([lx], [ly[p]], marker="o", color=color[p], markersize=7, markeredgecolor="white", markeredgewidth=0.5)
        n = int(blocked[p])
        ax.annotate(f"{n:,}", xy=(lx, ly[p]), xytext=(5, 3), textcoords="offset points",
                    ha="left", va="bottom", fontsize=7, color="#555555")
    for c in children:
        ax.plot([rx], [ry[c]], marker="s", color="#4a7fb5", markersize=7)
        n = int(per_child.loc[c, "blocked"])
        ax.text(rx + 0.014, ry[c], f"{truncate(c, 24)}  ({n:,} record{'s' if n != 1 else ''} blocked)",
                ha="left", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(len(shown) - 0.5, -1.3)
    ax.text(lx - 0.012, -1.0, "Parent record (fix in this order)", ha="right", va="center", fontsize=8,
            color="#555555", fontweight="bold")
    ax.text(rx + 0.014, -1.0, "Blocked child mapping", ha="left", va="center", fontsize=8, color="#555555",
            fontweight="bold")
    present = [s for s in STATE_COLORS if s in {state[p] for p in shown if p in state}]
    present += [s for s in dict.fromkeys(state[p] for p in shown if p in state) if s not in STATE_COLORS]
    handles = [Patch(color=STATE_COLORS.get(s, STATE_COLORS["unknown"]), label=STATE_LABELS.get(s, s)) for s in present]
    if rest:
        handles.append(Patch(color=_MIXED, label="several (summed parents)"))
    fig.legend(handles=handles, title="parent state (coupling now)", loc="outside lower center",
               ncols=min(len(handles), 4), frameon=False, fontsize=8, title_fontsize=9)
    _title(ax, title, "line width: records blocked (number at each parent)")
    return _done(fig, save)


__all__ = [
    "AGE_COLORS", "CAUSE_COLORS", "SAVE_FORMATS", "STATE_COLORS", "STATE_LABELS", "backlog_ageing",
    "backlog_over_time", "cause_color", "cause_pareto", "dependency_graph", "duration_distribution",
    "job_timeline", "key_colors", "mapping_heatmap", "new_vs_recurring", "resolution_times", "save",
    "trends_by_cause", "truncate",
]
