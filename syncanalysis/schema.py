"""The canonical tables of the workspace (DESIGN.md "Canonical data"), one definition each.

Every history table carries ``environment`` and ``company`` so that many customers and companies
share one workspace. Column names are snake_case versions of the BC fields of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 6
# Versions a workspace can be upgraded from when opened writable (see Workspace._check_version): v3 adds
# how each text was matched to ``signatures``, an analysis cache that is simply rebuilt.
UPGRADABLE_FROM = (2, 3, 4, 5)

# How complete a source row is (column ``fidelity``). A row is only overwritten by a source of the same
# or a higher fidelity; a lower one only fills what is still empty (see Workspace.upsert).
FIDELITY_TABLE = 2  # table-level exports, OData over the tables, the twin
FIDELITY_PAGE = 1  # page exports: no GUIDs, second-precision times, captions


@dataclass(frozen=True)
class Table:
    """A canonical table: ordered columns with DuckDB types, and its natural key."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    doc: str

    @property
    def column_names(self) -> list[str]:
        """The column names, in order."""
        return [c for c, _ in self.columns]

    @property
    def types(self) -> dict[str, str]:
        """Column name -> DuckDB type."""
        return dict(self.columns)

    def ddl(self) -> str:
        """The ``CREATE TABLE IF NOT EXISTS`` statement of the table: key columns NOT NULL, the key as primary key."""
        cols = ",\n  ".join(f'"{c}" {t}' + (" NOT NULL" if c in self.key else "") for c, t in self.columns)
        key = ", ".join(f'"{k}"' for k in self.key)
        return f'CREATE TABLE IF NOT EXISTS "{self.name}" (\n  {cols},\n  PRIMARY KEY ({key})\n)'


_ENV = (("environment", "VARCHAR"), ("company", "VARCHAR"))
_FIDELITY = (("fidelity", "SMALLINT"),)

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "mappings",
            _ENV
            + (
                ("name", "VARCHAR"),
                ("table_id", "INTEGER"),
                ("table_caption", "VARCHAR"),
                ("integration_table_id", "INTEGER"),
                ("integration_table_caption", "VARCHAR"),
                ("direction", "VARCHAR"),
                ("synch_only_coupled_records", "BOOLEAN"),
                ("deletion_conflict_resolution", "VARCHAR"),
                ("update_conflict_resolution", "VARCHAR"),
                ("dependency_filter", "VARCHAR"),
                ("table_filter", "VARCHAR"),
                ("integration_table_filter", "VARCHAR"),
                ("synch_int_tbl_mod_on_fltr", "TIMESTAMP"),
                ("synch_modified_on_filter", "TIMESTAMP"),
            )
            + _FIDELITY,
            ("environment", "company", "name"),
            "Table 5335 Integration Table Mapping.",
        ),
        Table(
            "jobs",
            _ENV
            + (
                ("job_id", "UUID"),
                ("start_datetime", "TIMESTAMP"),
                ("finish_datetime", "TIMESTAMP"),
                ("message", "VARCHAR"),
                ("mapping_name", "VARCHAR"),
                ("inserted", "INTEGER"),
                ("modified", "INTEGER"),
                ("deleted", "INTEGER"),
                ("unchanged", "INTEGER"),
                ("skipped", "INTEGER"),
                ("failed", "INTEGER"),
                ("synch_direction", "VARCHAR"),
                ("job_queue_log_entry_no", "INTEGER"),
                ("type", "VARCHAR"),
                ("uncoupled", "INTEGER"),
                ("coupled", "INTEGER"),
                # derived: finish - start in ms (NULL while running/crashed, as page 5338 hides it)
                ("duration_ms", "BIGINT"),
                # derived: 'foreground' when Job Queue Log Entry No. = 0, else 'job queue'
                ("trigger", "VARCHAR"),
                # true when job_id was made up for a page export row (page 5338 has no ID column)
                ("inferred", "BOOLEAN"),
            )
            + _FIDELITY,
            ("environment", "company", "job_id"),
            "Table 5338 Integration Synch. Job, one row per run of one mapping in one direction.",
        ),
        Table(
            "job_errors",
            _ENV
            + (
                ("error_no", "BIGINT"),
                ("job_id", "UUID"),
                ("logged_at", "TIMESTAMP"),
                ("source_record_id", "VARCHAR"),
                ("destination_record_id", "VARCHAR"),
                ("source_table", "VARCHAR"),
                ("source_key", "VARCHAR"),
                ("destination_table", "VARCHAR"),
                ("destination_key", "VARCHAR"),
                ("message", "VARCHAR"),
                ("error_message", "VARCHAR"),
                ("exception_detail", "VARCHAR"),
                # true when job_id was linked by time (page 5339 exports have no job id)
                ("job_inferred", "BOOLEAN"),
                ("signature", "VARCHAR"),
                ("cause", "VARCHAR"),
            )
            + _FIDELITY,
            ("environment", "company", "error_no"),
            "Table 5339 Integration Synch. Job Errors; signature and cause are derived by the analysis.",
        ),
        Table(
            "couplings",
            _ENV
            + (
                ("table_id", "INTEGER"),
                ("integration_id", "UUID"),
                ("crm_id", "UUID"),
                ("last_synch_modified_on", "TIMESTAMP"),
                ("last_synch_crm_modified_on", "TIMESTAMP"),
                # naming trap (spec §3): without "crm" = Dataverse -> BC, with "crm" = BC -> Dataverse
                ("last_synch_result", "VARCHAR"),
                ("last_synch_crm_result", "VARCHAR"),
                ("last_synch_job_id", "UUID"),
                ("last_synch_crm_job_id", "UUID"),
                ("skipped", "BOOLEAN"),
                ("bc_record_exists", "BOOLEAN"),
                ("crm_record_exists", "BOOLEAN"),
                ("bc_record_id", "VARCHAR"),
                ("crm_description", "VARCHAR"),
                # true when bc_record_id / existence were taken from another export (errors, page 5333)
                ("inferred", "BOOLEAN"),
            )
            + _FIDELITY,
            ("environment", "company", "table_id", "integration_id"),
            "Table 5331 CRM Integration Record (a snapshot), with whether each side still exists.",
        ),
        Table(
            "skipped_records",
            _ENV
            + (
                ("table_id", "INTEGER"),
                ("table_name", "VARCHAR"),
                ("description", "VARCHAR"),
                ("record_exists", "BOOLEAN"),
                ("coupled_to", "VARCHAR"),
                ("coupled_record_exists", "BOOLEAN"),
                ("error_message", "VARCHAR"),
                ("failed_on", "TIMESTAMP"),
                # the coupling this line is, linked by table and description (page 5333 has no GUIDs)
                ("integration_id", "UUID"),
                ("crm_id", "UUID"),
                ("link_inferred", "BOOLEAN"),
            )
            + _FIDELITY,
            # Description is blank when the BC record is gone and Coupled To when the Dataverse row is (as BC
            # fills the page): together, with blanks as '', they tell the lines apart
            ("environment", "company", "table_id", "description", "coupled_to"),
            "What page 5333 Coupled Data Synchronization Errors shows, for exports with only that page.",
        ),
        Table(
            "actions",
            (
                ("action_id", "BIGINT"),
                ("environment", "VARCHAR"),
                ("company", "VARCHAR"),
                ("at", "TIMESTAMP"),
                ("who", "VARCHAR"),
                ("action", "VARCHAR"),
                ("parameters", "JSON"),
                ("backend", "VARCHAR"),
                ("dry_run", "BOOLEAN"),
                ("outcome", "JSON"),
            ),
            ("action_id",),
            "The audit trail of resolution actions (counts, jobs, plan file and notes in ``outcome``).",
        ),
        Table(
            "action_targets",
            (
                ("action_id", "BIGINT"),
                ("table_id", "INTEGER"),
                ("integration_id", "UUID"),
                ("mapping_name", "VARCHAR"),
                ("result", "VARCHAR"),
                ("detail", "VARCHAR"),
            ),
            ("action_id", "table_id", "integration_id"),
            "Each target of an audited action and its outcome (integration_id: the coupling's; for Delete "
            "Entries, table 5338, the job's id).",
        ),
        Table(
            "loads",
            (
                ("load_id", "BIGINT"),
                ("source", "VARCHAR"),
                ("content_hash", "VARCHAR"),
                ("kind", "VARCHAR"),
                ("environment", "VARCHAR"),
                ("company", "VARCHAR"),
                ("rows_read", "BIGINT"),
                ("rows_inserted", "BIGINT"),
                ("rows_updated", "BIGINT"),
                ("rows_rejected", "BIGINT"),
                ("loaded_at", "TIMESTAMP"),
                # newest source timestamp of this load, for incremental OData reads
                ("watermark", "TIMESTAMP"),
                # the reader's report: columns matched and how, links inferred, warnings
                ("details", "JSON"),
            ),
            ("load_id",),
            "Provenance of every load.",
        ),
        Table(
            "incidents",
            _ENV
            + (
                ("incident_id", "INTEGER"),
                ("kind", "VARCHAR"),
                ("start", "TIMESTAMP"),
                ("end", "TIMESTAMP"),
                ("mapping", "VARCHAR"),
                ("affected_keys", "VARCHAR[]"),
                ("description", "VARCHAR"),
            ),
            ("environment", "company", "incident_id"),
            "Ground truth planted by a twin scenario, to check the diagnosis against.",
        ),
        Table(
            "signatures",
            (
                ("error_message", "VARCHAR"),
                ("signature", "VARCHAR"),
                ("template", "VARCHAR"),
                ("cause", "VARCHAR"),
                ("inner_message", "VARCHAR"),
                ("parent_table", "VARCHAR"),
                ("parent_key", "VARCHAR"),
                ("match", "VARCHAR"),
                ("match_detail", "VARCHAR"),
                ("language", "VARCHAR"),
            ),
            ("error_message",),
            "One row per distinct error text: its signature, template, cause and how it was matched (analysis "
            "cache).",
        ),
        Table(
            "twin_state",
            _ENV
            + (
                ("scenario", "VARCHAR"),
                ("clock", "TIMESTAMP"),
                ("jobs_exported", "BIGINT"),
                ("errors_exported", "BIGINT"),
                # raised by every save, so a process can tell whether the twin it holds is still current
                ("revision", "BIGINT"),
                # the simulation as a JSON document (twin.store) without its arrays, which are kept in twin_buffers
                ("state", "BLOB"),
                ("buffers", "VARCHAR[]"),
            ),
            ("environment", "company"),
            "The embedded twin behind an environment/company, so actions and `twin advance` act on it.",
        ),
        Table(
            "twin_buffers",
            _ENV + (("digest", "VARCHAR"), ("data", "BLOB")),
            ("environment", "company", "digest"),
            "The twin's numeric arrays by content, so that storing it after an action writes only what changed.",
        ),
    ]
}

HISTORY_TABLES = ("mappings", "jobs", "job_errors", "couplings", "skipped_records", "incidents")
# Tables whose rows carry a fidelity (see FIDELITY_TABLE).
FIDELITY_TABLES = ("mappings", "jobs", "job_errors", "couplings", "skipped_records")
