"""The one DuckDB database of a project: canonical tables, load provenance, upserts, paged queries.

All writes go through :meth:`Workspace.ingest` (or :meth:`Workspace.upsert` inside
:meth:`Workspace.transaction`): frames are staged, checked and merged by natural key in one
transaction, so the same rows twice change nothing and a failure writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .errors import SchemaError, WorkspaceError
from .schema import FIDELITY_TABLE, SCHEMA_VERSION, TABLES, UPGRADABLE_FROM, Table
from .sql import create_macros

# Columns the analysis derives from another column of the row: kept across reloads, cleared when
# that column changes (so they get recomputed).
_ANALYSIS: dict[str, dict[str, str]] = {"job_errors": {"signature": "error_message", "cause": "error_message"}}
# Texts that exports cut (Message is the first 250 characters of Error Message; a page shows fewer fields):
# a value that is a prefix of the stored one is the same text cut, and keeps the stored one.
_NO_PREFIX: dict[str, tuple[str, ...]] = {"job_errors": ("error_message", "message", "exception_detail"),
                                         "skipped_records": ("error_message",), "jobs": ("message",)}

# Columns the workspace derives itself from other columns of the same row (always recomputed).
_DERIVED: dict[str, dict[str, str]] = {
    "jobs": {
        "duration_ms": "CASE WHEN finish_datetime >= start_datetime "
        "THEN date_diff('millisecond', start_datetime, finish_datetime) END",
        # page 5338 exports carry no Job Queue Log Entry No.: unknown, not 'job queue'
        "trigger": "CASE WHEN job_queue_log_entry_no = 0 THEN 'foreground' "
        "WHEN job_queue_log_entry_no > 0 THEN 'job queue' END",
    }
}

_stage_names = itertools.count()


@dataclass
class UpsertResult:
    """What one upsert did to one table."""

    table: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0  # rows a load removed (e.g. page rows superseded by table rows)

    @property
    def unchanged(self) -> int:
        """Rows read that were neither inserted nor updated."""
        return self.read - self.inserted - self.updated


@dataclass
class LoadReport:
    """What one :meth:`Workspace.ingest` did: per-table results and the ``loads`` row written."""

    source: str
    kind: str
    tables: dict[str, UpsertResult] = field(default_factory=dict)
    load_id: int | None = None

    @property
    def rows_read(self) -> int:
        """Rows read, over all tables."""
        return sum(r.read for r in self.tables.values())

    @property
    def rows_inserted(self) -> int:
        """Rows inserted, over all tables."""
        return sum(r.inserted for r in self.tables.values())

    @property
    def rows_updated(self) -> int:
        """Rows updated, over all tables."""
        return sum(r.updated for r in self.tables.values())

    @property
    def rows_deleted(self) -> int:
        """Rows deleted, over all tables."""
        return sum(r.deleted for r in self.tables.values())

    def to_frame(self) -> pd.DataFrame:
        """Return one row per table with read / inserted / updated / unchanged / deleted counts."""
        return pd.DataFrame(
            [(t, r.read, r.inserted, r.updated, r.unchanged, r.deleted) for t, r in self.tables.items()],
            columns=["table", "read", "inserted", "updated", "unchanged", "deleted"],
        )


@dataclass
class Load:
    """One load in progress (see :meth:`Workspace.loading`): upsert through it, then set its provenance."""

    workspace: Workspace
    report: LoadReport
    fidelity: int
    con: duckdb.DuckDBPyConnection | None = None
    rows_rejected: int = 0
    watermark: dt.datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def upsert(self, table: str, frame: pd.DataFrame) -> UpsertResult:
        """Merge ``frame`` into ``table`` at this load's fidelity and count it in the report."""
        r = self.workspace.upsert(table, frame, fidelity=self.fidelity)
        prev = self.report.tables.get(table)
        if prev is not None:
            r.read += prev.read
            r.inserted += prev.inserted
            r.updated += prev.updated
            r.deleted += prev.deleted
        self.report.tables[table] = r
        return r

    def count_deleted(self, table: str, n: int) -> None:
        """Count ``n`` rows this load deleted from ``table`` (linking SQL run on ``con``)."""
        self.report.tables.setdefault(table, UpsertResult(table)).deleted += n


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder holding this project's ``pyproject.toml`` and ``sample_data/``.

    Folders are searched from ``start`` (default the current one) upwards; the result is the current folder
    when there is none (an installed package).
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "sample_data").is_dir():
            return folder
    return here


class Workspace:
    """A DuckDB workspace holding the canonical tables.

    Parameters
    ----------
    path
        Database file; ``None`` or ``":memory:"`` for an in-memory workspace. The file and its
        parent folder are created when missing.
    read_only
        Open an existing file without the right to write.
    """

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False) -> None:
        self.path = None if path in (None, ":memory:") else Path(path)
        self.read_only = read_only
        if self.path is not None and not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path is not None and read_only and not self.path.exists():
            raise WorkspaceError(f"Workspace {self.path} does not exist. Build it first, e.g. `syncanalysis demo`.")
        try:
            self.con = duckdb.connect(str(self.path) if self.path else ":memory:", read_only=read_only)
        except (duckdb.IOException, duckdb.InvalidInputException, duckdb.SerializationException) as exc:
            raise WorkspaceError(
                f"Cannot open workspace {self.path}: {exc}. Is it a DuckDB file not in use by another process?"
            ) from exc
        self._depth = 0
        self._revision = 0
        self._memo: dict[str, tuple[tuple, Any]] = {}
        if not read_only:
            self._create_schema()
        self._check_version()
        create_macros(self.con)  # the domain's SQL fragments (syncanalysis.sql), on this connection

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database connection."""
        self.con.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create_schema(self) -> None:
        with self.transaction():
            self.con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            for table in TABLES.values():
                self.con.execute(table.ddl())
            self.con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)]
            )

    def _check_version(self) -> None:
        try:
            row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.CatalogException as exc:
            raise WorkspaceError(f"{self.path} is not a syncanalysis workspace (no meta table).") from exc
        if row is not None and int(row[0]) in UPGRADABLE_FROM and not self.read_only:
            self._upgrade(int(row[0]))
            return
        if row is not None and int(row[0]) in UPGRADABLE_FROM:
            raise WorkspaceError(
                f"Workspace {self.path} has schema version {row[0]}; this syncanalysis needs {SCHEMA_VERSION}. "
                "Open it once without read_only (e.g. `syncanalysis info --workspace FILE`) to upgrade it in place; "
                "only the error signatures are rebuilt."
            )
        if row is None or int(row[0]) != SCHEMA_VERSION:
            found = row[0] if row else "none"
            raise WorkspaceError(
                f"Workspace {self.path} has schema version {found}; this syncanalysis needs {SCHEMA_VERSION}. "
                "Rebuild it (delete the file and load the history again)."
            )

    def _upgrade(self, found: int) -> None:
        """Upgrade a workspace of an older schema in place.

        v2 -> v3: match columns of ``signatures``. v3 -> v4: ``skipped_records`` keyed by Coupled To too
        (page 5333 lines of deleted BC records all have a blank Description). v4 -> v5: the twin is stored as
        data (``twin.store``); a workspace that holds a twin in the old format is refused, not read. v5 -> v6:
        the audit's targets and per-target outcomes move from JSON into ``action_targets``.
        """
        if found < 5 and self.con.execute("SELECT count(*) FROM twin_state").fetchall()[0][0]:
            raise WorkspaceError(
                f"Workspace {self.path} (schema {found}) stores a twin in the format of an older syncanalysis, "
                "which could run code when read, so it is not opened. Rebuild it: delete the file and run "
                "`syncanalysis demo` (or `syncanalysis simulate --workspace FILE`); loaded customer history is "
                "rebuilt by loading its exports again.")
        with self.transaction() as con:
            if found < 3:
                for col in ("match", "match_detail", "language"):
                    con.execute(f'ALTER TABLE signatures ADD COLUMN IF NOT EXISTS "{col}" VARCHAR')
                con.execute("DELETE FROM signatures")  # a cache: classified again, with how each text matched
                con.execute("UPDATE job_errors SET signature = NULL, cause = NULL")
                con.execute("DELETE FROM meta WHERE key = 'classifier'")
            if found < 4:  # a primary key cannot be altered: copy the rows into the table as v4 defines it
                con.execute("ALTER TABLE skipped_records RENAME TO _skipped_records_v3")
                con.execute(TABLES["skipped_records"].ddl())
                con.execute("INSERT INTO skipped_records BY NAME SELECT * REPLACE (coalesce(description, '') "
                            "AS description, coalesce(coupled_to, '') AS coupled_to) FROM _skipped_records_v3")
                con.execute("DROP TABLE _skipped_records_v3")
            old_audit = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'actions' "
                                    "AND column_name = 'targets'").fetchall()[0][0]
            if found < 6 and old_audit:
                shape = '[{"table_id": "INTEGER", "result": "VARCHAR", "detail": "VARCHAR", "integration_ids": ["UUID"]}]'
                con.execute(
                    "INSERT INTO action_targets SELECT a.action_id, r.table_id, unnest(r.integration_ids), m.mapping, "
                    "r.result, r.detail FROM (SELECT action_id, targets, unnest(from_json(json_extract(outcome, "
                    f"'$.results'), '{shape}')) AS r FROM actions) a LEFT JOIN (SELECT action_id, t.table_id, "
                    "any_value(t.mapping) AS mapping FROM (SELECT action_id, unnest(from_json(json_extract(targets, "
                    "'$.tables'), '[{\"table_id\": \"INTEGER\", \"mapping\": \"VARCHAR\"}]')) AS t FROM actions) "
                    "GROUP BY ALL) m ON m.action_id = a.action_id AND m.table_id = r.table_id ON CONFLICT DO NOTHING")
                con.execute("UPDATE actions SET outcome = json_merge_patch(outcome, '{\"results\": null}')")
                con.execute("ALTER TABLE actions DROP COLUMN targets")
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])

    @property
    def schema_version(self) -> int:
        """The schema version stored in the workspace."""
        return int(self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` is open (work joins it and cannot be rolled back on its own)."""
        return self._depth > 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run the block in one transaction: commit at the end, roll back on any exception.

        Nested uses join the outermost transaction.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self.con
            finally:
                self._depth -= 1
            return
        self.con.begin()
        self._depth = 1
        try:
            yield self.con
        except BaseException:
            self.con.rollback()
            self._memo.clear()  # derived temp tables built inside the transaction are gone too
            raise
        else:
            self.con.commit()
        finally:
            self._depth = 0
            self._revision += 1

    # -- derived state ---------------------------------------------------------------------
    @property
    def revision(self) -> int:
        """A counter that moves with every transaction of this workspace object (committed or not).

        Derived state (temp tables of latest errors, backlog episodes, a panel's list order) is kept
        with :meth:`memo` under it, so it is rebuilt exactly when the workspace may have changed.
        """
        return self._revision

    def memo(self, name: str, key: object, build: Callable[[], Any], *, across_writes: bool = False) -> Any:
        """The value ``build()`` returned for ``name`` and ``key`` at this :attr:`revision`, built once.

        With ``across_writes`` the value stays while ``key`` alone is the same (``key`` then says itself
        when the value is stale, e.g. the stored twin's revision). Every value is dropped when a
        transaction of this workspace rolls back.

        Examples
        --------
        >>> ws = Workspace()
        >>> calls = []
        >>> ws.memo("n", 1, lambda: calls.append(1) or len(calls)), ws.memo("n", 1, lambda: 99)
        (1, 1)
        """
        full = ("kept" if across_writes else self._revision, key)
        hit = self._memo.get(name)
        if hit is not None and hit[0] == full:
            return hit[1]
        value = build()
        self._memo[name] = (full, value)
        return value

    def remember(self, name: str, key: object, value: Any) -> None:
        """Keep ``value`` under ``name`` for :meth:`memo` with ``across_writes`` and the same ``key``."""
        self._memo[name] = (("kept", key), value)

    def forget(self, prefix: str) -> None:
        """Drop the memo values whose name starts with ``prefix``."""
        for name in [n for n in self._memo if n.startswith(prefix)]:
            del self._memo[name]

    # -- writing ---------------------------------------------------------------------------
    def upsert(self, table: str, frame: pd.DataFrame | duckdb.DuckDBPyRelation, *,
               fidelity: int = FIDELITY_TABLE) -> UpsertResult:
        """Merge ``frame`` into ``table`` by its natural key.

        New keys are inserted; for existing keys only the columns ``frame`` provides are merged
        (the others keep their values), and identical rows are left alone. A row is overwritten
        by a source of the same or a higher ``fidelity``; a lower one (a page export over a
        table export) only fills columns that are still empty. Unknown columns, empty or
        duplicate keys and values that do not cast to the column type raise
        :class:`SchemaError` and write nothing.

        Parameters
        ----------
        table
            A canonical table name (see :data:`syncanalysis.schema.TABLES`).
        frame
            Rows to merge, as a DataFrame or a relation of this workspace's connection (e.g. a
            ``read_csv`` of :attr:`con`, so bulk loads never pass through pandas); column names
            are the canonical snake_case names.
        fidelity
            :data:`~syncanalysis.schema.FIDELITY_TABLE` or :data:`~syncanalysis.schema.FIDELITY_PAGE`
            (ignored by tables without a ``fidelity`` column).

        Returns
        -------
        UpsertResult
            Rows read, inserted and updated.
        """
        spec = _table(table)
        unknown = [c for c in frame.columns if c not in spec.types]
        if unknown:
            raise SchemaError(
                f"Table {table!r} has no column(s) {unknown}; expected some of {spec.column_names}."
            )
        missing_keys = [k for k in spec.key if k not in frame.columns]
        if missing_keys:
            raise SchemaError(f"Rows for table {table!r} lack the key column(s) {missing_keys}.")
        is_relation = isinstance(frame, duckdb.DuckDBPyRelation)
        result = UpsertResult(table)
        if not is_relation:
            result.read = len(frame)
            if frame.empty:
                return result
        derived = _DERIVED.get(table, {})
        kept = _ANALYSIS.get(table, {})
        has_fidelity = "fidelity" in spec.types
        provided = [c for c in frame.columns if c not in derived and c != "fidelity"]
        n = next(_stage_names)
        view, merged = f"_src_{n}", f"_merged_{n}"
        casts = [f'TRY_CAST("{c}" AS {spec.types[c]}) AS "{c}"' for c in provided]
        if has_fidelity:
            casts.append(f"CAST({int(fidelity)} AS SMALLINT) AS fidelity")
        source = f"(SELECT {', '.join(casts)} FROM {view})"
        keys = ", ".join(f'"{k}"' for k in spec.key)
        on = " AND ".join(f's."{k}" = t."{k}"' for k in spec.key)
        is_new = f't."{spec.key[0]}" IS NULL'
        wins = "s.fidelity >= t.fidelity" if has_fidelity else "TRUE"

        def merged_value(col: str) -> str:  # a provided column after the merge
            if col in _NO_PREFIX.get(table, ()):  # a narrower export's cut text never replaces the whole one
                return (f'CASE WHEN NOT {is_new} AND strlen(s."{col}") < strlen(t."{col}") AND '
                        f'starts_with(t."{col}", s."{col}") THEN t."{col}" WHEN {is_new} OR {wins} THEN s."{col}" '
                        f'ELSE coalesce(t."{col}", s."{col}") END')
            return f'CASE WHEN {is_new} OR {wins} THEN s."{col}" ELSE coalesce(t."{col}", s."{col}") END'

        select = []
        for col, typ in spec.columns:
            if col in spec.key:
                expr = f's."{col}"'
            elif col == "fidelity":
                expr = "greatest(s.fidelity, coalesce(t.fidelity, 0))"
            elif col in derived:
                expr = f"CAST(NULL AS {typ})"
            elif col in provided:
                expr = merged_value(col)
            elif col in kept:
                # analysis-derived values survive a reload unless the text they were derived from changed
                expr = f'CASE WHEN ({merged_value(kept[col])}) IS DISTINCT FROM t."{kept[col]}" THEN NULL ' \
                       f'ELSE t."{col}" END' if kept[col] in provided else f't."{col}"'
            else:
                expr = f't."{col}"'
            select.append(f'{expr} AS "{col}"')
        differs = " OR ".join(f'm."{c}" IS DISTINCT FROM t."{c}"' for c in spec.column_names if c not in spec.key)
        on_m = " AND ".join(f'm."{k}" = t."{k}"' for k in spec.key)
        with self.transaction() as con:
            if is_relation:
                frame.create_view(view)
            elif len(frame) > 5_000:
                # the checks and the merge read the rows several times: convert the Python objects once
                con.register(f"{view}_df", frame)
                try:
                    con.execute(f"CREATE TEMP TABLE {view} AS SELECT * FROM {view}_df")
                finally:
                    con.unregister(f"{view}_df")
            else:
                con.register(view, frame)
            materialized = not is_relation and len(frame) > 5_000
            try:
                source_types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {view})").fetchall())
                # Only columns whose source type differs from the column type can fail to cast.
                self._check_casts(con, table, view, [c for c in provided if source_types.get(c) != spec.types[c]])
                nulls = " OR ".join(f'"{k}" IS NULL' for k in spec.key)
                read, n_null, n_distinct = con.execute(
                    f"SELECT count(*), count(*) FILTER ({nulls}), count(DISTINCT ({keys})) FROM {source}"
                ).fetchone()
                if is_relation:
                    result.read = read
                if n_null:
                    bad = con.execute(f"SELECT {keys} FROM {source} WHERE {nulls} LIMIT 1").fetchone()
                    raise SchemaError(f"A row for table {table!r} has an empty key {dict(zip(spec.key, bad))}.")
                if n_distinct != read:
                    dup = con.execute(
                        f"SELECT {keys}, count(*) FROM {source} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
                    ).fetchone()
                    raise SchemaError(
                        f"Rows for table {table!r} repeat the key {dict(zip(spec.key, dup[:-1]))} "
                        f"{dup[-1]} times; remove the duplicates."
                    )
                overlap = con.execute(
                    f'SELECT count(*) FROM {source} s WHERE EXISTS (SELECT 1 FROM "{table}" t WHERE {on})'
                ).fetchone()[0] if read else 0
                if not overlap:
                    # Only new keys: insert straight from the source (one pass, no merge table).
                    if read:
                        con.execute(_insert_new_sql(spec, provided, source))
                    result.inserted, result.updated = read, 0
                    return result
                con.execute(
                    f'CREATE TEMP TABLE {merged} AS SELECT {", ".join(select)}, {is_new} AS _new '
                    f'FROM {source} s LEFT JOIN "{table}" t ON {on}'
                )
                if derived:
                    sets = ", ".join(f'"{c}" = {expr}' for c, expr in derived.items())
                    con.execute(f"UPDATE {merged} SET {sets}")
                # Keep only new and changed rows, so identical reloads touch nothing.
                con.execute(
                    f'DELETE FROM {merged} m WHERE NOT _new AND NOT EXISTS '
                    f'(SELECT 1 FROM "{table}" t WHERE {on_m} AND ({differs}))'
                )
                result.inserted, result.updated = con.execute(
                    f"SELECT count(*) FILTER (_new), count(*) FILTER (NOT _new) FROM {merged}"
                ).fetchone()
                if result.inserted or result.updated:
                    cols = ", ".join(f'"{c}"' for c in spec.column_names)
                    con.execute(f'INSERT OR REPLACE INTO "{table}" SELECT {cols} FROM {merged}')
            finally:
                con.execute(f"DROP TABLE IF EXISTS {merged}")
                if is_relation:
                    con.execute(f"DROP VIEW IF EXISTS {view}")
                elif materialized:
                    con.execute(f"DROP TABLE IF EXISTS {view}")
                else:
                    con.unregister(view)
        return result

    def replace(self, table: str, frame: pd.DataFrame, *, fidelity: int = FIDELITY_TABLE) -> UpsertResult:
        """Write ``frame``'s rows over those with the same keys, without comparing values.

        For an authoritative source that knows exactly which rows it changed (the twin after an action).

        Parameters
        ----------
        table
            A canonical table name.
        frame
            Rows with the key columns; columns it lacks are written as NULL.
        fidelity
            Written on every row (tables with a ``fidelity`` column).

        Returns
        -------
        UpsertResult
            ``updated`` counts the keys that existed, ``inserted`` the new ones.
        """
        spec = _table(table)
        unknown = [c for c in frame.columns if c not in spec.types]
        if unknown:
            raise SchemaError(f"Table {table!r} has no column(s) {unknown}; expected some of {spec.column_names}.")
        result = UpsertResult(table, read=len(frame))
        if frame.empty:
            return result
        src = f"_replace_{next(_stage_names)}"

        def same_key(target: str) -> str:
            return " AND ".join(f'{target}."{k}" = TRY_CAST(s."{k}" AS {spec.types[k]})' for k in spec.key)

        derived = _DERIVED.get(table, {})
        given = [c for c in frame.columns if c not in spec.key and c not in derived]
        sets = [f'"{c}" = TRY_CAST(s."{c}" AS {spec.types[c]})' for c in given]
        sets += [f'"{c}" = NULL' for c in spec.column_names
                 if c not in spec.key and c not in given and c not in derived and c != "fidelity"]
        if "fidelity" in spec.types:
            sets.append(f"fidelity = {int(fidelity)}")
        with self.transaction() as con:
            con.register(f"{src}_df", frame)
            try:
                con.execute(f"CREATE TEMP TABLE {src} AS SELECT * FROM {src}_df")
            finally:
                con.unregister(f"{src}_df")
            try:
                # an UPDATE leaves the primary-key index alone (a delete and re-insert costs ten times more)
                result.updated = con.execute(
                    f'UPDATE "{table}" t SET {", ".join(sets)} FROM {src} s WHERE {same_key("t")}').fetchall()[0][0]
                if derived and result.updated:  # computed from the values just written
                    assignments = ", ".join(f'"{c}" = {e}' for c, e in derived.items())
                    con.execute(f'UPDATE "{table}" SET {assignments} '
                                f'WHERE EXISTS (SELECT 1 FROM {src} s WHERE {same_key(chr(34) + table + chr(34))})')
                if result.updated < result.read:
                    self.insert_new(table, f'SELECT * FROM {src} s WHERE NOT EXISTS (SELECT 1 FROM "{table}" t '
                                           f'WHERE {same_key("t")})', fidelity=fidelity)
                result.inserted = result.read - result.updated
            finally:
                con.execute(f"DROP TABLE IF EXISTS {src}")
        return result

    def insert_new(self, table: str, sql: str, *, fidelity: int = FIDELITY_TABLE) -> int:
        """Insert the rows of query ``sql`` as new rows of ``table`` in one pass; return how many.

        For a first load of big files: no merge table and no separate checks. The rows must all be new
        and valid: a repeated, empty or already present key (or a value that does not fit its column)
        makes the statement fail with a :class:`duckdb.Error`, and the caller's transaction rolls back
        (then use :meth:`upsert`, which explains what is wrong). Column names are canonical; missing ones
        are NULL, derived ones are computed, ``fidelity`` is written where the table has it.
        """
        spec = _table(table)
        with self.transaction() as con:
            cols = [r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE ({sql}))").fetchall()]
            unknown = [c for c in cols if c not in spec.types]
            if unknown:
                raise SchemaError(f"Table {table!r} has no column(s) {unknown}.")
            fid = f", CAST({int(fidelity)} AS SMALLINT) AS fidelity" if "fidelity" in spec.types else ""
            source = f"(SELECT *{fid} FROM ({sql}))"
            return con.execute(_insert_new_sql(spec, [c for c in cols if c != "fidelity"], source)).fetchall()[0][0]

    def check_casts(self, table: str, sql: str) -> None:
        """Check that every value of query ``sql`` fits its column of ``table``.

        One scan, for the columns whose type differs from the table's.

        Parameters
        ----------
        table
            A canonical table name.
        sql
            A query of this workspace's connection with canonical column names.

        Raises
        ------
        SchemaError
            Naming the first row, column and value that does not cast.
        """
        spec = _table(table)
        types = dict(self.con.execute(f"SELECT column_name, column_type FROM (DESCRIBE ({sql}))").fetchall())
        self._check_casts(self.con, table, f"({sql})",
                          [c for c, t in types.items() if c in spec.types and t != spec.types[c]])

    @staticmethod
    def _check_casts(con: duckdb.DuckDBPyConnection, table: str, view: str, columns: list[str]) -> None:
        """Raise naming the first row, column and value that does not cast (one scan for all columns)."""
        types = TABLES[table].types
        bad = [f'("{c}" IS NOT NULL AND TRY_CAST("{c}" AS {types[c]}) IS NULL)' for c in columns]
        if not bad or not con.execute(f"SELECT bool_or({' OR '.join(bad)}) FROM {view}").fetchone()[0]:
            return  # the numbered scan below only runs to name the failing row
        values = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in columns)
        row = con.execute(
            f"SELECT rn, {', '.join(bad)}, {values} "
            f"FROM (SELECT row_number() OVER () AS rn, * FROM {view}) WHERE {' OR '.join(bad)} ORDER BY rn LIMIT 1"
        ).fetchone()
        if row is not None:
            flags, values = row[1 : 1 + len(columns)], row[1 + len(columns) :]
            i = flags.index(True)
            raise SchemaError(
                f"Table {table!r}, row {row[0]}, column {columns[i]!r}: value {values[i]!r} is not a valid "
                f"{types[columns[i]]}."
            )

    @contextlib.contextmanager
    def loading(
        self,
        *,
        source: str,
        kind: str,
        content_hash: str | Callable[[], str] | None = None,
        environment: str | None = None,
        company: str | None = None,
        fidelity: int = FIDELITY_TABLE,
    ) -> Iterator[Load]:
        """Run one load as one transaction and record it in ``loads``.

        The block upserts through the yielded :class:`Load` (and may run linking SQL on
        ``load.con``); the ``loads`` row is written only when something changed, so a repeated load
        leaves the workspace exactly as it was. Any exception rolls everything back. ``content_hash``
        may be a function, called only when the ``loads`` row is written (a hash still being computed
        on another thread while the rows go in).

        Examples
        --------
        >>> ws = Workspace()
        >>> with ws.loading(source="a.csv", kind="test") as load:
        ...     _ = load.upsert("mappings", pd.DataFrame({"environment": ["E"], "company": ["C"], "name": ["X"]}))
        >>> load.report.rows_inserted
        1
        """
        load = Load(self, LoadReport(source=source, kind=kind), fidelity)
        with self.transaction() as con:
            load.con = con
            yield load
            r = load.report
            # rows a reader rejected are recorded with a load that changed something, so that loading
            # the same file (with its rejected rows) again leaves the workspace exactly as it was
            if r.rows_inserted or r.rows_updated or r.rows_deleted:
                r.load_id = con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM loads").fetchone()[0]
                con.execute(
                    "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        r.load_id,
                        source,
                        content_hash() if callable(content_hash) else content_hash,
                        kind,
                        environment,
                        company,
                        r.rows_read,
                        r.rows_inserted,
                        r.rows_updated,
                        load.rows_rejected,
                        dt.datetime.now(dt.UTC).replace(tzinfo=None),
                        load.watermark,
                        json.dumps(load.details, default=str) if load.details else None,
                    ],
                )

    def ingest(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        source: str,
        kind: str,
        content_hash: str | None = None,
        environment: str | None = None,
        company: str | None = None,
        rows_rejected: int = 0,
        fidelity: int = FIDELITY_TABLE,
        watermark: dt.datetime | None = None,
        details: dict[str, Any] | None = None,
    ) -> LoadReport:
        """Upsert several canonical frames and record the load, all in one transaction.

        Parameters
        ----------
        frames
            Canonical table name to rows.
        source
            Where the rows came from (a path, a URL, ``twin:<scenario>``); never a secret.
        kind
            What the source was (e.g. ``twin``, ``page-5339``).
        content_hash
            Hash of the source content, for recognising repeated loads.
        environment, company
            Recorded in ``loads`` for provenance.
        rows_rejected
            Rows the source reader dropped, for the provenance row.
        fidelity
            How complete the rows are (see :meth:`upsert`).
        watermark
            Newest source timestamp of this load (incremental reads start after it).
        details
            The reader's report (columns matched, links inferred), stored as JSON.

        Returns
        -------
        LoadReport
            Per-table counts and the ``load_id`` (``None`` when nothing changed, so that a
            repeated load leaves the workspace exactly as it was).
        """
        with self.loading(source=source, kind=kind, content_hash=content_hash, environment=environment,
                          company=company, fidelity=fidelity) as load:
            for table, frame in frames.items():
                load.upsert(table, frame)
            load.rows_rejected = rows_rejected
            load.watermark = watermark
            load.details = details or {}
        return load.report

    def last_load(self, source: str, kind: str | None = None, *, environment: str | None = None,
                  company: str | None = None) -> dict[str, Any] | None:
        """Return the newest ``loads`` row of ``source`` (and ``kind``, ``environment``, ``company``), or ``None``.

        The row is returned as a dict. One source loaded under two environment labels has a watermark per label.
        """
        where, params = "source = ?", [source]
        for col, value in (("kind", kind), ("environment", environment), ("company", company)):
            if value is not None:
                where += f" AND {col} = ?"
                params.append(value)
        df = self.con.execute(f"SELECT * FROM loads WHERE {where} ORDER BY load_id DESC LIMIT 1", params).df()
        return None if df.empty else df.iloc[0].to_dict()

    # -- reading ---------------------------------------------------------------------------
    def _where(self, spec: Table, filters: Mapping[str, Any] | None, search: str | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for col, value in (filters or {}).items():
            if col not in spec.types:
                raise SchemaError(f"Table {spec.name!r} has no column {col!r} to filter on; use one of {spec.column_names}.")
            if value is None:
                clauses.append(f'"{col}" IS NULL')
            elif isinstance(value, (list, set, frozenset)):
                if not value:
                    clauses.append("FALSE")
                    continue
                clauses.append(f'"{col}" IN ({", ".join("?" * len(value))})')
                params.extend(sorted(value, key=str) if not isinstance(value, list) else value)
            elif isinstance(value, tuple):
                if len(value) != 2:
                    raise SchemaError(f"Filter on {col!r}: a tuple means (low, high); got {value!r}.")
                lo, hi = value
                if lo is not None:
                    clauses.append(f'"{col}" >= ?')
                    params.append(lo)
                if hi is not None:
                    clauses.append(f'"{col}" <= ?')
                    params.append(hi)
            else:
                clauses.append(f'"{col}" = ?')
                params.append(value)
        if search:
            text_cols = [c for c, t in spec.columns if t == "VARCHAR"]
            # literal text in any case: '%' and '_' are characters, not LIKE wildcards
            clauses.append("coalesce(" + " OR ".join(f'contains(lower("{c}"), lower(?))' for c in text_cols) + ", false)")
            params.extend([search] * len(text_cols))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query(
        self,
        table: str,
        *,
        filters: Mapping[str, Any] | None = None,
        search: str | None = None,
        columns: list[str] | None = None,
        order_by: str | list[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Return one page of a canonical table as a DataFrame.

        Parameters
        ----------
        table
            Canonical table name.
        filters
            ``{column: value}``; a list/set means IN, a ``(low, high)`` tuple an inclusive range
            (``None`` for an open end), ``None`` means IS NULL.
        search
            Case-insensitive substring searched in every text column.
        columns
            Columns to return (default: all).
        order_by
            Column name(s); prefix with ``-`` for descending. The key is always appended so pages
            are stable.
        limit, offset
            The page; ``limit=None`` returns everything.
        """
        spec = _table(table)
        where, params = self._where(spec, filters, search)
        cols = columns or spec.column_names
        for c in cols:
            if c not in spec.types:
                raise SchemaError(f"Table {table!r} has no column {c!r}; use one of {spec.column_names}.")
        order = []
        for item in [order_by] if isinstance(order_by, str) else (order_by or []):
            name = item.lstrip("-")
            if name not in spec.types:
                raise SchemaError(f"Cannot order {table!r} by unknown column {name!r}.")
            order.append(f'"{name}" {"DESC" if item.startswith("-") else "ASC"}')
        order += [f'"{k}"' for k in spec.key]
        sql = f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{table}"{where} ORDER BY {", ".join(order)}'
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return self.con.execute(sql, params).df()

    def count(self, table: str, *, filters: Mapping[str, Any] | None = None, search: str | None = None) -> int:
        """Return the number of rows of ``table`` matching ``filters`` and ``search`` (see :meth:`query`)."""
        spec = _table(table)
        where, params = self._where(spec, filters, search)
        return self.con.execute(f'SELECT count(*) FROM "{table}"{where}', params).fetchone()[0]

    def sql(self, query: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run a read query and return a DataFrame (for notebooks and analysis)."""
        return self.con.execute(query, params or []).df()

    def info(self) -> dict[str, Any]:
        """Summarise the workspace: rows per table, loads, date range, environments and companies."""
        counts = {name: self.con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in TABLES}
        first, last = self.con.execute("SELECT min(start_datetime), max(start_datetime) FROM jobs").fetchone()
        envs = self.con.execute(
            "SELECT environment, company, count(*) AS history_rows FROM ("
            " SELECT environment, company FROM jobs UNION ALL SELECT environment, company FROM job_errors"
            " UNION ALL SELECT environment, company FROM couplings UNION ALL SELECT environment, company FROM mappings"
            ") GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        return {
            "path": str(self.path) if self.path else ":memory:",
            "schema_version": self.schema_version,
            "rows": counts,
            "loads": counts["loads"],
            "first_job": first.isoformat(sep=" ") if first else None,
            "last_job": last.isoformat(sep=" ") if last else None,
            "environments": [{"environment": e, "company": c, "rows": n} for e, c, n in envs],
        }


def _insert_new_sql(spec: Table, provided: list[str], source: str) -> str:
    """INSERT of new rows from ``source``, with the values a merge gives a new row.

    Those are the provided columns, the fidelity, the derived columns computed, NULL for the rest.
    """
    derived = _DERIVED.get(spec.name, {})
    given = set(provided) | {"fidelity"}
    inner = ", ".join(f's."{c}"' if c in given else f'NULL AS "{c}"' for c, _ in spec.columns if c not in derived)
    outer = ", ".join(f'CAST({derived[c]} AS {t}) AS "{c}"' if c in derived else f'CAST("{c}" AS {t})'
                      for c, t in spec.columns)
    return f'INSERT INTO "{spec.name}" SELECT {outer} FROM (SELECT {inner} FROM {source} s)'


def _table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise SchemaError(f"Unknown table {name!r}; the canonical tables are {sorted(TABLES)}.") from None
