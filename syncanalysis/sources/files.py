"""Load BC export files (page and table exports, CSV and xlsx, in English, French or German) into a workspace.

One file is one load: it is read, recognised and parsed into temporary tables first (nothing in the
workspace changes while that happens), then merged and linked in one transaction
(:meth:`Workspace.loading`), so a file that fails leaves the workspace file exactly as it was.

* CSV (optionally ``.gz``) goes through DuckDB's ``read_csv`` with every column as VARCHAR; a workbook
  (xlsx, xls) through fastexcel, every cell as text, handed to DuckDB as Arrow. Either way the cells
  land as text in DuckDB and are parsed there (see :mod:`.parse`).
* A big first load of a table (or page 5339) export goes in one pass: the first rows decide the layout
  and date forms, and one INSERT parses, checks and inserts every row; anything those rows did not
  foresee rolls the attempt back and the careful path explains it.
* Page exports show the BC user's local time: ``timezone`` converts it to UTC (table exports are UTC).
* The header row is the first of the top rows that names the most known columns (configuration-package
  sheets have the package code, table caption and table id in row 1 and the header in row 3).
* Columns are matched by caption (English, French, German), by field name, and where neither is known
  by their values' signature in page order (spec §8); the load report says which column was matched how.

Use :func:`load_files` (one report per file), :func:`format_report` to show the reports and
:func:`load_sample_data` for the repository's ``sample_data/``.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import fastexcel
import numpy as np
import pandas as pd

from ..schema import FIDELITY_PAGE, FIDELITY_TABLE, TABLES
from ..workspace import LoadReport, UpsertResult, Workspace
from . import captions as cap
from . import link
from .errors import (
    DuplicateRowError,
    EnvironmentConflictError,
    SourceError,
    UnreadableFileError,
    UnrecognisedFileError,
    ValueParseError,
)
from .parse import (
    DATE_FORMS,
    DateProfile,
    TableNames,
    check_timezone,
    datetime_sql,
    duration_sql,
    folded_sql,
    guid_sql,
    ident,
    int_sql,
    lit,
    looks_like,
    map_values,
    mapped_sql,
    parse_direction,
    profile_datetimes,
    text_sql,
    unforeseen_sql,
)

DEFAULT_ENVIRONMENT = "default"
DEFAULT_COMPANY = "default"
_HEADER_SCAN = 25  # rows searched for the header
_SAMPLE_ROWS = 200  # data rows used for column signatures
_PROFILE_ROWS = 20_000  # rows that decide a big part's date forms first (checked on every row after)
_MAX_CATEGORIES = 1000  # distinct values an option / Yes-No column may have
_names = itertools.count()


# ------------------------------------------------------------------------------------------------
# Reports
@dataclass
class FileLoadReport(LoadReport):
    """What loading one file did: the workspace's per-table counts plus what the reader found.

    ``parts`` has one entry per sheet (or the CSV): the layout recognised, the header row, the language,
    how each column was matched and how its dates were read.
    """

    path: str = ""
    environment: str = ""
    company: str = ""
    environment_from: str = ""
    content_hash: str = ""
    parts: list[dict[str, Any]] = field(default_factory=list)
    rows_rejected: int = 0
    links: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    one_pass: bool = False  # read, checked and inserted by one statement (a big first load)
    timezone: str | None = None  # the zone its page date/times were converted from (None: taken as UTC)

    @property
    def details(self) -> dict[str, Any]:
        """The report as stored in ``loads.details``."""
        return {"path": self.path, "kind": self.kind, "environment": self.environment, "company": self.company,
                "environment_from": self.environment_from, "parts": self.parts, "rows_rejected": self.rows_rejected,
                "links": self.links, "warnings": self.warnings, "one_pass": self.one_pass,
                "timezone": self.timezone or "UTC",
                "tables": {t: vars(r) for t, r in self.tables.items()}}


_FROM = {"argument": "as given", "file": "from the file's column", "default": "none given, so 'default'"}


def format_report(reports: FileLoadReport | Iterable[FileLoadReport]) -> str:
    """Render load reports as text.

    Parameters
    ----------
    reports
        One report or several (as :func:`load_files` returns them).

    Returns
    -------
    str
        Per file: the kind recognised, environment and company (and where they came from), the load id or
        "nothing new", per sheet the header row, language and how each column was matched (caption in which
        language, field name, column signature) and how dates were read, then rows read / inserted /
        updated / deleted per table, rows rejected, links inferred and warnings.
    """
    if isinstance(reports, FileLoadReport):
        reports = [reports]
    out: list[str] = []
    for r in reports:
        state = f"load #{r.load_id}" if r.load_id else "nothing new (no load recorded)"
        whence = " / ".join(dict.fromkeys(_FROM.get(w, w) for w in r.environment_from.split("/")))
        out.append(f"{r.path}: {r.kind}, environment {r.environment!r}, company {r.company!r} ({whence}) - {state}, "
                   f"{r.seconds:.1f} s{' (one pass)' if r.one_pass else ''}")
        for p in r.parts:
            where = f"sheet {p['sheet']!r}, " if p.get("sheet") else ""
            lang = {"en": "English", "fr": "French", "de": "German"}.get(p.get("language") or "", "language unknown")
            out.append(f"  {where}{p['kind']} ({p['title']}), header in row {p['header_row']}, {lang}, "
                       f"{p['rows']:,} rows read")
            by_how: dict[str, list[str]] = {}
            for c in p["columns"]:
                by_how.setdefault(c["matched_by"], []).append(
                    f"{c['header']!r}" + (f" -> {c['column']}" if c["column"] else ""))
            for how, cols in by_how.items():
                out.append(f"    {how}: {', '.join(cols)}")
            local = f"; local time in {r.timezone}, stored as UTC" \
                if r.timezone not in (None, "UTC") and p["kind"].startswith("page") else ""
            for col, desc in p.get("dates", {}).items():
                out.append(f"    dates in {col!r}: {desc}{local}")
        if r.tables:
            out.append("  " + "; ".join(f"{t}: {u.read:,} read, {u.inserted:,} inserted, {u.updated:,} updated"
                                        + (f", {u.deleted:,} deleted" if u.deleted else "")
                                        for t, u in r.tables.items()))
        if r.rows_rejected:
            out.append(f"  {r.rows_rejected:,} rows rejected")
        if r.links:
            out.append("  links inferred: " + ", ".join(f"{k} {v:,}" for k, v in r.links.items()))
        for w in r.warnings:
            out.append(f"  warning: {w}")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# Reading
@dataclass
class Part:
    """One table of cells from a file (a CSV, or one sheet): header, where it is, and the raw cells in DuckDB.

    ``view`` is a temp view with ``_row`` (the row number in the file/sheet) and VARCHAR columns ``c0..``.
    """

    path: Path
    sheet: str | None
    headers: list[str]
    header_row: int
    view: str
    sample: list[list[str]]
    rows: int = 0
    package: tuple[str, str, str] | None = None  # configuration package: code, table caption, table id
    temp: list[str] = field(default_factory=list)
    _kinds: list[set[str]] | None = None

    def value_kinds(self) -> list[set[str]]:
        """What the sampled values of each column look like (for column signatures)."""
        if self._kinds is None:
            self._kinds = _value_kinds(self.sample, len(self.headers))
        return self._kinds

    def where(self, **kw: Any) -> dict[str, Any]:
        return {"path": self.path, "sheet": self.sheet, **kw}


class _Temp:
    """Temporary DuckDB objects and files of one load, removed at the end whatever happens."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.objects, self.dir = con, [], None

    def name(self, prefix: str) -> str:
        n = f"_sa_{prefix}_{os.getpid()}_{next(_names)}"
        return n

    def table(self, prefix: str, sql: str) -> str:
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
        if table is not None:
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
            self.objects.remove(("TABLE", table))

    def view(self, prefix: str, sql: str) -> str:
        n = self.name(prefix)
        self.con.execute(f"CREATE TEMP VIEW {n} AS {sql}").fetchall()
        self.objects.append(("VIEW", n))
        return n

    def file(self, suffix: str) -> Path:
        if self.dir is None:
            self.dir = tempfile.TemporaryDirectory(prefix="syncanalysis-load-")
        return Path(self.dir.name) / f"{next(_names)}{suffix}"

    def close(self) -> None:
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
    for i, row in enumerate(rows[:_HEADER_SCAN]):
        score = sum(1 for v in row if v and cap.normalize(v) in names)
        if score > best_score:
            best, best_score = i, score
    if best is not None and best_score >= 2:
        return best
    for i, row in enumerate(rows[:_HEADER_SCAN]):  # unknown captions: the first row with several filled cells
        if sum(1 for v in row if str(v).strip()) >= 2:
            return i
    return None


class _Hasher(threading.Thread):
    """sha256 of a file, read in chunks on a thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.digest, self.error = path, None, None

    def run(self) -> None:
        try:
            h = hashlib.sha256()
            with open(self.path, "rb") as fh:
                while chunk := fh.read(1 << 23):
                    h.update(chunk)
            self.digest = h.hexdigest()
        except OSError as exc:  # pragma: no cover - the file vanished while loading
            self.error = exc

    def result(self) -> str:
        self.join()
        if self.error is not None:  # pragma: no cover
            raise UnreadableFileError(f"cannot read the file ({self.error})", path=self.path)
        return self.digest or ""


def _sniff_bytes(path: Path, data: bytes) -> str:
    """What a file is from its first bytes: ``workbook`` (xlsx/xls), ``gzip`` or ``text``."""
    if not data[:65536].strip():
        raise UnreadableFileError("the file is empty", path=path, hint="Export the page or table again")
    if data[:4] == b"PK\x03\x04" or data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "workbook"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    return "text"


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
                enc = "cp1252"
    text = raw.decode(enc, errors="replace")
    bad = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\t\r\n")
    if "\x00" in text[:65536] or bad > max(8, len(text[:65536]) // 100):
        raise UnreadableFileError("this is not a text export (binary data)", path=path,
                                  hint="Load the .xlsx or .csv file exported from Business Central")
    return text, enc


def _delimiter(text: str) -> str:

    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    best, best_n = ",", 0
    for d in (",", ";", "\t", "|"):
        counts = [len(r) for r in csv.reader(lines[:20], delimiter=d)]
        if not counts:
            continue
        n = max(set(counts), key=counts.count)  # the usual field count
        if n > best_n:
            best, best_n = d, n
    return best


@dataclass
class _CsvSource:
    """What the first megabyte of a CSV told: delimiter, header, a sample, and what DuckDB should read."""

    path: Path
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


def _sniff_text(path: Path, head: bytes, compressed: bool, temp: _Temp) -> _CsvSource:

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
    delim = _delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    rows: list[list[str]] = []
    line_after: list[int] = []
    try:
        for row in reader:
            rows.append(row)
            line_after.append(reader.line_num)
            if len(rows) >= _HEADER_SCAN + _SAMPLE_ROWS:
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
    # DuckDB reads UTF-8 (with or without BOM); other encodings are transcoded to a temporary file first.
    source = path
    if enc not in ("utf-8-sig",):
        body = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
        source = temp.file(".csv")
        source.write_bytes(body.decode(enc, errors="replace").encode("utf-8"))
        compressed = False
    return _CsvSource(path, source, compressed, delim, line_after[h], headers, h, len(rows[h]), sample)


def _read_text(path: Path, head: bytes, compressed: bool, temp: _Temp) -> list[Part]:
    con = temp.con
    src = _sniff_text(path, head, compressed, temp)
    table = temp.name("raw")
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {src.read_csv_sql()}")
    except duckdb.Error as exc:
        raise _csv_error(path, src.delim, exc) from exc
    temp.objects.append(("TABLE", table))
    h, n = src.header_row, src.width
    # _row = the row number in the file (the header's row + data row index), for error messages
    view = temp.view("rawv", f"SELECT rowid + {h + 2} AS _row, * FROM {table}")
    nrows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return [Part(path, None, src.headers + [""] * (n - len(src.headers)), h + 1, view, src.sample[:_SAMPLE_ROWS],
                 nrows)]


def _csv_error(path: Path, delim: str, exc: duckdb.Error) -> UnreadableFileError:
    msg = str(exc).split("\n")
    return UnreadableFileError(f"the CSV cannot be read: {' '.join(m.strip() for m in msg[:3] if m.strip())}",
                               path=path, hint="Check that every row has the header's number of fields "
                               f"(separator {delim!r}) and that quotes are closed")


def _read_workbook(path: Path, temp: _Temp) -> list[Part]:
    """Every sheet with a header row as a part: fastexcel reads the cells as text (Arrow), DuckDB takes them."""
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


def _sheet_part(temp: _Temp, path: Path, name: str, sheet: Any) -> Part | None:
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
           for r in con.execute(f"SELECT * FROM {grid} WHERE rowid < {_HEADER_SCAN}").fetchall()]
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
    sample = con.execute(f"SELECT * EXCLUDE (_row) FROM {view} WHERE _row <= {h + 1 + 10 * _SAMPLE_ROWS} "
                         f"ORDER BY _row LIMIT {_SAMPLE_ROWS}").fetchall()
    if len(sample) < _SAMPLE_ROWS:  # many blank rows at the top
        sample = con.execute(f"SELECT * EXCLUDE (_row) FROM {view} ORDER BY _row LIMIT {_SAMPLE_ROWS}").fetchall()
    nrows = con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
    return Part(path, name, headers + [""] * (width - len(headers)), h + 1, view,
                [["" if v is None else v for v in r] for r in sample], nrows, package)


# ------------------------------------------------------------------------------------------------
# Recognition
@dataclass
class ColumnMatch:
    index: int
    header: str
    column: cap.Column | None
    how: str  # "caption (en)", "field name", "column signature", "ignored", "unknown"


@dataclass
class Match:
    layout: cap.Layout
    columns: list[ColumnMatch]
    language: str | None
    score: float
    missing: list[cap.Column]

    @property
    def ok(self) -> bool:
        return not self.missing

    def target(self, name: str) -> ColumnMatch | None:
        return next((c for c in self.columns if c.column is not None and c.column.target == name), None)


def _value_kinds(sample: Sequence[Sequence[str]], width: int) -> list[set[str]]:
    kinds: list[set[str]] = [set() for _ in range(width)]
    for row in sample:  # a bounded sample (at most _SAMPLE_ROWS rows), for the column signatures
        for i in range(min(width, len(row))):
            kinds[i].add(looks_like(str(row[i])))
    return kinds


def _accepts(column: cap.Column, kinds: set[str], values: list[str]) -> bool:
    allowed = cap.ACCEPTS.get(column.kind)
    if allowed is not None:
        return bool(kinds) and kinds <= allowed
    if column.kind == cap.DIRECTION:
        return all(not v.strip() or v.strip().endswith(".") for v in values) and "text" in kinds
    # text-like (text, options, table captions): a column with text in it (or nothing at all)
    return "text" in kinds or kinds <= {"empty"}


def _match(layout: cap.Layout, part: Part) -> Match:
    headers = part.headers
    lookups = [(c, _names_with_langs(c)) for c in layout.columns]
    used: set[int] = set()
    matches: list[ColumnMatch] = []
    for i, h in enumerate(headers):
        key = cap.normalize(h)
        found = None
        if key:
            for j, (c, names) in enumerate(lookups):
                if j not in used and key in names:
                    found = (j, c, names[key])
                    break
        if found:
            used.add(found[0])
            matches.append(ColumnMatch(i, h, found[1], found[2]))
        else:
            matches.append(ColumnMatch(i, h, None, "unknown"))
    # language: the one most matched captions are in
    votes = {lang: sum(1 for m in matches if isinstance(m.how, set) and lang in m.how) for lang in cap.LANGS}
    language = max(votes, key=lambda k: (votes[k], -cap.LANGS.index(k))) if any(votes.values()) else None
    for m in matches:
        if isinstance(m.how, set):
            langs = sorted(m.how - {"field"}, key=cap.LANGS.index)
            m.how = (f"caption ({language})" if language in m.how else f"caption ({langs[0]})") if langs \
                else "field name"
    # column signature: place unknown headers between matched ones, in page order (spec §8)
    kinds = part.value_kinds()
    values = [[str(r[i]) if i < len(r) else "" for r in part.sample] for i in range(len(headers))]
    pos = {id(c): j for j, (c, _) in enumerate(lookups)}
    anchors = [(m.index, pos[id(m.column)]) for m in matches if m.column is not None]
    if all(a[1] < b[1] for a, b in zip(anchors, anchors[1:])):
        bounds = [(-1, -1)] + anchors + [(len(headers), len(lookups))]
        for (fa, la), (fb, lb) in zip(bounds, bounds[1:]):
            files = [i for i in range(fa + 1, fb)
                     if matches[i].header.strip() or kinds[i] - {"empty"}]
            for i in range(fa + 1, fb):
                if i not in files:
                    matches[i].how = "ignored (empty)"
            slots = [j for j in range(la + 1, lb) if j not in used]
            for i, j in _align(files, slots, lambda i, j: _accepts(lookups[j][0], kinds[i], values[i]),
                               lambda j: 1 if lookups[j][0].hidden else 2):
                matches[i].column, matches[i].how = lookups[j][0], "column signature"
                used.add(j)
    for m in matches:
        if m.column is not None and m.column.kind == cap.IGNORE:
            m.how = f"{m.how}, not loaded"
    missing = [c for j, (c, _) in enumerate(lookups) if c.required and j not in used]
    by_caption = sum(1 for m in matches if m.column is not None and m.how.startswith(("caption", "field")))
    by_sig = sum(1 for m in matches if m.how == "column signature")
    unknown = sum(1 for m in matches if m.column is None and m.header.strip())
    score = by_caption + 0.5 * by_sig - 0.25 * unknown
    return Match(layout, matches, language, score, missing)


def _align(files: list[int], slots: list[int], fits, weight) -> list[tuple[int, int]]:
    """Order-preserving assignment of file columns to layout columns maximizing the matched weight.

    Hidden page columns weigh less, so six counters go to Inserted..Skipped rather than Uncoupled/Coupled.
    """
    n, m = len(files), len(slots)
    if not n or not m:
        return []
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):  # a small table: a page has at most a few dozen columns
        for j in range(1, m + 1):
            best[i][j] = max(best[i - 1][j], best[i][j - 1])
            if fits(files[i - 1], slots[j - 1]):
                best[i][j] = max(best[i][j], best[i - 1][j - 1] + weight(slots[j - 1]))
    out, i, j = [], n, m
    while i and j:
        if fits(files[i - 1], slots[j - 1]) and best[i][j] == best[i - 1][j - 1] + weight(slots[j - 1]):
            out.append((files[i - 1], slots[j - 1]))
            i, j = i - 1, j - 1
        elif best[i][j] == best[i - 1][j]:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def _names_with_langs(column: cap.Column) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key in column.keys:
        for lang in cap.LANGS:
            for c in cap.captions(key)[lang]:
                out.setdefault(cap.normalize(c), set()).add(lang)
    for key in column.keys:
        out.setdefault(cap.normalize(cap.field_name(key)), set()).add("field")
    out.setdefault(cap.normalize(column.target.strip("_")), set()).add("field")
    return out


def recognise(part: Part, kind: str = "auto") -> Match:
    """Recognise which export a part is; raises :class:`UnrecognisedFileError` naming what is missing."""
    if kind != "auto" and kind not in cap.LAYOUTS:
        raise UnrecognisedFileError(f"unknown kind {kind!r}", path=part.path,
                                    hint=f"Use one of {', '.join(cap.KINDS)}")
    layouts = [cap.LAYOUTS[kind]] if kind != "auto" else list(cap.LAYOUTS.values())
    if part.package and kind == "auto":  # a configuration-package sheet names its table in C1
        wanted = f"table-{part.package[2]}"
        layouts = [cap.LAYOUTS[wanted]] if wanted in cap.LAYOUTS else layouts
    matches = sorted((_match(lay, part) for lay in layouts), key=lambda m: (m.ok, m.score), reverse=True)
    best = matches[0]
    strong = sum(1 for m in best.columns if m.column is not None and not m.how.startswith("column signature"))
    typed = sum(1 for m in best.columns if m.how == "column signature" and m.column is not None
                and m.column.kind in (cap.DATETIME, cap.INT, cap.DURATION, cap.GUID))
    if best.ok and (strong >= 2 or typed >= 3):
        return best
    shown = ", ".join(repr(h) for h in part.headers if h.strip()) or "(no captions)"
    if best.missing and (kind != "auto" or strong >= 2):
        need = ", ".join(repr(c.keys and cap.captions(c.keys[0])["en"][0] or c.target) for c in best.missing)
        raise UnrecognisedFileError(
            f"this looks like a {best.layout.title} export ({best.layout.kind}) but lacks the column(s) {need}; "
            f"its columns are {shown}", path=part.path, sheet=part.sheet, row=part.header_row,
            hint="Show those columns on the page (Personalize) and export again, or pass the right --kind")
    raise UnrecognisedFileError(
        f"this is not an export of a known page or table (its columns are {shown})", path=part.path,
        sheet=part.sheet, row=part.header_row,
        hint="Load exports of Integration Synchronization Jobs/Errors, Coupled Data Synchronization Errors, "
             "Integration Table Mappings, or table exports of tables 5331/5335/5338/5339")


# ------------------------------------------------------------------------------------------------
# Parsing
@dataclass
class Parsed:
    part: Part
    match: Match
    table: str  # temp table: _row + canonical and helper columns
    rows: int
    rejected: int = 0
    dates: dict[str, DateProfile] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    environment: str | None = None
    company: str | None = None
    directions: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    joined: bool = False  # its canonical rows join workspace tables (set by _canonical_sql)
    # (flag, typed column, raw column) of "a non-blank value that did not parse": a one-pass load counts
    # these after its INSERT instead of testing each row inside it (which computes every value twice)
    unparsed: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def layout(self) -> cap.Layout:
        return self.match.layout

    def has(self, target: str) -> bool:
        return self.match.target(target) is not None


_KIND_TYPE = {cap.DATETIME: "TIMESTAMP", cap.INT: "BIGINT", cap.GUID: "UUID", cap.BOOL: "BOOLEAN",
              cap.DURATION: "BIGINT"}
_OPTIONS = {cap.JOB_TYPE: ("Type", cap.job_types, "Synchronization, Uncoupling, Coupling"),
            cap.SYNCH_DIRECTION: ("direction", cap.directions, "Bidirectional, ToIntegrationTable, FromIntegrationTable"),
            cap.RESULT: ("result", cap.results, "Success, Failure or blank"),
            cap.DELETION: ("Resolve Deletion Conflicts", cap.deletion_resolutions,
                           "blank, Restore records, Delete coupling"),
            cap.UPDATE: ("Resolve Update Conflicts", cap.update_resolutions,
                         "blank, Send data update to integration table, Get data update from integration table"),
            cap.BOOL: ("Yes/No", cap.booleans, "Yes/No, Oui/Non, Ja/Nein, true/false")}

_WHAT = {cap.DATETIME: f"is not a date/time in any supported form ({DATE_FORMS})",
         cap.INT: "is not a whole number (text in a number column)",
         cap.GUID: "is not a GUID",
         cap.DURATION: "is not a BC Duration text (e.g. '2 seconds 340 milliseconds')"}


def _distinct(con: duckdb.DuckDBPyConnection, part: Part, col: str, header: str) -> list[str]:
    vals = [r[0] for r in con.execute(
        f"SELECT DISTINCT {ident(col)} FROM {part.view} LIMIT {_MAX_CATEGORIES + 1}").fetchall()]
    if len(vals) > _MAX_CATEGORIES:
        raise ValueParseError(f"this column has more than {_MAX_CATEGORIES} different values; it is not an "
                              "option or Yes/No column", path=part.path, sheet=part.sheet, column=header,
                              hint="Check that the columns are in the page's order, or rename the header")
    return vals


def _parse(con: duckdb.DuckDBPyConnection, part: Part, match: Match, temp: _Temp, *,
           any_known: bool = False, full_profile: bool = False, timezone: str | None = None) -> Parsed:
    """Typed values of a part (a view) and the checks on them.

    Option and Yes/No columns are mapped on their distinct values; with ``any_known`` (the one-pass
    load, which sees only the first rows) on every caption the option has, folded in SQL. Date forms
    are profiled on the first rows of a big part; if any date then fails to read, the whole column
    is profiled again (``full_profile``), as it is when a value the first rows' profile would read
    wrongly shows up (:func:`unforeseen_sql`): the outcome is that of profiling every row. A page
    export's date/times without an offset are local time in ``timezone`` (None: UTC), converted to
    UTC; table exports are UTC.
    """
    exprs: dict[str, str] = {}
    checks: list[tuple[str, str, str, str]] = []  # (flag sql, raw col, header, problem)
    warnings: list[str] = []
    dates = {f"c{m.index}": m.header for m in match.columns if m.column is not None and m.column.kind == cap.DATETIME}
    sampled = not full_profile and part.rows > _PROFILE_ROWS
    profiles = profile_datetimes(con, part.view, dates, lang=match.language, where=part.where(header_row=0),
                                 limit=_PROFILE_ROWS if sampled else None)
    zone = timezone if match.layout.page else None
    if sampled or any_known:  # a profile of some rows: flag what it would read wrongly without failing
        for raw, header in dates.items():
            checks += [(flag, raw, header, "profile") for flag in unforeseen_sql(raw, profiles[raw])]
    directions: dict[str, Any] = {}
    unparsed: list[tuple[str, str, str]] = []
    for m in match.columns:
        c = m.column
        if c is None or c.kind == cap.IGNORE:
            continue
        raw = f"c{m.index}"
        rv = f"trim({ident(raw)})"
        blank = f"coalesce({rv}, '') = ''"
        if c.kind == cap.DATETIME:
            expr = datetime_sql(raw, profiles[raw], zone)
        elif c.kind == cap.INT:
            expr = int_sql(raw)
        elif c.kind == cap.GUID:
            expr = guid_sql(raw)
        elif c.kind == cap.DURATION:
            expr = duration_sql(raw)
        elif c.kind == cap.TEXT:
            expr = text_sql(raw, c.max_len)
            if c.max_len:
                checks.append((f"strlen({ident(raw)}) > {c.max_len} AND length({ident(raw)}) > {c.max_len}", raw,
                               m.header, f"cut:{c.max_len}"))
        elif c.kind in _OPTIONS:
            what, table, known = _OPTIONS[c.kind]
            sql_type = "BOOLEAN" if c.kind == cap.BOOL else "VARCHAR"
            blank_value = table().get("") or None
            if any_known:
                exprs[c.target], unknown = folded_sql(raw, table(), sql_type, blank=blank_value)
                known_sql = f" AND {unknown}"
                checks.append((f"NOT {blank}{known_sql}", raw, m.header, f"is not a known {what} value (known: {known})"))
                continue
            mapping = map_values(_distinct(con, part, raw, m.header), table())
            # blank resolution options mean None (their blank caption); a blank result or Yes/No is unknown
            expr = mapped_sql(raw, mapping, sql_type, blank=blank_value)
            known_sql = f" AND {ident(raw)} NOT IN ({', '.join(lit(k) for k in mapping)})" if mapping else ""
            checks.append((f"NOT {blank}{known_sql}", raw, m.header, f"is not a known {what} value (known: {known})"))
            exprs[c.target] = expr
            continue
        elif c.kind == cap.DIRECTION:
            names = TableNames.default()
            parsed = {v: parse_direction(v, names) for v in _distinct(con, part, raw, m.header) if v and v.strip()}
            known = {k: d for k, d in parsed.items() if d is not None}
            unknown = [k for k, d in parsed.items() if d is None]
            if unknown:
                warnings.append(f"{len(unknown)} Direction text(s) name no known tables, e.g. {unknown[0]!r}: their "
                                "jobs are loaded without mapping and direction")
            directions = known
            exprs["_dir_src"] = mapped_sql(raw, {k: d.source for k, d in known.items()}, "INTEGER")
            exprs["_dir_dst"] = mapped_sql(raw, {k: d.destination for k, d in known.items()}, "INTEGER")
            exprs["_dir_synch"] = mapped_sql(raw, {k: d.synch_direction for k, d in known.items()}, "VARCHAR")
            continue
        elif c.kind == cap.TABLE_CAPTION:
            tables = cap.caption_to_table()
            vals = _distinct(con, part, raw, m.header)
            mapping = {v: tables[cap.normalize(v)] for v in vals if v and cap.normalize(v) in tables}
            exprs[c.target + "_id"] = mapped_sql(raw, mapping, "INTEGER")
            exprs[c.target + "_caption"] = text_sql(raw)
            continue
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(c.kind)
        exprs[c.target] = expr
        if c.kind in _WHAT:
            unparsed.append((f"_f{len(checks)}", c.target, raw))
            checks.append((f"NOT {blank} AND {ident(c.target)} IS NULL", raw, m.header, _WHAT[c.kind]))
        if c.kind == cap.INT and TABLES[match.layout.table].types.get(c.target) == "INTEGER":
            checks.append((f"{ident(c.target)} NOT BETWEEN -2147483648 AND 2147483647", raw, m.header,
                           "is too large for this column (whole numbers up to 2,147,483,647)"))
    select = ", ".join(f"{e} AS {ident(t)}" for t, e in exprs.items())
    raws = sorted({r for _, r, _, _ in checks})
    keep = ", ".join(f"{ident(r)} AS {ident('_raw_' + r)}" for r in raws) or "1 AS _x"
    inner = f"SELECT _row, {select}, {keep} FROM {part.view}"
    flags = [f"({sql.replace(ident(r), ident('_raw_' + r))}) AS _f{i}" for i, (sql, r, _, _) in enumerate(checks)]
    # a view: typed values are computed where they are read, so big text columns are never copied twice
    table = temp.view("parsed", f"SELECT *{', ' + ', '.join(flags) if flags else ''} FROM ({inner})")
    parsed = Parsed(part, match, table, part.rows, dates=profiles, warnings=warnings, directions=directions,
                    unparsed=unparsed)
    parsed.columns = [r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()]
    if checks:
        agg = ", ".join(f"min(_row) FILTER (_f{i}), count(*) FILTER (_f{i})" for i in range(len(checks)))
        got = con.execute(f"SELECT {agg} FROM {table}").fetchall()[0]
        if sampled and any(got[2 * i + 1] and r in dates for i, (_, r, _, _) in enumerate(checks)):
            return _parse(con, part, match, temp, any_known=any_known, full_profile=True, timezone=timezone)
        for i, (_, r, header, problem) in enumerate(checks):
            first, n = got[2 * i], got[2 * i + 1]
            if not n or problem == "profile":  # (a profile of every row raises no such flag)
                continue
            if problem.startswith("cut:"):
                limit = int(problem[4:])
                parsed.warnings.append(f"{n:,} value(s) of {header!r} are longer than {limit} characters (BC's limit) "
                                       f"and were cut to {limit}, first in row {first}")
                continue
            value = con.execute(f"SELECT {ident(r)} FROM {part.view} WHERE _row = {first}").fetchall()[0][0]
            more = f" ({n - 1:,} more row(s) like it)" if n > 1 else ""
            raise ValueParseError(f"this value {problem}{more}", path=part.path, sheet=part.sheet, row=first,
                                  column=header, value=value,
                                  hint="Correct the value (or the column's header) and load again; nothing was loaded")
    _dedupe(con, parsed, temp)
    _environment(con, parsed)
    return parsed


def _key_columns(parsed: Parsed) -> list[str]:
    spec = TABLES[parsed.layout.table]
    key = [k for k in spec.key if k not in ("environment", "company")]
    if parsed.layout.kind == "page-5338":  # no key: only rows identical in every column are duplicates
        key = [c for c in parsed.columns if c != "_row" and not c.startswith(("_raw_", "_f"))]
    return [k for k in key if k in parsed.columns]


def _dedupe(con: duckdb.DuckDBPyConnection, parsed: Parsed, temp: _Temp) -> None:
    """Drop rows identical to an earlier one (counted as rejected); refuse different rows with one key."""
    key = _key_columns(parsed)
    if not key:
        return
    cols = [c for c in parsed.columns if not c.startswith(("_raw_", "_f")) and c != "_row"]
    keys = ", ".join(ident(k) for k in key)
    n, distinct = con.execute(f"SELECT count(*), count(DISTINCT ({keys})) FROM {parsed.table}").fetchall()[0]
    if n == distinct:
        return
    everything = ", ".join(ident(c) for c in cols)
    conflict = con.execute(
        f"SELECT {keys}, list(_row ORDER BY _row)[1:2] FROM {parsed.table} GROUP BY ALL "
        f"HAVING count(DISTINCT ({everything})) > 1 ORDER BY min(_row) LIMIT 1").fetchall()
    if conflict:
        row = conflict[0]
        shown = ", ".join(f"{k}={v}" for k, v in zip(key, row[:-1]))
        first, second = row[-1]
        raise DuplicateRowError(
            f"rows {first} and {second} have the same key ({shown}) but different values", path=parsed.part.path,
            sheet=parsed.part.sheet, row=second,
            hint="Remove one of the two rows (or load the two exports as separate files) and load again")
    drop = temp.table("dups", f"SELECT _row FROM (SELECT _row, row_number() OVER (PARTITION BY {keys} ORDER BY _row) "
                      f"AS _n FROM {parsed.table}) WHERE _n > 1")
    dropped = con.execute(f"SELECT count(*) FROM {drop}").fetchall()[0][0]
    parsed.table = temp.view("deduped", f"SELECT * FROM {parsed.table} WHERE _row NOT IN (SELECT _row FROM {drop})")
    parsed.rejected += int(dropped)
    parsed.warnings.append(f"{dropped:,} row(s) repeat an earlier row exactly and were dropped (counted as rejected)")


def _environment(con: duckdb.DuckDBPyConnection, parsed: Parsed) -> None:
    for target in ("_environment", "_company"):
        if not parsed.has(target):
            continue
        vals = con.execute(f"SELECT {ident(target)}, min(_row) FROM {parsed.table} WHERE {ident(target)} IS NOT NULL "
                           f"GROUP BY ALL ORDER BY 2 LIMIT 3").fetchall()
        header = parsed.match.target(target).header  # type: ignore[union-attr]
        if len(vals) > 1:
            raise EnvironmentConflictError(
                f"one load must hold one {target[1:]}, but this file has {vals[0][0]!r} (row {vals[0][1]}) and "
                f"{vals[1][0]!r}", path=parsed.part.path, sheet=parsed.part.sheet, row=vals[1][1], column=header,
                hint=f"Split the file by {target[1:]} and load each part with its own --{target[1:]}")
        if vals:
            setattr(parsed, target[1:], vals[0][0])


# ------------------------------------------------------------------------------------------------
# Canonical rows per layout (inside the load's transaction: they may read the workspace)
def _count(report: LoadReport, result: UpsertResult) -> None:
    prev = report.tables.get(result.table)
    if prev is not None:
        result.read += prev.read
        result.inserted += prev.inserted
        result.updated += prev.updated
        result.deleted += prev.deleted
    report.tables[result.table] = result


def _updated(report: LoadReport, table: str, n: int) -> None:
    if n:
        report.tables.setdefault(table, UpsertResult(table)).updated += n


def _select(parsed: Parsed, env: str, company: str, columns: dict[str, str]) -> str:
    cols = ", ".join(f"{e} AS {ident(c)}" for c, e in columns.items())
    return f"SELECT {lit(env)} AS environment, {lit(company)} AS company, {cols} FROM {parsed.table} p"


def _plain(parsed: Parsed, skip: Iterable[str] = ()) -> dict[str, str]:
    """Canonical columns the file provides as they are."""
    spec = TABLES[parsed.layout.table].types
    out = {}
    for m in parsed.match.columns:
        c = m.column
        if c is None or c.kind == cap.IGNORE or c.target.startswith("_") or c.target in skip:
            continue
        if c.target in spec:
            out[c.target] = f"p.{ident(c.target)}"
    return out


def _record_split(col: str, part: int) -> str:
    return f"sa_record_table({col})" if part == 0 else f"sa_record_key({col})"


def _canonical_sql(con: duckdb.DuckDBPyConnection, parsed: Parsed, env: str, company: str,
                   report: FileLoadReport) -> str:
    kind = parsed.layout.kind
    cols = _plain(parsed)
    scope = f"environment = {lit(env)} AND company = {lit(company)}"
    if kind == "table-5338":
        if not parsed.has("type"):
            cols["type"] = "'Synchronization'"  # older versions have only synchronization jobs (no Type field)
        cols["inferred"] = "false"
        return _select(parsed, env, company, cols)
    if kind == "table-5339":
        for side in ("source", "destination"):
            if parsed.has(f"{side}_record_id"):
                cols[f"{side}_table"] = _record_split(f"p.{side}_record_id", 0)
                cols[f"{side}_key"] = _record_split(f"p.{side}_record_id", 1)
        if not parsed.has("message") and parsed.has("error_message"):
            cols["message"] = f"left(p.error_message, {cap.MESSAGE_LEN})"
        if not parsed.has("error_message") and parsed.has("message"):
            cols["error_message"] = "p.message"
        cols["job_inferred"] = "CASE WHEN p.job_id IS NOT NULL THEN false END"
        return _select(parsed, env, company, cols)
    if kind == "table-5331":
        return _select(parsed, env, company, cols)
    if kind in ("table-5335", "page-5335"):
        if kind == "page-5335":
            cols["table_id"] = "p._table_id"
            cols["integration_table_id"] = "p._integration_table_id"
            cols["table_caption"] = "p._table_caption"
            cols["integration_table_caption"] = "p._integration_table_caption"
        else:
            known = cap.table_captions()
            en = {t: c["en"][0] for t, c in known.items() if c.get("en")}
            cases = lambda col: "CASE " + col + " " + " ".join(f"WHEN {t} THEN {lit(c)}" for t, c in en.items()) + " END"  # noqa: E731
            if not parsed.has("table_caption"):
                cols["table_caption"] = cases("p.table_id")
            cols["integration_table_caption"] = cases("p.integration_table_id")
        return _select(parsed, env, company, cols)
    if kind == "incidents":
        cols["affected_keys"] = "CASE WHEN coalesce(p.affected_keys, '') = '' THEN []::VARCHAR[] " \
                                "ELSE string_split(p.affected_keys, '|') END"
        return _select(parsed, env, company, cols)
    if kind == "page-5339":
        cols["message"] = f"left(p.error_message, {cap.MESSAGE_LEN})"
        if not con.execute(f"SELECT count(*) FROM jobs WHERE {scope}").fetchall()[0][0]:
            return _select(parsed, env, company, cols)  # no job to link to (yet): the relinking does it later
        spans = link.jobs_spanning_sql(f"(SELECT error_no, logged_at FROM {parsed.table})", env, company)
        cols["job_id"] = "j.job_id"
        cols["job_inferred"] = "CASE WHEN j.job_id IS NOT NULL THEN true END"
        parsed.joined = True
        return _select(parsed, env, company, cols) + f" LEFT JOIN ({spans}) j ON j.error_no = p.error_no"
    if kind == "page-5333":
        en = {t: c["en"][0] for t, c in cap.table_captions().items() if c.get("en")}
        mapped = "CASE p.table_id " + " ".join(f"WHEN {t} THEN {lit(c)}" for t, c in en.items()) + " END"
        ws_caps = f"(SELECT table_id, any_value(table_caption) AS caption FROM mappings WHERE {scope} GROUP BY ALL)"
        cols["table_name"] = f"coalesce({mapped}, wc.caption, p.table_name)" if parsed.has("table_name") \
            else f"coalesce({mapped}, wc.caption)"
        # keys: BC leaves Description blank when the BC record is gone, Coupled To when the Dataverse row is
        for c in ("description", "coupled_to"):
            cols[c] = f"coalesce(p.{ident(c)}, '')" if parsed.has(c) else "''"
        cols["integration_id"] = "coalesce(c.integration_id, d.integration_id)"
        cols["crm_id"] = "coalesce(c.crm_id, d.crm_id)"
        cols["link_inferred"] = "CASE WHEN coalesce(c.integration_id, d.integration_id) IS NOT NULL THEN true END"
        parsed.joined = True
        return (_select(parsed, env, company, cols)
                + f" LEFT JOIN {ws_caps} wc ON wc.table_id = p.table_id"
                + f" LEFT JOIN ({link.couplings_by_description_sql(env, company)}) c "
                  "ON c.table_id = p.table_id AND c.description = p.description"
                + f" LEFT JOIN ({link.couplings_by_coupled_to_sql(env, company)}) d "
                  "ON coalesce(p.description, '') = '' AND d.table_id = p.table_id AND d.coupled_to = p.coupled_to")
    if kind == "page-5338":
        return _jobs_page_sql(con, parsed, env, company, cols, report)
    raise AssertionError(kind)  # pragma: no cover


def _jobs_page_sql(con: duckdb.DuckDBPyConnection, parsed: Parsed, env: str, company: str, cols: dict[str, str],
                   report: FileLoadReport) -> str:
    scope = f"environment = {lit(env)} AND company = {lit(company)}"
    dv = "CASE WHEN p._dir_synch = 'FromIntegrationTable' THEN p._dir_src ELSE p._dir_dst END"
    bcside = "CASE WHEN p._dir_synch = 'FromIntegrationTable' THEN p._dir_dst ELSE p._dir_src END"
    wsmap = (f"(SELECT table_id, integration_table_id, any_value(name) AS name, count(*) AS n FROM mappings "
             f"WHERE {scope} GROUP BY ALL)")
    finish = "p.finish_datetime" if parsed.has("finish_datetime") else \
        "p.start_datetime + to_milliseconds(p._duration)" if parsed.has("_duration") else None
    has_dir = "_dir_synch" in parsed.columns
    mapping = ["p.mapping_name"] if parsed.has("mapping_name") else []
    direction = ["p.synch_direction"] if parsed.has("synch_direction") else []
    join = ""
    if has_dir:  # the mapping of a Direction text: the workspace's mapping of those tables, else BC's default name
        whens = " ".join(f"WHEN {t} THEN {lit(n)}" for t, n in cap.DEFAULT_MAPPINGS.items())
        mapping += ["CASE WHEN m.n = 1 THEN m.name END", f"CASE {bcside} {whens} END"]
        direction.append("p._dir_synch")
        join = f" LEFT JOIN {wsmap} m ON m.table_id = {bcside} AND m.integration_table_id = {dv}"
    mapping_sql = f"coalesce({', '.join(mapping)})" if mapping else "NULL::VARCHAR"
    default_used = "false"
    if has_dir:
        given = "p.mapping_name IS NULL AND " if parsed.has("mapping_name") else ""
        default_used = f"({given}coalesce(m.n, 0) <> 1 AND {bcside} IS NOT NULL)"
    direction_sql = f"coalesce({', '.join(direction)})" if direction else "NULL::VARCHAR"
    counters = [c for c in ("inserted", "modified", "deleted", "unchanged", "failed", "skipped", "uncoupled", "coupled")]
    base = {c: (f"p.{c}" if parsed.has(c) else "NULL::BIGINT") for c in counters}
    rows_sql = (
        f"SELECT p._row AS _pid, p.start_datetime, {finish or 'NULL::TIMESTAMP'} AS finish_datetime, "
        f"{mapping_sql} AS mapping_name, {direction_sql} AS synch_direction, "
        f"{'p.type' if parsed.has('type') else lit('Synchronization')} AS type, {default_used} AS _default_mapping, "
        + ", ".join(f"{e} AS {c}" for c, e in base.items())
        + (", p.message" if parsed.has("message") else ", NULL::VARCHAR AS message")
        + f" FROM {parsed.table} p{join}")
    rows = f"_sa_jobrows_{next(_names)}"
    con.execute(f"CREATE TEMP TABLE {rows} AS {rows_sql}")
    try:
        pairs = link.pair_jobs_sql(rows, f"(SELECT * FROM jobs WHERE {scope})")
        name = (f"concat_ws('|', {lit(env)}, {lit(company)}, coalesce(r.mapping_name, ''), coalesce(r.synch_direction, ''), "
                "r.type, strftime(date_trunc('second', r.start_datetime), '%Y-%m-%d %H:%M:%S'), "
                "CAST(row_number() OVER (PARTITION BY r.mapping_name, r.synch_direction, r.type, "
                "date_trunc('second', r.start_datetime) ORDER BY "
                + ", ".join(f"r.{c} NULLS FIRST" for c in counters) + ", r._pid) AS VARCHAR))")
        final = f"_sa_jobs_{next(_names)}"
        con.execute(
            f"CREATE TEMP TABLE {final} AS SELECT {lit(env)} AS environment, {lit(company)} AS company, "
            f"coalesce(pr.job_id, {link.uuid5_sql(name)}) AS job_id, r.start_datetime, "
            + ("r.finish_datetime, " if finish else "") + ("r.message, " if parsed.has("message") else "")
            + "r.mapping_name, r.synch_direction, r.type, "
            + ", ".join(f"r.{c}" for c in counters if parsed.has(c))
            + f", coalesce(j.inferred, pr.job_id IS NULL) AS inferred FROM {rows} r "
            f"LEFT JOIN ({pairs}) pr ON pr._pid = r._pid "
            f"LEFT JOIN (SELECT job_id, inferred FROM jobs WHERE {scope}) j ON j.job_id = pr.job_id")
        parsed.part.temp.append(final)
        matched, made = con.execute(f"SELECT count(*) FILTER (NOT inferred), count(*) FILTER (inferred) FROM {final}"
                                    ).fetchall()[0]
        _link_count(report, "page jobs matched to existing jobs", matched)
        _link_count(report, "page jobs given an inferred ID", made)
        n_dup = con.execute(f"SELECT count(*) - count(DISTINCT job_id) FROM {final}").fetchall()[0][0]
        if n_dup:  # two page rows paired with one job cannot happen; guard the key anyway
            raise DuplicateRowError("two rows of this page export describe the same job", path=parsed.part.path,
                                    sheet=parsed.part.sheet, hint="Remove repeated rows and load again")
        n_default = con.execute(f"SELECT count(*) FROM {rows} WHERE _default_mapping").fetchall()[0][0]
        if n_default:
            parsed.warnings.append(
                f"{n_default:,} job(s) got BC's default mapping name for their table (e.g. CUSTOMER), as the workspace "
                "has no mapping of those tables yet: load the Integration Table Mapping export first to use the "
                "customer's own names")
        bad_dur = 0
        if parsed.has("_duration") and parsed.has("finish_datetime"):
            bad_dur = con.execute(
                f"SELECT count(*) FROM {parsed.table} WHERE _duration IS NOT NULL AND finish_datetime IS NOT NULL AND "
                "abs(date_diff('millisecond', start_datetime, finish_datetime) - _duration) > 1000").fetchall()[0][0]
        if bad_dur:
            parsed.warnings.append(f"{bad_dur:,} row(s) show a Duration that differs from Finish - Start by more than "
                                   "a second")
        return f"SELECT * FROM {final}"
    finally:
        con.execute(f"DROP TABLE IF EXISTS {rows}")


def _link_count(report: FileLoadReport, what: str, n: int) -> None:
    if n:
        report.links[what] = report.links.get(what, 0) + int(n)


def _inline_links(con: duckdb.DuckDBPyConnection, kind: str, final: str, report: FileLoadReport) -> None:
    """Count the links a page's rows got while being built (errors by time, skipped records by description)."""
    cols = {r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE {final})").fetchall()}
    if kind == "page-5339" and "job_inferred" in cols:
        n = con.execute(f"SELECT count(*) FROM {final} WHERE job_inferred").fetchall()[0][0]
        _link_count(report, "errors linked to a job by time", n)
    elif kind == "page-5333":
        n = con.execute(f"SELECT count(*) FROM {final} WHERE link_inferred").fetchall()[0][0]
        _link_count(report, "skipped records linked to couplings", n)


# ------------------------------------------------------------------------------------------------
# Loading
def _relink(load: Any, report: FileLoadReport, env: str, company: str, kinds: set[str]) -> None:
    """Run the linking steps a load of ``kinds`` can make possible (each only fills what is empty)."""
    con = load.con
    deleted, moved = link.resolve_inferred_jobs(con, env, company) if "table-5338" in kinds else (0, 0)
    if deleted:
        load.count_deleted("jobs", deleted)
        _updated(load.report, "job_errors", moved)
        _link_count(report, "inferred page jobs replaced by table jobs", deleted)
        _link_count(report, "errors re-pointed to table jobs", moved)
    n = link.link_errors_to_jobs(con, env, company) if kinds & {"table-5338", "page-5338", "page-5339"} else 0
    if n:
        _updated(load.report, "job_errors", n)
        _link_count(report, "errors linked to a job by time", n)
    n = link.derive_bc_record_ids(con, env, company) if kinds & {"table-5339", "table-5331"} else 0
    if n:
        _updated(load.report, "couplings", n)
        _link_count(report, "coupling BC record ids from errors", n)
    linked, filled = link.link_skipped_records(con, env, company) \
        if kinds & {"table-5339", "table-5331", "page-5333"} else (0, 0)
    if linked:
        _updated(load.report, "skipped_records", linked)
        _link_count(report, "skipped records linked to couplings", linked)
    if filled:
        _updated(load.report, "couplings", filled)
        _link_count(report, "couplings filled from skipped records", filled)


def _resolve_env(parsed: list[Parsed], environment: str | None, company: str | None,
                 path: Path) -> tuple[str, str, str]:
    found = {}
    for what, given in (("environment", environment), ("company", company)):
        vals = {(p.part.sheet, getattr(p, what)) for p in parsed if getattr(p, what)}
        distinct = sorted({v for _, v in vals})
        if len(distinct) > 1:
            raise EnvironmentConflictError(f"the sheets hold different {what} values: {distinct}", path=path,
                                           hint=f"Load one {what} per file")
        if given is not None and distinct and distinct[0] != given:
            raise EnvironmentConflictError(
                f"--{what} {given!r} contradicts the file's {what} column, which says {distinct[0]!r}", path=path,
                hint=f"Leave out --{what} or load the file into {distinct[0]!r}")
        found[what] = (given, "argument") if given is not None else (distinct[0], "file") if distinct else (
            DEFAULT_ENVIRONMENT if what == "environment" else DEFAULT_COMPANY, "default")
    src = found["environment"][1] if found["environment"][1] == found["company"][1] else \
        f"{found['environment'][1]}/{found['company'][1]}"
    return found["environment"][0], found["company"][0], src


_FAST_KINDS = ("table-5339", "table-5338", "table-5331")
_FAST_MIN_BYTES = 16 << 20  # below this the careful path costs too little to be worth a second way
_HEAD_ROWS = 5000  # the rows of a big sheet that decide its layout and date forms in a one-pass load
_FAST_SHEET_KINDS = (*_FAST_KINDS, "page-5339")  # no column whose values are mapped on the whole file's


def _check_parsed(con: duckdb.DuckDBPyConnection, parsed: Parsed, table: str, env: str, company: str) -> None:
    """After a one-pass INSERT: raise when a non-blank value became NULL (every blank one becomes NULL)."""
    if not parsed.unparsed:
        return
    nulls = ", ".join(f"count(*) FILTER ({ident(t)} IS NULL)" for _, t, _ in parsed.unparsed)
    blanks = ", ".join(f"count(*) FILTER (coalesce(trim({ident(r)}), '') = '')" for _, _, r in parsed.unparsed)
    got = con.execute(f"SELECT {nulls} FROM {table} WHERE environment = ? AND company = ?", [env, company]).fetchall()
    if got != con.execute(f"SELECT {blanks} FROM {parsed.part.view}").fetchall():
        raise SourceError("a value the first rows did not foresee")


def _load_csv_fast(ws: Workspace, path: Path, head: bytes, compressed: bool, temp: _Temp, *,
                   environment: str | None, company: str | None, kind: str, hasher: _Hasher,
                   started: float, timezone: str | None) -> FileLoadReport | None:
    """Load a big table export into a table with no rows of its environment/company yet, in one pass.

    The layout, date formats and option values are decided on the file's first rows; then one
    ``INSERT ... SELECT ... FROM read_csv`` parses, checks and inserts every row. A value the first
    rows did not foresee, a repeated key or a value that does not fit raises inside that statement:
    the transaction rolls back and ``None`` tells the caller to take the careful path (which reads
    the file into a temporary table and explains exactly what is wrong). Returns ``None`` as well when
    the file is not such a case.
    """
    con = ws.con
    src = _sniff_text(path, head, compressed, temp)
    n = src.width
    rows = [(r + [""] * n)[:n] for r in src.sample]
    frame = pd.DataFrame({f"c{i}": [r[i] for r in rows] for i in range(n)})
    frame.insert(0, "_row", np.arange(src.header_row + 2, src.header_row + 2 + len(rows), dtype=np.int64))
    view = temp.view("rawv", f"SELECT * FROM {temp.frame(frame)}")
    part = Part(path, None, src.headers + [""] * (n - len(src.headers)), src.header_row + 1, view,
                src.sample[:_SAMPLE_ROWS], len(rows))

    def feed(insert: Callable[[], int]) -> int:
        # the parsing views were built on the first rows; from now on they read the whole file
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT CAST(0 AS BIGINT) AS _row, * "
                    f"FROM {src.read_csv_sql()}")
        return insert()

    return _one_pass(ws, part, temp, _FAST_KINDS, feed, environment=environment, company=company, kind=kind,
                     hasher=hasher, started=started, timezone=timezone)


def _one_pass(ws: Workspace, part: Part, temp: _Temp, kinds: Sequence[str], feed: Callable[[Callable[[], int]], int],
              *, environment: str | None, company: str | None, kind: str, hasher: _Hasher,
              started: float, timezone: str | None) -> FileLoadReport | None:
    """Recognise and parse ``part`` (a file's first rows), then insert every row as ``feed`` gives them.

    ``feed(insert)`` runs in the load's transaction: it points ``part.view`` at the rows, calls
    ``insert()`` (which parses, checks and inserts what the view shows, returning how many) as often
    as it needs and returns the total. A value the first rows did not foresee raises inside the
    INSERT, the transaction rolls back and ``None`` sends the caller to the careful path, as does a
    layout not in ``kinds`` or a table already holding rows of the environment and company, or any
    problem with the first rows (the careful path names it, counting over the whole file).
    """
    con = ws.con
    try:
        match = recognise(part, kind)
        if match.layout.kind not in kinds or match.target("_environment") or match.target("_company"):
            return None
        parsed = _parse(con, part, match, temp, any_known=True, timezone=timezone)
        env, comp, env_from = _resolve_env([parsed], environment, company, part.path)
    except SourceError:
        return None
    if parsed.rejected or any(p.order and not p.decided_by.startswith("values") for p in parsed.dates.values()):
        return None  # repeated rows, or a date order the first rows cannot decide: read the whole file first
    table = match.layout.table
    if con.execute(f"SELECT count(*) FROM {table} WHERE environment = ? AND company = ?", [env, comp]).fetchall()[0][0]:
        return None  # rows to merge with: the careful path
    unparsed = {f for f, _, _ in parsed.unparsed}
    flags = [c for c in parsed.columns if c.startswith("_f") and c not in unparsed]
    path = part.path
    report = FileLoadReport(source=str(path), kind=match.layout.kind, path=str(path), environment=env,
                            company=comp, environment_from=env_from, one_pass=True,
                            timezone=timezone if match.layout.page else None)
    sql = _canonical_sql(con, parsed, env, comp, report)
    if flags:
        sql += (f" WHERE CASE WHEN {' OR '.join('p.' + ident(f) for f in flags)} "
                "THEN error('a value the first rows did not foresee') ELSE true END")
    fidelity = FIDELITY_PAGE if match.layout.page else FIDELITY_TABLE
    try:
        # the file's hash is still being computed: it is needed only for the loads row, at the end
        with ws.loading(source=str(path), kind=report.kind, content_hash=hasher.result, environment=env,
                        company=comp, fidelity=fidelity) as load:
            inserted = feed(lambda: ws.insert_new(table, sql, fidelity=fidelity))
            parsed.rows = inserted
            _check_parsed(con, parsed, table, env, comp)
            if parsed.joined and match.layout.kind == "page-5339":  # errors linked to jobs as they went in
                _link_count(report, "errors linked to a job by time", con.execute(
                    f"SELECT count(*) FROM {table} WHERE environment = ? AND company = ? AND job_inferred",
                    [env, comp]).fetchall()[0][0])
            load.report.tables[table] = UpsertResult(table, read=inserted, inserted=inserted)
            _relink(load, report, env, comp, {match.layout.kind})
            report.content_hash = hasher.result()
            report.tables = load.report.tables
            report.parts = [_part_details(parsed)]
            report.warnings = list(parsed.warnings) + _zone_warnings([parsed], timezone)
            report.seconds = time.perf_counter() - started
            load.details = report.details
    except (duckdb.ConstraintException, duckdb.ConversionException, duckdb.InvalidInputException,
            duckdb.OutOfRangeException, SourceError):
        return None  # a repeated key, a value that does not fit, an unforeseen value: the careful path says which
    report.load_id = load.report.load_id
    report.seconds = time.perf_counter() - started
    return report


def _load_sheet_fast(ws: Workspace, part: Part, temp: _Temp, *, environment: str | None, company: str | None,
                     kind: str, hasher: _Hasher, started: float, timezone: str | None) -> FileLoadReport | None:
    """Load a big sheet into a table with no rows of its environment/company yet, in one pass.

    As :func:`_load_csv_fast`: the sheet's first rows decide the layout and date forms, then one
    INSERT parses, checks and inserts every row; None sends the caller on to the careful path with
    the same part.
    """
    first = dataclasses.replace(part, rows=_HEAD_ROWS, _kinds=None,
                                view=temp.view("head", f"SELECT * FROM {part.view} WHERE _row <= "
                                                       f"{part.header_row + _HEAD_ROWS}"))

    def feed(insert: Callable[[], int]) -> int:
        ws.con.execute(f"CREATE OR REPLACE TEMP VIEW {first.view} AS SELECT * FROM {part.view}")
        return insert()

    return _one_pass(ws, first, temp, _FAST_SHEET_KINDS, feed, environment=environment, company=company,
                     kind=kind, hasher=hasher, started=started, timezone=timezone)


def load_file(ws: Workspace, path: str | Path, *, environment: str | None = None, company: str | None = None,
              kind: str = "auto", bar: Any = None, timezone: str | None = None) -> FileLoadReport:
    """Load one export file as one load (see :func:`load_files`; ``bar`` is a tqdm bar to show the stage on).

    The file is read, recognised, parsed and checked in temporary tables first; only then are its rows
    merged and linked, in one transaction. Raises a :class:`SourceError` (and changes nothing) when the
    file cannot be loaded.
    """
    path = Path(path)
    started = time.perf_counter()
    timezone = check_timezone(ws.con, timezone)
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    except OSError as exc:
        raise UnreadableFileError(f"cannot read the file ({exc.strerror or exc})", path=path,
                                  hint="Check the path") from exc
    hasher = _Hasher(path)  # sha256 of the bytes, computed while DuckDB reads (both release the GIL)
    hasher.start()
    con = ws.con
    temp = _Temp(con)
    stage = _stager(bar)
    try:
        stage("read")
        form = _sniff_bytes(path, head)
        # not inside a caller's transaction: a failed attempt there could not be rolled back on its own
        if form != "workbook" and path.stat().st_size >= _FAST_MIN_BYTES and not ws.in_transaction:
            fast = _load_csv_fast(ws, path, head, form == "gzip", temp, environment=environment, company=company,
                                  kind=kind, hasher=hasher, started=started, timezone=timezone)
            if fast is not None:
                return fast
            temp.close()  # start over: the careful path reads the file into its own temporary tables
        if form == "workbook":
            parts = _read_workbook(path, temp)
            if len(parts) == 1 and parts[0].rows > 4 * _HEAD_ROWS and not parts[0].package and not ws.in_transaction:
                fast = _load_sheet_fast(ws, parts[0], temp, environment=environment, company=company, kind=kind,
                                        hasher=hasher, started=started, timezone=timezone)
                if fast is not None:
                    return fast
        else:
            parts = _read_text(path, head, form == "gzip", temp)
        stage("recognise")
        matched: list[tuple[Part, Match]] = []
        skipped_sheets: list[str] = []
        errors: list[SourceError] = []
        for part in parts:
            try:
                matched.append((part, recognise(part, kind)))
            except UnrecognisedFileError as exc:
                if part.sheet is not None and len(parts) > 1:
                    errors.append(exc)
                    skipped_sheets.append(part.sheet)
                else:
                    raise
        if not matched:
            raise errors[0]
        for part, _ in matched:
            if not part.rows:
                raise UnreadableFileError("the sheet has a header but no data rows; there is nothing to load",
                                          path=path, sheet=part.sheet, row=part.header_row,
                                          hint="Check the page's filters and export again")
        stage("parse")
        parsed = [_parse(con, part, m, temp, timezone=timezone) for part, m in matched]
        digest = hasher.result()
        env, comp, env_from = _resolve_env(parsed, environment, company, path)
        kinds = sorted({p.layout.kind for p in parsed})
        load_kind = kinds[0] if len(kinds) == 1 else "config-package"
        if any(p.part.package for p in parsed):
            load_kind = "config-package" if len(kinds) > 1 else f"config-package {kinds[0]}"
        report = FileLoadReport(source=str(path), kind=load_kind, path=str(path), environment=env, company=comp,
                                environment_from=env_from, content_hash=digest,
                                timezone=timezone if any(p.layout.page for p in parsed) else None)
        stage("merge")
        with ws.loading(source=str(path), kind=load_kind, content_hash=digest, environment=env, company=comp,
                        fidelity=FIDELITY_TABLE) as load:
            for p in sorted(parsed, key=lambda p: _ORDER.index(p.layout.kind)):
                sql = _canonical_sql(con, p, env, comp, report)
                if p.joined:  # joins with the workspace: computed once, not at every scan of the upsert
                    final = temp.table("final", sql)
                    sql = f"SELECT * FROM {final}"
                    _inline_links(con, p.layout.kind, final, report)
                fidelity = FIDELITY_PAGE if p.layout.page else FIDELITY_TABLE
                if _first_rows(ws, p.layout.table, sql, env, comp):  # nothing to merge with: one INSERT
                    n = ws.insert_new(p.layout.table, sql, fidelity=fidelity)
                    result = UpsertResult(p.layout.table, read=n, inserted=n)
                else:
                    result = ws.upsert(p.layout.table, con.sql(sql), fidelity=fidelity)
                _count(load.report, result)
            stage("link")
            _relink(load, report, env, comp, set(kinds))
            rejected = sum(p.rejected for p in parsed)
            report.rows_rejected = rejected
            load.rows_rejected = rejected
            report.tables = load.report.tables
            report.parts = [_part_details(p) for p in parsed]
            report.warnings = [w for p in parsed for w in p.warnings] + _zone_warnings(parsed, timezone)
            if skipped_sheets:
                report.warnings.append(f"sheet(s) {skipped_sheets} are not a known export and were not loaded")
            report.seconds = time.perf_counter() - started
            load.details = report.details
        report.load_id = load.report.load_id
        report.seconds = time.perf_counter() - started
        return report
    finally:
        for t in [t for p in locals().get("parsed", []) or [] for t in p.part.temp]:
            con.execute(f"DROP TABLE IF EXISTS {t}")
        temp.close()
        hasher.join()


def _first_rows(ws: Workspace, table: str, sql: str, env: str, company: str) -> bool:
    """Whether the rows of ``sql`` can go into ``table`` by a plain INSERT: the table has no rows of this
    environment and company yet and no row lacks its key (keys within one file are unique after
    :func:`_dedupe`); otherwise :meth:`Workspace.upsert` merges them. Raises :class:`SchemaError` for a
    value that does not fit its column, as the upsert would."""
    con = ws.con
    if con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE environment = ? AND company = ? LIMIT 1)",
                   [env, company]).fetchall()[0][0]:
        return False
    keys = [k for k in TABLES[table].key if k not in ("environment", "company")]
    nulls = " OR ".join(f"{ident(k)} IS NULL" for k in keys) or "false"
    if con.execute(f"SELECT count(*) FROM (SELECT {', '.join(map(ident, keys)) or 1} FROM ({sql})) "
                   f"WHERE {nulls}").fetchall()[0][0]:
        return False
    ws.check_casts(table, sql)  # e.g. a count beyond INTEGER: named, not a bare cast error from the INSERT
    return True


def _zone_warnings(parsed: Sequence[Parsed], timezone: str | None) -> list[str]:
    """A page export's date/times are the BC user's local time: say so when no zone was given."""
    if timezone is not None or not any(p.layout.page and p.dates for p in parsed):
        return []
    return ["date/times in a page export are shown in the BC user's time zone and were read as UTC: give that "
            "zone (timezone=..., --timezone, e.g. 'Europe/Paris') unless it is UTC, or the times are off by the "
            "zone's offset (table exports and OData are always UTC)"]


_ORDER = ["table-5335", "page-5335", "table-5338", "table-5339", "table-5331", "page-5338", "page-5339", "page-5333",
          "incidents"]


def _part_details(p: Parsed) -> dict[str, Any]:
    return {
        "kind": p.layout.kind, "title": p.layout.title, "sheet": p.part.sheet, "header_row": p.part.header_row,
        "language": p.match.language, "rows": p.rows, "rejected": p.rejected,
        "package": list(p.part.package) if p.part.package else None,
        "columns": [{"header": m.header, "column": m.column.target.lstrip("_") if m.column else None,
                     "matched_by": m.how} for m in p.match.columns],
        "dates": {m.header: p.dates[f"c{m.index}"].describe() for m in p.match.columns
                  if f"c{m.index}" in p.dates},
    }


def _stager(bar: Any):
    def stage(name: str) -> None:
        if bar is not None:
            bar.set_postfix_str(name, refresh=True)
    return stage


def load_files(ws: Workspace, paths: str | Path | Sequence[str | Path], *, environment: str | None = None,
               company: str | None = None, kind: str = "auto", progress: bool = True,
               timezone: str | None = None) -> list[FileLoadReport]:
    """Load BC export files into ``ws``, each file as one transactional, idempotent load.

    Parameters
    ----------
    ws
        The workspace.
    paths
        Files (xlsx, csv, csv.gz) or folders (their files, sorted; those under a ``pages/`` folder last).
    environment, company
        Written on every row. When not given, a file's Environment/Company column is used, else
        ``"default"``; the report says which.
    kind
        ``"auto"`` (recognise each file) or one of :data:`captions.KINDS` to force a layout.
    progress
        Show a tqdm progress bar (per file, with the stage) for loads that take more than a second.
    timezone
        The BC user's time zone, in which page exports show date/times, as an IANA name
        (``"Europe/Paris"``) or ``"UTC"``: page values without an offset are converted from it to UTC,
        the workspace's time. Table exports and OData are UTC and are never converted. When None, page
        times are read as UTC and the report warns.

    Returns
    -------
    list[FileLoadReport]
        One report per file (``load_id`` is ``None`` when the file brought nothing new).

    Raises
    ------
    SourceError
        For a file that cannot be loaded; that file's load wrote nothing (earlier files stay loaded);
        for an unknown ``timezone``, before anything is read.
    """
    timezone = check_timezone(ws.con, timezone)
    files = _expand(paths)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(files), unit="file", desc="loading", delay=1.0, leave=False)
    reports = []
    try:
        for f in files:
            if bar is not None:
                bar.set_description_str(f"loading {f.name[:40]}", refresh=False)
            reports.append(load_file(ws, f, environment=environment, company=company, kind=kind, bar=bar,
                                     timezone=timezone))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return reports


def _expand(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and re.search(r"\.(xlsx|xls|csv|csv\.gz|txt)$",
                                                                                f.name, re.I))
            out.extend(sorted(found, key=lambda f: ("pages" in f.parts, str(f))))
        else:
            out.append(p)
    return out


def load_sample_data(ws: Workspace, folder: str | Path, *, environment: str = "PRODUCTION",
                     company: str = "CRONUS International Ltd.", progress: bool = False) -> list[FileLoadReport]:
    """Load the repository's ``sample_data/`` the way a user's exports would come in.

    The table exports first (``tables/``), then the ground truth (``ground_truth_incidents.csv`` into
    ``incidents``), then the English and the French page exports (``pages/en``, ``pages/fr``), so the
    pages add only what the tables lack (skipped records, existence flags).

    Parameters
    ----------
    ws
        The workspace.
    folder
        The ``sample_data`` folder.
    environment, company
        Written on every row (the twin's are the defaults).
    progress
        Show a progress bar.

    Returns
    -------
    list[FileLoadReport]
        One report per file, in load order.
    """
    folder = Path(folder)
    files = sorted((folder / "tables").glob("*.csv*"))
    truth = folder / "ground_truth_incidents.csv"
    if truth.exists():
        files.append(truth)
    for lang in ("en", "fr"):
        files += sorted((folder / "pages" / lang).glob("*.xlsx"))
    if not files:
        raise UnreadableFileError("no sample files found", path=folder, hint="Run `make sample-data` first")
    # the twin writes its page exports in UTC (as a BC user set to UTC would see them)
    return load_files(ws, files, environment=environment, company=company, progress=progress, timezone="UTC")


def report_json(reports: Iterable[FileLoadReport]) -> str:
    """The reports as JSON (for ``--json`` output)."""
    return json.dumps([r.details | {"load_id": r.load_id, "seconds": round(r.seconds, 3)} for r in reports],
                      default=str, indent=2)
