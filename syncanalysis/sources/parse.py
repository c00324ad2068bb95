"""Locale-aware, vectorised parsing of exported values, as DuckDB SQL over a table of VARCHAR columns.

Every reader (CSV through ``read_csv``, xlsx through fastexcel) lands its cells as text in a DuckDB table;
the functions here build the SQL expressions that turn one text column into its canonical type, so
parsing runs set-based in DuckDB, never row by row in Python. Categorical columns (options, Yes/No,
Direction) are mapped on their *distinct* values.

Dates: ISO (with an optional time zone), Excel serial numbers, and day-first or month-first dates with
``/``, ``.`` or ``-`` and 24-hour or AM/PM times. The order (day-first or month-first) is decided once per
column from its values (a first number above 12 means day-first, a second number above 12 month-first);
when no value decides it, the hint wins: an AM/PM time means month-first (BC's en-US format), the
``.`` separator or a French/German file means day-first, otherwise month-first. A column with values of
both orders fits no locale and is refused (:func:`profile_datetimes`).

Whole numbers accept thousands separators (``1 234``, ``1.234``, ``1,234``, no-break and narrow
no-break spaces, ``'``) and a zero decimal part (``18,0``); a non-zero decimal part is refused.
Durations are BC's Duration text in English, French or German ("2 seconds 340 milliseconds").

The ``parse_*`` functions apply the same SQL to a sequence of values (for tests and notebooks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from .. import bc
from ..sql import ident, lit  # noqa: F401 - re-exported: the sources use them from here
from . import captions as cap
from .errors import SourceError, ValueParseError


def _v(col: str) -> str:
    return f"trim({ident(col)})"


# -- dates ----------------------------------------------------------------------------------------
_LOCAL = r"^(\d{1,2})([./-])(\d{1,2})[./-](\d{2}|\d{4})(\D|$)"
_SERIAL = r"\d{1,7}([.,]\d+)?"
# Z, +hh:mm, +hhmm or +hh (a real offset: -14:00 .. +14:00), maybe after a space
_TZ = r"^\d{4}-\d\d-\d\d[T ].*(Z|[+-](0\d|1[0-4])(:?[0-5]\d)?)$"
# what is read as ISO: a date, a 24-hour time, a fraction, a real offset (DuckDB's cast also takes '19:32:26 PM')
_ISO = r"\d{4}-\d\d-\d\d([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?)?\s?(Z|[+-](0\d|1[0-4])(:?[0-5]\d)?)?"

DATE_FORMS = ("dd/mm/yyyy, dd.mm.yyyy, m/d/yyyy (with h:mm:ss AM/PM), yyyy-mm-dd hh:mm:ss (ISO) "
              "or an Excel serial date")


@dataclass
class DateProfile:
    """How one column's dates are read: day or month first, separators, AM/PM, serial numbers, zones."""

    column: str
    order: str | None = None  # "dmy", "mdy" or None (no local dates in the column)
    separators: tuple[str, ...] = ()
    ampm: bool = False
    serial: bool = False
    tz: bool = False
    decided_by: str = ""  # why this order: "values", "AM/PM", "separator", "language", "default"
    two_digit_years: bool = False

    def describe(self) -> str:
        """One phrase for the load report."""
        forms = []
        if self.order:
            sep = self.separators[0] if self.separators else "/"
            fmt = sep.join(("dd", "mm", "yyyy") if self.order == "dmy" else ("m", "d", "yyyy"))
            forms.append(f"{fmt} ({'decided by ' + self.decided_by})")
        if self.serial:
            forms.append("Excel serial dates")
        if self.tz:
            forms.append("ISO with time zone (converted to UTC)")
        return ", ".join(forms) or "ISO"


def _formats(p: DateProfile) -> list[str]:
    out = []
    for s in p.separators or ("/",):
        date = f"%d{s}%m{s}" if p.order == "dmy" else f"%m{s}%d{s}"
        times = ([" %I:%M:%S %p", " %I:%M %p", " %I:%M:%S.%f %p"] if p.ampm else []) + \
                [" %H:%M:%S", " %H:%M", " %H:%M:%S.%f", ""]
        for year in ("%y", "%Y") if p.two_digit_years else ("%Y",):  # %Y would read "26" as the year 26
            out += [date + year + t for t in times]
    return out


def profile_datetimes(con: duckdb.DuckDBPyConnection, table: str, columns: Mapping[str, str], *,
                      lang: str | None = None, where: Mapping[str, object] | None = None,
                      limit: int | None = None) -> dict[str, DateProfile]:
    """Decide how each date column of ``table`` is read (one scan, plus one over non-ISO values if any).

    Parameters
    ----------
    con, table
        The connection and the table (or view) of VARCHAR columns with a ``_row`` column (1-based).
    columns
        Raw column name -> the header it had (for messages).
    lang
        The file's language, a hint for columns whose values do not decide the date order.
    where
        Context for errors: ``path``, ``sheet``, ``header_row`` (added to ``_row``).
    limit
        Profile only this many rows (an optimistic guess the caller must verify on every row: a
        value the guess does not read shows as unparsed, and the caller profiles again in full).

    Raises
    ------
    ValueParseError
        When a column has both a value that must be day-first and one that must be month-first.
    """
    where = dict(where or {})
    if not columns:
        return {}
    if limit is not None:
        table = f"(SELECT * FROM {table} LIMIT {int(limit)})"
    cols = list(columns)
    non_iso = [f"count(*) FILTER ({_v(c)} <> '' AND {_iso_sql(_v(c))} IS NULL)" for c in cols]
    tz = [f"bool_or({_v(c)} LIKE '____-__-__%' AND regexp_matches({_v(c)}, {lit(_TZ)}))" for c in cols]
    filled = [f"count(*) FILTER ({_v(c)} <> '')" for c in cols]
    row = con.execute(f"SELECT {', '.join(non_iso + tz + filled)} FROM {table}").fetchall()[0]
    out = {c: DateProfile(c, tz=bool(row[len(cols) + i])) for i, c in enumerate(cols)}
    for i, c in enumerate(cols):
        if not row[i]:
            continue
        v = _v(c)
        # the date part's distinct values decide the order (a few hundred, however many rows)
        stats = con.execute(
            "SELECT max(a), max(b), min(r) FILTER (a > 12), min(r) FILTER (b > 12), "
            "list(DISTINCT sep) FILTER (sep <> ''), bool_or(ampm), "
            f"count(*) FILTER (regexp_full_match(d, {lit(_SERIAL)})), bool_or(length(y) = 2) "
            "FROM (SELECT *, TRY_CAST(s.a AS INT) AS a, TRY_CAST(s.b AS INT) AS b, s.sep, s.y FROM "
            f"(SELECT *, regexp_extract(d, {lit(_LOCAL)}, ['a', 'sep', 'b', 'y']) AS s FROM "
            "(SELECT split_part(v, ' ', 1) AS d, min(_row) AS r, bool_or(upper(right(v, 2)) IN ('AM', 'PM')) AS ampm "
            f"FROM (SELECT _row, {v} AS v FROM {table}) WHERE v <> '' AND {_iso_sql('v')} IS NULL GROUP BY d)))"
        ).fetchall()[0]
        a_max, b_max, a_row, b_row, seps, ampm, n_serial, yy = stats
        p = out[c]
        p.two_digit_years = bool(yy)
        # serial numbers only where no value is ISO (a number among ISO date/times is no date)
        p.serial = bool(n_serial) and row[i] == row[2 * len(cols) + i]
        p.ampm = bool(ampm)
        p.separators = tuple(sorted(s for s in (seps or []) if s))
        if a_max is None:  # no local dates at all (serial numbers or garbage)
            continue
        if a_max > 12 and b_max > 12:
            first, second = sorted([a_row, b_row])
            values = dict(con.execute(
                f"SELECT _row, {ident(c)} FROM {table} WHERE _row IN ({first}, {second})").fetchall())
            order_first = "day-first" if first == a_row else "month-first"
            raise ValueParseError(
                f"this date column fits no locale: row {first + where.get('header_row', 0)} "
                f"({values[first]!r}) can only be {order_first}, this one only the other way round",
                path=where.get("path"), sheet=where.get("sheet"), row=second + where.get("header_row", 0),
                column=columns[c], value=values[second],
                hint="Export the dates in one format (e.g. ISO yyyy-mm-dd hh:mm:ss) and load again")
        if a_max > 12:
            p.order, p.decided_by = "dmy", "values (a day above 12)"
        elif b_max > 12:
            p.order, p.decided_by = "mdy", "values (a day above 12)"
        elif p.ampm:
            p.order, p.decided_by = "mdy", "AM/PM times (en-US); no day above 12"
        elif p.separators == (".",):
            p.order, p.decided_by = "dmy", "the '.' separator; no day above 12"
        elif lang in ("fr", "de"):
            p.order, p.decided_by = "dmy", f"the file's language ({lang}); no day above 12"
        else:
            p.order, p.decided_by = "mdy", "default (en-US); no day above 12"
    return out


def unforeseen_sql(col: str, profile: DateProfile) -> list[str]:
    """SQL flags for values of text column ``col`` that ``profile`` (made on some rows) would read wrongly.

    Such values are read wrongly without failing: an ISO time with an offset (read as if it had none) and a
    two-digit year (read as year 26). A profile of every row foresees them; one of the first rows must be
    redone when a flag is up.
    """
    raw = ident(col)
    flags = []
    # cheap tests on the raw text (no trim) first: the regular expression runs on the few values that pass
    if not profile.tz:
        flags.append(f"((contains({raw}, 'Z') OR contains({raw}, '+') OR {raw} LIKE '%:%-%') "
                     f"AND regexp_matches({_v(col)}, {lit(_TZ)}))")
    if not profile.two_digit_years:  # an anchored expression fails within a few characters: cheap as it is
        flags.append(f"regexp_matches({raw}, '^\\s*\\d{{1,2}}[./-]\\d{{1,2}}[./-]\\d{{2}}(\\D|$)')")
    return flags


def _iso_sql(v: str) -> str:
    # only text that starts like yyyy-... is tried as ISO: a failing cast costs more than the test
    return f"CASE WHEN substr({v}, 5, 1) = '-' AND regexp_full_match({v}, {lit(_ISO)}) THEN TRY_CAST({v} AS TIMESTAMP) END"


def datetime_sql(col: str, profile: DateProfile | None = None, zone: str | None = None) -> str:
    """SQL turning text column ``col`` into a UTC TIMESTAMP as ``profile`` says (NULL where it does not parse).

    Parameters
    ----------
    col
        The text column.
    profile
        How the column's dates are written (:func:`profile_datetimes`); ISO only when None.
    zone
        The IANA time zone (e.g. ``Europe/Paris``) of values without an offset, converted from it to
        UTC; None or ``UTC`` keeps them as they are. A local time shown twice when clocks go back is
        read as the second (standard) time. Values with an offset are converted by their offset.

    Returns
    -------
    str
        A SQL expression.
    """
    p = profile or DateProfile(col)
    v = _v(col)
    naive = [_iso_sql(v)]
    if p.serial:
        # Excel serial: days since 1899-12-30, the fraction is the time; rounded to the millisecond
        naive.append(f"CASE WHEN regexp_full_match({v}, {lit(_SERIAL)}) THEN TIMESTAMP '1899-12-30' + "
                     f"to_microseconds(CAST(round(CAST(replace({v}, ',', '.') AS DOUBLE) * 86400000) AS BIGINT) * 1000) END")
    if p.order:
        fmts = "[" + ", ".join(lit(f) for f in _formats(p)) + "]"
        naive.append(f"try_strptime({v}, {fmts})")
    local = naive[0] if len(naive) == 1 else f"coalesce({', '.join(naive)})"
    if zone is not None and zone != "UTC":
        local = f"timezone('UTC', timezone({lit(zone)}, {local}))"
    if p.tz:  # a value with an offset is read by it or not at all (never as if it had none)
        aware = f"TRY_CAST(regexp_replace({v}, '\\s+([+-]\\d\\d(:?\\d\\d)?)$', '\\1') AS TIMESTAMPTZ)"
        local = (f"CASE WHEN regexp_matches({v}, {lit(_TZ)}) THEN CAST({aware} AT TIME ZONE 'UTC' AS TIMESTAMP) "
                 f"ELSE {local} END")
    return f"CASE WHEN {v} = '' THEN NULL ELSE {local} END"


def check_timezone(con: duckdb.DuckDBPyConnection, zone: str | None) -> str | None:
    """Check a time zone name against the database's (ICU) zones.

    Parameters
    ----------
    con
        A DuckDB connection.
    zone
        An IANA name in any case (``europe/paris``), ``UTC`` (also ``Z``, ``GMT``), or None.

    Returns
    -------
    str or None
        The name as the database spells it (``Europe/Paris``), ``UTC``, or None for None.

    Raises
    ------
    SourceError
        When the database knows no such zone (naming the closest ones and what to give).
    """
    if zone is None:
        return None
    zone = str(zone).strip()
    if zone.upper() in ("UTC", "Z", "GMT"):
        return "UTC"
    found = con.execute("SELECT name FROM pg_timezone_names() WHERE lower(name) = lower(?) ORDER BY name LIMIT 1",
                        [zone]).fetchall()
    if found:
        return found[0][0]
    near = [r[0] for r in con.execute(
        "SELECT name FROM pg_timezone_names() WHERE name LIKE '%/%' ORDER BY jaro_winkler_similarity(lower(name), "
        "lower(?)) DESC LIMIT 3", [zone]).fetchall()]
    raise SourceError(f"unknown time zone {zone!r} (closest: {', '.join(near)})",
                      hint="Give the BC user's time zone as an IANA name such as 'Europe/Paris' or "
                           "'America/New_York' (BC's My Settings shows a Windows name like '(UTC+01:00) Brussels, "
                           "Copenhagen, Madrid, Paris': take the city's IANA zone), or 'UTC'")


# -- numbers --------------------------------------------------------------------------------------
def int_sql(col: str) -> str:
    """SQL turning text into a BIGINT, accepting thousands separators and a zero decimal part."""
    v = _v(col)
    cleaned = f"regexp_replace({v}, '[\\s\\x{{00A0}}\\x{{202F}}'']+', '', 'g')"
    slow = (f"list_transform([{cleaned}], lambda _w: CASE "
            r"WHEN regexp_full_match(_w, '[+-]?\d+') THEN TRY_CAST(_w AS BIGINT) "
            r"WHEN regexp_full_match(_w, '[+-]?\d{1,3}(,\d{3})+') THEN TRY_CAST(replace(_w, ',', '') AS BIGINT) "
            r"WHEN regexp_full_match(_w, '[+-]?\d{1,3}(\.\d{3})+') THEN TRY_CAST(replace(_w, '.', '') AS BIGINT) "
            r"WHEN regexp_full_match(_w, '[+-]?\d+[.,]0*') THEN TRY_CAST(regexp_extract(_w, '^[+-]?\d+') AS BIGINT) "
            "END)[1]")
    return (f"CASE WHEN {v} = '' THEN NULL WHEN regexp_full_match({v}, '[+-]?\\d+') THEN TRY_CAST({v} AS BIGINT) "
            f"ELSE {slow} END")


def duration_sql(col: str) -> str:
    """SQL turning BC's Duration text (EN/FR/DE units) into milliseconds; a bare number is milliseconds.

    One regular expression per unit size (no per-value lambdas): ``2 seconds 340 milliseconds`` -> 2340.
    """
    v = _v(col)
    by_size: dict[int, list[str]] = {}
    for word, ms in cap.duration_units().items():
        by_size.setdefault(ms, []).append(re.escape(word))
    every = "|".join(sorted((w for ws in by_size.values() for w in ws), key=len, reverse=True))
    valid = rf"(?i)(\s*\d+\s*(?:{every})\s*)+"
    terms = []
    for ms, words in sorted(by_size.items()):
        alt = "|".join(sorted(words, key=len, reverse=True))
        rx = rf"(?i)(?:^|\s)(\d+)\s*(?:{alt})(?:\s|$)"
        terms.append(f"coalesce(TRY_CAST(regexp_extract({v}, {lit(rx)}, 1) AS BIGINT), 0) * {ms}")
    return (f"CASE WHEN {v} = '' THEN NULL WHEN regexp_full_match({v}, '\\d+') THEN TRY_CAST({v} AS BIGINT) "
            f"WHEN regexp_full_match({v}, {lit(valid)}) THEN {' + '.join(terms)} END")


# -- identifiers and text -------------------------------------------------------------------------
def guid_sql(col: str) -> str:
    """SQL turning ``{GUID}`` / ``guid`` text into a UUID; the null GUID and blanks become NULL."""
    v = _v(col)
    cast = f"CASE WHEN left({v}, 1) = '{{' THEN TRY_CAST(trim({v}, '{{}}') AS UUID) ELSE TRY_CAST({v} AS UUID) END"
    return f"CASE WHEN {v} = '' THEN NULL ELSE nullif({cast}, '00000000-0000-0000-0000-000000000000'::UUID) END"


def text_sql(col: str, max_len: int | None = None) -> str:
    """SQL keeping text verbatim (markup included), blanks as NULL, cut to ``max_len`` characters."""
    c = ident(col)
    body = f"CASE WHEN strlen({c}) <= {int(max_len)} THEN {c} ELSE left({c}, {int(max_len)}) END" if max_len else c
    # only short texts can be all blanks: long ones are not trimmed (copied) just to find out
    return f"CASE WHEN {c} = '' OR (strlen({c}) < 32 AND trim({c}) = '') THEN NULL ELSE {body} END"


def mapped_sql(col: str, mapping: Mapping[str, object], sql_type: str, blank: object = None) -> str:
    """SQL mapping the exact raw values of a categorical column (its distinct values) to canonical ones.

    Blank cells (empty, spaces or NULL) give ``blank``; values missing from ``mapping`` become NULL (and
    are reported by the readers' value check).
    """
    c = ident(col)
    blank_sql = _sql_value(blank) if blank is not None else "NULL"
    whens = "".join(f" WHEN {c} = {lit(k)} THEN {_sql_value(v)}" for k, v in mapping.items() if v is not None)
    return f"CAST(CASE WHEN coalesce(trim({c}), '') = '' THEN {blank_sql}{whens} END AS {sql_type})"


def _sql_value(v: object) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    return lit(str(v))


def map_values(values: Iterable[str | None], table: Mapping[str, object]) -> dict[str, object]:
    """Map distinct raw values through a caption table (normalized lookup).

    Returns only the non-blank values that are known; the others are left out (so they parse to NULL).
    """
    out: dict[str, object] = {}
    for raw in values:
        if raw is None:
            continue
        key = cap.normalize(raw)
        if key and key in table:
            out[raw] = table[key]
    return out


# -- page 5338's Direction text -------------------------------------------------------------------
@dataclass
class DirectionText:
    """One parsed Direction text: the source and destination table ids and what they mean."""

    text: str
    source: int | None
    destination: int | None
    synch_direction: str | None
    language: str | None = None
    captions: tuple[str, str] = ("", "")


@dataclass
class TableNames:
    """Known table captions (any language) -> table id, including those of the workspace's mappings."""

    by_caption: dict[str, int] = field(default_factory=dict)

    @classmethod
    def default(cls, extra: Mapping[str, int] | None = None) -> TableNames:
        """The captions of every known table, plus ``extra`` (caption -> table id, normalized here)."""
        names = dict(cap.caption_to_table())
        for k, v in (extra or {}).items():
            names[cap.normalize(k)] = v
        return cls(names)


def parse_direction(text: str, names: TableNames | None = None) -> DirectionText | None:
    """Parse page 5338's Direction text (``"Customer to Dataverse Account."``, ``"Client vers Compte Dataverse."``).

    The text is split where a known table caption ends and another begins, so the connector word of any
    language works; a BC table first means ToIntegrationTable, a Dataverse table first FromIntegrationTable.
    Returns ``None`` for text that names no two known tables.

    Examples
    --------
    >>> d = parse_direction("Dataverse Account to Customer.")
    >>> (d.source, d.destination, d.synch_direction)
    (5341, 18, 'FromIntegrationTable')
    """
    names = names or TableNames.default()
    t = cap.normalize(text).rstrip(".").strip()
    if not t:
        return None
    best: DirectionText | None = None
    for src_cap, src in names.by_caption.items():
        if not t.startswith(src_cap + " "):
            continue
        rest = t[len(src_cap):].strip()
        for dst_cap, dst in names.by_caption.items():
            if not rest.endswith(" " + dst_cap):
                continue
            connector = rest[: -len(dst_cap)].strip()
            if not connector or " " in connector:
                continue
            if cap.is_dataverse_table(src) == cap.is_dataverse_table(dst):
                continue
            lang = next((lg for lg, w in cap.direction_connectors().items() if cap.normalize(w) == connector), None)
            cand = DirectionText(text, src, dst, bc.FROM_INTEGRATION if cap.is_dataverse_table(src)
                                 else bc.TO_INTEGRATION, lang, (src_cap, dst_cap))
            if best is None or len(src_cap) + len(dst_cap) > sum(map(len, best.captions)):
                best = cand
    return best


# -- the same SQL on a sequence, for tests and notebooks -------------------------------------------
def _frame(values: Sequence[object]) -> pd.DataFrame:
    vals = ["" if v is None else str(v) for v in values]
    return pd.DataFrame({"c": pd.Series(vals, dtype=object), "_row": range(1, len(vals) + 1)})


def _run(values: Sequence[object], expr: str | None = None, *, profile_lang: str | None = None,
         dates: bool = False) -> tuple[pd.Series, DateProfile | None]:
    con = duckdb.connect()
    try:
        con.register("raw_values", _frame(values))
        prof = None
        if dates:
            prof = profile_datetimes(con, "raw_values", {"c": "value"}, lang=profile_lang)["c"]
            expr = datetime_sql("c", prof)
        got = con.execute(f"SELECT {expr} AS v FROM raw_values ORDER BY _row").df()["v"]
        return got, prof
    finally:
        con.close()


def parse_datetimes(values: Sequence[object], *, lang: str | None = None) -> tuple[pd.Series, DateProfile]:
    """Parse a column of date texts as a loader would.

    Returns the timestamps (NaT where blank or unparsable) and the column's :class:`DateProfile`. Raises
    :class:`ValueParseError` for a column that fits no locale.
    """
    got, prof = _run(values, dates=True, profile_lang=lang)
    return got, prof  # type: ignore[return-value]


def parse_integers(values: Sequence[object]) -> pd.Series:
    """Parse whole numbers (thousands separators, zero decimals); ``<NA>`` where blank or not a whole number."""
    return _run(values, int_sql("c"))[0]


def parse_durations(values: Sequence[object]) -> pd.Series:
    """Parse BC Duration texts into milliseconds (``<NA>`` where blank or unknown)."""
    return _run(values, duration_sql("c"))[0]


def parse_booleans(values: Sequence[object]) -> pd.Series:
    """Parse Yes/No in English, French or German (and true/false/1/0)."""
    mapping = map_values(set(map(str, values)), cap.booleans())
    return _run(values, mapped_sql("c", mapping, "BOOLEAN"))[0]


def parse_options(values: Sequence[object], table: Mapping[str, str]) -> pd.Series:
    """Map option captions (e.g. :func:`captions.job_types`) to option names (``None`` where unknown)."""
    mapping = map_values(set(map(str, values)), table)
    return _run(values, mapped_sql("c", mapping, "VARCHAR"))[0]


def looks_like(value: str) -> str:
    """The kind a single text looks like, for column signatures: empty, int, datetime, duration, guid, bool or text."""
    v = value.strip()
    if not v:
        return "empty"
    if re.fullmatch(r"[+-]?\d{1,3}([\s\u00a0\u202f,.']\d{3})*|[+-]?\d+([.,]0+)?", v):
        return "int"
    if re.fullmatch(r"\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?", v):
        return "guid"
    if re.match(r"\d{4}-\d\d-\d\d([T ]\d|$)", v) or re.match(_LOCAL, v):
        return "datetime"
    if re.fullmatch(r"(\d+\s*[^\W\d_]+\s*)+", v):
        return "duration"
    if cap.normalize(v) in cap.booleans():
        return "bool"
    return "text"


def folded_sql(col: str, table: Mapping[str, object], sql_type: str, blank: object = None) -> tuple[str, str]:
    """Like :func:`mapped_sql`, but on every caption of ``table`` (folded keys), folding the values in SQL.

    For the one-pass load, which has not seen every distinct value. Returns the expression and a
    condition true for a non-blank value no caption matches (blanks give ``blank``). The folding (case, curly apostrophe,
    runs of spaces) covers what :func:`captions.normalize` does to BC's captions.
    """
    c = ident(col)
    folded = f"lower(regexp_replace(replace(trim({c}), chr(8217), chr(39)), '\\s+', ' ', 'g'))"
    keys = {k: v for k, v in table.items() if k}
    blank_sql = _sql_value(blank) if blank is not None else "NULL"
    whens = "".join(f" WHEN {folded} = {lit(k)} THEN {_sql_value(v)}" for k, v in keys.items() if v is not None)
    expr = f"CAST(CASE WHEN coalesce(trim({c}), '') = '' THEN {blank_sql}{whens} END AS {sql_type})"
    return expr, f"coalesce(trim({c}), '') <> '' AND {folded} NOT IN ({', '.join(lit(k) for k in keys)})"
