"""Notebook tables (syncanalysis.display.table): render to HTML and check what a reader sees."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from syncanalysis.display import humanise, table

HOSTILE = "<script>alert(1)</script> & <b>bold</b>"


def _body(html: str) -> str:
    """The table's markup without its stylesheet."""
    return html[html.index("<table"):]


def _cells(html: str) -> list[str]:
    """The inner HTML of every data cell, in order (without the block that wraps a text)."""
    cells = re.findall(r"<td[^>]*>(.*?)</td>", _body(html), flags=re.S)
    return [re.sub(r'^<div class="sa-cell">(.*)</div>$', r"\1", c, flags=re.S) for c in cells]


def _text(html: str) -> str:
    """What a reader sees: the table without tags."""
    return re.sub(r"<[^>]+>", " ", _body(html))


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "mapping_name": ["CUSTOMER", "CONTACT", None],
        "errors": [1234.0, np.nan, 5.0],                      # a count that became float because of NaN
        "records": pd.array([12, None, 1_000_000], dtype="Int64"),
        "self_heal_share": [0.493, np.nan, 1.0],
        "ratio_of_things": [0.25, 0.5, 0.75],                 # "ratio" first: not a percentage
        "logged_at": pd.to_datetime(["2024-05-01 10:30:05.123456", None, "2024-05-02 08:00:00"], format="ISO8601"),
        "first_seen": pd.to_datetime(["2024-05-01 10:30:00", "2024-05-03 00:00:00", None]),
        "error_message": ["first line\nsecond line", HOSTILE, pd.NA],
        "table_id": [18, 5200, 112],
        "median_hours": [1.5, np.nan, 12345.678],
    })


def test_no_missing_markers(frame: pd.DataFrame) -> None:
    text = _text(table(frame).to_html())
    for marker in ("nan", "NaN", "NaT", "None", "<NA>", "&lt;NA&gt;"):
        assert marker not in text
    assert "" in _cells(table(frame).to_html())


def test_counts_are_integers_with_thousands_separators(frame: pd.DataFrame) -> None:
    cells = _cells(table(frame).to_html())
    assert "1,234" in cells and "5" in cells and "1,000,000" in cells and "12" in cells
    assert not any(re.fullmatch(r"[\d,]+\.0", c) for c in cells)
    assert "1,234.0" not in _body(table(frame).to_html())
    # identifiers keep their digits together
    assert "5200" in cells and "5,200" not in cells
    # other decimals: two places, thousands separated
    assert "1.50" in cells and "12,345.68" in cells


def test_shares_are_percentages(frame: pd.DataFrame) -> None:
    cells = _cells(table(frame).to_html())
    assert "49.3 %" in cells and "100.0 %" in cells
    assert "0.493" not in _body(table(frame).to_html())
    assert "0.25" in cells  # a name that only starts with a percent word
    assert "25.0 %" in _cells(table(frame, percent=["ratio_of_things"]).to_html())


def test_datetimes_without_microseconds_and_marked_utc(frame: pd.DataFrame) -> None:
    html = table(frame).to_html()
    cells = _cells(html)
    assert "2024-05-01 10:30:05" in cells and "2024-05-02 08:00:00" in cells
    assert ".123456" not in html and ".123" not in _text(html)
    assert "2024-05-01 10:30" in cells and "2024-05-03 00:00" in cells  # no seconds anywhere: to the minute
    assert "Logged at (UTC)" in html and "First seen (UTC)" in html
    aware = pd.DataFrame({"at": pd.to_datetime(["2024-05-01 12:00:00+02:00"])})
    assert "2024-05-01 10:00" in _cells(table(aware).to_html())
    days = pd.DataFrame({"period": pd.to_datetime(["2024-05-01", "2024-05-08"])})
    assert _cells(table(days).to_html()) == ["2024-05-01", "2024-05-08"]


def test_markup_is_escaped(frame: pd.DataFrame) -> None:
    html = table(frame).to_html()
    assert "<script>" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    hostile_header = pd.DataFrame({"<script>x</script>": [1]})
    assert "<script>" not in table(hostile_header).to_html()
    assert "<script>" not in table(frame, labels={"mapping_name": "<script>"}).to_html()


def test_escaping_holds_whatever_the_pandas_option(frame: pd.DataFrame) -> None:
    with pd.option_context("styler.format.escape", "html"):
        html = table(frame).to_html()
    assert "first line<br>second line" in html and "&amp;lt;" not in html and "<script>" not in html


def test_line_breaks_are_html_breaks(frame: pd.DataFrame) -> None:
    frame.loc[2, "error_message"] = "windows\r\nline"
    html = table(frame).to_html()
    assert "first line<br>second line" in html and "windows<br>line" in html
    assert "\\n" not in html and "\\r" not in html
    assert "first line\nsecond" not in html


def test_long_texts_wrap(frame: pd.DataFrame) -> None:
    frame.loc[0, "error_message"] = "word " * 200
    html = table(frame, wrap=60).to_html()
    assert "white-space: pre-wrap" in html and "overflow-wrap: break-word" in html and "max-width: 60ch" in html
    assert "…" not in _text(html) and "..." not in _text(html)
    assert ("word " * 200).strip() in html  # the whole text, not clipped


def test_headers_humanised_unless_labelled(frame: pd.DataFrame) -> None:
    html = table(frame).to_html()
    for header in ("Mapping name", "Errors", "Self heal share", "Error message", "Table ID", "Median hours"):
        assert f">{header}</th>" in html
    assert "mapping_name" not in html
    labelled = table(frame, labels={"mapping_name": "Mapping", "logged_at": "Logged (UTC)"}).to_html()
    assert ">Mapping</th>" in labelled and ">Logged (UTC)</th>" in labelled and "(UTC) (UTC)" not in labelled
    assert humanise("bc_record_id") == "BC record ID" and humanise("CUSTOMER") == "CUSTOMER"
    assert humanise("ToIntegrationTable") == "ToIntegrationTable" and humanise(3) == "3"


def test_empty_frames() -> None:
    for empty in (pd.DataFrame(), pd.DataFrame({"mapping_name": [], "errors": [], "share": []}),
                  pd.DataFrame({"at": pd.Series([], dtype="datetime64[ns]")})):
        html = table(empty).to_html()
        assert "<table" in html and "No rows" in html and "nan" not in _text(html)
    assert ">Mapping name</th>" in table(pd.DataFrame({"mapping_name": []})).to_html()


def test_all_missing_columns() -> None:
    frame = pd.DataFrame({"errors": [np.nan, np.nan], "at": pd.to_datetime([None, None]), "text": [None, None]})
    assert _cells(table(frame).to_html()) == [""] * 6


def test_max_rows_caption() -> None:
    frame = pd.DataFrame({"errors": range(100)})
    html = table(frame, max_rows=10).to_html()
    assert len(_cells(html)) == 10 and "First 10 of 100 rows" in html
    assert len(_cells(table(frame, max_rows=None).to_html())) == 100


def test_index_shown_only_when_meaningful() -> None:
    pivot = pd.DataFrame({"period": pd.to_datetime(["2024-05-06", "2024-05-06", "2024-05-13"]),
                          "key": ["CUSTOMER", "CONTACT", "CUSTOMER"], "errors": [3, 4, 5]}) \
        .pivot_table(index="period", columns="key", values="errors", fill_value=0)
    html = table(pivot).to_html()
    assert ">Period (UTC)</th>" in html and ">CUSTOMER</th>" in html and "2024-05-13" in _cells(html)
    assert not any(c.endswith(".0") for c in _cells(html))
    filtered = pd.DataFrame({"errors": [1, 2, 3]}).iloc[[0, 2]]  # row numbers, not shown
    assert _cells(table(filtered).to_html()) == ["1", "3"]
    counts = pd.Series(["resolved", "resolved", "ongoing"], name="resolution").value_counts()
    html = table(counts).to_html()
    assert ">Resolution</th>" in html and ">Count</th>" in html and "2" in _cells(html)


def test_mixed_object_columns() -> None:
    frame = pd.DataFrame({
        "field": ["failed_on", "errors", "state", "differs", "amount", "job_id", "examples"],
        "value": [pd.Timestamp("2024-05-01 10:30:00.5"), 3.0, None, True, Decimal("12.50"),
                  uuid.UUID("4ecc4022-10fa-4920-a77a-0dcc8aacd07f"), ["a <b>", "c"]],
    })
    cells = _cells(table(frame).to_html())
    assert "2024-05-01 10:30:00 UTC" in cells and "3" in cells and "yes" in cells and "12.50" in cells
    assert "4ecc4022-10fa-4920-a77a-0dcc8aacd07f" in "".join(cells) and "a &lt;b&gt;<br>c" in "".join(cells)
    assert "None" not in "".join(cells)
    objects = pd.DataFrame({"errors": pd.Series([1.0, None, 3.0], dtype=object),
                            "at": pd.Series([pd.Timestamp("2024-05-01 10:30:00.25"), None, None], dtype=object)})
    cells = _cells(table(objects).to_html())
    assert cells == ["1", "2024-05-01 10:30:00", "", "", "3", ""]


def test_repr_html_renders(frame: pd.DataFrame) -> None:
    assert table(frame)._repr_html_().count("<table") == 1


def test_headers_with_braces_are_shown_as_they_are() -> None:
    frame = pd.DataFrame({"Dataverse Contact: {76477D41-B367}": [1], "{}": [2], "x{0}y": [3]})
    html = table(frame).to_html()
    assert ">Dataverse Contact: {76477D41-B367}</th>" in html and ">{}</th>" in html and ">x{0}y</th>" in html
