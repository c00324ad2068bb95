"""Error texts as BC writes them to table 5339, from ``bc-error-templates.csv`` with values filled in.

``Message`` holds the first 250 characters, ``Error Message`` the first 2048, and ``Exception
Detail`` an AL call stack ending in the codeunit that raised the error.
"""

from __future__ import annotations

import numpy as np

MESSAGE_LEN = 250
ERROR_MESSAGE_LEN = 2048
SERVICE = "Dataverse"
APP_VERSION = "Base Application by Microsoft version 25.1.25678.26911"

# Catalogue templates used by the twin (verbatim from bc-error-templates.csv).
DELETED = "The %1 record cannot be updated because it is coupled to a deleted record."
CONFLICT = (
    "Cannot update a record in the %2 table. The mapping between %3 field on the %1 table and the %4 field on "
    "the %2 table is bi-directional, and one or both values have changed since the last synchronization."
)
# IntegrationTableSynch MappingDoesNotAllowDirectionErr (%1 = table caption, %2 = mapping name, %3 = direction)
DIRECTION_NOT_CONFIGURED = "The %1 %2 is not configured for %3 synchronization."
# IntegrationTableSynch IntegrationTableMappingHasNoMappedFieldsErr
NO_FIELD_MAPPING = "There are no field mapping rows for the %2 %3 in the %1 table."
MODIFY_FAILED = "Modifying %1 failed because of the following error: %2."
STRING_LENGTH = "The length of the string is %1, but it must be less than or equal to %2 characters. Value: %3"
MUST_BE_COUPLED_ROW = "%1 %2 must be coupled to a %3 row."
CURRENCY_NOT_FOUND = "Cannot find the currency with the value '%1' in Dataverse."
CURRENCY_NO_RATE = "Cannot create or update the currency %1 in %2, because there is no exchange rate defined for it."
UNIT_GROUP_NOT_FOUND = "Cannot find the unit group '%1' in %2."
UOM_WRONG_NAME = "The unit of measure in the unit group '%1' has an incorrect name: expected name '%2', found name '%3'."
CONTACT_NO_RELATION = (
    "The contact %1 must have a contact company that has a business relation to a customer or vendor."
)
CONTACT_NO_COMPANY = "The contact cannot be synchronized because the company does not exist."
COMMUNICATION = "An error occurred when communicating with Dataverse."
PRIVILEGE = "Principal user (Id=%1, type=8) is missing %2 privilege"
TIMEOUT = "The operation timed out. Try again.\\%1"

# Codeunit frames per template family: the innermost frame raised the error.
_STACK_TAIL = [
    '"Integration Rec. Synch. Invoke"(CodeUnit 5345).SynchRecord line 74',
    '"Integration Table Synch."(CodeUnit 5335).Synchronize line 61',
    '"CRM Integration Table Synch."(CodeUnit 5340).SynchRecordsToIntegrationTable line 48',
    '"CRM Integration Table Synch."(CodeUnit 5340).OnRun(Trigger) line 37',
    '"Integration Synch. Job Runner"(CodeUnit 5339).RunIntegrationTableSynch line 18',
    '"Integration Synch. Job Runner"(CodeUnit 5339).OnRun(Trigger) line 12',
    '"Job Queue Dispatcher"(CodeUnit 448).OnRun(Trigger) line 35',
]
_STACK_HEAD = {
    "engine": ['"Integration Rec. Synch. Invoke"(CodeUnit 5345).ModifyRecord line 22'],
    "helper": [
        '"CRM Synch. Helper"(CodeUnit 5342).GetCoupledCRMID line 14',
        '"CRM Int. Table. Subscriber"(CodeUnit 5341).OnTransferFieldData line 40',
    ],
    "subscriber": ['"CDS Int. Table. Subscriber"(CodeUnit 7205).OnBeforeInsertRecord line 31'],
    "platform": ['"Integration Record Synch."(CodeUnit 5336).TransferFields line 57'],
    "dataverse": [
        '"CDS Integration Impl."(CodeUnit 7201).CheckConnectionRequiredFields line 9',
        '"Integration Rec. Synch. Invoke"(CodeUnit 5345).InsertRecord line 30',
    ],
}


def fill(template: str, *values: object) -> str:
    """Replace ``%1..%4`` in an AL label; an AL backslash pair is a line break."""
    out = template
    for i in range(len(values), 0, -1):
        out = out.replace(f"%{i}", str(values[i - 1]))
    return out.replace("\\", "\n")


def call_stack(family: str) -> str:
    """Return an AL call stack (Exception Detail) for an error raised by ``family``."""
    frames = _STACK_HEAD[family] + _STACK_TAIL
    return "\n".join(f"{f} - {APP_VERSION}" for f in frames)


CALL_STACKS = {family: call_stack(family) for family in _STACK_HEAD}


def long_value(seed: int, length: int) -> str:
    """A deterministic company-like text of ``length`` characters (for field-length errors)."""
    words = ["Nordic", "Consolidated", "International", "Holding", "Logistics", "Services", "Trading", "Group",
             "Industrial", "Solutions", "Partners", "Technologies", "Manufacturing", "Distribution"]
    rng = np.random.default_rng(seed)
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < length:
        parts.append(words[int(rng.integers(len(words)))])
    return " ".join(parts)[:length]
