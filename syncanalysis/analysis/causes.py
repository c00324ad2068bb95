"""What each error cause means for an admin: a title, a remedy and the BC action that resolves it.

A *cause* is the category of a catalogue template (``bc-error-templates.csv``, spec §7, plus
``extra-templates.csv``). :data:`CAUSES` holds one :class:`Cause` per category; :func:`cause_info`
also answers for unknown codes (an "unclassified" cause).

Action names are BC's (page 5333 Coupled Data Synchronization Errors: Retry, Retry All,
Synchronize, Set Up Coupling, Delete Couplings — "Remove Coupling" in the docs —, Find for Deleted,
Restore Records, Delete Records; mapping fields Resolve Deletion Conflicts / Resolve Update
Conflicts on page 5335). ``throttling`` is a category of our own for Dataverse service protection
limits: like ``timeout`` and ``pending`` it is *transient* — the next scheduled run retries the
record, so nothing needs doing unless it persists.
"""

from __future__ import annotations

from dataclasses import dataclass

UNCLASSIFIED = "unclassified"
DATAVERSE_ERROR = "dataverse-error"  # a Dataverse fault whose text names none of the other causes

# BC's resolution actions a finding or a triage panel can point at (page 5333 captions; the docs'
# name "Remove Coupling" for the Delete Couplings action).
BC_ACTIONS = ("Retry", "Retry All", "Synchronize", "Set Up Coupling", "Remove Coupling", "Restore Records",
              "Delete Records", "Find for Deleted")


@dataclass(frozen=True)
class Cause:
    """One error cause, written for an admin.

    Attributes
    ----------
    code
        The category (``not-coupled``, ``conflict``, …).
    title
        A short title.
    remedy
        What the admin should do and why, in a few sentences.
    action
        The resolution in one line, with BC's action names.
    transient
        True when the error heals by itself on a later run (nothing to do unless it persists).
    bc_action
        The one BC action (from :data:`BC_ACTIONS`) that fits best, or ``None`` when nothing should be run.
    """

    code: str
    title: str
    remedy: str
    action: str
    transient: bool = False
    bc_action: str | None = None


_LIST = [
    Cause(
        "conflict", "Update conflict: both sides changed",
        "The record changed in Business Central and in Dataverse since the last synchronization, on a "
        "bidirectional field, so BC overwrites neither side and the record fails on every run. Decide which side "
        "wins: run Synchronize on the record and choose the direction (Send data update to Dataverse / Get data "
        "update from Dataverse). To settle such conflicts automatically, set Resolve Update Conflicts on the "
        "integration table mapping (Send Update to Integration or Get Update from Integration).",
        "Synchronize choosing the winning side, or set Resolve Update Conflicts on the mapping",
        bc_action="Synchronize",
    ),
    Cause(
        "deleted", "Coupled record deleted on the other side",
        "One side of the coupling no longer exists, so the surviving record cannot be updated. Use Restore "
        "Records to re-create the deleted record from the survivor and couple it again, or Delete Records to "
        "delete the survivor too (Delete Couplings only forgets the link). To handle future deletions "
        "automatically, set Resolve Deletion Conflicts on the mapping (Restore Records or Remove Coupling).",
        "Restore Records or Delete Records; set Resolve Deletion Conflicts on the mapping",
        bc_action="Restore Records",
    ),
    Cause(
        "not-coupled", "A related (parent) record is not coupled",
        "The record refers to a parent record — salesperson, customer/company, currency, unit of measure, "
        "sales header — that is not coupled to Dataverse, so BC cannot fill the lookup. Couple the parent first "
        "(Set Up Coupling on it, or Synchronize it so that it is created and coupled), then Retry the blocked "
        "records (records not skipped yet are retried by the next run). Fix parents in dependency order: "
        "salespeople, currencies and units before customers and items, customers before contacts.",
        "Couple or synchronize the parent record first (Set Up Coupling / Synchronize on it), then Retry",
        bc_action="Retry",
    ),
    Cause(
        "not-found", "Record not found",
        "A record the synchronization needs was not found: it was deleted, renamed, or is outside the mapping's "
        "table filters. Check that it exists and passes the filters. If it was deleted, run Find for Deleted "
        "and then Restore Records or Delete Records; otherwise correct the reference and Retry.",
        "Find for Deleted, then Restore Records or Delete Records; or fix the reference and Retry",
        bc_action="Find for Deleted",
    ),
    Cause(
        "duplicate", "Already coupled to another record",
        "The record or the Dataverse row is already coupled to another record, so a second coupling is refused. "
        "Remove the wrong coupling (Delete Couplings / Remove Coupling) or open Set Up Coupling and pick the "
        "right counterpart, then Synchronize.",
        "Remove Coupling on the wrong pair or Set Up Coupling to the right one, then Synchronize",
        bc_action="Remove Coupling",
    ),
    Cause(
        "validation", "Data rejected by validation",
        "The destination rejected the data: a field validation, a required value or a table relation failed "
        "while the record was inserted or modified (read the inner message). Correct the data on the source "
        "record, or the field mapping / transformation rule, then Retry.",
        "Fix the data or the field mapping, then Retry",
        bc_action="Retry",
    ),
    Cause(
        "field-length", "Value longer than the destination field",
        "A text is longer than the destination field allows (for example a 160-character Dataverse account name "
        "into a 100-character BC Name). Shorten the value on the source record, or change the field mapping "
        "(map to a longer field, clear or transform the value), then Retry.",
        "Fix the data or the field mapping, then Retry",
        bc_action="Retry",
    ),
    Cause(
        "option-mapping", "Option value not mapped",
        "An option value (payment terms, shipment method, shipping agent) has no option mapping, or an option "
        "mapping is synchronized in a direction it does not support. Map or couple the option value and "
        "synchronize its option mapping first, then Retry.",
        "Map or synchronize the option value first, then Retry",
        bc_action="Retry",
    ),
    Cause(
        "currency", "Currency setup",
        "A currency is missing in Dataverse, has no exchange rate in BC, or the local currency does not match an "
        "ISO code. Fix the currency setup (currency with its ISO code and an exchange rate; the LCY code in "
        "General Ledger Setup), Synchronize the currency (CURRENCY mapping), then Retry the blocked records.",
        "Fix the currency setup, Synchronize the currency, then Retry",
        bc_action="Synchronize",
    ),
    Cause(
        "uom", "Unit of measure / unit group setup",
        "A unit of measure or its Dataverse unit group is missing or misconfigured (wrong name, several units, "
        "quantity not 1, inactive, shared by several products). Fix the unit group in Dataverse or the unit of "
        "measure in BC, Synchronize the unit of measure (UNIT OF MEASURE mapping), then Retry the items.",
        "Fix the unit setup, Synchronize the unit of measure, then Retry",
        bc_action="Synchronize",
    ),
    Cause(
        "ownership", "Owner, team or business unit mismatch",
        "The owner of the Dataverse row does not fit the ownership model (Person or Team), or the user, team or "
        "business unit does not exist or does not match BC's. Check the ownership model, business unit and "
        "default owning team in Dataverse Connection Setup and the owner of the row, then Retry.",
        "Fix the owner / team / business unit setup, then Retry",
        bc_action="Retry",
    ),
    Cause(
        "company", "Company (multi-company) setup",
        "The Dataverse row is not linked to this BC company (CompanyId / bcbi_company), or the company row is "
        "missing in Dataverse. Run the Dataverse connection setup again so the company exists, correct the "
        "company of the rows, then Retry.",
        "Fix the company link of the rows, then Retry",
        bc_action="Retry",
    ),
    Cause(
        "permission", "Missing privilege or credentials",
        "The integration user lacks a Dataverse privilege (e.g. prvCreateAccount), is disabled or unlicensed, or "
        "the credentials are wrong; BC may have disabled the connection. Fix the integration user's security role "
        "(Power Platform admin center) or the credentials in Dataverse Connection Setup, enable the connection "
        "again, then Retry All.",
        "Fix the integration user's security role, then Retry All",
        bc_action="Retry All",
    ),
    Cause(
        "connection", "Connection to Dataverse failed or disabled",
        "BC could not talk to Dataverse: the connection is disabled, the URL, user or token is wrong, or the "
        "service returned an error. Check and test Dataverse Connection Setup and enable it again; failed records "
        "are retried by the next run, skipped ones need Retry All.",
        "Fix and enable the connection, then Retry All",
        bc_action="Retry All",
    ),
    Cause(
        "timeout", "Time-out or transient server error",
        "A request timed out or hit a transient server error (SQL time-out, deadlock). Nothing to do: the record "
        "is retried by the next scheduled run and heals by itself. Act only if it persists — then check the "
        "Dataverse service health, plug-ins on the table, and the size of the job's batches.",
        "Nothing, it heals; retry only if it persists",
        transient=True,
    ),
    Cause(
        "throttling", "Dataverse service protection limits (throttling)",
        "Dataverse throttled the integration user (service protection API limits: number of requests, combined "
        "execution time or concurrent requests over a 5-minute window). Nothing to do: the records are retried by "
        "the next run. If it persists, spread the job queue entries over time, lower their frequency, or move "
        "heavy loads out of business hours.",
        "Nothing, it heals; retry only if it persists",
        transient=True,
    ),
    Cause(
        "configuration", "Mapping or setup error",
        "The integration table mapping or setup is invalid: missing field mappings, an unsupported direction, a "
        "missing configuration template, match criteria not set. Fix the mapping in Integration Table Mappings "
        "(or reset the default mappings), then run the job again and Retry All.",
        "Fix the integration table mapping, then Retry All",
        bc_action="Retry All",
    ),
    Cause(
        "coupling", "Coupling or uncoupling run failed",
        "A match-based coupling or an uncoupling run failed for the record: no unique uncoupled match was found, "
        "or the record could not be modified while (un)coupling. Check the match criteria, couple the record "
        "by hand with Set Up Coupling, or remove the coupling again.",
        "Set Up Coupling by hand, or run Remove Coupling again",
        bc_action="Set Up Coupling",
    ),
    Cause(
        "pending", "Not committed yet (retried next run)",
        "The posted document was not committed in the database yet when the job ran; the next scheduled run "
        "synchronizes it. Nothing to do.",
        "Nothing, it heals on the next run",
        transient=True,
    ),
    Cause(
        "dataverse-error", "Dataverse refused the request (cause in the inner text)",
        "Dataverse returned a fault that BC passed on, and its text names none of the known causes: often a "
        "plug-in, a business rule or a custom validation on the Dataverse table, or a platform fault. Read the "
        "inner text (and the Dataverse error code when there is one) to find the plug-in or rule, fix the data or "
        "the Dataverse customization, then Retry. This is not a connection problem: the connection worked.",
        "Read the inner Dataverse text, fix the data or the plug-in/rule, then Retry",
        bc_action="Retry",
    ),
    Cause(
        "internal", "Internal synchronization error",
        "The synchronization engine reached a state it does not expect (context not initialized, invalid state), "
        "usually after an update or a concurrent run. Run the job again; if it repeats, collect the call stack "
        "(Show Error Call Stack) and contact your partner or Microsoft support.",
        "Run the job again, then Retry; escalate if it repeats",
        bc_action="Retry",
    ),
]

CAUSES: dict[str, Cause] = {c.code: c for c in _LIST}

_UNCLASSIFIED = Cause(
    UNCLASSIFIED, "Unclassified error",
    "No known message template, error code or wording rule matches this text (often a custom extension, a "
    "platform message, or a text in another language than English). Look at the inner text (the part after "
    "\"because of the following error:\" or \"Detailed description:\") and at the call stack (Show Error Call "
    "Stack on the error) to find the extension, table or field involved; fix the data or the code, then Retry. "
    "If the text recurs, add it as a local template so that it gets a cause.",
    "Read the inner text and the call stack, fix, then Retry",
)


def cause_info(cause: str | None) -> Cause:
    """Return the :class:`Cause` of a category; unknown or empty codes give the "unclassified" cause.

    Parameters
    ----------
    cause
        A category such as ``"not-coupled"``.

    Examples
    --------
    >>> cause_info("throttling").transient
    True
    >>> cause_info("no-such-thing").code
    'unclassified'
    """
    return CAUSES.get(cause or "", _UNCLASSIFIED)
