"""Load BC export files (page and table exports, CSV and xlsx, in English, French or German) into a workspace.

One file is one load: it is read, recognised and parsed into temporary tables first (nothing in the
workspace changes while that happens), then merged and linked in one transaction
(:meth:`Workspace.loading`), so a file that fails leaves the workspace file exactly as it was.

A load runs the stages of a pipeline, each a module returning values, around one *part* (a CSV or
one sheet): :mod:`.read` (cells as text in DuckDB) -> :mod:`.recognise` (layout and columns) ->
:mod:`.typed` (typed values and their checks) -> :mod:`.canonical` (canonical rows) -> this module,
which merges them (:meth:`Workspace.upsert`, or one INSERT when nothing is there to merge with) and
links them (:mod:`.link`), and writes the load report.

* A big first load of a table (or page 5339) export goes in one pass: the first rows decide the layout
  and date forms, and one INSERT parses, checks and inserts every row; anything those rows did not
  foresee rolls the attempt back and the careful path explains it.
* Page exports show the BC user's local time: ``timezone`` converts it to UTC (table exports are UTC).

Use :func:`load_files` (one report per file), :func:`format_report` to show the reports and
:func:`load_sample_data` for the repository's ``sample_data/``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ..schema import FIDELITY_PAGE, FIDELITY_TABLE, TABLES
from ..sql import ident
from ..workspace import LoadReport, UpsertResult, Workspace
from . import link
from .canonical import canonical_sql, resolve_env
from .errors import SourceError, UnreadableFileError, UnrecognisedFileError
from .parse import check_timezone
from .read import SAMPLE_ROWS, Hasher, Part, Temp, read_text, read_workbook, sniff_bytes, sniff_text
from .recognise import Match, recognise
from .typed import Parsed, typed


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


def _link_count(report: FileLoadReport, what: str, n: int) -> None:
    if n:
        report.links[what] = report.links.get(what, 0) + int(n)


def _add_links(report: FileLoadReport, parsed: Parsed) -> None:
    for what, n in parsed.links.items():
        _link_count(report, what, n)


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
    if not kinds & {"table-5339", "table-5331", "page-5333"}:
        return
    n = link.couple_skipped_records(con, env, company)
    _updated(load.report, "skipped_records", n["linked"])
    _updated(load.report, "couplings", n["filled"])
    if n["made"]:
        load.report.tables.setdefault("couplings", UpsertResult("couplings")).inserted += n["made"]
    if n["replaced"]:
        load.count_deleted("couplings", n["replaced"])
    for what, key in (("skipped records linked to couplings", "linked"), ("couplings filled from skipped records",
                      "filled"), ("couplings made from page 5333 lines", "made"),
                      ("page-made couplings replaced by table couplings", "replaced")):
        _link_count(report, what, n[key])


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


def _load_csv_fast(ws: Workspace, path: Path, head: bytes, compressed: bool, temp: Temp, *,
                   environment: str | None, company: str | None, kind: str, hasher: Hasher,
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
    src = sniff_text(path, head, compressed, temp)
    n = src.width
    rows = [(r + [""] * n)[:n] for r in src.sample]
    frame = pd.DataFrame({f"c{i}": [r[i] for r in rows] for i in range(n)})
    frame.insert(0, "_row", np.arange(src.header_row + 2, src.header_row + 2 + len(rows), dtype=np.int64))
    view = temp.view("rawv", f"SELECT * FROM {temp.frame(frame)}")
    part = Part(path, None, src.headers + [""] * (n - len(src.headers)), src.header_row + 1, view,
                src.sample[:SAMPLE_ROWS], len(rows))

    def feed(insert: Callable[[], int]) -> int:
        # the parsing views were built on the first rows; from now on they read the whole file
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT CAST(0 AS BIGINT) AS _row, * "
                    f"FROM {src.read_csv_sql()}")
        return insert()

    return _one_pass(ws, part, temp, _FAST_KINDS, feed, environment=environment, company=company, kind=kind,
                     hasher=hasher, started=started, timezone=timezone)


def _one_pass(ws: Workspace, part: Part, temp: Temp, kinds: Sequence[str], feed: Callable[[Callable[[], int]], int],
              *, environment: str | None, company: str | None, kind: str, hasher: Hasher,
              started: float, timezone: str | None, count_after: bool = False) -> FileLoadReport | None:
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
        parsed = typed(con, part, match, temp, any_known=True, timezone=timezone)
        env, comp, env_from = resolve_env([parsed], environment, company, part.path)
    except SourceError:
        return None
    if parsed.rejected or any(p.order and not p.decided_by.startswith("values") for p in parsed.dates.values()):
        return None  # repeated rows, or a date order the first rows cannot decide: read the whole file first
    table = match.layout.table
    if con.execute(f"SELECT count(*) FROM {table} WHERE environment = ? AND company = ?", [env, comp]).fetchall()[0][0]:
        return None  # rows to merge with: the careful path
    # a sheet's cells are a DuckDB table: counting its blanks again after the INSERT costs less than testing
    # each value twice inside it; a CSV would be read a second time, so its rows are tested in the INSERT
    unparsed = {f for f, _, _ in parsed.unparsed} if count_after else set()
    flags = [c for c in parsed.columns if c.startswith("_f") and c not in unparsed]
    path = part.path
    report = FileLoadReport(source=str(path), kind=match.layout.kind, path=str(path), environment=env,
                            company=comp, environment_from=env_from, one_pass=True,
                            timezone=timezone if match.layout.page else None)
    sql = canonical_sql(con, parsed, env, comp)
    _add_links(report, parsed)
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
            if count_after:
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


def _load_sheet_fast(ws: Workspace, part: Part, temp: Temp, *, environment: str | None, company: str | None,
                     kind: str, hasher: Hasher, started: float, timezone: str | None) -> FileLoadReport | None:
    """Load a big sheet into a table with no rows of its environment/company yet, in one pass.

    As :func:`_load_csv_fast`: the sheet's first rows decide the layout and date forms, then one
    INSERT parses, checks and inserts every row; None sends the caller on to the careful path with
    the same part.
    """
    # the first rows copied (the sheet's view filters every row it reads), for the few queries on them
    head = temp.table("head", f"SELECT * FROM {part.view} WHERE _row <= {part.header_row + _HEAD_ROWS}")
    first = dataclasses.replace(part, rows=_HEAD_ROWS, view=temp.view("headv", f"SELECT * FROM {head}"))

    def feed(insert: Callable[[], int]) -> int:
        ws.con.execute(f"CREATE OR REPLACE TEMP VIEW {first.view} AS SELECT * FROM {part.view}")
        return insert()

    return _one_pass(ws, first, temp, _FAST_SHEET_KINDS, feed, environment=environment, company=company,
                     kind=kind, hasher=hasher, started=started, timezone=timezone, count_after=True)


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
    hasher = Hasher(path)  # sha256 of the bytes, computed while DuckDB reads (both release the GIL)
    hasher.start()
    con = ws.con
    temp = Temp(con)
    stage = _stager(bar)
    try:
        stage("read")
        form = sniff_bytes(path, head)
        hasher.text = form == "text" and not head.startswith((b"\xff\xfe", b"\xfe\xff"))  # (UTF-16 is full of NULs)
        # not inside a caller's transaction: a failed attempt there could not be rolled back on its own
        if form != "workbook" and path.stat().st_size >= _FAST_MIN_BYTES and not ws.in_transaction:
            fast = _load_csv_fast(ws, path, head, form == "gzip", temp, environment=environment, company=company,
                                  kind=kind, hasher=hasher, started=started, timezone=timezone)
            if fast is not None:
                return fast
            temp.close()  # start over: the careful path reads the file into its own temporary tables
        if form == "workbook":
            parts = read_workbook(path, temp)
            if len(parts) == 1 and parts[0].rows > 4 * _HEAD_ROWS and not parts[0].package and not ws.in_transaction:
                fast = _load_sheet_fast(ws, parts[0], temp, environment=environment, company=company, kind=kind,
                                        hasher=hasher, started=started, timezone=timezone)
                if fast is not None:
                    return fast
        else:
            parts = read_text(path, head, form == "gzip", temp)
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
        parsed = [typed(con, part, m, temp, timezone=timezone) for part, m in matched]
        digest = hasher.result()
        env, comp, env_from = resolve_env(parsed, environment, company, path)
        kinds = sorted({p.layout.kind for p in parsed})
        load_kind = kinds[0] if len(kinds) == 1 else "config-package"
        if any(p.part.package for p in parsed):
            load_kind = "config-package" if len(kinds) > 1 else f"config-package {kinds[0]}"
        report = FileLoadReport(source=str(path), kind=load_kind, path=str(path), environment=env, company=comp,
                                environment_from=env_from, content_hash=digest,
                                timezone=timezone if any(p.layout.page for p in parsed) else None)
        zone = timezone if any(p.layout.page for p in parsed) else None
        earlier = _same_load(ws, digest, load_kind, env, comp, zone)
        if earlier is not None:  # the same bytes, read the same way: nothing to write (the file stays untouched)
            report.parts = [_part_details(p) for p in parsed]
            report.warnings = [f"this file was loaded before, unchanged (load #{earlier}): nothing was written"]
            report.seconds = time.perf_counter() - started
            return report
        stage("merge")
        with ws.loading(source=str(path), kind=load_kind, content_hash=digest, environment=env, company=comp,
                        fidelity=FIDELITY_TABLE) as load:
            for p in sorted(parsed, key=lambda p: _ORDER.index(p.layout.kind)):
                if p.layout.kind == "page-5338":
                    _replace_other_zone(load, report, p, temp, digest, timezone, env, comp)
                sql = canonical_sql(con, p, env, comp)
                _add_links(report, p)
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


def _same_load(ws: Workspace, digest: str, kind: str, env: str, company: str, zone: str | None) -> int | None:
    """The newest load of the same bytes as the same kind and scope, if it read them in the same time zone."""
    row = ws.con.execute(
        "SELECT load_id, coalesce(details->>'timezone', 'UTC') FROM loads WHERE content_hash = ? AND kind = ? "
        "AND environment = ? AND company = ? ORDER BY load_id DESC LIMIT 1", [digest, kind, env, company]).fetchall()
    return row[0][0] if row and row[0][1] == (zone or "UTC") else None


def _replace_other_zone(load: Any, report: FileLoadReport, parsed: Parsed, temp: Temp, digest: str,
                        timezone: str | None, env: str, company: str) -> None:
    """Delete the jobs this same page 5338 export gave when it was loaded in another time zone.

    Page jobs have no key but their (inferred) id, made of their start time: the same file read in another
    zone would add every job a second time. Its rows as read in that zone pair with those jobs, which go;
    their errors are linked again by time.
    """
    con = load.con
    zone = timezone or "UTC"
    others = [z for (z,) in con.execute(
        "SELECT DISTINCT coalesce(details->>'timezone', 'UTC') FROM loads WHERE content_hash = ? AND environment = ? "
        "AND company = ? AND kind = 'page-5338'", [digest, env, company]).fetchall() if z != zone]
    for other in others:
        old = typed(con, parsed.part, parsed.match, temp, timezone=None if other == "UTC" else other)
        ids = temp.table("oldjobs", f"SELECT job_id FROM ({canonical_sql(con, old, env, company)})")
        scope = link.scope_sql(env, company)
        con.execute(f"UPDATE job_errors SET job_id = NULL, job_inferred = NULL WHERE {scope} AND job_inferred "
                    f"AND job_id IN (SELECT job_id FROM {ids})")
        n = con.execute(f"DELETE FROM jobs WHERE {scope} AND inferred AND job_id IN (SELECT job_id FROM {ids})"
                        ).fetchall()[0][0]
        if n:
            load.count_deleted("jobs", int(n))
            _link_count(report, f"jobs of this export read in {other} before, replaced", int(n))


def _first_rows(ws: Workspace, table: str, sql: str, env: str, company: str) -> bool:
    """Whether the rows of ``sql`` can go into ``table`` by a plain INSERT.

    They can when the table has no rows of this environment and company yet and no row lacks its key (keys
    within one file are unique after :func:`_dedupe`); otherwise :meth:`Workspace.upsert` merges them. Raises
    :class:`SchemaError` for a value that does not fit its column, as the upsert would.
    """
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
            if not found:
                raise UnreadableFileError("the folder holds no export files (.xlsx, .xls, .csv, .csv.gz, .txt)", path=p,
                                          hint="Give the folder the exports were saved to, or the files themselves")
            out.extend(sorted(found, key=lambda f: ("pages" in f.parts, str(f))))
        elif p.exists() and not p.is_file():  # a named pipe or a device would block the reader forever
            raise UnreadableFileError("this is not a regular file (a pipe, socket or device)", path=p,
                                      hint="Save the export to a file and load that")
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
