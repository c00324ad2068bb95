"""Captions of BC's tables, pages and option values in English, French and German, and the file layouts.

The captions come from ``syncanalysis/data/bc-captions.csv`` (columns ``table, field, en, fr, de, origin``;
alternatives within a cell are separated by `` | ``). Its ``origin`` column says where values that the
spec's sources did not give come from: ``twin`` (the embedded twin's French rendering, which the sample
exports use) or ``own`` (this toolkit's rendering, to be confirmed against a real localized BC). An empty
origin means the spec's sources (BC's AL source and Microsoft's localized documentation).

A :class:`Layout` describes one kind of export file: its canonical target table and its columns in
page (or table field) order, each with the caption keys it may be exported under and how its values
are parsed.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources

from .. import bc

LANGS = ("en", "fr", "de")

T5338 = "5338 Integration Synch. Job"
P5338 = "page 5338 Integration Synch. Job List"
T5339 = "5339 Integration Synch. Job Errors"
P5339 = "page 5339 Integration Synch. Error List"
T5331 = "5331 CRM Integration Record"
P5333 = "page 5333 CRM Skipped Records"
T5335 = "5335 Integration Table Mapping"
P5335 = "page 5335 Integration Table Mapping List"
TOOLKIT = "syncanalysis"


def normalize(text: object) -> str:
    r"""Fold a caption or value for comparison: Unicode NFKC, case, apostrophes, dashes and spaces.

    Examples
    --------
    >>> normalize("  L’enregistrement\u00a0existe ")
    "l'enregistrement existe"
    """
    return _normalize(str(text))


@lru_cache(maxsize=1 << 16)  # recognition folds the same captions for every file
def _normalize(text: str) -> str:
    s = unicodedata.normalize("NFKC", text).casefold()
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-").replace("\u2011", "-")
    return re.sub(r"\s+", " ", s).strip()


@cache
def caption_rows() -> dict[tuple[str, str], dict[str, list[str]]]:
    """All rows of bc-captions.csv: ``(table, field) -> {lang: [captions]}`` (alternatives split)."""
    text = resources.files("syncanalysis").joinpath("data/bc-captions.csv").read_text(encoding="utf-8")
    out: dict[tuple[str, str], dict[str, list[str]]] = {}
    for row in csv.DictReader(text.splitlines()):
        out[(row["table"], row["field"])] = {
            lang: [v.strip() for v in (row.get(lang) or "").split(" | ") if v.strip()] for lang in LANGS
        }
    return out


def captions(key: tuple[str, str]) -> dict[str, list[str]]:
    """The captions of one ``(table, field)`` row by language (empty lists where unknown)."""
    try:
        return caption_rows()[key]
    except KeyError:  # pragma: no cover - a layout refers to a row that is not in the CSV
        raise KeyError(f"bc-captions.csv has no row {key!r}") from None


def field_name(key: tuple[str, str]) -> str:
    """The AL field name of a caption row (its ``field`` without a parenthesised note)."""
    return re.sub(r"\s*\(.*\)$", "", key[1]).strip()


def value_captions(keys: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Map the normalized caption (any language) and member name of option values to the canonical value.

    ``keys`` maps each canonical value to the caption row of that option member.
    """
    out: dict[str, str] = {}
    for value, key in keys.items():
        out[normalize(value)] = value
        for caps in captions(key).values():
            for c in caps:
                out[normalize(c)] = value
    return out


@cache
def job_types() -> dict[str, str]:
    """Table 5338 Type captions -> option name."""
    return value_captions({t: (T5338, f"Type={t} (option)") for t in bc.JOB_TYPES})


@cache
def directions() -> dict[str, str]:
    """Synch. Direction / Direction captions -> option name."""
    keys = {bc.BIDIRECTIONAL: (T5338, "Synch. Direction=Bidirectional (option)"),
            bc.TO_INTEGRATION: (T5338, "Synch. Direction=ToIntegrationTable (option)"),
            bc.FROM_INTEGRATION: (T5338, "Synch. Direction=FromIntegrationTable (option)")}
    out = value_captions(keys)
    out.update(value_captions({d: (T5335, f"Direction={d} (option)") for d in bc.DIRECTIONS}))
    return out


@cache
def results() -> dict[str, str]:
    """Last Synch. (CRM) Result captions -> option name ('' for blank)."""
    out = value_captions({"Success": (T5331, "Last Synch. Result=Success (option)"),
                          "Failure": (T5331, "Last Synch. Result=Failure (option)")})
    out[""] = ""
    return out


@cache
def deletion_resolutions() -> dict[str, str]:
    """Resolve Deletion Conflicts captions -> enum name (blank caption = None)."""
    out = value_captions({v: (T5335, f"Deletion-Conflict Resolution={v} (enum)") for v in bc.DELETION_RESOLUTIONS})
    out[""] = "None"
    return out


@cache
def update_resolutions() -> dict[str, str]:
    """Resolve Update Conflicts captions -> enum name (blank caption = None)."""
    out = value_captions({v: (T5335, f"Update-Conflict Resolution={v} (enum)") for v in bc.UPDATE_RESOLUTIONS})
    out[""] = "None"
    return out


@cache
def booleans() -> dict[str, bool]:
    """Yes/No captions in every language, plus true/false/1/0 -> bool."""
    out: dict[str, bool] = {"true": True, "false": False, "1": True, "0": False, "wahr": True, "falsch": False,
                            "vrai": True, "faux": False}
    for flag, key in ((True, ("Boolean", "Yes (value)")), (False, ("Boolean", "No (value)"))):
        for caps in captions(key).values():
            for c in caps:
                out[normalize(c)] = flag
    return out


@cache
def duration_units() -> dict[str, int]:
    """Duration unit words (singular and plural, every language) -> milliseconds."""
    sizes = {"day": 86_400_000, "hour": 3_600_000, "minute": 60_000, "second": 1000, "millisecond": 1}
    out: dict[str, int] = {"ms": 1, "s": 1000, "sec": 1000, "min": 60_000, "h": 3_600_000, "std": 3_600_000}
    for unit, size in sizes.items():
        for caps in captions(("Duration", f"{unit} (unit)")).values():
            for c in caps:
                out[normalize(c)] = size
    return out


@cache
def table_captions() -> dict[int, dict[str, list[str]]]:
    """BC and Dataverse table id -> captions by language (known tables of the default mappings)."""
    out: dict[int, dict[str, list[str]]] = {}
    for (group, fld), caps in caption_rows().items():
        if group in ("BC table", "Dataverse table"):
            out[int(fld.split()[0])] = caps
    for tid, cap in bc.BC_TABLES.items():
        out.setdefault(tid, {"en": [cap]})
    for tid, (cap, _) in bc.CRM_TABLES.items():
        out.setdefault(tid, {"en": [cap]})
    return out


def english_caption(table_id: int) -> str | None:
    """The English caption of a known table id."""
    caps = table_captions().get(table_id, {}).get("en")
    return caps[0] if caps else None


@cache
def caption_to_table() -> dict[str, int]:
    """Normalized table caption (any language) -> table id."""
    out: dict[str, int] = {}
    for tid, by_lang in table_captions().items():
        for caps in by_lang.values():
            for c in caps:
                out[normalize(c)] = tid
    return out


def is_dataverse_table(table_id: int | None) -> bool:
    """Whether a table id is a Dataverse proxy table (TableType = CRM)."""
    return table_id is not None and (table_id in bc.CRM_TABLES or 5330 <= table_id <= 5399 and table_id not in bc.BC_TABLES)


# Default mapping names of BC's standard Dataverse setup (codeunit 7204), by BC table, for page exports
# loaded into a workspace that knows no mappings yet.
DEFAULT_MAPPINGS = {13: "SALESPEOPLE", 4: "CURRENCY", 18: "CUSTOMER", 23: "VENDOR", 5050: "CONTACT",
                    27: "ITEM-PRODUCT", 204: "UNIT OF MEASURE"}


@cache
def direction_connectors() -> dict[str, str]:
    """The word between the two table captions of page 5338's Direction text, by language."""
    caps = captions((P5338, "Direction text (label)"))
    out = {}
    for lang in LANGS:
        for c in caps[lang]:
            m = re.fullmatch(r"%1 (.+) %2\.", c)
            if m:
                out[lang] = m.group(1)
    return out


# ------------------------------------------------------------------------------------------------
# Layouts

# How a column's values are parsed (parse.py builds the SQL for each).
DATETIME, INT, TEXT, GUID, BOOL, DURATION, DIRECTION, JOB_TYPE, SYNCH_DIRECTION, RESULT, DELETION, UPDATE, \
    TABLE_CAPTION, IGNORE = ("datetime", "int", "text", "guid", "bool", "duration", "direction", "job type",
                             "synch direction", "result", "deletion resolution", "update resolution",
                             "table caption", "ignore")

# Value kinds a column signature can show (see files.py `_value_kind`), and which layout types accept them.
ACCEPTS = {
    DATETIME: {"datetime", "empty"},
    INT: {"int", "empty"},
    DURATION: {"duration", "int", "empty"},
    GUID: {"guid", "empty"},
    BOOL: {"bool", "empty"},
    IGNORE: {"text", "bool", "empty"},
}


@dataclass(frozen=True)
class Column:
    """One column of a layout.

    ``target`` is a canonical column of the layout's table, or a name starting with ``_`` for a column
    that is read but not stored directly (Duration, Direction, Environment...).
    """

    target: str
    kind: str
    keys: tuple[tuple[str, str], ...]
    required: bool = False
    max_len: int | None = None
    hidden: bool = False  # not shown by default (hidden page field, view-specific or toolkit column)

    def names(self) -> dict[str, str]:
        """Normalized header -> how it matches (``caption-en``, ``caption-fr``, ``caption-de``, ``field name``)."""
        out: dict[str, str] = {}
        for key in self.keys:
            for lang in LANGS:
                for c in captions(key)[lang]:
                    out.setdefault(normalize(c), f"caption-{lang}")
        for key in self.keys:
            out.setdefault(normalize(field_name(key)), "field name")
        out.setdefault(normalize(self.target.strip("_")), "field name")
        return out


@dataclass(frozen=True)
class Layout:
    """One kind of export file: where its rows go and its columns in export order."""

    kind: str
    table: str
    title: str
    columns: tuple[Column, ...]
    page: bool
    titles: tuple[tuple[str, str], ...] = field(default=())


def _c(target: str, kind: str, *keys: tuple[str, str], required: bool = False, max_len: int | None = None,
       hidden: bool = False) -> Column:
    return Column(target, kind, tuple(keys), required, max_len, hidden)


_ENV_COLS = (_c("_environment", TEXT, (TOOLKIT, "Environment (column of combined exports)"), hidden=True),
             _c("_company", TEXT, (TOOLKIT, "Company (column of combined exports)"), hidden=True))

MESSAGE_LEN = 250  # Text[250] of 5338/5339 Message
ERROR_MESSAGE_LEN = 2048  # Text[2048] of 5339 Error Message

_COUNTERS = tuple(_c(n.lower(), INT, (T5338, n)) for n in ("Inserted", "Modified", "Deleted", "Unchanged"))

LAYOUTS: dict[str, Layout] = {lay.kind: lay for lay in [
    Layout("page-5338", "jobs", "Integration Synchronization Jobs", (
        _c("start_datetime", DATETIME, (T5338, "Start Date/Time"), required=True),
        _c("finish_datetime", DATETIME, (T5338, "Finish Date/Time")),
        _c("_duration", DURATION, (P5338, "Duration (page column)"), required=True),
        _c("mapping_name", TEXT, (T5338, "Integration Table Mapping Name"), hidden=True),
        _c("uncoupled", INT, (T5338, "Uncoupled"), hidden=True),
        _c("coupled", INT, (T5338, "Coupled"), hidden=True),
        *_COUNTERS,
        _c("failed", INT, (T5338, "Failed")),
        _c("skipped", INT, (T5338, "Skipped")),
        _c("synch_direction", SYNCH_DIRECTION, (T5338, "Synch. Direction"), hidden=True),
        _c("_direction", DIRECTION, (P5338, "Direction (page column)"), required=True),
        _c("type", JOB_TYPE, (T5338, "Type")),
        _c("message", TEXT, (T5338, "Message"), max_len=MESSAGE_LEN),
    ) + _ENV_COLS, page=True, titles=((P5338, "(page caption)"),)),
    Layout("page-5339", "job_errors", "Integration Synchronization Errors", (
        _c("error_no", INT, (T5339, "No."), required=True),
        _c("logged_at", DATETIME, (T5339, "Date/Time"), required=True),
        _c("error_message", TEXT, (P5339, "Message (page column caption)"), (T5339, "Error Message"), required=True,
           max_len=ERROR_MESSAGE_LEN),
        _c("_help_link", IGNORE, (P5339, "HelpLink (page column)")),
        _c("exception_detail", TEXT, (T5339, "Exception Detail"), hidden=True),
        _c("_source", IGNORE, (P5339, "Source (page column)")),
        _c("_destination", IGNORE, (P5339, "Destination (page column)")),
    ) + _ENV_COLS, page=True, titles=((P5339, "(page caption)"),)),
    Layout("page-5333", "skipped_records", "Coupled Data Synchronization Errors", (
        _c("table_id", INT, (P5333, "Table ID (column)"), required=True),
        _c("table_name", TEXT, (P5333, "Table Name (column)")),
        _c("description", TEXT, (P5333, "Description (column)"), required=True),
        _c("record_exists", BOOL, (P5333, "Record Exists (column)")),
        _c("coupled_to", TEXT, (P5333, "Int. Description (column)")),
        _c("coupled_record_exists", BOOL, (P5333, "Int. Record Exists (column)")),
        _c("error_message", TEXT, (P5333, "Error Message (column)"), max_len=ERROR_MESSAGE_LEN),
        _c("failed_on", DATETIME, (P5333, "Failed On (column)")),
    ) + _ENV_COLS, page=True, titles=((P5333, "(page caption)"),)),
    Layout("page-5335", "mappings", "Integration Table Mappings", (
        _c("name", TEXT, (P5335, "Name (column)"), required=True),
        _c("_table", TABLE_CAPTION, (P5335, "TableCaptionValue (column)"), required=True),
        _c("table_filter", TEXT, (T5335, "Table Filter")),
        _c("direction", SYNCH_DIRECTION, (T5335, "Direction"), required=True),
        _c("_integration_table", TABLE_CAPTION, (P5335, "IntegrationTableCaptionValue (column)"), required=True),
        _c("integration_table_filter", TEXT, (T5335, "Integration Table Filter")),
        _c("synch_only_coupled_records", BOOL, (T5335, "Synch. Only Coupled Records")),
        _c("_multi_company", IGNORE, (P5335, "Multi Company Synch. Enabled (column)")),
        _c("_integration_field", IGNORE, (P5335, "IntegrationFieldCaption (column)")),
        _c("_integration_field_type", IGNORE, (P5335, "IntegrationFieldType (column)")),
        _c("_table_config_template", IGNORE, (T5335, "Table Config Template Code")),
        _c("_int_tbl_config_template", IGNORE, (T5335, "Int. Tbl. Config Template Code")),
        _c("_table_config_templates", IGNORE, (P5335, "Table Config Templates (column)")),
        _c("_int_table_config_templates", IGNORE, (P5335, "Int. Table Config Templates (column)")),
        _c("_caption_prefix", IGNORE, (P5335, "Int. Tbl. Caption Prefix (column)")),
        _c("synch_modified_on_filter", DATETIME, (T5335, "Synch. Modified On Filter")),
        _c("synch_int_tbl_mod_on_fltr", DATETIME, (T5335, "Synch. Int. Tbl. Mod. On Fltr.")),
        _c("deletion_conflict_resolution", DELETION, (T5335, "Deletion-Conflict Resolution")),
        _c("update_conflict_resolution", UPDATE, (T5335, "Update-Conflict Resolution")),
        _c("_disable_event_job_resch", IGNORE, (P5335, "Disable Event Job Resch. (column)")),
        _c("_user_defined", IGNORE, (P5335, "User Defined (column)")),
    ) + _ENV_COLS, page=True, titles=((T5335, "(list page caption)"),)),
    Layout("table-5338", "jobs", "Integration Synch. Job", (
        _c("job_id", GUID, (T5338, "ID"), required=True),
        _c("start_datetime", DATETIME, (T5338, "Start Date/Time"), required=True),
        _c("finish_datetime", DATETIME, (T5338, "Finish Date/Time")),
        _c("message", TEXT, (T5338, "Message"), max_len=MESSAGE_LEN),
        _c("mapping_name", TEXT, (T5338, "Integration Table Mapping Name"), required=True),
        *_COUNTERS,
        _c("skipped", INT, (T5338, "Skipped")),
        _c("failed", INT, (T5338, "Failed")),
        _c("synch_direction", SYNCH_DIRECTION, (T5338, "Synch. Direction")),
        _c("job_queue_log_entry_no", INT, (T5338, "Job Queue Log Entry No.")),
        _c("type", JOB_TYPE, (T5338, "Type")),
        _c("uncoupled", INT, (T5338, "Uncoupled")),
        _c("coupled", INT, (T5338, "Coupled")),
    ) + _ENV_COLS, page=False, titles=((T5338, "(table)"),)),
    Layout("table-5339", "job_errors", "Integration Synch. Job Errors", (
        _c("error_no", INT, (T5339, "No."), required=True),
        _c("job_id", GUID, (T5339, "Integration Synch. Job ID"), required=True),
        _c("source_record_id", TEXT, (T5339, "Source Record ID")),
        _c("destination_record_id", TEXT, (T5339, "Destination Record ID")),
        _c("message", TEXT, (T5339, "Message"), max_len=MESSAGE_LEN),
        _c("logged_at", DATETIME, (T5339, "Date/Time"), required=True),
        _c("exception_detail", TEXT, (T5339, "Exception Detail")),
        _c("error_message", TEXT, (T5339, "Error Message"), max_len=ERROR_MESSAGE_LEN),
    ) + _ENV_COLS, page=False, titles=((T5339, "(table)"),)),
    Layout("table-5331", "couplings", "CRM Integration Record", (
        _c("crm_id", GUID, (T5331, "CRM ID"), required=True),
        _c("integration_id", GUID, (T5331, "Integration ID"), required=True),
        _c("last_synch_modified_on", DATETIME, (T5331, "Last Synch. Modified On")),
        _c("last_synch_crm_modified_on", DATETIME, (T5331, "Last Synch. CRM Modified On")),
        _c("table_id", INT, (T5331, "Table ID"), required=True),
        _c("last_synch_result", RESULT, (T5331, "Last Synch. Result")),
        _c("last_synch_crm_result", RESULT, (T5331, "Last Synch. CRM Result")),
        _c("last_synch_job_id", GUID, (T5331, "Last Synch. Job ID")),
        _c("last_synch_crm_job_id", GUID, (T5331, "Last Synch. CRM Job ID")),
        _c("skipped", BOOL, (T5331, "Skipped")),
        _c("_option_mapping_failure", IGNORE, (T5331, "Option Mapping Failure")),
        _c("_statistics_uploaded", IGNORE, (T5331, "Statistics Uploaded")),
        _c("_archived_sales_order", IGNORE, (T5331, "Archived Sales Order")),
        _c("_archived_sales_order_updated", IGNORE, (T5331, "Archived Sales Order Updated")),
    ) + _ENV_COLS, page=False, titles=((T5331, "(table)"),)),
    Layout("table-5335", "mappings", "Integration Table Mapping", (
        _c("name", TEXT, (T5335, "Name"), required=True),
        _c("table_id", INT, (T5335, "Table ID"), required=True),
        _c("integration_table_id", INT, (T5335, "Integration Table ID"), required=True),
        _c("_table_config_template", IGNORE, (T5335, "Table Config Template Code")),
        _c("_int_tbl_config_template", IGNORE, (T5335, "Int. Tbl. Config Template Code")),
        _c("direction", SYNCH_DIRECTION, (T5335, "Direction")),
        _c("synch_int_tbl_mod_on_fltr", DATETIME, (T5335, "Synch. Int. Tbl. Mod. On Fltr.")),
        _c("synch_modified_on_filter", DATETIME, (T5335, "Synch. Modified On Filter")),
        _c("table_filter", TEXT, (T5335, "Table Filter")),
        _c("integration_table_filter", TEXT, (T5335, "Integration Table Filter")),
        _c("synch_only_coupled_records", BOOL, (T5335, "Synch. Only Coupled Records")),
        _c("dependency_filter", TEXT, (T5335, "Dependency Filter")),
        _c("deletion_conflict_resolution", DELETION, (T5335, "Deletion-Conflict Resolution")),
        _c("update_conflict_resolution", UPDATE, (T5335, "Update-Conflict Resolution")),
        _c("table_caption", TEXT, (T5335, "Table Caption")),
    ) + _ENV_COLS, page=False, titles=((T5335, "(table)"),)),
    # The twin's ground truth (sample_data/ground_truth_incidents.csv), for checking a diagnosis.
    Layout("incidents", "incidents", "ground truth incidents", (
        _c("incident_id", INT, required=True),
        _c("kind", TEXT, required=True),
        _c("start", DATETIME, required=True),
        _c("end", DATETIME, required=True),
        _c("mapping", TEXT, required=True),
        _c("affected_keys", TEXT, required=True),
        _c("description", TEXT, required=True),
    ) + _ENV_COLS, page=False),
]}

KINDS = ("auto", *LAYOUTS)
"""Values of ``kind`` (the CLI's ``--kind``): ``auto`` recognises the file; the others force a layout."""


def title_captions(layout: Layout) -> set[str]:
    """Normalized page/table captions of a layout in every language (sheet names, file names)."""
    out = {normalize(layout.title)}
    for key in layout.titles:
        for caps in captions(key).values():
            out.update(normalize(c) for c in caps)
    return out
