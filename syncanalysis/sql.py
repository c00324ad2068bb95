"""The SQL vocabulary of the toolkit: quoting, one scope filter, temporary names that never collide, domain facts.

The domain's facts are DuckDB macros (created on every workspace connection).

Every analysis, source and action module writes these facts through this module, so each has one home:

* ``sa_is_dataverse_caption(caption)`` — a table caption names a Dataverse table, in any language BC
  exports (``Dataverse Account``, ``Compte Dataverse``, ``Dataverse-Konto``, ``CRM Account``);
* ``sa_record_table(record_id)`` / ``sa_record_key(record_id)`` / ``sa_record_id(table, key)`` — BC's
  RecordID text ``<table caption>: <primary key values>`` split and composed;
* ``sa_local_record(source_table, source_record_id, destination_record_id)`` — the BC record a 5339 row is
  about: its source, unless the source is a Dataverse table (spec §2);
* ``sa_coupling_state(bc_exists, crm_exists, skipped, last_synch_result, last_synch_crm_result)`` — the
  state of a coupling in one vocabulary: ``broken`` (one side's record is gone), ``skipped``, ``failed``
  or ``ok`` (spec §6.5);
* ``sa_mapping_name(name, table_id)`` — a coupling's mapping: the workspace's mapping of its table, else
  BC's default mapping name of it (``CUSTOMER``), else ``TABLE <id>``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import pandas as pd

__all__ = ["COUPLING_STATES", "create_macros", "ident", "lit", "registered", "scope", "temp_name"]

COUPLING_STATES = ("skipped", "failed", "broken", "ok")
_names = itertools.count()


def lit(text: object) -> str:
    """Quote ``text`` as a SQL string literal.

    Examples
    --------
    >>> lit("O'Neil")
    "'O''Neil'"
    """
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    """Quote ``name`` as a SQL identifier.

    Examples
    --------
    >>> ident('a"b')
    '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


def temp_name(prefix: str) -> str:
    """A name no other temporary object of this process has (``_<prefix>_<n>``)."""
    return f"_{prefix}_{next(_names)}"


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, prefix: str = "frame") -> Iterator[str]:
    """Register ``frame`` under a fresh name for the block; always unregistered after it.

    Examples
    --------
    >>> con = duckdb.connect()
    >>> with registered(con, pd.DataFrame({"x": [1, 2]})) as name:
    ...     con.execute(f"SELECT sum(x) FROM {name}").fetchall()
    [(3,)]
    """
    name = temp_name(prefix)
    con.register(name, frame)
    try:
        yield name
    finally:
        con.unregister(name)


def scope(alias: str = "", *, environment: str | None = None, company: str | None = None,
          mapping: str | None = None, mapping_column: str = "mapping_name", time_column: str | None = None,
          since: Any = None, until: Any = None, extra: Sequence[str] = (), inline: bool = False) -> tuple[str, list[Any]]:
    """The WHERE condition (without ``WHERE``; ``true`` when empty) and its parameters for the usual filters.

    Parameters
    ----------
    alias
        Table alias the columns belong to (``""`` for none).
    environment, company, mapping
        Equality filters; ``None`` leaves a filter out.
    mapping_column
        The column ``mapping`` compares with.
    time_column, since, until
        Inclusive bounds on ``time_column``.
    extra
        Further conditions, ANDed as they are.
    inline
        Write the values as SQL literals (no parameters), for SQL texts that are composed into others.

    Examples
    --------
    >>> scope("j", environment="PROD", mapping="CUSTOMER")
    ('j.environment = ? AND j.mapping_name = ?', ['PROD', 'CUSTOMER'])
    >>> scope()
    ('true', [])
    >>> scope("c", environment="PROD", company="O'Neil", inline=True)
    ("c.environment = 'PROD' AND c.company = 'O''Neil'", [])
    """
    a = f"{alias}." if alias else ""
    clauses: list[str] = []
    params: list[Any] = []

    def value_sql(value: Any) -> str:
        if inline:
            return lit(value)
        params.append(value)
        return "?"

    for column, value in (("environment", environment), ("company", company), (mapping_column, mapping)):
        if value is not None:
            clauses.append(f"{a}{column} = {value_sql(value)}")
    if time_column is not None:
        for op, value in ((">=", since), ("<=", until)):
            if value is not None:
                clauses.append(f"{a}{time_column} {op} {value_sql(value)}")
    clauses += list(extra)
    return (" AND ".join(clauses) or "true"), params


def _dataverse_captions() -> list[str]:
    """Every caption (lower case, any language) of a Dataverse table the caption catalogue knows."""
    from .sources import captions as cap

    return sorted({cap.normalize(c) for tid, by in cap.table_captions().items() if cap.is_dataverse_table(tid)
                   for cs in by.values() for c in cs})


def _default_mappings() -> dict[int, str]:
    from .sources import captions as cap

    return cap.DEFAULT_MAPPINGS


def create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the domain macros on ``con`` (temporary: per connection, also on read-only workspaces)."""
    known = ", ".join(lit(c) for c in _dataverse_captions()) or "''"
    con.execute(f"""
        CREATE OR REPLACE TEMP MACRO sa_is_dataverse_caption(t) AS
            coalesce(t ILIKE 'Dataverse%' OR t ILIKE 'CRM %' OR t ILIKE '% Dataverse'
                     OR lower(trim(t)) IN ({known}), false)""")
    con.execute("""
        CREATE OR REPLACE TEMP MACRO sa_record_table(r) AS
            CASE WHEN strpos(r, ': ') > 0 THEN left(r, strpos(r, ': ') - 1) END""")
    con.execute("""
        CREATE OR REPLACE TEMP MACRO sa_record_key(r) AS
            CASE WHEN strpos(r, ': ') > 0 THEN substr(r, strpos(r, ': ') + 2) END""")
    con.execute("CREATE OR REPLACE TEMP MACRO sa_record_id(t, k) AS t || ': ' || k")
    # a coupling's mapping: the workspace's name for its table, else BC's default mapping of it (history from
    # page exports has no mappings; its jobs carry the same default names)
    defaults = " ".join(f"WHEN {t} THEN {lit(n)}" for t, n in _default_mappings().items())
    con.execute(f"CREATE OR REPLACE TEMP MACRO sa_mapping_name(name, table_id) AS "
                f"coalesce(name, CASE table_id {defaults} END, 'TABLE ' || table_id)")
    con.execute("""
        CREATE OR REPLACE TEMP MACRO sa_local_record(source_table, source_record_id, destination_record_id) AS
            nullif(CASE WHEN sa_is_dataverse_caption(coalesce(source_table, sa_record_table(source_record_id)))
                        THEN destination_record_id ELSE source_record_id END, '')""")
    con.execute("""
        CREATE OR REPLACE TEMP MACRO sa_coupling_state(bc_exists, crm_exists, skipped, result, crm_result) AS
            CASE WHEN bc_exists IS false OR crm_exists IS false THEN 'broken'
                 WHEN skipped THEN 'skipped'
                 WHEN result = 'Failure' OR crm_result = 'Failure' THEN 'failed'
                 ELSE 'ok' END""")
