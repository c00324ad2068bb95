"""Escaped HTML for the panels: tables, key/value lists, count badges.

Every piece of data text goes through :func:`esc` (error messages and record names can contain markup,
e.g. a Dataverse fault quoting ``<b>`` or a customer called ``<script>``); only the markup written here is
trusted. The functions return plain strings so tests can assert on them without a browser.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# One style sheet for every panel; class names are prefixed ``sa-`` so they do not clash with JupyterLab's.
STYLE = """<style>
.sa-table {border-collapse: collapse; font-size: 12px; width: 100%; table-layout: fixed;}
.sa-table th, .sa-table td {border-bottom: 1px solid #ddd; padding: 2px 6px; text-align: left;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; vertical-align: top;}
.sa-table th {background: #f3f3f3; font-weight: 600;}
.sa-table.sa-wrap td {white-space: normal; word-break: break-word;}
.sa-table tr.sa-diff td {background: #fff1c2;}
.sa-table td.sa-diff {background: #ffd27a; font-weight: 600;}
.sa-row {border-collapse: collapse; font-size: 12px; width: 100%; table-layout: fixed;}
.sa-row td {padding: 2px 6px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  border-bottom: 1px solid #eee;}
.sa-row.sa-head td {font-weight: 600; background: #f3f3f3;}
.sa-badge {display: inline-block; padding: 1px 7px; margin-right: 4px; border-radius: 9px; background: #e8e8e8;
  font-size: 12px;}
.sa-badge.sa-warn {background: #ffe2b3;} .sa-badge.sa-bad {background: #ffc9c9;} .sa-badge.sa-good {background: #cdeccd;}
.sa-note {color: #555; font-size: 12px;}
.sa-confirm {border: 2px solid #d9534f; padding: 6px; background: #fff5f5;}
.sa-kpi {display: inline-block; min-width: 120px; margin: 4px; padding: 6px 10px; border: 1px solid #ddd;
  border-radius: 4px;}
.sa-kpi b {display: block; font-size: 18px;}
.sa-sev-critical {color: #fff; background: #b30000;} .sa-sev-high {background: #ff8c66;}
.sa-sev-medium {background: #ffd966;} .sa-sev-low {background: #d9ead3;} .sa-sev-info {background: #e8e8e8;}
</style>"""


def is_missing(value: Any) -> bool:
    """Whether ``value`` is an empty cell (None, NaN, NaT, pandas NA)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, np.floating):
        return bool(np.isnan(value))
    return False


def fmt(value: Any) -> str:
    """Plain display text of one cell (not escaped): blanks for missing values, seconds for timestamps."""
    if is_missing(value):
        return ""
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def esc(value: Any) -> str:
    """The escaped display text of ``value`` (safe inside HTML text and attribute values)."""
    return html.escape(fmt(value), quote=True)


def clip(value: Any, width: int = 120) -> str:
    """Escaped text of ``value`` cut to ``width`` characters, with the whole text as a tooltip."""
    text = fmt(value)
    short = text if len(text) <= width else text[: width - 1] + "…"
    return f'<span title="{html.escape(text, quote=True)}">{html.escape(short)}</span>'


def _colgroup(widths: Sequence[str] | None) -> str:
    if not widths:
        return ""
    return "<colgroup>" + "".join(f'<col style="width:{html.escape(w)}">' for w in widths) + "</colgroup>"


def table(frame: pd.DataFrame, *, columns: Sequence[str] | None = None, headers: Mapping[str, str] | None = None,
          max_rows: int | None = None, widths: Sequence[str] | None = None, row_classes: Iterable[str] | None = None,
          cell_classes: pd.DataFrame | None = None, clip_width: int = 160, wrap: bool = False,
          empty: str = "No rows.") -> str:
    """Render ``frame`` as an escaped HTML table.

    Parameters
    ----------
    frame
        The rows.
    columns
        Columns to show, in order (default all).
    headers
        Display names per column (default the column name).
    max_rows
        Show at most this many rows and say how many were left out.
    widths
        CSS widths of the shown columns (a fixed layout keeps pages aligned).
    row_classes
        One CSS class per row (e.g. ``sa-diff`` for rows to mark); trusted, not data.
    cell_classes
        Same shape as the shown columns: a CSS class per cell (``""`` for none); trusted, not data.
    clip_width
        Longer texts are cut with the full text as a tooltip.
    wrap
        Wrap long cells instead of cutting them on one line.
    empty
        Text shown when there are no rows.

    Returns
    -------
    str
        The HTML; every header and cell text is escaped.
    """
    cols = list(columns) if columns is not None else list(frame.columns)
    if frame.empty:
        return f'<div class="sa-note">{html.escape(empty)}</div>'
    shown = frame if max_rows is None else frame.iloc[:max_rows]
    classes = list(row_classes)[: len(shown)] if row_classes is not None else [""] * len(shown)
    head = "".join(f"<th>{esc((headers or {}).get(c, c))}</th>" for c in cols)
    values = shown[cols].to_numpy(dtype=object)
    cells = cell_classes[cols].to_numpy(dtype=object) if cell_classes is not None else None
    body = []
    for i, (row, cls) in enumerate(zip(values, classes)):
        tds = []
        for j, v in enumerate(row):
            c = cells[i][j] if cells is not None else ""
            attr = f' class="{html.escape(str(c))}"' if c else ""
            tds.append(f"<td{attr}>{clip(v, clip_width)}</td>")
        row_attr = f' class="{html.escape(cls)}"' if cls else ""
        body.append(f"<tr{row_attr}>{''.join(tds)}</tr>")
    more = ""
    if max_rows is not None and len(frame) > max_rows:
        more = f'<div class="sa-note">Showing {max_rows:,} of {len(frame):,} rows.</div>'
    css = "sa-table sa-wrap" if wrap else "sa-table"
    return (f'<table class="{css}">{_colgroup(widths)}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{more}")


def row(values: Sequence[Any], widths: Sequence[str], *, head: bool = False, clip_width: int = 200) -> str:
    """One table row as its own fixed-layout table, so rows rendered in separate widgets line up."""
    css = "sa-row sa-head" if head else "sa-row"
    tds = "".join(f"<td>{clip(v, clip_width)}</td>" for v in values)
    return f'<table class="{css}">{_colgroup(widths)}<tr>{tds}</tr></table>'


def key_values(data: Mapping[str, Any], *, labels: Mapping[str, str] | None = None) -> str:
    """A two-column table of ``data`` (escaped)."""
    rows = "".join(f"<tr><th>{esc((labels or {}).get(k, k))}</th><td>{clip(v, 200)}</td></tr>"
                   for k, v in data.items())
    return f'<table class="sa-table sa-wrap" style="width:auto">{rows}</table>'


def badges(counts: Mapping[str, Any], *, classes: Mapping[str, str] | None = None) -> str:
    """Counts as badges, e.g. ``targets 120 · will change 100``; keys are shown with ``_`` as spaces."""
    out = []
    for k, v in counts.items():
        cls = (classes or {}).get(k, "")
        text = f"{k.replace('_', ' ')}: {v:,}" if isinstance(v, (int, np.integer)) else f"{k.replace('_', ' ')}: {fmt(v)}"
        out.append(f'<span class="sa-badge {html.escape(cls)}">{html.escape(text)}</span>')
    return "".join(out)


def paragraph(text: Any, *, css: str = "sa-note") -> str:
    """Escaped multi-line text as a block (line breaks kept)."""
    return f'<div class="{html.escape(css)}">' + "<br>".join(html.escape(line) for line in fmt(text).splitlines()) + "</div>"


__all__ = ["STYLE", "badges", "clip", "esc", "fmt", "is_missing", "key_values", "paragraph", "row", "table"]
