"""HTML of the report and the panels, Markdown of the plan files: jinja2 templates, one stylesheet.

Every template (``syncanalysis/templates``) is rendered with autoescaping on, so every piece of data
text is escaped wherever it is written (error messages and record names can contain markup, e.g. a
Dataverse fault quoting ``<b>`` or a customer called ``<script>``); only the templates' own markup is
trusted. ``style.css`` is the one stylesheet of both. Markdown templates (plan files) escape every value
for Markdown the same way (:func:`md`), as a Markdown viewer renders inline HTML. The functions return
plain strings so tests can assert on them without a browser.
"""

from __future__ import annotations

import datetime as dt
import functools
import html as stdhtml
import importlib.resources
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jinja2
import markupsafe
import numpy as np
import pandas as pd


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


escape = markupsafe.escape  # one cell's text as HTML


def escape_lines(text: pd.Series) -> pd.Series:
    r"""Texts as HTML (vectorised, for whole columns): escaped as :data:`escape` does, line breaks as ``<br>``.

    Examples
    --------
    >>> escape_lines(pd.Series(["a < b", "x\r\ny"])).tolist()
    ['a &lt; b', 'x<br>y']
    """
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;")):
        text = text.str.replace(char, entity, regex=False)
    return text.str.replace("\r\n", "\n", regex=False).str.replace("\r", "\n", regex=False) \
        .str.replace("\n", "<br>", regex=False)


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("syncanalysis", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    env.filters["fmt"] = fmt
    return env


TEMPLATES = _templates()
STYLESHEET = (importlib.resources.files("syncanalysis") / "templates" / "style.css").read_text(encoding="utf-8")
STYLE = f"<style>{STYLESHEET}</style>"  # for the panels: once per notebook output


class Code(str):
    """Text a Markdown template shows as a code span (``{{ value | code }}``): fenced, not escaped."""


def md(value: Any) -> str:
    r"""One value as Markdown text: no line breaks, HTML and table pipes escaped; a :class:`Code` as a code span.

    Examples
    --------
    >>> print(md("a | <b>b</b>\nc"))
    a \| &lt;b&gt;b&lt;/b&gt; c
    >>> print(md(Code("x`y")))
    ``x`y``
    """
    if isinstance(value, Code):
        text = " ".join(str(value).splitlines())
        runs = [len(r) for r in "".join(c if c == "`" else " " for c in text).split()]
        fence = "`" * (max(runs, default=0) + 1)
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        return f"{fence}{pad}{text}{pad}{fence}"
    if isinstance(value, jinja2.Undefined) or is_missing(value):
        return ""
    return stdhtml.escape(str(value).replace("\r", " ").replace("\n", " "), quote=False).replace("|", "\\|")


def _yes(value: Any) -> str:
    """BC shows booleans as Yes/No; unknown stays blank."""
    return "" if isinstance(value, jinja2.Undefined) or is_missing(value) else ("Yes" if value else "No")


MARKDOWN = jinja2.Environment(loader=jinja2.PackageLoader("syncanalysis", "templates"), autoescape=False,
                              finalize=md, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
MARKDOWN.filters.update(code=Code, yes=_yes, json=lambda v: json.dumps(v, default=str))


def render_markdown(template: str, **context: Any) -> str:
    """Render the Markdown template ``template``: every ``{{ value }}`` goes through :func:`md`."""
    return MARKDOWN.get_template(template).render(**context)


def render(template: str, **context: Any) -> str:
    """Render the template file ``template`` (in ``syncanalysis/templates``) with autoescaping."""
    return TEMPLATES.get_template(template).render(style=STYLESHEET, **context)


@functools.lru_cache(maxsize=256)
def _inline(source: str) -> jinja2.Template:
    return TEMPLATES.from_string(source)


def fragment(source: str, **context: Any) -> str:
    """Render a one-line template, e.g. ``fragment('<b>{{ t }}</b>', t=title)`` (values autoescaped).

    Examples
    --------
    >>> fragment('<div class="sa-note">{{ text }}</div>', text="<script>")
    '<div class="sa-note">&lt;script&gt;</div>'
    """
    return _inline(source).render(**context)


def _parts() -> Any:
    return TEMPLATES.get_template("parts.html.j2").module


def esc(value: Any) -> str:
    """The escaped display text of ``value`` (safe inside HTML text and attribute values)."""
    return str(markupsafe.escape(fmt(value)))


def clip(value: Any, width: int = 120) -> str:
    """Escaped text of ``value`` cut to ``width`` characters, with the whole text as a tooltip."""
    return str(_parts().clip(value, width))


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
        One CSS class per row (e.g. ``sa-diff`` for rows to mark).
    cell_classes
        Same shape as the shown columns: a CSS class per cell (``""`` for none).
    clip_width
        Longer texts are cut with the full text as a tooltip.
    wrap
        Wrap long cells instead of cutting them on one line.
    empty
        Text shown when there are no rows.

    Returns
    -------
    str
        The HTML; every header, cell text and class is escaped.
    """
    cols = list(columns) if columns is not None else list(frame.columns)
    if frame.empty:
        return fragment('<div class="sa-note">{{ empty }}</div>', empty=empty)
    shown = frame if max_rows is None else frame.iloc[:max_rows]
    classes = list(row_classes)[: len(shown)] if row_classes is not None else [""] * len(shown)
    cells = cell_classes[cols].to_numpy(dtype=object).tolist() if cell_classes is not None else None
    more = f"Showing {max_rows:,} of {len(frame):,} rows." if max_rows is not None and len(frame) > max_rows else ""
    return str(_parts().table([(headers or {}).get(c, c) for c in cols], shown[cols].to_numpy(dtype=object).tolist(),
                              classes, cells, widths, "sa-table sa-wrap" if wrap else "sa-table", clip_width, more))


def row(values: Sequence[Any], widths: Sequence[str], *, head: bool = False, clip_width: int = 200) -> str:
    """One table row as its own fixed-layout table, so rows rendered in separate widgets line up."""
    return str(_parts().row(list(values), widths, "sa-row sa-head" if head else "sa-row", clip_width))


def key_values(data: Mapping[str, Any], *, labels: Mapping[str, str] | None = None) -> str:
    """A two-column table of ``data`` (escaped)."""
    return str(_parts().key_values([((labels or {}).get(k, k), v) for k, v in data.items()]))


def badges(counts: Mapping[str, Any], *, classes: Mapping[str, str] | None = None) -> str:
    """Counts as badges, e.g. ``targets 120 · will change 100``; keys are shown with ``_`` as spaces."""
    items = [(f"{k.replace('_', ' ')}: {v:,}" if isinstance(v, (int, np.integer)) else
              f"{k.replace('_', ' ')}: {fmt(v)}", (classes or {}).get(k, "")) for k, v in counts.items()]
    return str(_parts().badges(items))


def paragraph(text: Any, *, css: str = "sa-note") -> str:
    """Escaped multi-line text as a block (line breaks kept)."""
    return str(_parts().paragraph(text, css))


__all__ = ["STYLE", "STYLESHEET", "Code", "badges", "md", "render_markdown", "clip", "esc", "fmt", "fragment", "is_missing", "key_values",
           "paragraph", "render", "row", "table"]
