"""Business Central facts shared by every layer: option values, table ids, captions, record ids.

Names and option values follow ``shared/domain/bc-sync-spec.md`` (tables 5331, 5335, 5338, 5339).
"""

from __future__ import annotations

import pandas as pd

# Table 5338 "Synch. Direction" and table 5335/5336 "Direction" (option 0,1,2).
BIDIRECTIONAL = "Bidirectional"
TO_INTEGRATION = "ToIntegrationTable"
FROM_INTEGRATION = "FromIntegrationTable"
DIRECTIONS = (BIDIRECTIONAL, TO_INTEGRATION, FROM_INTEGRATION)

# Table 5338 "Type" (option 0,1,2).
JOB_TYPES = ("Synchronization", "Uncoupling", "Coupling")

# Table 5331 "Last Synch. Result" / "Last Synch. CRM Result" (option ' ,Success,Failure').
RESULT_BLANK, RESULT_SUCCESS, RESULT_FAILURE = 0, 1, 2
RESULT_NAMES = ("", "Success", "Failure")  # the blank option is stored as NULL in the workspace

# Enum 5337 "Integration Deletion Conflict Resolution" (field caption "Resolve Deletion Conflicts").
DELETION_RESOLUTIONS = ("None", "Restore Records", "Remove Coupling")
# Enum 5338 "Integration Update Conflict Resolution" (field caption "Resolve Update Conflicts").
UPDATE_RESOLUTIONS = ("None", "Send Update to Integration", "Get Update from Integration")

# BC tables used by the default Dataverse mappings: id -> caption.
BC_TABLES = {
    4: "Currency",
    13: "Salesperson/Purchaser",
    18: "Customer",
    23: "Vendor",
    27: "Item",
    204: "Unit of Measure",
    5050: "Contact",
}
# Dataverse proxy tables (TableType = CRM): id -> (caption, logical name).
CRM_TABLES = {
    5340: ("Dataverse Systemuser", "systemuser"),
    5341: ("Dataverse Account", "account"),
    5342: ("Dataverse Contact", "contact"),
    5345: ("Dataverse Transactioncurrency", "transactioncurrency"),
    5348: ("Dataverse Product", "product"),
    5362: ("Dataverse Uomschedule", "uomschedule"),
}

SERVICE_NAME = "Dataverse"


def format_guid(guid: str) -> str:
    """Format a GUID as AL's ``Format(Guid)`` does: upper case inside braces."""
    return "{" + guid.strip("{}").upper() + "}"


def record_id(table_caption: str, key: str) -> str:
    """Return a RecordID as BC formats it: ``<table caption>: <primary key values>``.

    Examples
    --------
    >>> record_id("Customer", "10000")
    'Customer: 10000'
    """
    return f"{table_caption}: {key}"


def split_record_id(record_id_text: str | None) -> tuple[str | None, str | None]:
    """Split one RecordID text into table caption and key (``(None, None)`` when it is not one).

    Examples
    --------
    >>> split_record_id("Sales Line: Invoice,1001,10000")
    ('Sales Line', 'Invoice,1001,10000')
    >>> split_record_id("10000")
    (None, None)
    """
    table, sep, key = (record_id_text or "").partition(": ")
    return (table, key) if sep else (None, None)


def direction_text(source_caption: str, destination_caption: str) -> str:
    """Return page 5338's computed Direction text, label ``"%1 to %2."``."""
    return f"{source_caption} to {destination_caption}."


def split_record_ids(record_ids: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split RecordID texts (``"Customer: 10000"``) into table caption and key; blanks give NULLs.

    Examples
    --------
    >>> t, k = split_record_ids(pd.Series(["Customer: 10000", "", None, "Dataverse Account: {A1}"]))
    >>> t.tolist()[0], k.tolist()[3]
    ('Customer', '{A1}')
    """
    s = record_ids.astype(object).where(record_ids.notna() & (record_ids.astype(str).str.len() > 0))
    parts = s.str.split(": ", n=1, expand=True).reindex(columns=[0, 1])
    return parts[0].where(s.notna()), parts[1].where(s.notna())
