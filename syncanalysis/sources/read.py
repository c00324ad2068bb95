"""Stage 1 of a load: read a file's cells as text into DuckDB, one :class:`Part` per CSV or sheet.

CSV (optionally ``.gz``) goes through DuckDB's ``read_csv`` with every column as VARCHAR; a workbook
(xlsx, xls) through fastexcel, every cell as text, handed to DuckDB as Arrow and copied once. The
header row is the first of the top rows that names the most known columns (configuration-package
sheets have the package code, table caption and table id in row 1 and the header in row 3).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import json
import re
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import fastexcel
import pandas as pd

from ..sql import ident, lit, temp_name
from . import captions as cap
from .errors import UnreadableFileError

HEADER_SCAN = 25  # rows searched for the header
SAMPLE_ROWS = 200  # data rows used for column signatures
_names = itertools.count()


@dataclass
class Part:
    """One table of cells from a file (a CSV, or one sheet): header, where it is, and the raw cells in DuckDB.

    ``view`` is a temp view with ``_row`` (the row number in the file/sheet) and VARCHAR columns ``c0..``.
    """

    path: Path | str  # a file, or the URL of an OData feed
    sheet: str | None
    headers: list[str]
    header_row: int
    view: str
    sample: list[list[str]]
    rows: int = 0
    package: tuple[str, str, str] | None = None  # configuration package: code, table caption, table id
    temp: list[str] = field(default_factory=list)

    def where(self, **kw: Any) -> dict[str, Any]:
        """Where the part is for error messages: its ``path`` and ``sheet``, plus ``kw``."""
        return {"path": self.path, "sheet": self.sheet, **kw}


class Temp:
    """Temporary DuckDB objects and files of one load, removed at the end whatever happens."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.objects, self.dir = con, [], None

    def name(self, prefix: str) -> str:
        """A new temp object name ``_sa_<prefix>_<n>`` (:func:`syncanalysis.sql.temp_name`; nothing is created)."""
        return temp_name(f"sa_{prefix}")

    def table(self, prefix: str, sql: str) -> str:
        """Create a temp table of ``sql``'s rows, dropped at the end; returns its name."""
        n = self.name(prefix)
        self.con.execute(f"CREATE TEMP TABLE {n} AS {sql}").fetchall()
        self.objects.append(("TABLE", n))
        return n

    def frame(self, frame: pd.DataFrame, into: str | None = None) -> str:
        """A DataFrame's rows into a new temp table (or appended to table ``into``); returns the table."""
        reg = self.name("df")
        self.con.execute("SELECT 1").fetchall()  # register() needs no half-read result on the connection
        self.con.register(reg, frame)
        try:
            if into is None:
                return self.table("raw", f"SELECT * FROM {reg}")
            self.con.execute(f"INSERT INTO {into} SELECT * FROM {reg}").fetchall()
            return into
        finally:
            self.con.unregister(reg)

    def drop(self, table: str | None) -> None:
        """Drop temp table ``table`` of this load now (nothing for ``None``)."""
        if table is not None:
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
            self.objects.remove(("TABLE", table))

    def view(self, prefix: str, sql: str) -> str:
        """Create a temp view of ``sql``, dropped at the end; returns its name."""
        n = self.name(prefix)
        self.con.execute(f"CREATE TEMP VIEW {n} AS {sql}").fetchall()
        self.objects.append(("VIEW", n))
        return n

    def file(self, suffix: str) -> Path:
        """A new path ending ``suffix`` in the load's temporary folder (created on first use, removed at the end)."""
        if self.dir is None:
            self.dir = tempfile.TemporaryDirectory(prefix="syncanalysis-load-")
        return Path(self.dir.name) / f"{next(_names)}{suffix}"

    def close(self) -> None:
        """Drop every temp table and view (newest first) and remove the temporary folder."""
        for kind, n in reversed(self.objects):
            try:
                self.con.execute(f"DROP {kind} IF EXISTS {n}")
            except duckdb.Error:  # pragma: no cover - connection already closed
                pass
        self.objects.clear()
        if self.dir is not None:
            self.dir.cleanup()
            self.dir = None


def _all_names() -> set[str]:
    return {n for lay in cap.LAYOUTS.values() for c in lay.columns for n in c.names()}


def _find_header(rows: Sequence[Sequence[str]]) -> int | None:
    """Index of the header among the first rows: the one naming the most known columns (earliest wins)."""
    names = _all_names()
    best, best_score = None, 0
    for i, row in enumerate(rows[:HEADER_SCAN]):
        score = sum(1 for v in row if v and cap.normalize(v) in names)
        if score > best_score:
            best, best_score = i, score
    if best is not None and best_score >= 2:
        return best
    for i, row in enumerate(rows[:HEADER_SCAN]):  # unknown captions: the first row with several filled cells
        if sum(1 for v in row if str(v).strip()) >= 2:
            return i
    return None


class Hasher(threading.Thread):
    """sha256 of a file, read in chunks on a thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.digest, self.error = path, None, None
        self.nul: int | None = None  # offset of the first NUL byte (binary data, unless a workbook or UTF-16)
        self.text = False  # set once the file is known to be a UTF-8/8-bit text: a NUL in it is refused

    def run(self) -> None:
        """Hash the file (on the thread), noting its first NUL byte; an error is kept for :meth:`result`."""
        try:
            h = hashlib.sha256()
            offset = 0
            with open(self.path, "rb") as fh:
                while chunk := fh.read(1 << 23):
                    h.update(chunk)
                    if self.nul is None and (i := chunk.find(b"\x00")) >= 0:
                        self.nul = offset + i
                    offset += len(chunk)
            self.digest = h.hexdigest()
        except OSError as exc:  # pragma: no cover - the file vanished while loading
            self.error = exc

    def result(self) -> str:
        """Wait for the hash and return its hex digest.

        Raises :class:`UnreadableFileError` if reading failed, or for a NUL byte in a text file (the first
        megabyte's check sees only the start of the file).
        """
        self.join()
        if self.error is not None:  # pragma: no cover
            raise UnreadableFileError(f"cannot read the file ({self.error})", path=self.path)
        if self.text and self.nul is not None:
            row, left = 1, self.nul
            with open(self.path, "rb") as fh:  # the line of the NUL, counted in chunks (the file may be big)
                while left > 0 and (chunk := fh.read(min(left, 1 << 23))):
                    row += chunk.count(b"\n")
                    left -= len(chunk)
            raise UnreadableFileError(f"the file has a NUL byte (binary data) at byte {self.nul:,}", path=self.path,
                                      row=row, hint="This is not a clean text export: export the file again")
        return self.digest or ""


def sniff_bytes(path: Path, data: bytes) -> str:
    """What a file is from its first bytes: ``workbook`` (xlsx/xls), ``gzip`` or ``text``."""
    if not data[:65536].strip():
        raise UnreadableFileError("the file is empty", path=path, hint="Export the page or table again")
    if data[:4] == b"PK\x03\x04" or data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "workbook"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    return "text"


# a UTF-8 multi-byte character (é = C3 A9): in a Windows-1252 file these pairs are themselves garbled text
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _decode_sample(path: Path, raw: bytes, complete: bool) -> tuple[str, str]:
    """Decode the start of a text file: ``(text, encoding)``; refuses binary data."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        enc = "utf-16"
    else:
        enc = "utf-8-sig"
        try:
            raw.decode(enc)
        except UnicodeDecodeError as exc:
            if complete or exc.start < len(raw) - 4:
                if _UTF8_SEQUENCE.search(raw):  # UTF-8 text with a byte that is not: mixed, not cp1252
                    row = raw.count(b"\n", 0, exc.start) + 1
                    raise UnreadableFileError(
                        f"the file is UTF-8 but has a byte that is not (0x{raw[exc.start]:02X} at byte {exc.start:,}); "
                        "reading it as Windows-1252 would garble every accented letter", path=path, row=row,
                        hint="Correct that character (or save the file again as UTF-8) and load again") from None
                enc = "cp1252"
    text = raw.decode(enc, errors="replace")
    bad = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\t\r\n")
    if "\x00" in text[:65536] or bad > max(8, len(text[:65536]) // 100):
        raise UnreadableFileError("this is not a text export (binary data)", path=path,
                                  hint="Load the .xlsx or .csv file exported from Business Central")
    return text, enc


csv.field_size_limit(2 << 20)  # a field as long as DuckDB's longest line (a call stack can exceed csv's 128 KB)


def _delimiter(text: str, path: Path) -> str:

    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    best, best_n = ",", 0
    widths: dict[str, list[int]] = {}
    for d in (",", ";", "\t", "|"):
        counts = [len(r) for r in csv.reader(lines[:20], delimiter=d)]
        if not counts:
            continue
        widths[d] = counts
        n = max(set(counts), key=counts.count)  # the usual field count
        if n > best_n:
            best, best_n = d, n
    # a header with one separator over rows with another: the rows would be one field each
    head = max(widths, key=lambda d: widths[d][0]) if widths else best
    if len(lines) > 2 and head != best and widths[head][0] > 1 and widths[best][0] == 1 \
            and all(n == 1 for n in widths[head][1:]):
        raise UnreadableFileError(f"the header row is separated by {head!r} but the rows by {best!r}", path=path,
                                  row=1, hint="Save the file again with one separator throughout")
    return best


@dataclass
class CsvSource:
    """What the first megabyte of a CSV told: delimiter, header, a sample, and what DuckDB should read."""

    path: Path | str  # a file, or the URL of an OData feed
    source: Path  # the file DuckDB reads (a UTF-8 copy when the file is in another encoding)
    compressed: bool
    delim: str
    skip: int  # physical lines before the first data row
    headers: list[str]
    header_row: int  # 0-based index of the header among the parsed rows
    width: int
    sample: list[list[str]]

    def read_csv_sql(self) -> str:
        """The ``read_csv(...)`` call reading every data row as VARCHAR columns ``c0..``.

        DuckDB's default line limit (2 MB) is kept: a bigger buffer slowed every read by a fifth, and
        BC's longest fields hold 2,048 characters (Error Message) or a call stack.
        """
        cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(self.width))
        return (f"read_csv({lit(str(self.source))}, delim={lit(self.delim)}, quote='\"', escape='\"', header=false, "
                f"skip={self.skip}, auto_detect=false, columns={{{cols}}}, "
                f"compression={lit('gzip' if self.compressed else 'none')})")


def sniff_text(path: Path, head: bytes, compressed: bool, temp: Temp) -> CsvSource:
    """The :class:`CsvSource` of a CSV, from its first megabyte; a file not in UTF-8 is copied to a UTF-8 temp file."""
    if compressed:
        try:
            with gzip.open(path, "rb") as gz:
                raw = gz.read(1 << 20)
                complete = len(raw) < 1 << 20
        except (OSError, EOFError) as exc:
            raise UnreadableFileError(f"the gzip file is truncated or corrupt ({exc})", path=path,
                                      hint="Copy or download the file again") from exc
    else:
        raw = head
        complete = len(head) < 1 << 20
    text, enc = _decode_sample(path, raw, complete)
    if not text.strip():
        raise UnreadableFileError("the file is empty", path=path, hint="Export the page or table again")
    delim = _delimiter(text, path)
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    rows: list[list[str]] = []
    line_after: list[int] = []
    try:
        for row in reader:
            rows.append(row)
            line_after.append(reader.line_num)
            if len(rows) >= HEADER_SCAN + SAMPLE_ROWS:
                break
    except csv.Error as exc:
        raise UnreadableFileError(f"the CSV cannot be read ({exc})", path=path, row=reader.line_num) from exc
    if not complete and rows:  # the sample may end in the middle of a record
        rows.pop()
        line_after.pop()
    h = _find_header(rows)
    if h is None:
        raise UnreadableFileError("the file has no header row (no row with column captions)", path=path,
                                  hint="Export the page or table again with its column headers")
    headers = [c.strip() for c in rows[h]]
    while headers and not headers[-1]:
        headers.pop()
    sample = [r for r in rows[h + 1:] if any(x.strip() for x in r)]
    if not sample:
        raise UnreadableFileError("the file has a header but no data rows; there is nothing to load", path=path,
                                  row=h + 1, hint="Check the page's filters and export again")
    if not compressed:
        _check_complete(path, enc)
    # DuckDB reads UTF-8 (with or without BOM); other encodings are transcoded to a temporary file first.
    source = path
    if enc not in ("utf-8-sig",):
        body = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
        source = temp.file(".csv")
        source.write_bytes(body.decode(enc, errors="replace").encode("utf-8"))
        compressed = False
    return CsvSource(path, source, compressed, delim, line_after[h], headers, h, len(rows[h]), sample)


def _check_complete(path: Path, enc: str) -> None:
    """Refuse a CSV that does not end with a line break: it was cut off, maybe inside its last field.

    BC and Excel end every row with one. A cut after a separator even parses (the last field is then
    blank), so a truncated copy would overwrite good values with blanks or a message's first words.
    """
    with open(path, "rb") as fh:
        bom = fh.read(2)
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(size - 4096, 0))  # an even offset: a UTF-16 tail starts on a character
        tail = fh.read()
    if enc == "utf-16":  # the tail has no byte-order mark of its own
        enc = "utf-16-be" if bom == b"\xfe\xff" else "utf-16-le"
    text = tail.decode(enc, errors="replace") if enc.startswith("utf-16") else tail.decode("latin-1")
    if text[-1:] not in ("\n", "\r"):
        last = tail.decode(enc, errors="replace").rsplit("\n", 1)[-1]
        shown = last if len(last) <= 60 else "..." + last[-57:]
        raise UnreadableFileError(
            f"the file ends without a line break, in the middle of a row (it ends with {shown!r}): it was cut off",
            path=path, hint="Copy or export the file again (a complete export ends with a line break)")


def read_text(path: Path, head: bytes, compressed: bool, temp: Temp) -> list[Part]:
    """A CSV (optionally gzip) as one part: every data row read into a temp table of VARCHAR columns."""
    con = temp.con
    src = sniff_text(path, head, compressed, temp)
    table = temp.name("raw")
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {src.read_csv_sql()}")
    except duckdb.Error as exc:
        if "Invalid unicode" not in str(exc) or src.source != path:
            raise _csv_error(path, src.delim, exc) from exc
        # plain ASCII in the first megabyte, then a Windows-1252 letter: read the whole file as Windows-1252
        src.source, src.compressed = _as_windows_1252(path, compressed, temp), False
        try:
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {src.read_csv_sql()}")
        except duckdb.Error as again:
            raise _csv_error(path, src.delim, again) from again
    temp.objects.append(("TABLE", table))
    h, n = src.header_row, src.width
    # _row = the row number in the file (the header's row + data row index), for error messages
    view = temp.view("rawv", f"SELECT rowid + {h + 2} AS _row, * FROM {table}")
    nrows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return [Part(path, None, src.headers + [""] * (n - len(src.headers)), h + 1, view, src.sample[:SAMPLE_ROWS],
                 nrows)]


def _as_windows_1252(path: Path, compressed: bool, temp: Temp) -> Path:
    """A UTF-8 copy of a CSV that is not UTF-8 after its first megabyte: refused if it has UTF-8 text too."""
    raw = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    text, _ = _decode_sample(path, raw, complete=True)  # the whole file decides, as its first megabyte did
    source = temp.file(".csv")
    source.write_bytes(text.encode("utf-8"))
    return source


def _csv_error(path: Path, delim: str, exc: duckdb.Error) -> UnreadableFileError:
    if "gzip" in str(exc).lower():  # a gzip cut off (or damaged) after its first megabyte
        return UnreadableFileError(f"the gzip file is truncated or corrupt ({_first_line(exc)})", path=path,
                                   hint="Copy or download the file again")
    msg = str(exc).split("\n")
    return UnreadableFileError(f"the CSV cannot be read: {' '.join(m.strip() for m in msg[:3] if m.strip())}",
                               path=path, hint="Check that every row has the header's number of fields "
                               f"(separator {delim!r}) and that quotes are closed")


MAX_CELLS = 50_000_000  # a sheet's row x column extent above this is refused (the reader allocates all of it)
_SCAN_BYTES = 8 << 20  # sheets smaller than this are scanned for their real extent; bigger ones trust <dimension>
_REF = re.compile(rb'<(?:\w+:)?c\b[^>]*?\br="([A-Z]{1,3})(\d{1,7})"')  # any attribute order, any prefix
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\b[^>]*?\bref="(?:[A-Z]+\d+:)?([A-Z]{1,3})(\d{1,7})"')


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def check_extent(path: Path) -> None:
    """Refuse an xlsx whose sheet spans more than :data:`MAX_CELLS` cells (one cell at XFD1048576 is enough).

    calamine allocates the rectangle from A1 to the farthest cell, so a 5 KB file can ask for hundreds of
    GB and kill the process (a notebook's kernel). The extent is the sheet's ``<dimension>``, and for a
    sheet under 8 MB of XML (where a scan costs little) the farthest cell reference actually present.
    """
    try:
        with zipfile.ZipFile(path) as z:
            parts = [i for i in z.infolist() if re.fullmatch(r"xl/worksheets/[^/]+\.xml", i.filename)]
            for info in parts:
                with z.open(info) as fh:
                    head = fh.read(4096)
                dim = _DIMENSION.search(head)
                extents = [(_column_number(dim.group(1)), int(dim.group(2)))] if dim else []
                if info.file_size < _SCAN_BYTES or not dim:
                    refs = _REF.findall(z.read(info))
                    if refs:
                        extents.append((max(_column_number(c) for c, _ in refs), max(int(r) for _, r in refs)))
                for cols, rows in extents:
                    if cols * rows > MAX_CELLS:
                        raise UnreadableFileError(
                            f"the sheet {info.filename.rsplit('/', 1)[-1]!r} reaches {rows:,} rows x {cols:,} columns "
                            f"(a cell far out, e.g. at column {cols:,} row {rows:,}); reading it would need more memory "
                            "than the machine has", path=path,
                            hint="Delete the cells outside the exported table (or export the page again) and load again")
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, ValueError, EOFError):
        return  # not a zip (an .xls), or a zip feature Python's zipfile lacks: fastexcel reads or refuses it


def read_workbook(path: Path, temp: Temp) -> list[Part]:
    """Every sheet with a header row as a part: fastexcel reads the cells as text (Arrow), DuckDB takes them."""
    check_extent(path)
    try:
        book = fastexcel.read_excel(str(path))
        names = book.sheet_names
    except (fastexcel.FastExcelError, OSError) as exc:
        raise UnreadableFileError(f"this is not a readable Excel workbook (truncated or corrupt: {_first_line(exc)})",
                                  path=path, hint="Export the file from Business Central again, or open and re-save "
                                  "it in Excel") from exc
    parts = []
    for name in names:
        try:
            # every cell as text, blank leading rows kept: row i of the Arrow table is sheet row i + 1
            sheet = book.load_sheet(name, header_row=None, dtypes="string", skip_rows=0)
            part = _sheet_part(temp, path, name, sheet) if sheet.width and sheet.height else None
        except (fastexcel.FastExcelError, OSError) as exc:
            raise UnreadableFileError(f"the sheet cannot be read (truncated or corrupt: {_first_line(exc)})",
                                      path=path, sheet=name, hint="Export the file again") from exc
        if part is not None:
            parts.append(part)
    if not parts:
        raise UnreadableFileError("the workbook has no sheet with a header row", path=path,
                                  hint="Export the page or table again with its column headers")
    return parts


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n")[0]


def _sheet_part(temp: Temp, path: Path, name: str, sheet: Any) -> Part | None:
    """One sheet's text cells copied once into DuckDB, as a view ``_row, c0..`` of its non-blank data rows.

    Returns None for a sheet without a header row.
    """
    con = temp.con
    cells = temp.name("cells")
    con.execute("SELECT 1").fetchall()  # register() needs no half-read result on the connection
    con.register(cells, sheet)  # Arrow through the C data interface: no copy in Python
    try:
        src = [ident(c.name) for c in sheet.selected_columns]
        grid = temp.table("grid", "SELECT " + ", ".join(f"{c} AS c{i}" for i, c in enumerate(src)) + f" FROM {cells}")
    finally:
        con.unregister(cells)
    top = [["" if v is None else str(v).strip() for v in r]
           for r in con.execute(f"SELECT * FROM {grid} WHERE rowid < {HEADER_SCAN}").fetchall()]
    h = _find_header(top)
    if h is None:
        return None
    package = None  # configuration package: code, table caption and table id in row 1, the header in row 3
    if h >= 2 and len(top[0]) >= 3 and re.fullmatch(r"\d+", top[0][2]):
        package = (top[0][0], top[0][1], top[0][2])
    headers = list(top[h])
    while headers and not headers[-1]:
        headers.pop()
    width = max(len(headers), 1)
    cols = [f"c{i}" for i in range(len(src))][:width]
    cols += [f"'' AS c{i}" for i in range(len(cols), width)]
    blank = " AND ".join(f"coalesce(c{i}, '') = ''" for i in range(min(width, len(src))))
    # a view on the one copy: the header and blank rows are left out where the rows are read
    view = temp.view("rawv", f"SELECT CAST(rowid + 1 AS BIGINT) AS _row, {', '.join(cols)} FROM {grid} "
                             f"WHERE rowid > {h} AND NOT ({blank})")
    sample = con.execute(f"SELECT * EXCLUDE (_row) FROM {view} WHERE _row <= {h + 1 + 10 * SAMPLE_ROWS} "
                         f"ORDER BY _row LIMIT {SAMPLE_ROWS}").fetchall()
    if len(sample) < SAMPLE_ROWS:  # many blank rows at the top
        sample = con.execute(f"SELECT * EXCLUDE (_row) FROM {view} ORDER BY _row LIMIT {SAMPLE_ROWS}").fetchall()
    nrows = con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
    return Part(path, name, headers + [""] * (width - len(headers)), h + 1, view,
                [["" if v is None else v for v in r] for r in sample], nrows, package)


def read_feed(temp: Temp, source: str, pages: Sequence[str], names: Sequence[str]) -> Part:
    """An OData feed's rows as a part: ``pages`` are the JSON texts of each page's ``value`` array.

    Column ``c<i>`` is property ``names[i]`` as text (``true``/``false``, numbers as written);
    ``_row`` numbers the rows of the whole feed from 1, in page order.
    """
    con = temp.con
    docs = temp.frame(pd.DataFrame({"page": range(len(pages)), "doc": list(pages)}))
    cols = ", ".join(f"json_extract_string(r, {lit('$.' + json.dumps(n))}) AS c{i}" for i, n in enumerate(names))
    table = temp.table("feed", f"SELECT CAST(row_number() OVER (ORDER BY page, i) AS BIGINT) AS _row, {cols} FROM "
                               f"(SELECT page, unnest(a) AS r, unnest(range(len(a))) AS i "
                               f"FROM (SELECT page, CAST(doc AS JSON[]) AS a FROM {docs}))")
    sample = con.execute(f"SELECT * EXCLUDE (_row) FROM {table} ORDER BY _row LIMIT {SAMPLE_ROWS}").fetchall()
    nrows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return Part(source, None, list(names), 0, table, [["" if v is None else v for v in r] for r in sample],
                nrows)
