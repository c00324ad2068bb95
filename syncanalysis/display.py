"""Notebook tables: a DataFrame as an HTML table that reads like a report, not like a ``repr``.

:func:`table` turns a frame (or a Series) into a :class:`pandas.io.formats.style.Styler` whose HTML shows
counts as integers with thousands separators (also where a missing value made them float), shares as
percentages, missing values as blank cells, timestamps to the second (to the minute, or the day, when that
is all they carry) with "(UTC)" in their column's header, and texts with their line breaks, wrapped so that
nothing is cut off at the right. Every text from the data is HTML-escaped (error messages can quote markup)
before the table's own ``<br>`` and ``<div>`` are added. It renders wherever a Styler does: JupyterLab,
classic Notebook, VS Code, nbconvert and nbmake.

Examples
--------
>>> import pandas as pd
>>> from syncanalysis.display import table
>>> frame = pd.DataFrame({"mapping_name": ["CUSTOMER", "<b>CONTACT</b>"], "errors": [1234.0, None],
...                       "failure_rate": [0.493, 0.05]})
>>> html = table(frame).to_html()
>>> "1,234" in html and "49.3 %" in html and "&lt;b&gt;CONTACT&lt;/b&gt;" in html and "nan" not in html
True
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from . import html as h

__all__ = ["humanise", "table"]

# last word of a column name that makes it a share of 1 shown as a percentage
PERCENT_WORDS = frozenset({"share", "rate", "ratio", "pct", "percent", "percentage", "fraction"})
# last word of a column name that makes its integers identifiers, written without thousands separators
ID_WORDS = frozenset({"id", "no", "number", "code", "year", "version", "port"})
# words written in capitals (or their own way) in a humanised header
ACRONYMS = {"bc": "BC", "crm": "CRM", "id": "ID", "ids": "IDs", "guid": "GUID", "utc": "UTC", "url": "URL",
            "json": "JSON", "http": "HTTP", "kpi": "KPI", "uom": "UoM", "sql": "SQL", "api": "API",
            "odata": "OData"}
_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_DATETIME_SUFFIX = " (UTC)"


def humanise(name: Any) -> str:
    """A column name as a header: ``mapping_name`` → "Mapping name", ``bc_record_id`` → "BC record ID".

    Only lower-case identifiers are rewritten; any other name (``CUSTOMER``, ``ToIntegrationTable``, a
    caption) is data and kept as it is.

    Parameters
    ----------
    name
        The column name (any object; it is shown as its ``str``).

    Returns
    -------
    str
        The header text (not escaped).

    Examples
    --------
    >>> humanise("mapping_name"), humanise("p90_hours"), humanise("CUSTOMER")
    ('Mapping name', 'P90 hours', 'CUSTOMER')
    """
    text = "" if name is None else str(name)
    if not _IDENTIFIER.fullmatch(text):
        return text
    words = [ACRONYMS.get(word, word) for word in text.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _last_word(name: Any) -> str:
    words = _WORDS.findall(str(name))
    return words[-1].lower() if words else ""


@dataclass(frozen=True)
class _Column:
    """One column ready to render: escaped HTML per cell, its kind (``number``, ``time``, ``short`` or ``text``)."""

    cells: pd.Series
    kind: str


def _scalar(value: Any) -> str:
    """Plain text of one cell of a column of mixed values (not escaped)."""
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        items = [_scalar(v) for v in value if not _missing(v)]
        return ("\n" if any(isinstance(v, str) for v in value) else ", ").join(items)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items() if not _missing(v))
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, pd.Timestamp) or (hasattr(value, "strftime") and hasattr(value, "hour")):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return stamp.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    if isinstance(value, (pd.Timedelta, np.timedelta64)):
        return _timedeltas(pd.Series([pd.Timedelta(value)])).iloc[0]
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.0f}" if float(value).is_integer() else f"{float(value):,.2f}"
    return str(value)


def _missing(value: Any) -> bool:
    if isinstance(value, (list, tuple, np.ndarray, pd.Series, Mapping)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _numbers(values: pd.Series, name: Any, percent: bool) -> pd.Series:
    """Numbers as text: percentages, integers (thousands separators unless an identifier), decimals."""
    shown = values.dropna().astype("float64")
    if percent:
        return ((shown * 100).round(1) + 0.0).map("{:.1f} %".format)
    finite = np.isfinite(shown.to_numpy())
    whole = bool(finite.all() and (shown == np.round(shown)).all() and (shown.abs() < 2 ** 53).all())
    if whole:
        pattern = "{:d}" if _last_word(name) in ID_WORDS else "{:,d}"
        return shown.astype("int64").map(pattern.format)
    large = shown.abs() >= 0.01
    text = shown.map("{:,.2f}".format).where(large | (shown == 0), shown.map("{:.2g}".format))
    return text.where(finite, shown.map(lambda v: "∞" if v > 0 else ("-∞" if v < 0 else "")))


def _datetimes(values: pd.Series) -> pd.Series:
    """Timestamps in UTC as text, as precise as the column needs: day, minute or second."""
    if values.dt.tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    shown = values.dropna()
    if not len(shown):
        return shown.astype(str)
    if (shown == shown.dt.normalize()).all():
        pattern = "%Y-%m-%d"
    elif ((shown.dt.second == 0) & (shown.dt.microsecond == 0) & (shown.dt.nanosecond == 0)).all():
        pattern = "%Y-%m-%d %H:%M"
    else:
        pattern = "%Y-%m-%d %H:%M:%S"
    return shown.dt.floor("s").dt.strftime(pattern)


def _timedeltas(values: pd.Series) -> pd.Series:
    """Durations as ``[N d ]HH:MM:SS`` (no fractions of a second)."""
    shown = values.dropna().dt.round("s")
    parts = shown.dt.components
    clock = (parts["hours"].map("{:02d}".format) + ":" + parts["minutes"].map("{:02d}".format) + ":"
             + parts["seconds"].map("{:02d}".format))
    days = parts["days"].map("{:,d} d ".format).where(parts["days"] != 0, "")
    return days + clock


def _column(values: pd.Series, name: Any, percent: bool) -> _Column:
    """Format one column of the shown rows (vectorised per kind of column)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype if len(values.cat.categories) else object)
    missing = values.isna()
    kind = values.dtype
    shown = "short"
    if pd.api.types.is_object_dtype(kind):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            values = pd.to_numeric(values, errors="coerce")
        elif inferred in ("datetime64", "datetime"):
            values = pd.to_datetime(values, utc=True, errors="coerce")
        elif inferred == "timedelta":
            values = pd.to_timedelta(values, errors="coerce")
        elif inferred == "boolean":
            values = values.astype("boolean")
        kind = values.dtype
    if pd.api.types.is_bool_dtype(kind):
        text = values.dropna().astype(bool).map({True: "yes", False: "no"})
    elif pd.api.types.is_numeric_dtype(kind):
        text, shown = _numbers(values, name, percent), "number"
    elif pd.api.types.is_datetime64_any_dtype(kind):
        text, shown = _datetimes(values), "time"
    elif pd.api.types.is_timedelta64_dtype(kind):
        text, shown = _timedeltas(values), "number"
    elif pd.api.types.is_string_dtype(kind) and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        text, shown = values.dropna().astype(str), "text"
    else:
        text, shown = values[~missing].map(_scalar), "text"
    cells = h.escape_lines(text.astype(object).reindex(values.index).fillna("").astype(str))
    if shown == "text":  # wrapped in a block that keeps the line breaks and wraps long lines
        cells = ('<div class="sa-cell">' + cells + "</div>").where(cells != "", "")
    return _Column(cells=cells, kind=shown)


def _flat_label(label: Any) -> Any:
    if isinstance(label, tuple):
        return " · ".join(str(part) for part in label if not _missing(part) and str(part) != "")
    return label


def _with_index(data: pd.DataFrame) -> pd.DataFrame:
    """The index as leading columns, unless it is only row numbers."""
    index = data.index
    if all(name is None for name in index.names) and (
            isinstance(index, pd.RangeIndex) or pd.api.types.is_integer_dtype(index.dtype)):
        return data.reset_index(drop=True)
    names = ["" if name is None else name for name in index.names]
    return data.rename_axis(names).reset_index(allow_duplicates=True)


def table(frame: pd.DataFrame | pd.Series, *, percent: Collection[str] | None = None, max_rows: int | None = 60,
          wrap: int | None = 80, labels: Mapping[Any, str] | None = None) -> Styler:
    r"""A frame as a readable notebook table (a Styler: display it, or call ``.to_html()``).

    Parameters
    ----------
    frame
        The data. A Series is shown as one column beside its index. A meaningful index (named, or not
        made of row numbers) becomes the leading columns; row numbers are not shown.
    percent
        More columns (by name) to show as percentages of 1, besides those whose name ends in share, rate,
        ratio, pct, percent, percentage or fraction (``self_heal_share``, ``failure_rate``).
    max_rows
        The first ``max_rows`` rows are shown, with a caption saying how many there are; ``None`` shows all.
    wrap
        Longest line of a text cell, in characters, before it wraps; ``None`` wraps texts only at the width
        of the notebook.
    labels
        Headers for some columns (by name), used as given; the other names are humanised
        (:func:`humanise`). A time column's header gets "(UTC)" unless its label says UTC already.

    Returns
    -------
    pandas.io.formats.style.Styler
        The styled table of the shown rows (every cell's text already formatted and HTML-escaped).

    Notes
    -----
    Integer-valued float columns (counts with a missing value) are shown as integers with thousands
    separators, except identifiers (names ending in id, no, number, code, year…); other numbers with two
    decimals; percentages with one (0.493 is "49.3 %"). Missing values (None, NaN, NaT, ``pd.NA``) are
    blank; booleans are yes/no. Times are UTC (naive times are taken as UTC, others are converted), to
    the second, to the minute when no shown time has seconds, to the day when all are midnight. Texts
    keep their line breaks (as ``<br>``) and wrap at word boundaries, or inside a word longer than a line.

    Examples
    --------
    >>> import pandas as pd
    >>> html = table(pd.DataFrame({"logged_at": pd.to_datetime(["2024-05-01 10:30:00.123456"]),
    ...                            "error_message": ["line one\nline <two>"]})).to_html()
    >>> "Logged at (UTC)" in html, "2024-05-01 10:30:00<" in html, "line one<br>line &lt;two&gt;" in html
    (True, True, True)
    """
    if isinstance(frame, pd.Series):
        frame = frame.to_frame(name="value" if frame.name is None else frame.name)
    total = len(frame)
    shown = frame if max_rows is None or total <= max_rows else frame.iloc[:max_rows]
    shown = _with_index(shown)
    names = [_flat_label(name) for name in shown.columns]
    percent_names = {str(name) for name in (percent or ())}
    labels = labels or {}

    columns, headers, styles = {}, [], {}
    for i, name in enumerate(names):
        as_percent = str(name) in percent_names or _last_word(name) in PERCENT_WORDS
        col = _column(shown.iloc[:, i], name, as_percent)
        columns[i] = col.cells.to_numpy()
        header = labels[name] if name in labels else humanise(name)
        if col.kind == "time" and "UTC" not in header:
            header += _DATETIME_SUFFIX
        headers.append(str(h.escape(header)))
        if col.kind == "number":
            styles[i] = [{"selector": "th", "props": "text-align: right;"},
                         {"selector": "td", "props": "text-align: right; white-space: nowrap;"}]
        elif col.kind == "time":
            styles[i] = [{"selector": "td", "props": "white-space: nowrap;"}]

    cells = pd.DataFrame(columns, index=pd.RangeIndex(len(shown)), columns=pd.RangeIndex(len(names)), dtype=object)

    width = f" max-width: {int(wrap)}ch;" if wrap else ""
    styler = Styler(cells, cell_ids=False)
    styler.format(str, escape=None)  # the cells are escaped HTML already; whatever styler.format.escape says
    # relabel_index formats each label with str.format: braces (a BC GUID "{...}" as a header) are doubled
    styler.relabel_index([x.replace("{", "{{").replace("}", "}}") for x in headers], axis="columns")
    styler.hide(axis="index")
    styler.set_table_styles([
        {"selector": "", "props": "border-collapse: collapse; table-layout: auto; width: auto; margin-left: 0;"},
        {"selector": "th, td", "props": "text-align: left; vertical-align: top; padding: 0.25em 0.6em;"},
        {"selector": "th", "props": "font-weight: bold; white-space: normal; overflow-wrap: break-word;"},
        {"selector": "td", "props": "font-variant-numeric: tabular-nums;"},
        {"selector": ".sa-cell", "props": f"white-space: pre-wrap; overflow-wrap: break-word;{width}"},
        {"selector": "caption", "props": "caption-side: bottom; text-align: left; font-size: smaller; opacity: 0.8;"},
    ])
    if styles:
        styler.set_table_styles(styles, overwrite=False)
    if total > len(shown):
        styler.set_caption(f"First {len(shown):,} of {total:,} rows")
    elif total == 0:
        styler.set_caption("No rows")
    return styler
