"""Stage 3: a recognised part's typed values (a view) and the checks on them.

Values are parsed in DuckDB (:mod:`.parse`); a value that does not parse is refused naming its file,
row and column; rows repeated exactly are dropped and counted; the environment and company columns
must hold one value each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from ..schema import TABLES
from ..sql import ident, lit
from . import captions as cap
from .errors import DuplicateRowError, EnvironmentConflictError, UnrecognisedFileError, ValueParseError
from .parse import (
    DATE_FORMS,
    DateProfile,
    TableNames,
    datetime_sql,
    duration_sql,
    folded_sql,
    guid_sql,
    int_sql,
    map_values,
    mapped_sql,
    parse_direction,
    profile_datetimes,
    text_sql,
    unforeseen_sql,
)
from .read import Part, Temp
from .recognise import Match

NULL_GUID = "00000000-0000-0000-0000-000000000000"
PROFILE_ROWS = 20_000  # rows that decide a big part's date forms first (checked on every row after)
_MAX_CATEGORIES = 1000  # distinct values an option / Yes-No column may have


@dataclass
class Parsed:
    """A recognised part's typed values (a view, ``table``) and what the checks on them found."""

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
    joined: bool = False  # its canonical rows join workspace tables (set by canonical_sql)
    links: dict[str, int] = field(default_factory=dict)  # links its canonical rows made (set by canonical_sql)
    # (flag, typed column, raw column) of "a non-blank value that did not parse": a one-pass load counts
    # these after its INSERT instead of testing each row inside it (which computes every value twice)
    unparsed: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def layout(self) -> cap.Layout:
        """The layout the part was recognised as."""
        return self.match.layout

    def has(self, target: str) -> bool:
        """Whether a column of the part was matched to canonical column ``target``."""
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


def typed(con: duckdb.DuckDBPyConnection, part: Part, match: Match, temp: Temp, *,
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
    warnings: list[str] = _repeated_columns(con, part, match)
    dates = {f"c{m.index}": m.header for m in match.columns if m.column is not None and m.column.kind == cap.DATETIME}
    sampled = not full_profile and part.rows > PROFILE_ROWS
    profiles = profile_datetimes(con, part.view, dates, lang=match.language, where=part.where(header_row=0),
                                 limit=PROFILE_ROWS if sampled else None)
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
            blank = f"coalesce(trim({rv}, '{{}}'), '') IN ('', '{NULL_GUID}')"  # BC's blank GUID is the null GUID
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
            return typed(con, part, match, temp, any_known=any_known, full_profile=True, timezone=timezone)
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


def _repeated_columns(con: duckdb.DuckDBPyConnection, part: Part, match: Match) -> list[str]:
    """A header that repeats a matched column's: refused when its values differ, else a warning (it is ignored)."""
    by_header = {cap.normalize(m.header): m for m in match.columns if m.column is not None and m.header.strip()}
    out = []
    for m in match.columns:
        first = by_header.get(cap.normalize(m.header)) if m.column is None and m.header.strip() else None
        if first is None:
            continue
        a, b = ident(f"c{first.index}"), ident(f"c{m.index}")
        n, row = con.execute(f"SELECT count(*), min(_row) FROM {part.view} WHERE coalesce(trim({a}), '') <> "
                             f"coalesce(trim({b}), '')").fetchall()[0]
        if n:
            raise UnrecognisedFileError(
                f"the column {m.header!r} appears twice (columns {first.index + 1} and {m.index + 1}) with different "
                f"values in {n:,} row(s)", path=part.path, sheet=part.sheet, row=row, column=m.header,
                hint="Remove the column that is not BC's (or rename it) and load again")
        out.append(f"the column {m.header!r} appears twice (columns {first.index + 1} and {m.index + 1}) with the same "
                   "values; the second is ignored")
    return out


def _key_columns(parsed: Parsed) -> list[str]:
    spec = TABLES[parsed.layout.table]
    key = [k for k in spec.key if k not in ("environment", "company")]
    if parsed.layout.kind == "page-5338":  # no key: only rows identical in every column are duplicates
        key = [c for c in parsed.columns if c != "_row" and not c.startswith(("_raw_", "_f"))]
    return [k for k in key if k in parsed.columns]


def _dedupe(con: duckdb.DuckDBPyConnection, parsed: Parsed, temp: Temp) -> None:
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
