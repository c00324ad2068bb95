"""Cause rules: how the authoritative catalogues and free texts map to our causes, rule by rule.

Two catalogues ship as package data (sources and licences in ``data/CATALOGUE-SOURCES.md``):

* ``dataverse-error-codes.csv`` — every Dataverse web service error of Microsoft's documentation
  (hex and integer code, name, message template with ``{0}`` placeholders);
* ``bc-integration-labels.csv`` — every label of the Base App's ``Integration/`` code (BC 24.1).

Each row gets a cause from the **first** rule of an ordered list that claims it, or an explicit
"no cause" with the rule's reason (:func:`dataverse_code_causes`, :func:`label_causes`). The rules
look at the code's *name* (its family: ``Privilege*``, ``*DoesNotExist``, ``Duplicate*``…) and at its
message, so a reader can check any row against the rule that claimed it; ``tests/test_rules.py``
lists how many rows each rule claims.

Texts that no template matches go through :data:`TEXT_RULES`: families of wording that name a
cause whatever the template ("(429)", "exceeded the maximum allowed length", "prvCreateAccount").
Rules marked ``needs_context`` are generic ("timed out", "(503)", "Forbidden") and apply only where
the text is known to come from Dataverse: inside BC's Dataverse wrapper, or when it names
Dataverse / CRM / Dynamics 365 or carries a Dataverse error code. Elsewhere they stay silent, so a
time-out of another connector is not called a Dataverse time-out.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

NO_CAUSE = ""  # the cause of a rule that claims rows without giving them a cause (it gives a reason)

DATAVERSE_CODES_FILE = "dataverse-error-codes.csv"
BC_LABELS_FILE = "bc-integration-labels.csv"


@dataclass(frozen=True)
class Rule:
    """One mapping rule.

    Attributes
    ----------
    name
        Short rule name (shown as the match detail of what it claims).
    cause
        The cause it gives, or :data:`NO_CAUSE`.
    why
        Why: the reason of the cause, or why the rows get none.
    name_rx
        Regex searched in a catalogue row's name (Dataverse code name / BC label name), or ``None``.
    text_rx
        Regex searched in the message / label text, or ``None``.
    needs_context
        For :data:`TEXT_RULES`: applies only to texts known to come from Dataverse.
    in_wrapper
        For :data:`TEXT_RULES`: applies only to the inner text of one of BC's synchronization wrappers
        (generic AL runtime errors are a synchronization cause only there).
    """

    name: str
    cause: str
    why: str
    name_rx: re.Pattern[str] | None = None
    text_rx: re.Pattern[str] | None = None
    needs_context: bool = False
    in_wrapper: bool = False

    def claims(self, name: str, text: str) -> bool:
        """Whether the rule claims a row: ``name_rx`` is found in ``name`` or ``text_rx`` in ``text``."""
        return bool((self.name_rx is not None and self.name_rx.search(name))
                    or (self.text_rx is not None and self.text_rx.search(text)))


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | flags)


def _cs(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# Feature areas of Dataverse that BC's table synchronization never calls (solutions, imports, reports,
# mail, workflows, portals…). Matched on the code name's leading word(s).
_OUTSIDE_SYNC = (
    r"^(?:Import|Export|Solution|Mail|Email|SP[A-Z]|SharePoint|Report|RS[A-Z]|Workflow|Ribbon|Form|Mobile|"
    r"Recommendation|Canvas|Billing|Sandbox|Isv|Rollup|Calculated|Query|Async|Sdk|App(?:Module|Config|lication)?|"
    r"Layer|Customiz|Contract|Incident|Entitlement|Knowledge|Campaign|Marketing|Invitation|CrmLive|Yammer|Azure|"
    r"Webhook|WebResource|Web[A-Z]|Power|Go[A-Z]|Mailbox|Queue|Sla|SLA|Goal|Document|Process|BPF|Bpf|Convert|Merge|"
    r"Task|Text|BusinessProcess|BusinessRule|ActionCard|ActionStep|Activity|ConfigDB|Dss|DSS|FetchXml|Fetch|"
    r"View|SavedQuery|Chart|Dashboard|Tablet|Outlook|Portal|OneNote|Search|Relevance|Audit|Elastic|Offline|"
    r"Channel|Connector|Tds|Ai[A-Z]|AI[A-Z]|Bids|Bulk|Clone|Cascade|Relationship|Attribute|Entity(?:Metadata)?|"
    r"OptionSet|Picklist|Plugin|Plugins|Custom|Data(?:Engine|Lake|Export|Download)|Package|Publish|Template|"
    r"Translation|Language|Locali[sz]|Field(?:Security|Permission)|Profile|Position|Hierarchy|Sequence|Kb|KB|"
    r"Article|Service(?:Endpoint|Plan)|Role(?:Template)?|Calendar|Appointment|Recurrence|Fax|Letter|Phone|"
    r"Social|Topic|Survey|Feedback|Lookup(?:Mru)?|Quick|Grid|Sitemap|SiteMap|Theme|Icon|Image|Attachment|File|"
    r"Annotation|Note|Blob|Storage|Unified|Interactive|Virtual|Monitor|Telemetry|Trace|Diagnostic|Health|Tenant|"
    r"Org(?:anization)?Setting|Upgrade|Deployment|Maintenance|Retention|Archive|Long|Flow|Copilot|Prompt|Teams)"
)

# Dataverse error codes: ordered, the first rule that claims a row wins. Service-wide conditions first
# (they are raised by any operation), then the feature areas outside synchronization, then data rules.
DATAVERSE_RULES: tuple[Rule, ...] = (
    Rule("service-protection", "throttling",
         "service protection API limits (requests, execution time or concurrency over a 5-minute window)",
         _cs(r"Throttl|RequestLimitExceeded|ConcurrencyLimitExceeded|TimeExceeded|TooManyRequests"),
         _rx(r"number of (?:concurrent )?requests exceeded|combined execution time|service protection|"
             r"too many requests|\(429\)")),
    Rule("privilege", "permission", "the caller lacks a Dataverse privilege or security role",
         _cs(r"Privilege|AccessDenied|NoPermission|Permission|Unauthorized|NotAuthorized|Insufficient|SecLib"),
         _rx(r"\bprv[A-Z]\w+|privilege|permission|access is denied|not authorized|does not have (?:the )?"
             r"(?:required|sufficient|enough)|security role")),
    Rule("licence-or-disabled-user", "permission", "the integration user is unlicensed, disabled or not in the org",
         _cs(r"NotLicensed|Unlicensed|UserDisabled|DisabledUser|UserIsDisabled|UserNotEnabled|UserNotInOrg|"
             r"NotMemberOfOrg|UserNotMember"),
         _rx(r"\bnot licensed|\bno license|user is disabled|disabled user|not a member of the organization")),
    Rule("administration-mode", "connection",
         "the organization is in administration mode or disabled: BC's integration user cannot sign in "
         "(BC docs: disable administration mode, or run the connection as an administrator)",
         _cs(r"AdminMode|AdministrationMode|OrgIsDisabled|OrganizationDisabled|OrganizationIsDisabled|OrgDisabled"),
         _rx(r"administration mode|admin mode|organization is disabled|organization has been disabled")),
    Rule("authentication", "connection", "signing in to Dataverse failed (Entra ID / token / credentials)",
         _cs(r"^(?:AAD|Aad)|Authenticat|OAuth|Token(?:Expired|Invalid)|ExpiredToken|AccessToken|Credential|"
             r"Logon|Login|SignIn|Ticket"),
         _rx(r"authenticat|access token|credentials|sign(?:ed)? in\b")),
    Rule("transient", "timeout", "time-out, deadlock or a transient server condition (heals on a later run)",
         _cs(r"Timeout|TimedOut|TimeOut|Deadlock|GenericSql|SqlTimeout|Transient|Unavailable|ServerBusy|"
             r"TryAgain|CircuitBreaker|SqlGovernor|ResourceLimitExceeded|MaxConcurrentWorkers|LockTimeout|Networking|"
             r"NetworkError"),
         _rx(r"time ?out|timed out|deadlock|try again later|temporarily unavailable|server is busy|"
             r"generic sql error|networking error")),
    Rule("outside-synchronization", NO_CAUSE,
         "a Dataverse feature BC's table synchronization does not call (solutions, imports, reports, mail, "
         "workflows, metadata, portals…); seen inside BC's wrapper it is a dataverse-error",
         _cs(_OUTSIDE_SYNC)),
    Rule("concurrency", "conflict",
         "the row changed since it was read (optimistic concurrency: its RowVersion no longer matches)",
         _cs(r"Concurrency(?:Version)?Mismatch"), _rx(r"version of the existing record doesn't match")),
    Rule("query", NO_CAUSE,
         "a query (FetchXML / QueryExpression) is invalid or breaks a Dataverse limit (conditions, joins, page "
         "size): not a data problem; seen inside BC's wrapper it is a dataverse-error",
         _cs(r"Query|FetchXml|Aggregate|Paging"),
         _rx(r"\bquery\b.{0,60}\blimit|hard limit of")),
    Rule("field-length", "field-length", "a value is longer than the column allows",
         _cs(r"MaxLength|TooLong|LengthExceed|StringLength|CharLength|SizeExceeded"),
         _rx(r"maximum (?:allowed )?length|too long|exceed(?:s|ed) the (?:maximum )?(?:length|size)")),
    Rule("duplicate", "duplicate", "a row with the same key or the same alternate key exists already",
         _cs(r"Duplicate|AlreadyExist"), _rx(r"duplicate|already exists|matching key values")),
    Rule("does-not-exist", "not-found", "a referenced row does not exist (deleted, or never there)",
         _cs(r"DoesNotExist|NotExist|NotFound|ObjectNotFound|RecordNotFound|NoRecord"),
         _rx(r"does not exist|not found|could not be found|cannot be found|no longer exists")),
    Rule("owner-team-business-unit", "ownership", "owner, team or business unit of the row",
         _cs(r"Owner|BusinessUnit|Team|Systemuser|SystemUser"), _rx(r"\bowner|business unit|\bteam\b")),
    Rule("currency", "currency", "transaction currency or exchange rate", _cs(r"Currency|ExchangeRate"),
         _rx(r"currency|exchange rate")),
    Rule("unit-of-measure", "uom", "unit, unit group (uom schedule) or base unit", _cs(r"Uom|UnitGroup|BaseUnit"),
         _rx(r"unit of measure|unit group|\buom\b|unit schedule")),
    Rule("invalid-data", "validation", "Dataverse rejected a value: invalid, missing, out of range or wrong format",
         _cs(r"^Invalid|Required|Null|OutOfRange|Format|NotValid|Missing|Empty|Negative|Overflow|Underflow|"
             r"Mismatch|NotSupported|Unsupported|Cannot(?:Update|Set|Change)"),
         _rx(r"is not valid|is invalid|invalid value|is required|out of range|cannot be null|not in the correct format|"
             r"must be")),
    Rule("no-rule", NO_CAUSE,
         "no family of its name or message names a cause we can act on; seen inside BC's wrapper it is a "
         "dataverse-error whose inner text tells the rest"),
)

# BC integration labels: the first rule that claims a label wins. The hand-reviewed templates of
# bc-error-templates.csv are taken before any of these (rule "reviewed-template").
LABEL_RULES: tuple[Rule, ...] = (
    Rule("locked", NO_CAUSE, "a locked label (telemetry, a token or a URL): BC never shows it to a user"),
    Rule("not-an-error", NO_CAUSE, "a question, message, caption or tooltip, not an error BC writes to the log"),
    Rule("conflict", "conflict", "both records changed, or the destination is newer",
         text_rx=_rx(r"changed since the last synchroni|later modified|both .{0,60} changed|have been changed")),
    Rule("deleted", "deleted", "the coupled record was deleted", text_rx=_rx(r"coupled to a deleted|"
                                                                           r"has been deleted|was deleted")),
    Rule("parent-not-coupled", "not-coupled", "a related record must be coupled first",
         text_rx=_rx(r"must be coupled|is not coupled|are not coupled|not coupled to|no longer coupled")),
    Rule("already-coupled", "duplicate", "already coupled to another record, or a duplicate",
         text_rx=_rx(r"already coupled|already exists|duplicate")),
    Rule("currency", "currency", "currency, exchange rate or ISO code setup",
         text_rx=_rx(r"currency|exchange rate|ISO code")),
    Rule("owner-team-business-unit", "ownership", "owner, team or business unit",
         text_rx=_rx(r"\bowner|business unit|\bteam\b|ownership")),
    Rule("unit-of-measure", "uom", "unit of measure or unit group setup", text_rx=_rx(r"unit of measure|unit group|"
                                                                                   r"\buom\b|\bunit\b")),
    Rule("company", "company", "the company of a multi-company setup",
         text_rx=_rx(r"CompanyId|company id|\bcompany\b(?! that has a business relation)")),
    Rule("permission", "permission", "privileges, licences or a disabled user",
         text_rx=_rx(r"privilege|permission|not licensed|licen[cs]e|is disabled on server|security role|"
                     r"access mode|\broles?\b")),
    Rule("connection", "connection", "the connection, its URL or credentials",
         text_rx=_rx(r"connection|\bURL\b|authenticat|password|credential|token|sign in|client secret|certificate")),
    Rule("option-mapping", "option-mapping", "an option value or option mapping",
         text_rx=_rx(r"\boption|payment terms|shipment method|shipping agent")),
    Rule("field-length", "field-length", "a value longer than its field", text_rx=_rx(r"\blength\b|too long")),
    Rule("not-found", "not-found", "a record that cannot be found",
         text_rx=_rx(r"cannot be found|not found|does not exist|cannot find|could not find|no longer exists")),
    Rule("coupling", "coupling", "a coupling or uncoupling run", text_rx=_rx(r"coupl")),
    Rule("configuration", "configuration", "an integration table mapping or setup",
         text_rx=_rx(r"mapping|setup|direction|template|not configured|not enabled|integration table|not supported")),
    Rule("time-out", "timeout", "a time-out", text_rx=_rx(r"timed out|time-out|timeout")),
    Rule("internal", "internal", "an internal state of the engine",
         text_rx=_rx(r"not initialized|invalid state|unexpected|context")),
    Rule("no-keyword", NO_CAUSE, "an error label none of whose words names a cause (read its text)"),
)

_ERROR_LIKE = _rx(r"cannot|can't|must|failed|not found|does not|do not|is not|are not|error|invalid|unable|"
                  r"could not|no \w+ (?:is|was|were) |missing|already|only \w+ |not allowed|not supported")

# Free texts that no template matched: ordered; the first that claims the text wins.
TEXT_RULES: tuple[Rule, ...] = (
    Rule("service-protection", "throttling", "Dataverse service protection limits or HTTP 429",
         text_rx=_rx(r"\(429\)|\b429\b.{0,20}too many requests|too many requests|number of (?:concurrent )?requests "
                     r"exceeded the limit|combined execution time of incoming requests exceeded|"
                     r"service protection (?:api )?limit")),
    # the text says it could not connect: a connection problem, whatever time-out or HTTP status follows
    Rule("cannot-connect", "connection", "the client could not connect to or sign in to Dataverse",
         text_rx=_rx(r"(?:failed|unable) to connect to (?:dataverse|dynamics|crm|the organization)|"
                     r"error requesting (?:access token|orgs from the discovery)|discovery (?:server|service)|"
                     r"must be registered using RegisterTableConnection|DataverseConnectionException|"
                     r"CrmServiceClient.{0,80}unable to login|connection to (?:dataverse|dynamics 365|crm) failed")),
    Rule("field-length", "field-length", "a value longer than the destination column",
         text_rx=_rx(r"exceeded the maximum allowed length|the length of the string is \d+, but it must be less "
                     r"than or equal to \d+|exceeds the maximum length|maximum allowed length|String or binary "
                     r"data would be truncated|is longer than the maximum length|of maximum length '?\d+'? but is of "
                     r"length")),
    Rule("privilege", "permission", "a Dataverse privilege the integration user lacks",
         text_rx=_rx(r"\bprv_?[A-Z][A-Za-z_]+\b|Principal user .{0,300}missing .{0,80}privilege|SecLib::|is missing "
                     r".{0,80}privilege|does not hold .{0,60}privilege|Principal with id .{0,80} does not have \w*Access "
                     r"right|(?:do not|don't) have permission to (?:create|read|write|update|delete|append|assign|"
                     r"share) this (?:row|record)", re.DOTALL)),
    Rule("disabled-user", "permission", "the integration (application) user is disabled or unlicensed in Dataverse",
         text_rx=_rx(r"\bthe user is disabled|user with SystemUserId ?= ?\S+ .{0,120}is disabled|"
                     r"user is not licensed|does not have a (?:valid )?license|no license", re.DOTALL)),
    Rule("duplicate-key", "duplicate", "a row with the same (alternate) key exists",
         text_rx=_rx(r"matching key values already exists|cannot insert duplicate key|duplicate key row|"
                     r"duplicate record|A record that has the attribute values .{0,200} already exists", re.DOTALL)),
    Rule("owner-does-not-exist", "ownership",
         "the row's owner (a Dataverse user, team or business unit) does not exist: BC sets the owner from the "
         "coupled salesperson or the default owner",
         text_rx=_rx(r"\b(?:system ?user|team|business ?unit)'? with id ?= ?\S+ does not exist")),
    Rule("does-not-exist", "not-found", "Dataverse says the referenced row does not exist",
         text_rx=_cs(r"\bDoes Not Exist\b|\bDo Not Exist\b|\bdoes not exist\b.{0,40}\bId\b|\bwith (?:Id|ID|id)s? ?= ?"
                     r"\{?[0-9a-fA-F-]{36}\}? (?:does|do) not exist")),
    Rule("lookup-not-found", "not-coupled", "a lookup names a related row that is not there (not synchronized yet)",
         text_rx=_rx(r"couldn't resolve the guid for the field|the lookup was not found")),
    Rule("unknown-table-or-column", "configuration",
         "the request names a table or column Dataverse does not have: a field or table mapping points at the "
         "wrong name (or a removed column)",
         text_rx=_rx(r"could not find a property named .{1,80} on type|resource not found for the segment|"
                     r"entity doesn't contain attribute with name")),
    Rule("plug-in", "dataverse-error", "a Dataverse plug-in or custom workflow step threw: read its text",
         text_rx=_rx(r"unexpected exception from plug-?in|ISV code (?:threw|aborted)|an unexpected error occurred "
                     r"from ISV code")),
    Rule("administration-mode", "connection",
         "the Dataverse organization is in administration mode: only administrators can sign in (BC docs)",
         text_rx=_rx(r"administration mode|admin mode")),
    Rule("entra-sign-in", "connection", "Entra ID (AAD) refused the sign-in", text_rx=_cs(r"\bAADSTS\d{5,}")),
    Rule("sql-transient", "timeout", "a SQL time-out or deadlock in Dataverse",
         text_rx=_rx(r"sql timeout expired|sql number: ?(?:-2|1205)\b|deadlock victim|generic sql error|"
                     r"networking error caused this operation to fail|database operation timed out|"
                     r"database '.{1,80}' on server '.{1,80}' is not currently available")),
    Rule("channel-time-out", "timeout", "the SDK's request channel timed out (a slow or busy server)",
         text_rx=_rx(r"the request channel timed out")),
    # BC's generic AL runtime errors: a synchronization cause only inside BC's synchronization wrappers
    Rule("table-relation", "validation", "a value is not in the related table (BC's table relation check)",
         text_rx=_rx(r"contains a value \(.{0,250}\) that cannot be found in the related table", re.DOTALL),
         in_wrapper=True),
    Rule("field-validation", "validation", "a BC field check failed (must have a value, blocked, not allowed)",
         text_rx=_rx(r"\bmust have a value in\b|\bmust not be blank\b|\bmust be equal to\b|\bis blocked\b|"
                     r"\bmust not be\b.{0,40}\bin\b.{0,60}\b(?:No|Code)\.?="), in_wrapper=True),
    # generic wordings: only for texts known to come from Dataverse
    Rule("http-transient", "timeout", "a time-out or transient HTTP/network error on the way to Dataverse",
         text_rx=_rx(r"timed out|time-?out|\((?:502|503|504)\)|service unavailable|bad gateway|"
                     r"connection was (?:forcibly )?closed|transport-level error|underlying connection was closed|"
                     r"temporarily unavailable"), needs_context=True),
    Rule("http-unauthorized", "connection", "Dataverse refused the credentials (HTTP 401)",
         text_rx=_rx(r"\(401\)|\bunauthori[sz]ed\b|authentication failed|could not connect|unable to connect|"
                     r"cannot connect|remote name could not be resolved|no such host"), needs_context=True),
    Rule("http-forbidden", "permission", "Dataverse refused the operation (HTTP 403 / access denied)",
         text_rx=_rx(r"\(403\)|\bforbidden\b|access (?:is )?denied|not have (?:the )?(?:required )?permission|"
                     r"insufficient (?:permissions|privileges)"), needs_context=True),
)

# What marks a text as coming from Dataverse (for the rules marked needs_context).
DATAVERSE_CONTEXT = _rx(r"dataverse|\bcrm\b|dynamics 365|\.dynamics\.com|organization ?service|xrm|"
                        r"\b0x8[0-9a-f]{7}\b|-2147\d{6}\b")


def _read(name: str) -> pd.DataFrame:
    path = importlib.resources.files("syncanalysis") / "data" / name
    with path.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _apply(rules: tuple[Rule, ...], names: pd.Series, texts: pd.Series) -> tuple[list[str], list[str], list[str]]:
    causes, used, whys = [], [], []
    for name, text in zip(names, texts, strict=True):
        for r in rules:
            if (r.name_rx is None and r.text_rx is None) or r.claims(name, text):
                causes.append(r.cause)
                used.append(r.name)
                whys.append(r.why)
                break
    return causes, used, whys


@lru_cache(maxsize=1)
def dataverse_code_causes() -> pd.DataFrame:
    """Every Dataverse web service error with the cause a rule gives it (or none, with the reason).

    Returns
    -------
    pandas.DataFrame
        Columns ``code_hex, code_int, name, message, cause, rule, why`` (``cause`` is empty when the
        rule gives none), one row per error of ``data/dataverse-error-codes.csv``, in file order.
    """
    df = _read(DATAVERSE_CODES_FILE)
    df["cause"], df["rule"], df["why"] = _apply(DATAVERSE_RULES, df["name"], df["message"])
    return df


@lru_cache(maxsize=1)
def label_causes() -> pd.DataFrame:
    """Every BC integration label with the cause a rule gives it (or none, with the reason).

    The hand-reviewed templates of ``bc-error-templates.csv`` come first (rule ``reviewed-template``);
    then :data:`LABEL_RULES`: locked labels and non-error kinds (questions, messages, captions) get no
    cause; error labels (``…Err``, and ``…Txt`` labels worded as errors) get the cause of their first
    keyword rule.

    Returns
    -------
    pandas.DataFrame
        Columns ``object, label_name, text, kind, locked, cause, rule, why``, in file order.
    """
    df = _read(BC_LABELS_FILE)
    reviewed = _read("bc-error-templates.csv").set_index("template")["category"].to_dict()
    causes, used, whys = [], [], []
    by_name = {r.name: r for r in LABEL_RULES}
    keyword_rules = LABEL_RULES[2:]
    for text, kind, locked in zip(df["text"], df["kind"], df["locked"], strict=True):
        if text in reviewed:
            causes.append(reviewed[text])
            used.append("reviewed-template")
            whys.append("hand-reviewed in bc-error-templates.csv")
            continue
        if locked == "true":
            r = by_name["locked"]
        elif kind == "Err" or (kind == "Txt" and _ERROR_LIKE.search(text)):
            r = next(r for r in keyword_rules if r.text_rx is None or r.text_rx.search(text))
        else:
            r = by_name["not-an-error"]
        causes.append(r.cause)
        used.append(r.name)
        whys.append(r.why)
    df["cause"], df["rule"], df["why"] = causes, used, whys
    return df[["object", "label_name", "text", "kind", "locked", "cause", "rule", "why"]]


def rule_counts() -> pd.DataFrame:
    """How many catalogue rows each rule claims: columns ``catalogue, rule, cause, rows``."""
    parts = []
    for cat, df in (("dataverse-error-codes", dataverse_code_causes()), ("bc-integration-labels", label_causes())):
        g = df.groupby(["rule", "cause"], sort=False).size().reset_index(name="rows")
        g.insert(0, "catalogue", cat)
        parts.append(g)
    return pd.concat(parts, ignore_index=True)


_HEX = re.compile(r"\b0x([0-9a-fA-F]{7,8})\b")
_INT = re.compile(r"(?<![\w.-])(-21474\d{5}|-21\d{8})(?![\w.])")


@lru_cache(maxsize=1)
def _codes() -> dict[str, tuple[str, str, str, str]]:
    out: dict[str, tuple[str, str, str, str]] = {}
    for r in dataverse_code_causes().itertuples(index=False):
        value = (r.code_hex, r.name, r.cause, r.rule)
        out[r.code_hex.lower()] = value
        out[r.code_int] = value
    return out


def codes_in(text: str) -> list[tuple[str, str, str, str]]:
    """The Dataverse error codes a text carries (``0x80040220``, ``-2147220960``), looked up in the catalogue.

    Returns
    -------
    list of tuple
        ``(code_hex, name, cause, rule)`` per known code, in order of appearance (``cause`` may be empty).
    """
    codes = _codes()
    found: list[tuple[str, str, str, str]] = []
    for m in _HEX.finditer(text):
        hit = codes.get("0x" + m.group(1).lower().rjust(8, "0")) or codes.get("0x" + m.group(1).lower())
        if hit is not None and hit not in found:
            found.append(hit)
    for m in _INT.finditer(text):
        hit = codes.get(m.group(1))
        if hit is not None and hit not in found:
            found.append(hit)
    return found
