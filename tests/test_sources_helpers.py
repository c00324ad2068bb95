"""Helpers for the source tests: writing xlsx/CSV exports the way BC (or a user re-saving them) would."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path

from syncanalysis import Workspace
from syncanalysis.schema import TABLES
from syncanalysis.sources import captions as cap


def write_xlsx(path: Path, header: Sequence[object], rows: Sequence[Sequence[object]], *, sheet: str = "Sheet1",
               above: Sequence[Sequence[object]] = ()) -> Path:
    """Write one sheet: optional rows above the header, the header, then the rows (typed cells)."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_urls": False,
                                         "strings_to_formulas": False})
    _sheet(wb, sheet, header, rows, above)
    wb.close()
    return path


def _sheet(wb, name, header, rows, above=()):
    ws = wb.add_worksheet(name[:31])
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    r = 0
    for line in above:
        ws.write_row(r, 0, list(line))
        r += 1
    ws.write_row(r, 0, list(header))
    for row in rows:
        r += 1
        for c, v in enumerate(row):
            if v is None:
                continue
            if isinstance(v, dt.datetime):
                ws.write_datetime(r, c, v, date_fmt)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                ws.write_number(r, c, v)
            else:
                ws.write_string(r, c, str(v))


def write_config_package(path: Path, sheets: Sequence[tuple[int, str, Sequence[str], Sequence[Sequence[object]]]],
                         package: str = "SYNC") -> Path:
    """A configuration-package workbook: per table, A1 package code, B1 table caption, C1 table id, row 3 header."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_urls": False,
                                         "strings_to_formulas": False})
    for table_id, caption, header, rows in sheets:
        _sheet(wb, caption.replace("/", ""), header, rows, above=[[package, caption, str(table_id)], []])
    wb.close()
    return path


def caption(key: tuple[str, str], lang: str) -> str:
    """The first caption of a bc-captions.csv row in ``lang``."""
    return cap.captions(key)[lang][0]


def snapshot(ws: Workspace) -> dict[str, int]:
    """Row counts of every table (to check a failed load changed nothing)."""
    return {t: ws.count(t) for t in TABLES}


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
