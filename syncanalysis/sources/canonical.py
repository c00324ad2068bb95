"""Stage 4: the canonical rows of a typed part, as one SQL query per layout.

Runs inside the load's transaction, as some layouts join the workspace (page errors to jobs by
time, page 5333 lines to couplings by description). The links a layout makes are counted on the
part (``Parsed.links``), not written into a report.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb

from ..schema import TABLES
from ..sql import ident, lit, temp_name
from . import captions as cap
from . import link
from .errors import DuplicateRowError, EnvironmentConflictError
from .typed import Parsed

DEFAULT_ENVIRONMENT = "default"
DEFAULT_COMPANY = "default"


# Message: the first 250 characters of the Error Message (strlen first: most messages are shorter)
_MESSAGE = f"CASE WHEN strlen(p.error_message) <= {cap.MESSAGE_LEN} THEN p.error_message " \
           f"ELSE left(p.error_message, {cap.MESSAGE_LEN}) END"


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


def canonical_sql(con: duckdb.DuckDBPyConnection, parsed: Parsed, env: str, company: str) -> str:
    """The query giving the canonical rows of ``parsed`` for ``env`` / ``company``."""
    kind = parsed.layout.kind
    cols = _plain(parsed)
    scope = link.scope_sql(env, company)
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
            cols["message"] = _MESSAGE
        if parsed.has("job_id"):  # (a table export always has it; page 5339 over OData has not)
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
        cols["message"] = _MESSAGE
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
        # a line of a table no table export has couplings of stands for its own (made-up) coupling
        made = link.page_coupling_id_sql(env, company, "p.table_id", cols["description"], cols["coupled_to"])
        cols["integration_id"] = (f"coalesce(c.integration_id, d.integration_id, CASE WHEN p.table_id NOT IN "
                                  f"{link.tables_with_couplings_sql(env, company)} THEN {made} END)")
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
        return _jobs_page_sql(con, parsed, env, company, cols)
    raise AssertionError(kind)  # pragma: no cover


def _jobs_page_sql(con: duckdb.DuckDBPyConnection, parsed: Parsed, env: str, company: str,
                   cols: dict[str, str]) -> str:
    scope = link.scope_sql(env, company)
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
    rows = temp_name("sa_jobrows")
    con.execute(f"CREATE TEMP TABLE {rows} AS {rows_sql}")
    try:
        pairs = link.pair_jobs_sql(rows, f"(SELECT * FROM jobs WHERE {scope})")
        name = (f"concat_ws('|', {lit(env)}, {lit(company)}, coalesce(r.mapping_name, ''), coalesce(r.synch_direction, ''), "
                "r.type, strftime(date_trunc('second', r.start_datetime), '%Y-%m-%d %H:%M:%S'), "
                "CAST(row_number() OVER (PARTITION BY r.mapping_name, r.synch_direction, r.type, "
                "date_trunc('second', r.start_datetime) ORDER BY "
                + ", ".join(f"r.{c} NULLS FIRST" for c in counters) + ", r._pid) AS VARCHAR))")
        final = temp_name("sa_jobs")
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
        for what, n in (("page jobs matched to existing jobs", matched), ("page jobs given an inferred ID", made)):
            if n:
                parsed.links[what] = parsed.links.get(what, 0) + int(n)
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


def resolve_env(parsed: list[Parsed], environment: str | None, company: str | None,
                 path: Path) -> tuple[str, str, str]:
    """``(environment, company, where from)`` of a file's parsed parts: the argument, the file's value or the default.

    Raises :class:`EnvironmentConflictError` when the sheets disagree or an argument contradicts the file.
    """
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
