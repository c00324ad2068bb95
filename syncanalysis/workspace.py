"""The one DuckDB database of a project: canonical tables, load provenance, upserts, paged queries.

All writes go through :meth:`Workspace.ingest` (or :meth:`Workspace.upsert` inside
:meth:`Workspace.transaction`): frames are staged, checked and merged by natural key in one
transaction, so the same rows twice change nothing and a failure writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .errors import SchemaError, WorkspaceError
from .schema import SCHEMA_VERSION, TABLES, Table

# Columns the workspace derives itself from other columns of the same row (always recomputed).
_DERIVED: dict[str, dict[str, str]] = {
    "jobs": {
        "duration_ms": "CASE WHEN finish_datetime >= start_datetime "
        "THEN date_diff('millisecond', start_datetime, finish_datetime) END",
        "trigger": "CASE WHEN job_queue_log_entry_no = 0 THEN 'foreground' ELSE 'job queue' END",
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

    @property
    def unchanged(self) -> int:
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
        return sum(r.read for r in self.tables.values())

    @property
    def rows_inserted(self) -> int:
        return sum(r.inserted for r in self.tables.values())

    @property
    def rows_updated(self) -> int:
        return sum(r.updated for r in self.tables.values())

    def to_frame(self) -> pd.DataFrame:
        """Return one row per table with read / inserted / updated / unchanged counts."""
        return pd.DataFrame(
            [(t, r.read, r.inserted, r.updated, r.unchanged) for t, r in self.tables.items()],
            columns=["table", "read", "inserted", "updated", "unchanged"],
        )


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
        if not read_only:
            self._create_schema()
        self._check_version()

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
        if row is None or int(row[0]) != SCHEMA_VERSION:
            found = row[0] if row else "none"
            raise WorkspaceError(
                f"Workspace {self.path} has schema version {found}; this syncanalysis needs {SCHEMA_VERSION}. "
                "Rebuild it (delete the file and load the history again)."
            )

    @property
    def schema_version(self) -> int:
        """The schema version stored in the workspace."""
        return int(self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

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
            raise
        else:
            self.con.commit()
        finally:
            self._depth = 0

    # -- writing ---------------------------------------------------------------------------
    def upsert(self, table: str, frame: pd.DataFrame) -> UpsertResult:
        """Merge ``frame`` into ``table`` by its natural key.

        New keys are inserted, existing keys whose values differ are updated, identical rows are
        left alone. Columns missing from ``frame`` are written as NULL; unknown columns, NULL or
        duplicate keys and values that do not cast to the column type raise :class:`SchemaError`
        and write nothing.

        Parameters
        ----------
        table
            A canonical table name (see :data:`syncanalysis.schema.TABLES`).
        frame
            Rows to merge; column names are the canonical snake_case names.

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
        result = UpsertResult(table, read=len(frame))
        if frame.empty:
            return result
        n = next(_stage_names)
        view, stage = f"_src_{n}", f"_stage_{n}"
        derived = _DERIVED.get(table, {})
        select = []
        for col, typ in spec.columns:
            if col in derived:
                select.append(f"CAST(NULL AS {typ}) AS \"{col}\"")
            elif col in frame.columns:
                select.append(f'TRY_CAST("{col}" AS {typ}) AS "{col}"')
            else:
                select.append(f'CAST(NULL AS {typ}) AS "{col}"')
        keys = ", ".join(f'"{k}"' for k in spec.key)
        on = " AND ".join(f's."{k}" = t."{k}"' for k in spec.key)
        values = [c for c in spec.column_names if c not in spec.key]
        differs = " OR ".join(f's."{c}" IS DISTINCT FROM t."{c}"' for c in values) or "FALSE"
        with self.transaction() as con:
            con.register(view, frame)
            try:
                con.execute(f"CREATE TEMP TABLE {stage} AS SELECT {', '.join(select)} FROM {view}")
                self._check_casts(con, table, view, stage, frame)
                if derived:
                    sets = ", ".join(f'"{c}" = {expr}' for c, expr in derived.items())
                    con.execute(f"UPDATE {stage} SET {sets}")
                nulls = " OR ".join(f'"{k}" IS NULL' for k in spec.key)
                bad = con.execute(f"SELECT {keys} FROM {stage} WHERE {nulls} LIMIT 1").fetchone()
                if bad is not None:
                    raise SchemaError(f"A row for table {table!r} has an empty key {dict(zip(spec.key, bad))}.")
                dup = con.execute(
                    f"SELECT {keys}, count(*) FROM {stage} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
                ).fetchone()
                if dup is not None:
                    raise SchemaError(
                        f"Rows for table {table!r} repeat the key {dict(zip(spec.key, dup[:-1]))} "
                        f"{dup[-1]} times; remove the duplicates."
                    )
                result.inserted = con.execute(
                    f'SELECT count(*) FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM "{table}" t WHERE {on})'
                ).fetchone()[0]
                result.updated = con.execute(
                    f'SELECT count(*) FROM {stage} s JOIN "{table}" t ON {on} WHERE {differs}'
                ).fetchone()[0]
                if result.inserted or result.updated:
                    # Only the new and changed rows are written, so identical reloads touch nothing.
                    con.execute(
                        f'INSERT OR REPLACE INTO "{table}" SELECT s.* FROM {stage} s '
                        f'WHERE NOT EXISTS (SELECT 1 FROM "{table}" t WHERE {on} AND NOT ({differs}))'
                    )
            finally:
                con.execute(f"DROP TABLE IF EXISTS {stage}")
                con.unregister(view)
        return result

    @staticmethod
    def _check_casts(con: duckdb.DuckDBPyConnection, table: str, view: str, stage: str, frame: pd.DataFrame) -> None:
        """Raise naming the first value that TRY_CAST turned into NULL."""
        for col in frame.columns:
            typ = TABLES[table].types[col]
            if col in _DERIVED.get(table, {}):
                continue
            row = con.execute(
                f'SELECT rn, v FROM (SELECT row_number() OVER () AS rn, "{col}" AS v FROM {view}) '
                f'WHERE v IS NOT NULL AND TRY_CAST(v AS {typ}) IS NULL LIMIT 1'
            ).fetchone()
            if row is not None:
                raise SchemaError(
                    f"Table {table!r}, row {row[0]}, column {col!r}: value {row[1]!r} is not a valid {typ}."
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
    ) -> LoadReport:
        """Upsert several canonical frames and record the load, all in one transaction.

        Parameters
        ----------
        frames
            Canonical table name to rows.
        source
            Where the rows came from (a path, a URL, ``twin:<scenario>``); never a secret.
        kind
            What the source was (e.g. ``twin``, ``page-5339-xlsx``).
        content_hash
            Hash of the source content, for recognising repeated loads.
        environment, company
            Recorded in ``loads`` for provenance.
        rows_rejected
            Rows the source reader dropped, for the provenance row.

        Returns
        -------
        LoadReport
            Per-table counts and the ``load_id`` (``None`` when nothing changed, so that a
            repeated load leaves the workspace exactly as it was).
        """
        report = LoadReport(source=source, kind=kind)
        with self.transaction() as con:
            for table, frame in frames.items():
                report.tables[table] = self.upsert(table, frame)
            if report.rows_inserted or report.rows_updated or rows_rejected:
                report.load_id = con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM loads").fetchone()[0]
                con.execute(
                    "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        report.load_id,
                        source,
                        content_hash,
                        kind,
                        environment,
                        company,
                        report.rows_read,
                        report.rows_inserted,
                        report.rows_updated,
                        rows_rejected,
                        dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    ],
                )
        return report

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
            clauses.append("(" + " OR ".join(f'"{c}" ILIKE ?' for c in text_cols) + ")")
            params.extend([f"%{search}%"] * len(text_cols))
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
            "SELECT environment, company, count(*) AS jobs FROM ("
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


def _table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise SchemaError(f"Unknown table {name!r}; the canonical tables are {sorted(TABLES)}.") from None
