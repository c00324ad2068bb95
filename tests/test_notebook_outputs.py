"""What the project notebooks show, read from their executed outputs (nbmake only checks that they run).

Every table is a :func:`syncanalysis.display.table` (not a raw pandas repr), and no output shows ``NaN``,
``NaT``, ``<NA>``, microseconds or a literal ``\\n``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.notebooks  # `make test-fast` leaves them out

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MISSING = re.compile(r"(?<![\w-])(NaN|NaT|<NA>|&lt;NA&gt;)(?![\w-])")
EMPTY_CELL = {"None", "nan", "NaN", "NaT", "<NA>", "&lt;NA&gt;"}  # what a cell shows for a missing value
MICROSECONDS = re.compile(r"\d\d:\d\d:\d\d\.\d{3,}")
PANDAS_REPR = re.compile(r"\[\d+ rows x \d+ columns\]|dtype: \w+")


def _outputs(path: Path) -> list[tuple[int, str, str]]:
    """(cell number, mime type, text) of every output of the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    shown = []
    for number, cell in enumerate(nb.cells, 1):
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                shown.append((number, "stream", out.text))
            for mime in ("text/html", "text/plain"):
                if mime in out.get("data", {}):
                    shown.append((number, mime, out.data[mime]))
    return shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_tables_read_like_a_report(path: Path) -> None:
    outputs = _outputs(path)
    assert outputs, f"{path.name} showed nothing"
    tables = 0
    for number, mime, text in outputs:
        where = f"{path.name}, cell {number} ({mime})"
        if mime == "text/plain" and text.startswith("<pandas.io.formats.style.Styler"):
            continue  # the plain fallback of a table whose HTML is checked
        visible = re.sub(r"<style.*?</style>", "", text, flags=re.S)
        if mime == "text/html":
            assert 'class="dataframe"' not in text, f"{where}: a raw DataFrame; display it with display.table()"
            tables += text.count("<table")
            body = visible[visible.find("<table"):] if "<table" in visible else visible
            assert "\\n" not in body, f"{where}: a literal \\n in a table"
            cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", body, flags=re.S)]
            shows = sorted(EMPTY_CELL & set(cells))
            assert not shows, f"{where}: cells show {shows}"
        else:
            assert not PANDAS_REPR.search(text), f"{where}: a raw pandas repr"
        found = MISSING.search(re.sub(r"<[^>]+>", " ", visible))
        assert found is None, f"{where}: shows {found.group(0)!r}"
        assert not MICROSECONDS.search(visible), f"{where}: shows microseconds"
    assert tables, f"{path.name}: no table was shown"
