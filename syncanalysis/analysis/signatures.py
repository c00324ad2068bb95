r"""Error signatures: every error text mapped to a template, a cause, how it matched and a readable signature.

A **signature** is an error text with its variable parts masked, so that messages that differ only
in values (record keys, numbers, GUIDs, field names, quoted values) share it. A text is cleaned
(typographic quotes and blanks, line breaks; request/activity ids, ``CRM ErrorCode``, ``Sql
Number`` and timestamps at its end set aside) and matched against templates in three tiers: 0 the
reviewed catalogue — ``data/bc-error-templates.csv`` (BC's labels, spec §7) plus
``data/extra-templates.csv`` (Dataverse service texts, older BC labels) — and local templates
(:func:`use_templates`); 1 BC's integration labels; 2 Dataverse's error messages (both in
``data/``, causes from :mod:`syncanalysis.analysis.rules`). Placeholders ``%1..%9`` become regex
groups (an AL ``\\`` is a line break); the final period is optional; tier 1 and 2 templates must
make up enough of the text, and short ones need a table BC synchronizes. The template gives the
**cause** (see :mod:`syncanalysis.analysis.causes`) and the signature: the template with each
placeholder rendered as a typed token (``<key>``, ``<n>``, ``<table>``…). Every result says how it
was matched (``match``, ``match_detail``) and its ``language``.

Rules worth knowing:

* **Wrappers** ("Modifying %1 failed because of the following error: %2.", "The data could not be
  updated because of the following error: %1.", "(Un)coupling %1 failed…", "An error occurred
  when communicating with Dataverse. [Detailed description:] …", "Crm<op> failed. …", "Sql error:",
  "Read Privilege Check For Owner failed with exception:") are classified by their inner text,
  recursively: cause, ``template`` and ``parent_*`` come from the innermost result with a cause and
  ``inner_message`` is that innermost text; the signature shows the whole chain. A wrapper whose
  inner text nothing knows keeps that text in its signature and is ``unclassified`` (BC's generic
  wrappers) or ``dataverse-error`` (Dataverse faults), not a guess from the wrapper; only wrappers
  that name the cause themselves ("(Un)coupling %1 failed…", "Read Privilege Check For Owner
  failed…") keep their own category then (:data:`_WRAPPERS`), and the "connection … disabled due
  to …" wrappers keep ``connection`` whatever their inner text.
  Exception type names, HTTP status texts and Web API JSON bodies are unwrapped the same way.
* **Unmatched** texts get, in order: the cause of a Dataverse error code they carry (``0x80040220``,
  ``-2147220960``), of a wording rule (:data:`~syncanalysis.analysis.rules.TEXT_RULES`), of a template
  they are a rewording of (fuzzy, :data:`FUZZY_CUTOFF`, keeping the template's long words), or none
  (``unclassified``, with the reason — a text in another language says so).
* **Truncation**: table 5339 keeps 250 (Message) or 2,048 (Error Message) characters and page 5333
  shows 250, so a text of about those lengths that matches no template in full is matched as a
  prefix of a template (the last placeholder reached absorbs the rest); at least 20 literal
  characters of the template (or all of them) must show.
* Texts from Dataverse (sources marked "not an AL label") may carry trailing details (request ids,
  error codes, a second sentence); these are ignored by the match and the signature.
* **Grouping**: texts no template matched are masked (URLs, e-mails, GUIDs, request ids, quoted
  values, record ids, codes after table captions, numbers) and grouped with rapidfuzz: near-identical
  masked texts (ratio ≥ :data:`CLUSTER_CUTOFF`) with the same cause, first word, capitalised words
  and operation words share the signature of the first one in sorted order, so the same set of texts
  always gives the same signatures and "Cannot update the Customer record…" stays apart from "…the
  Account record…".
* **Kept values**: three kinds of placeholder values stay verbatim in signatures because they are
  names of things rather than data — the service name ("Dataverse", "Dynamics 365 Sales"), the
  Dataverse operation ("CrmCreate failed.") and the table caption of a parent in the "must be
  coupled" family ("Salesperson/Purchaser <key> must be coupled to a Dataverse row." differs from
  "Customer <key> must be coupled…": different fixes).
* **Parents**: texts that name the record blocking this one yield ``parent_table`` and
  ``parent_key`` — e.g. "Salesperson/Purchaser NEWSP must be coupled…" → (Salesperson/Purchaser,
  NEWSP); "Cannot find the currency with the value 'NOK'…" → (Currency, NOK); "Cannot find the unit
  group 'PALLET'…" → (Unit of Measure, PALLET); "Cannot create or update the currency NOK …
  no exchange rate" → (Currency Exchange Rate, NOK); "The unit of measure in the unit group
  'PALLET' has an incorrect name…" → (Dataverse Uomschedule, PALLET). When the text says what blocks
  but not which record, the key is NULL: "The contact CT1 must have a contact company that has a
  business relation…" → (Contact Business Relation, NULL) — the contact's company lacks the relation,
  and the text does not name the company; "The contact cannot be synchronized because the company
  does not exist." → (Dataverse Account, NULL). Parent tables that are setup objects rather than
  coupled records are listed in :data:`SETUP_PARENT_TABLES`. ``parent_table + ": " + parent_key`` is
  the parent's RecordID as BC formats it (compound keys comma-separated, e.g. ``Item Unit of
  Measure: 1000,PCS``).

Everything works on distinct texts: :func:`assign_signatures` reads the distinct texts of a
workspace not classified yet, classifies them once each and writes the results back set-based.
Join ``job_errors`` to ``signatures`` with :func:`error_text_sql` (Error Message, else Message).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rapidfuzz import fuzz, process

from ..errors import SyncAnalysisError
from ..sql import registered
from .causes import CAUSES, DATAVERSE_ERROR, UNCLASSIFIED, cause_info
from .rules import DATAVERSE_CONTEXT, TEXT_RULES, codes_in, dataverse_code_causes, label_causes

if TYPE_CHECKING:
    from ..workspace import Workspace

CATALOGUE_FILES = ("bc-error-templates.csv", "extra-templates.csv")
COLUMNS = ["error_message", "signature", "template", "cause", "inner_message", "parent_table", "parent_key", "match",
           "match_detail", "language"]

MESSAGE_LEN = 250  # table 5339 Message, page 5333 Error Message
ERROR_MESSAGE_LEN = 2048  # table 5339 Error Message
_TRUNCATION_SLACK = 10  # trailing blanks an export may have trimmed off a cut text
CLUSTER_CUTOFF = 88  # rapidfuzz ratio above which two masked unmatched texts share a signature
_CLUSTER_KEY_LEN = 160  # compare the start of masked texts, so a cut copy joins its full text
_MAX_UNMATCHED_SIG = 250
_MAX_DEPTH = 8
_MIN_PREFIX_LITERAL = 20  # a cut text must cover this many literal characters of a template

EMPTY_SIGNATURE = "(empty message)"


class CatalogueError(SyncAnalysisError):
    """A template catalogue file is malformed (bad header, empty template, unknown category, duplicate)."""


# ------------------------------------------------------------------------------------------------
# Templates

# Wrappers: the placeholder that carries the inner error text, and what decides the cause:
# "inner" = the inner text's cause, unknown inner text -> unclassified (BC's generic wrappers say nothing);
# "inner-dataverse" = the inner text's cause, unknown -> dataverse-error (the text is a Dataverse fault);
# "inner-own" = the inner text's cause, unknown -> the wrapper's own category (it names the cause itself);
# "own" = always the wrapper's category (a disabled connection stays disabled whatever the inner error).
_WRAPPERS: dict[str, tuple[int, str]] = {
    "Modifying %1 failed because of the following error: %2.": (2, "inner"),
    "The data could not be updated because of the following error: %1.": (1, "inner"),
    "Uncoupling %1 failed because of the following error: %2.": (2, "inner-own"),
    "Coupling %1 failed because of the following error: %2.": (2, "inner-own"),
    "Inserting %1 failed because of the following error: %2.": (2, "inner"),
    "An error occurred when communicating with %1. Detailed description: %2": (2, "inner-dataverse"),
    "An error occurred when communicating with %1. %2": (2, "inner-dataverse"),
    "Crm%1 failed. %2": (2, "inner-dataverse"),
    "Read Privilege Check For Owner failed with exception: %1": (1, "inner-own"),
    "Sql error: %1": (1, "inner-dataverse"),
    "The connection to Dynamics 365 Sales is disabled due to the following error: %1.\\\\Please contact your "
    "system administrator.": (1, "own"),
    "Connection to Dynamics 365 is broken and that it has been disabled due to an error: %1": (1, "own"),
}

# Loose templates: values that must be one of a few names, so that e.g. "The %1 %2 was not found." does
# not claim every "The <something> was not found." of other features.
_SERVICES_RX = r"Dataverse|Dynamics 365 Sales|Microsoft Dynamics 365|Dynamics 365|Dynamics CRM|CRM|Common Data Service"
_CONSTRAINED: dict[str, dict[int, str]] = {
    "The %1 %2 was not found.": {1: r"Config\. Template Header|Configuration Template Header|Config\. Template"},
    "%1 could not be found in %2.": {2: _SERVICES_RX},
    "An error occurred when communicating with %1. Detailed description: %2": {1: _SERVICES_RX},
    "An error occurred when communicating with %1. %2": {1: _SERVICES_RX},
}

# Placeholder kinds the heuristic in _kind() gets wrong or cannot know.
_KIND_OVERRIDES: dict[str, dict[int, str]] = {
    "%1 %2 must be coupled to a %3 record.": {1: "parent-table", 2: "key", 3: "service"},
    "%1 %2 must be coupled to a %3 row.": {1: "parent-table", 2: "key", 3: "service"},
    "%1 %2 must be coupled to a record in %3.": {1: "parent-table", 2: "key", 3: "service"},
    "%1 %2 must be coupled to a Dataverse row.": {1: "parent-table", 2: "key"},
    "%1 Unit of Measure (%2, %3) must be coupled to a %4 record.": {1: "parent-table", 2: "key", 3: "code",
                                                                    4: "service"},
    "The %1 %2 was not found.": {1: "table", 2: "code"},
    "The %1 %2 is not configured for %3 synchronization.": {1: "table", 2: "name", 3: "value"},
    "There are no field mapping rows for the %2 %3 in the %1 table.": {2: "table", 3: "name", 1: "table"},
    "Source table %1 and destination table %2 do not match integration table mapping %3.": {3: "name"},
    "Cannot find %1 record %2.": {1: "table", 2: "key"},
    "Cannot find the mapping %2 in table %1.": {2: "name", 1: "table"},
    "Cannot determine the source origin: %1.": {1: "value"},
    "No mapping is set for %1.": {1: "table"},
    "The field %1 in the table %2 must be of type GUID.": {1: "field", 2: "table"},
    "Cannot couple %1 to this %3 record, because the %3 record is already coupled to %2.": {1: "key", 2: "key",
                                                                                           3: "table"},
    "Cannot couple the %2 record to %1, because %1 is already coupled to another %2 record.": {1: "key",
                                                                                             2: "table"},
    "Cannot couple %1 to this %2 record, because the %2 record is already coupled.": {1: "key", 2: "table"},
    "The currency with the ISO code '%1' cannot be found. Therefore, the exchange rate between '%2' and '%3' "
    "cannot be calculated.": {1: "code", 2: "code", 3: "code"},
    "%1 could not be found in %2.": {1: "value", 2: "service"},
    "Only %1 Owner of Type SystemUser can be mapped to Salespeople.": {1: "service"},
    "Table %1 must be mapped to table %2 to transfer value between fields %3  and %4.": {1: "table", 2: "table",
                                                                                         3: "field", 4: "field"},
    "Cannot find %1 in table %2.": {1: "key", 2: "table"},
    "The %1 %2 already exists in %3, but it cannot be synchronized, because it is inactive.": {1: "table",
                                                                                              2: "key",
                                                                                              3: "service"},
    "The %4 %1 %2 contains more than one %3. This setup cannot be used for synchronization.": {4: "table",
                                                                                              1: "table",
                                                                                              2: "key",
                                                                                              3: "table"},
    "Cannot create the invoice in %2. The customer from the original %2 sales order %1 was changed or is no "
    "longer coupled.": {1: "key", 2: "service"},
    "The %2 unit %1 is not coupled to a unit of measure.": {1: "code", 2: "service"},
    "The application is not designed to integrate table %1 with %2.": {1: "table", 2: "table"},
    "No %1 was found for table %2.": {1: "table", 2: "table"},
    "The connection to %1 was disabled because integration user %2 has insufficient privileges to run the "
    "synchronization.": {1: "service", 2: "user"},
    "Connection to Dynamics 365 is broken and that it has been disabled due to an error: %1": {1: "message"},
    "There is no CompanyId field in table %1 %2.": {1: "table", 2: "key"},
    "There is no OwnerId field in table %1 %2.": {1: "table", 2: "key"},
    "Team %1 for business unit %2 does not have the required role %3.": {1: "name", 2: "name", 3: "name"},
    "User %1 is disabled on server %2.": {1: "user", 2: "url"},
    "User %1 with access mode %3 is not licensed on server %2.": {1: "user", 2: "url", 3: "value"},
    "Integration Table Mapping with the name %1 does not exist.": {1: "name"},
    "You must specify which fields on the table mapping '%1' should be used for match-based coupling.": {1: "name"},
    "Failed to couple %2 record(s), because no unique uncoupled matching entity was found in %1 with the specified "
    "matching criteria.": {1: "service", 2: "n"},
    "The URL is incorrect. Enter the URL for the %1 connection.": {1: "service"},
    "Cannot find the coupled %1 invoice header.": {1: "service"},
    "The record is not coupled to %1.": {1: "service"},
    "Your local currency code %1 does not match any ISO Currency Code in the Dataverse currency table. To continue, "
    "make sure that the local currency code in General Ledger Setup complies with the ISO standard and create a "
    "currency in Dataverse currency table that uses it as ISO Currency Code.": {1: "code"},
    "The base currency %1 of the Dataverse environment must exist in Business Central and it must have an exchange "
    "rate.": {1: "code"},
    "Principal user (Id=%1, type=8) is missing %2 privilege": {1: "guid", 2: "privilege"},
    "Principal user (%1), is missing %2 privilege": {1: "detail", 2: "privilege"},
    "Crm%1 failed. %2": {1: "op", 2: "message"},
    "Cannot update the %2 record because both the %1 record and the %2 record have been changed.": {1: "table",
                                                                                                  2: "table"},
    "Cannot update the %2 record because it has a later modified date than the %1 record.": {1: "table",
                                                                                           2: "table"},
}

# Tokens of the placeholder kinds in signatures (kinds in _KEPT show their value when there is one).
_TOKENS = {
    "table": "<table>", "field": "<field>", "key": "<key>", "n": "<n>", "text": "<text>", "guid": "<guid>",
    "id": "<id>", "privilege": "<privilege>", "email": "<email>", "url": "<url>", "code": "<code>",
    "name": "<name>", "value": "<value>", "detail": "<detail>", "user": "<user>", "op": "<op>",
    "message": "<message>", "service": "<service>", "parent-table": "<table>",
}
_KEPT = {"service", "parent-table", "op"}
# Kinds whose values are names or codes (at most a few hundred characters), matched with a bounded pattern.
_SHORT_KINDS = {"table", "parent-table", "field", "key", "code", "n", "service", "guid", "id", "privilege", "user",
                "op", "email", "name"}
_SHORT_VALUE = 300

# Parent record named by a text: (table, key) as format strings over the values p1..p9 (None = unknown).
_PARENTS: dict[str, tuple[str, str | None]] = {
    "%1 %2 must be coupled to a %3 record.": ("{p1}", "{p2}"),
    "%1 %2 must be coupled to a %3 row.": ("{p1}", "{p2}"),
    "%1 %2 must be coupled to a record in %3.": ("{p1}", "{p2}"),
    "%1 %2 must be coupled to a Dataverse row.": ("{p1}", "{p2}"),
    "%1 Unit of Measure (%2, %3) must be coupled to a %4 record.": ("{p1} Unit of Measure", "{p2},{p3}"),
    "Cannot find the currency with the value '%1' in Dataverse.": ("Currency", "{p1}"),
    "The currency with the ISO code '%1' cannot be found. Therefore, the exchange rate between '%2' and '%3' "
    "cannot be calculated.": ("Currency", "{p1}"),
    "Cannot create or update the currency %1 in %2, because there is no exchange rate defined for it.":
        ("Currency Exchange Rate", "{p1}"),
    "Cannot find the unit group '%1' in %2.": ("Unit of Measure", "{p1}"),
    "Cannot find any unit of measure inside the unit group '%1' in %2.": ("Unit of Measure", "{p1}"),
    "Multiple units of measure were found in the unit group '%1' in %2.": ("Unit of Measure", "{p1}"),
    "The unit of measure in the unit group '%1' has an incorrect name: expected name '%2', found name '%3'.":
        ("Dataverse Uomschedule", "{p1}"),
    "CRM Unit Group %1 does not exist.": ("Dataverse Uomschedule", "{p1}"),
    "Item Unit Group for Item %1 is not found.": ("Item Unit Group", "{p1}"),
    "Resource Unit Group for Resource %1 is not found.": ("Resource Unit Group", "{p1}"),
    "Unit of measure %1 does not exist.": ("Unit of Measure", "{p1}"),
    "Unit of measure %1 is not coupled.": ("Unit of Measure", "{p1}"),
    "Item unit of measure %1 is not coupled.": ("Item Unit of Measure", "{p1}"),
    "Resource unit of measure %1 is not coupled.": ("Resource Unit of Measure", "{p1}"),
    "The item unit of measure %1 does not exist.": ("Item Unit of Measure", "{p1}"),
    "The resource unit of measure %1 does not exist.": ("Resource Unit of Measure", "{p1}"),
    "Cannot create the invoice in %1. The item unit of measure %2 does not exist.": ("Item Unit of Measure", "{p2}"),
    "Cannot create the invoice in %1. The item unit of measure %2 is not coupled to a %1 unit.":
        ("Item Unit of Measure", "{p2}"),
    "Cannot create the invoice in %1. The resource unit of measure %2 does not exist.":
        ("Resource Unit of Measure", "{p2}"),
    "Cannot create the invoice in %1. The resource unit of measure %2 is not coupled to a %1 unit.":
        ("Resource Unit of Measure", "{p2}"),
    "Cannot find a synchronized product for %1.": ("Item", "{p1}"),
    "Cannot find %1 in table %2.": ("{p2}", "{p1}"),
    "The contact %1 must have a contact company that has a business relation to a customer.":
        ("Contact Business Relation", None),
    "The contact %1 must have a contact company that has a business relation to a customer or vendor.":
        ("Contact Business Relation", None),
    "The contact cannot be synchronized because the company does not exist.": ("Dataverse Account", None),
    "Sales header is not coupled.": ("Sales Header", None),
}

# Parent tables above that are setup objects (a rate, a Dataverse unit group, a business relation), not
# records with a coupling: the fix is a setup change, "couple the parent first" does not apply.
SETUP_PARENT_TABLES = frozenset({"Currency Exchange Rate", "Dataverse Uomschedule", "Item Unit Group",
                                 "Resource Unit Group", "Contact Business Relation", "Dataverse Account"})

# BC table captions whose following code is a record key (for masking unmatched texts and for
# splitting "%1 %2" into caption and key). Longest first, so "Item Unit of Measure" beats "Item".
TABLE_CAPTIONS = tuple(sorted({
    "Customer", "Vendor", "Contact", "Item", "Resource", "Currency", "Salesperson/Purchaser", "Unit of Measure",
    "Item Unit of Measure", "Resource Unit of Measure", "Payment Terms", "Shipment Method", "Shipping Agent",
    "Customer Price Group", "Price List Header", "Sales Header", "Sales Line", "Sales Invoice Header",
    "Sales Invoice Line", "Sales Cr.Memo Header", "Sales Order", "Sales Invoice", "Opportunity", "Location",
    "Country/Region", "Dimension Value", "Employee", "Contact Business Relation", "Item Unit Group",
    "Resource Unit Group", "Unit Group", "Currency Exchange Rate", "Config. Template Header", "Vendor Bank Account",
    "Dataverse Account", "Dataverse Contact", "Dataverse Systemuser", "Dataverse Transactioncurrency",
    "Dataverse Product", "Dataverse Uomschedule", "Dataverse Uom", "Integration Table Mapping",
}, key=lambda c: (-len(c), c)))


@dataclass(frozen=True, eq=False)
class Template:
    """One catalogue template, compiled for matching.

    Attributes
    ----------
    text, source, category, file
        As in the catalogue file ``file``.
    kinds
        Placeholder number -> kind (``table``, ``key``, ``n``, ``service``…); decides its token.
    inner
        For wrappers, the placeholder holding the inner error text.
    cause_from_inner
        Whether a wrapper takes its cause from the inner text.
    open_end
        Whether trailing details after the template text are allowed (Dataverse service texts).
    weight
        Literal characters of the template: the more, the more specific (tried first).
    """

    text: str
    source: str
    category: str
    file: str
    kinds: dict[int, str]
    inner: int | None
    cause_from_inner: bool
    open_end: bool
    weight: int
    parts: tuple[str | int, ...]
    pattern: str  # the regex of the whole template (compiled on first use: thousands of templates)
    # for cut texts: (literal chars before the cut placeholder, that placeholder, the literal after it, regex)
    prefixes: tuple[tuple[int, int, str, re.Pattern[str]], ...]
    lead: str
    required: str
    suffix: str
    pairs: tuple[tuple[int, int], ...]
    flat_lead: str  # the leading literal, whitespace-normalised: a text cut inside it is a prefix of it
    method: str = "template"  # how a text matched by it is said to be matched (see MATCH_METHODS)
    detail: str = ""  # what it is, for the match detail: the catalogue file, the BC label, the Dataverse code
    tier: int = 0  # 0 = the reviewed catalogue and local templates, 1 = BC labels, 2 = Dataverse messages
    dataverse: bool = False  # a wrapper whose inner text comes from Dataverse
    wrap: str = ""  # for wrappers, what decides the cause (see _WRAPPERS)

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled :attr:`pattern`."""
        return re.compile(self.pattern, re.DOTALL)


_QUOTE = re.compile(r"['\"]")


def _lit_regex(lit: str) -> str:
    """Regex of a literal template part: any run of blanks matches any whitespace.

    An AL line break (a doubled backslash) matches optional whitespace.
    """
    out = []
    for piece in re.split(r"(\\\\|\s+)", lit):
        if not piece:
            continue
        if piece == "\\\\":
            out.append(r"\s*")
        elif piece.isspace():
            out.append(r"\s+")
        else:  # a quote in the template matches any quote style of the text
            out.append(_QUOTE.sub(lambda _: "['\"`]", re.escape(piece)))
    return "".join(out)


def _kind(pre: str, post: str) -> str:
    """Guess a placeholder's kind from the words around it (overridden per template in _KIND_OVERRIDES)."""
    p, q = pre.lower(), post.lower()
    if p.endswith("'") and q.startswith("'"):
        return "name" if p.endswith("name '") else "code"
    if re.match(r"\s*%\d", q):  # "%1 %2": a caption followed by its key
        return "table"
    if re.search(r"%\d\s*$", p):
        return "key"
    if p.endswith(("following error: ", "detailed description: ", "due to an error: ", "the following error: ")):
        return "message"
    if q.startswith((" table", " record cannot")) or p.endswith(("table ", "the table ")):
        return "table"
    if q.startswith(" field") or p.endswith("field "):
        return "field"
    if p.endswith("value: "):
        return "text"
    if p.endswith("(id="):
        return "guid"
    if p.endswith(("with id ", "external id ")):
        return "id"
    if q.startswith(" privilege"):
        return "privilege"
    if (q.startswith((" characters", " record(s)", " milliseconds", " seconds", " over time", ", measured"))
            or p.endswith(("string is ", "limit of "))):
        return "n"
    if p.endswith("email address "):
        return "email"
    if p.endswith(("to the user: ", "url for the ")) or "link" in p[-20:]:
        return "url"
    if (p.endswith(("communicating with ", "access token for ", "record in ", "invoice in ", "inside the unit group "))
            or q.startswith((" connection", " record.", " row.", " unit.", " administrator", " synchronization."))
            or (p.endswith(" in ") and q[:1] in (".", ","))):
        return "service"
    if q.startswith(" failed"):
        return "table"
    if p.endswith("try again.\\\\"):
        return "detail"
    if p.endswith(("the record is not coupled to ", "is not a supported")) or q.startswith(" is not a supported"):
        return "value"
    if p.endswith(("record ", "product ", "resource ", "contact ", "entity ", "item ", "invoice ", "order ",
                   "currency ", "group ", "measure ", "unit ", "code ", "id ", "for ", "page for record ")):
        return "key"
    return "value"


def _compile(text: str, source: str, category: str, file: str, *, method: str = "template", detail: str = "",
             tier: int = 0, open_end: bool | None = None) -> Template:
    tokens = re.split(r"%(\d)", text)
    parts: list[str | int] = [tok if i % 2 == 0 else int(tok) for i, tok in enumerate(tokens)]
    inner, how = _WRAPPERS.get(text, (None, "inner"))
    from_inner = how != "own"
    overrides = _KIND_OVERRIDES.get(text, {})
    kinds: dict[int, str] = {}
    for i in range(1, len(parts), 2):
        k = parts[i]
        assert isinstance(k, int)
        if k not in kinds:
            pre = "".join(str(x) if isinstance(x, str) else f"%{x}" for x in parts[max(0, i - 3):i])
            post = "".join(str(x) if isinstance(x, str) else f"%{x}" for x in parts[i + 1:i + 4])
            kinds[k] = overrides.get(k) or ("message" if k == inner else _kind(pre, post))
    if open_end is None:
        open_end = "not an AL label" in source
    constrained = _CONSTRAINED.get(text, {})
    literals = [p for p in parts if isinstance(p, str)]
    weight = sum(len(re.sub(r"\s+|\\\\", "", s)) for s in literals)
    if not weight:
        raise CatalogueError(f"{file}: template {text!r} has no literal text; it would match every message.")

    def body(stop: int | None) -> str:
        """Regex of the parts; ``stop`` = index of the placeholder occurrence that absorbs the rest."""
        seen: set[int] = set()
        out = []
        for i, part in enumerate(parts):
            if isinstance(part, str):
                last = i == len(parts) - 1
                if last and open_end and stop is None and part.rstrip().endswith("."):
                    out.append(_lit_regex(part.rstrip()[:-1]) + r"\.?(?:\s+(?P<trail>.*))?")
                elif last and open_end and stop is None and part.strip():
                    out.append(_lit_regex(part) + r"(?:\s+(?P<trail>.*))?")
                elif last and stop is None and part.rstrip().endswith("."):  # the final period is optional
                    out.append(_lit_regex(part.rstrip()[:-1]) + r"\.?")
                else:
                    out.append(_lit_regex(part))
                continue
            if i == stop:
                out.append(f"(?P<p{part}>.*)" if part not in seen else "(?P<rest>.*)")
                break
            if part in seen:
                out.append(f"(?P=p{part})")
            elif part == inner:  # lazy: a final optional period stays the wrapper's
                out.append(f"(?P<p{part}>.*?)")
            elif part in constrained:  # a loose template: this value must be one of a few known names
                out.append(f"(?P<p{part}>{constrained[part]})")
            elif tier > 0:  # derived catalogues: every value bounded (thousands of templates, long texts)
                out.append(f"(?P<p{part}>.{{0,{_SHORT_VALUE}}}?)")
            else:  # names and codes are short: bounding them keeps "%1 %2 …" from backtracking over long texts
                out.append(f"(?P<p{part}>.{{0,{_SHORT_VALUE}}}?)" if kinds[part] in _SHORT_KINDS else f"(?P<p{part}>.*?)")
            seen.add(part)
        return "".join(out)

    regex = body(None)
    prefixes = []
    for i in range(1, len(parts) if tier == 0 else 0, 2):  # cut texts are matched on the reviewed tier only
        covered = sum(len(re.sub(r"\s+|\\\\", "", s)) for s in parts[:i] if isinstance(s, str))
        following = " ".join(str(parts[i + 1]).replace("\\\\", " ").split()) if i + 1 < len(parts) else ""
        prefixes.append((covered, parts[i], following, re.compile(body(i), re.DOTALL)))
    prefixes.sort(key=lambda x: -x[0])
    lead = re.split(r"\\\\|\s{2,}", str(parts[0]))[0]
    chunks = [c for s in literals for c in re.split(r"\s+|\\\\", s) if len(c) >= 4]
    required = max(chunks, key=len) if chunks else ""
    last = parts[-1]
    suffix = ""
    if isinstance(last, str) and last.strip() and not open_end:
        suffix = re.split(r"\s+|\\\\", last.rstrip())[-1].rstrip(".")
        suffix = "" if re.search(r"['\"]", suffix) else suffix  # quote styles vary: no plain endswith test
    pairs = tuple((parts[i], parts[i + 2]) for i in range(1, len(parts) - 2, 2)
                  if isinstance(parts[i + 1], str) and parts[i + 1].isspace() and parts[i + 1])
    flat_lead = " ".join(str(parts[0]).replace("\\\\", " ").split())
    if re.search(r"['\"]", lead):  # quote styles vary: compare the lead only up to its first quote
        lead = re.split(r"['\"]", lead)[0]
    if re.search(r"['\"]", required):
        required = max(re.split(r"['\"]", required), key=len)
        required = required if len(required) >= 4 else ""
    return Template(text, source, category, file, kinds, inner, from_inner, open_end, weight, tuple(parts), regex,
                    tuple(prefixes), lead, required, suffix, pairs, flat_lead, method, detail or file, tier,
                    how == "inner-dataverse", how if inner is not None else "")  # type: ignore[arg-type]


def _read_catalogue_file(source: str | Path) -> pd.DataFrame:
    """Read and check one catalogue file: a name in the package's data folder, or a path."""
    path = source if isinstance(source, Path) else importlib.resources.files("syncanalysis") / "data" / source
    name = str(source)
    try:
        with path.open("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise CatalogueError(f"Cannot read the template catalogue {name}: {exc}") from exc
    if list(df.columns) != ["template", "source", "category"]:
        raise CatalogueError(f"{name}: the header must be 'template,source,category', found {list(df.columns)}.")
    for i, row in enumerate(df.itertuples(index=False), start=2):
        if not row.template.strip():
            raise CatalogueError(f"{name}, line {i}: the template is empty.")
        if row.category not in CAUSES:
            raise CatalogueError(f"{name}, line {i}: unknown category {row.category!r}; use one of {sorted(CAUSES)} "
                                 "(or add it to syncanalysis/analysis/causes.py).")
    df["file"] = name
    return df


def templates() -> list[Template]:
    """Return the compiled catalogue templates, in file order (``bc-error-templates.csv`` first)."""
    return list(_matcher().templates)


def catalogue() -> pd.DataFrame:
    """Return the message catalogue: one row per template with its source, category and file.

    Returns
    -------
    pandas.DataFrame
        Columns ``template, source, category, file, wrapper, open_end`` (``wrapper``: classified by its
        inner text; ``open_end``: trailing details allowed), in file order.
    """
    rows = [{"template": t.text, "source": t.source, "category": t.category, "file": t.file,
             "wrapper": t.inner is not None, "open_end": t.open_end} for t in _matcher().templates]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# Masking of unmatched texts

_CAPTION_RE = "|".join(re.escape(c) for c in TABLE_CAPTIONS)
_MASKS: list[tuple[re.Pattern[str], str]] = [(re.compile(p, f), r) for p, r, f in [
    (r"https?://[^\s'\"<>]+", "<url>", 0),
    (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "<email>", 0),
    (r"\{?\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b\}?", "<guid>", 0),
    (r"\b[0-9A-Fa-f]{32}\b", "<guid>", 0),
    (r"\b((?:Request|Activity|Correlation|Session|Operation|Tracking)\s?I[Dd])(\s*[:=]\s*)(?!<)[^\s,;)]+",
     r"\1\2<id>", re.IGNORECASE),
    (r"(?<!\w)'[^'\n]*'(?!\w)", "'<value>'", 0),
    (r"(?<!\w)\"[^\"\n]*\"(?!\w)", "\"<value>\"", 0),
    (rf"\b({_CAPTION_RE}): [^\s,;()]*[^\s,;().](?:,[^\s,;()]*[^\s,;().])*", r"\1: <key>", 0),
    (rf"(?i:\b({_CAPTION_RE}))(?:\s+No\.)?\s+(?:[A-Z0-9][A-Z0-9_./-]*\d[A-Z0-9_./-]*|[A-Z][A-Z0-9_-]+)(?![\w])",
     r"\1 <key>", 0),
    (r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]+\b", "<key>", 0),
    (r"[-+]?\d+(?:[.,]\d+)*", "<n>", 0),
    (r"\s+", " ", 0),
]]


def mask(text: str) -> str:
    """Mask the variable parts of one error text (for texts no template matches).

    Examples
    --------
    >>> mask("Customer C00010 failed at https://x.crm4.dynamics.com: Request ID: 6629091b-1673-4b76-a0b7-b6ef8b841cf1")
    'Customer <key> failed at <url> Request ID: <guid>'
    """
    for rx, repl in _MASKS:
        text = rx.sub(repl, text)
    return text.strip()


# ------------------------------------------------------------------------------------------------
# Matching


class _Res:
    """Classification of one text: a matched template (maybe wrapping another result) or an unmatched leaf.

    A leaf no template matched may still carry a cause found otherwise (``cause``, ``method``,
    ``detail``: an error code, a wording rule, a fuzzy match) and the language of its text.
    """

    __slots__ = ("text", "tpl", "head", "tail", "child", "masked", "parent", "cause", "method", "detail", "language",
                 "score")

    def __init__(self, text: str, tpl: Template | None = None, head: str = "", tail: str = "",
                 child: _Res | None = None, masked: str | None = None,
                 parent: tuple[str | None, str | None] = (None, None), cause: str = UNCLASSIFIED,
                 method: str = "none", detail: str = "", language: str = "en") -> None:
        self.text, self.tpl, self.head, self.tail, self.child = text, tpl, head, tail, child
        self.masked, self.parent = masked, parent
        self.cause, self.method, self.detail, self.language = cause, method, detail, language

    def leaf(self) -> _Res:
        r = self
        while r.child is not None:
            r = r.child
        return r

    def outcome(self) -> _Res:
        """The result that decides the cause: the innermost one with a cause along cause-from-inner wrappers.

        A wrapper whose inner text has no cause decides itself (see :data:`_WRAPPERS`): its own
        category (``inner-own``, ``own``), ``dataverse-error`` (``inner-dataverse``), or nothing
        (``inner``: BC's generic wrappers say nothing of the cause; the inner text is the signature).
        """
        if self.tpl is None or self.child is None or self.tpl.wrap == "own":
            return self
        inner = self.child.outcome()
        if inner.cause != UNCLASSIFIED:
            return inner
        return self


def _maybe_truncated(text: str) -> bool:
    n = len(text)
    return any(limit - _TRUNCATION_SLACK <= n <= limit for limit in (MESSAGE_LEN, ERROR_MESSAGE_LEN))


def _clean(value: str) -> str:
    return " ".join(value.split())


# Text normalisation before matching: typographic quotes and blanks as plain ones.
_NORMALISE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
                            "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                            "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u200b": "", "\ufeff": ""})

# Details the platform appends to a fault, stripped (repeatedly) from the end before matching.
_SUFFIX = re.compile(
    r"""\s*(?:
      [\[(]?(?:(?:Client\s?)?Request|Activity|Correlation|Session|Operation|Tracking)\s?I[Dd]\s*[:=]?\s*
          \{?[0-9A-Fa-f][0-9A-Fa-f-]{7,}\}?[\])]?
    | (?:CRM\s*)?Error\s?Code\s*[:=]\s*(?:0x[0-9A-Fa-f]+|-?\d+)
    | Sql\s?(?:Number|Error\s?Code)\s*[:=]\s*(?:0x[0-9A-Fa-f]+|-?\d+)
    | (?:Time(?:stamp)?|Date|Time\s?UTC)\s*[:=]\s*\d{4}-\d\d-\d\d[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?
    | \[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?
    )\s*[.,;]?\s*$""", re.VERBOSE | re.IGNORECASE)
# Exception type names the platform puts before a fault's text ("System.ServiceModel.FaultException`1[…]: …").
_EXCEPTION_PREFIX = re.compile(
    r"^(?:(?:System|Microsoft)(?:\.\w+)+(?:`\d\[[^\]]*\])?|\w+Exception|Error(?: message)?|Erro|Erreur|Fehler)\s*:\s*(?=\S)")
# The message of a Web API error body ({"error": {"code": "0x…", "message": "…"}}), as users paste it.
_JSON_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.){3,2000})"', re.IGNORECASE)
# HTTP status texts before (or instead of) a fault's text.
_HTTP_PREFIX = re.compile(
    r"^(?:The remote server returned an error:\s*|Response status code does not indicate success:\s*)"
    r"\(?(?P<status>[1-5]\d\d)\)?\s*(?:\(?(?P<reason>[A-Za-z][A-Za-z -]{1,40})\)?\s*[.:]|[.:]?)(?:\s+|$)")


_SPECIFIC_WEIGHT = 40  # literal characters from which a Dataverse message proves that a text is Dataverse's
_LEAD_VALUE = re.compile(r"[^:]{1,120}")


def _lead_ok(t: Template, groups: dict[str, str | None]) -> bool:
    """A template that starts with a table caption takes only a caption there, not a prefix before it.

    Without this, "%1 %2 must be coupled to a Dataverse row." would read "Error: Customer" or "The remote
    server returned an error: (400) Bad Request. Customer" as the table: a wrong parent record for the
    actions and a new group per prefix.
    """
    first = next((p for p in t.parts if p != ""), None)  # parts start with a literal, maybe empty
    if not isinstance(first, int) or t.kinds.get(first) not in ("table", "parent-table"):
        return True
    # the caption and the values right after it ("%1 %2 must…": caption and key, split later)
    lead: list[str] = []
    for part in t.parts:
        if isinstance(part, int):
            if groups.get(f"p{part}") is None:
                break
            lead.append(groups[f"p{part}"] or "")
        elif part.strip():
            break
    value = " ".join(lead)
    return _LEAD_VALUE.fullmatch(value) is not None and ". " not in value


def _no_cause(r: object) -> str:
    """What a catalogue row whose rule gives no cause says about it, appended to its match detail."""
    return "" if r.cause else f": no cause ({r.why})"  # type: ignore[attr-defined]


def _context(text: str) -> bool:
    """Whether a text says it comes from Dataverse (for rules and messages that need it)."""
    return DATAVERSE_CONTEXT.search(text) is not None


_SUFFIX_WINDOW = 160  # a suffix is shorter than this: search only the end (a search over a long text is slow)


_SUFFIX_WORDS = ("id", "code", "number", "time", "date")
_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")


def _strip_suffixes(text: str) -> str:
    while True:
        off = max(0, len(text) - _SUFFIX_WINDOW)
        tail = text[off:].lower()
        if not any(w in tail for w in _SUFFIX_WORDS) and not _ISO_DATE.search(tail):
            return text  # none of the suffixes' words: most texts, at the cost of a few substring tests
        m = _SUFFIX.search(text, off)
        if m is None or m.start() == 0:
            return text
        text = text[:m.start()].rstrip()


_WORDS = re.compile(r"[^\W\d_]+")
# Frequent function words per language: a text in a language other than English is said to be so.
_STOPWORDS = {
    "en": {"the", "is", "of", "to", "and", "a", "be", "cannot", "not", "in", "for", "was", "with", "because", "must",
           "has", "record", "failed", "error", "following", "does", "exist", "this", "that", "an", "are", "or"},
    "fr": {"le", "la", "les", "de", "des", "du", "est", "une", "un", "pas", "ne", "être", "doit", "impossible",
           "enregistrement", "car", "erreur", "suivante", "pour", "avec", "dans", "au", "aux", "été", "n'est", "qui"},
    "de": {"der", "die", "das", "ist", "nicht", "und", "ein", "eine", "werden", "kann", "muss", "mit", "den", "dem",
           "des", "konnte", "wurde", "fehler", "für", "von", "zu", "auf", "im", "datensatz", "folgenden", "nicht."},
    "es": {"el", "los", "las", "de", "del", "es", "una", "un", "no", "se", "debe", "puede", "registro", "error",
           "porque", "para", "con", "en", "que", "por", "siguiente"},
    "nl": {"de", "het", "een", "is", "niet", "van", "kan", "moet", "worden", "met", "voor", "fout", "record", "deze",
           "omdat", "bij", "op", "te"},
    "da": {"er", "ikke", "og", "en", "et", "kan", "skal", "med", "til", "af", "fejl", "den", "det", "på", "for"},
    "it": {"il", "lo", "la", "gli", "di", "del", "della", "è", "non", "un", "una", "deve", "può", "errore", "record",
           "perché", "per", "con", "che"},
    "sv": {"är", "inte", "och", "en", "ett", "kan", "ska", "måste", "med", "till", "av", "fel", "den", "det", "på",
           "för", "saknar", "kunde"},
    "nb": {"er", "ikke", "og", "en", "et", "kan", "skal", "må", "med", "til", "av", "feil", "den", "det", "på", "for",
           "mangler", "kunne"},
    "pt": {"o", "os", "as", "de", "do", "da", "dos", "é", "não", "um", "uma", "deve", "pode", "registro", "erro",
           "porque", "para", "com", "em", "que", "foi"},
}


def detect_language(text: str) -> str:
    """Guess the language of an error text from its function words (``en``, ``fr``, ``de``…; ``en`` if unsure).

    BC writes its own messages in the language of the session that ran the job, so a French tenant's
    history holds French texts, which English templates cannot match.

    Examples
    --------
    >>> detect_language("Le vendeur/acheteur NEWSP doit être couplé à une ligne Dataverse.")
    'fr'
    >>> detect_language("Salesperson/Purchaser NEWSP must be coupled to a Dataverse row.")
    'en'
    """
    words = [w.lower() for w in _WORDS.findall(text)[:80]]
    if len(words) < 3:
        return "en"
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda k: (scores[k], k == "en"))
    if best != "en" and scores[best] >= 2 and scores[best] > scores["en"] * 1.5 + 0.5:
        return best
    return "en"


FUZZY_CUTOFF = 90  # rapidfuzz ratio above which an unmatched text is taken for a reworded template
_FUZZY_MIN_WEIGHT = 25  # templates shorter than this are never matched fuzzily (too little to compare)
_TOKEN = re.compile(r"<\w+(?:-\w+)?>")
_DERIVED_COVERAGE = 0.4  # derived templates: literal text must be this share of the text they match


def _skeleton(masked: str) -> str:
    return " ".join(_TOKEN.sub("~", masked).lower().split())


class _Matcher:
    """The compiled catalogues, in tiers, with an index by the leading characters of each template.

    Tier 0 is the reviewed catalogue (``CATALOGUE_FILES``) plus local templates; tier 1 the error
    labels of BC's integration code (``bc-integration-labels.csv``); tier 2 the messages of the
    Dataverse error catalogue (``dataverse-error-codes.csv``). A text takes the most specific
    template of the lowest tier that matches it.
    """

    _LEADS = (3, 6, 10, 16)  # prefix lengths of the index

    def __init__(self, local: tuple[str, ...] = ()) -> None:
        frames = [_read_catalogue_file(f) for f in CATALOGUE_FILES]
        frames += [_read_catalogue_file(Path(f)) for f in local]
        df = pd.concat(frames, ignore_index=True)
        dup = df[df.duplicated("template", keep=False)]
        if not dup.empty:
            raise CatalogueError(f"Template {dup.template.iloc[0]!r} is listed twice (in {sorted(set(dup.file))}); "
                                 "keep one.")
        self.templates = [_compile(r.template, r.source, r.category, r.file,
                                   method="template" if r.file in CATALOGUE_FILES else "local template")
                          for r in df.itertuples(index=False)]
        self.derived = self._derived({t.text for t in self.templates})
        ordered = sorted(self.templates + self.derived, key=lambda t: (t.tier, -t.weight, t.text))
        self.wild = [t for t in ordered if len(t.lead) < self._LEADS[0]]
        self._cands: dict[tuple[str, ...], list[Template]] = {}
        self.index: dict[str, list[Template]] = {}
        for t in ordered:
            if len(t.lead) >= self._LEADS[0]:
                n = max(k for k in self._LEADS if k <= len(t.lead))
                self.index.setdefault(t.lead[:n], []).append(t)
        self.by_text = {t.text: t for t in self.templates}
        self._fuzzy: dict[str, list[tuple[str, Template]]] | None = None

    @staticmethod
    def _derived(known: set[str]) -> list[Template]:
        """Templates of the derived tiers: BC's error labels and Dataverse's messages, with their rule's cause."""
        out: list[Template] = []
        labels = label_causes()
        labels = labels[~labels.rule.isin(("locked", "not-an-error", "reviewed-template"))]
        seen = set(known)
        for r in labels.itertuples(index=False):
            text = r.text.strip()
            if text in seen or not re.sub(r"%\d|\\\\|\W", "", text):
                continue
            seen.add(text)
            tpl = _compile(text, f"{r.object} {r.label_name}", r.cause, "bc-integration-labels.csv",
                           method="label", detail=f"{r.object} {r.label_name} (rule {r.rule}){_no_cause(r)}",
                           tier=1, open_end=False)
            if tpl.weight >= 12:
                out.append(tpl)
        for r in dataverse_code_causes().itertuples(index=False):
            text = r.message.strip()
            if "%" in text or re.search(r"\{(?:9|\d\d)\}", text):
                continue
            text = re.sub(r"\{(\d)\}", lambda m: f"%{int(m.group(1)) + 1}", text)
            if text in seen or len(re.sub(r"%\d|\W", "", text)) < 12:
                continue
            seen.add(text)
            out.append(_compile(text, f"Dataverse {r.code_hex} {r.name}", r.cause, "dataverse-error-codes.csv",
                                method="dataverse code message",
                                detail=f"{r.code_hex} {r.name} (rule {r.rule}){_no_cause(r)}", tier=2, open_end=True))
        return out

    def candidates(self, text: str) -> list[Template]:
        """The templates whose leading literal the text starts with, and those that start with a value, in order."""
        key = tuple(lead for lead in (text[:n] for n in self._LEADS) if lead in self.index)
        if not key:
            return self.wild
        hit = self._cands.get(key)
        if hit is None:  # texts of one family share their leads: sort once per set of leads
            if len(self._cands) > 100_000:
                self._cands.clear()
            out = [t for lead in key for t in self.index[lead]] + self.wild
            hit = self._cands[key] = sorted(out, key=lambda t: (t.tier, -t.weight, t.text))
        return hit

    @staticmethod
    def _covers(t: Template, text: str, m: re.Match[str]) -> bool:
        """Derived templates must be more than a few words around their values (else they claim anything)."""
        if t.tier == 0:
            return True
        groups = m.groupdict()
        skip = len(re.sub(r"\s", "", groups.get("trail") or ""))
        if t.inner is not None:
            skip += len(re.sub(r"\s", "", groups.get(f"p{t.inner}") or ""))
        total = len(re.sub(r"\s", "", text)) - skip
        if total > 0 and t.weight / total < _DERIVED_COVERAGE:
            return False
        if t.weight >= _MIN_PREFIX_LITERAL:
            return True
        # a short label ("%1 %2 was not found.") says too little of its own: its table must be one we know
        tables = [k for k, kind in t.kinds.items() if kind in ("table", "parent-table")]
        if not tables:
            return False
        for k in tables:
            value = _clean(groups.get(f"p{k}") or "")
            pair = next((b for a, b in t.pairs if a == k), None)
            if pair is not None and groups.get(f"p{pair}") is not None:
                value = _split_caption(value, _clean(groups[f"p{pair}"]))[0]
            if value not in TABLE_CAPTIONS:
                return False
        return True

    def match(self, text: str, truncated: bool, dataverse: bool = False
              ) -> tuple[Template, dict[str, str], int | None] | None:
        """Return (template, group values, cut) of the most specific template matching ``text``.

        ``cut`` is ``None`` for a full match; for a cut text matched as a prefix it is the
        placeholder that holds the cut end (0 when the text ends inside the leading literal).
        A short Dataverse message that gives no cause is matched only in a text known to come from
        Dataverse (``dataverse``): elsewhere its generic words ("An unexpected error occurred.") say
        nothing of where the text is from; a long one (:data:`_SPECIFIC_WEIGHT`) is its own proof.
        """
        cands = self.candidates(text)
        bare = text.rstrip(". ")
        trailing: tuple[Template, dict[str, str], int | None] | None = None
        for t in cands:
            if t.lead and not text.startswith(t.lead):
                continue
            if t.required and t.required not in text:
                continue
            if t.suffix and not bare.endswith(t.suffix):
                continue
            if t.tier == 2 and not t.category and not dataverse and t.weight < _SPECIFIC_WEIGHT:
                continue
            m = t.regex.fullmatch(text)
            if m is not None and self._covers(t, text, m) and _lead_ok(t, m.groupdict()):
                if truncated and t.text.endswith(".") and not text.endswith(".") and t.weight < _MIN_PREFIX_LITERAL:
                    continue  # a cut text may go on past a short template's last word: too little to tell
                if m.groupdict().get("trail"):
                    # it explains only the start of the text: a template of the same tier that explains all
                    # of it (a wrapper whose inner text is the rest) is better
                    trailing = trailing or (t, m.groupdict(), None)
                    continue
                if trailing is not None and t.tier > trailing[0].tier:
                    return trailing
                return t, m.groupdict(), None
        if trailing is not None:
            return trailing
        if not truncated:
            return None
        best: tuple[int, Template, dict[str, str], int] | None = None
        flat = _clean(text)
        for t in cands:
            if t.tier > 0:
                continue  # cut texts: the reviewed catalogue only (a prefix of a loose label proves little)
            if best is not None and t.weight <= best[0]:
                break  # sorted by weight: no later template can cover more literal text
            need = _MIN_PREFIX_LITERAL  # a short template is no proof that a cut text is one of its
            if len(flat) <= len(t.flat_lead):  # the text ends inside the leading literal
                covered = len(flat.replace(" ", ""))
                if covered >= need and t.flat_lead.startswith(flat):
                    best = (covered, t, {}, 0)
                continue
            if t.lead and not text.startswith(t.lead):
                continue
            for covered, k, following, rx in t.prefixes:
                if best is not None and covered + len(following) <= best[0]:
                    break
                m = rx.fullmatch(text)
                if m is None:
                    continue
                # the cut placeholder absorbed the rest: count the start of the next literal it ends with
                values = m.groupdict()
                name = "rest" if values.get("rest") is not None else f"p{k}"
                value, extra = _cut_literal(values.get(name) or "", following)
                values[name] = value
                if not _lead_ok(t, values):
                    break
                if covered + extra >= need and (best is None or covered + extra > best[0]):
                    best = (covered + extra, t, values, k)
                break  # a later (shorter) prefix of the same template cannot cover more
        return None if best is None else (best[1], best[2], best[3])

    def classify(self, text: str, truncated: bool, depth: int = 0, dataverse: bool = False,
                 wrapped: bool = False, extra: str = "") -> _Res:
        """Classify one text; ``dataverse``: it is (inside) a Dataverse fault; ``wrapped``: inside BC's wrapper.

        ``extra``: the suffixes set aside from the texts around this one (error codes, ``Sql Number``):
        not part of the match or the signature, but read by the error code and wording rules.
        """
        norm = _clean(text.translate(_NORMALISE))
        if not norm:
            return _Res(text, masked=EMPTY_SIGNATURE)
        core = norm if truncated else _strip_suffixes(norm)  # a cut text lost its suffixes already
        extra = f"{norm[len(core):].strip()} {extra}".strip()
        context = dataverse or _context(f"{core} {extra}" if extra else core)
        hit = self.match(core, truncated, context)
        if hit is None:
            return self._unmatched(text, core, truncated, depth, dataverse, wrapped, extra, context)
        tpl, groups, cut = hit
        values = {int(k[1:]): v for k, v in groups.items() if k[0] == "p" and v is not None}
        for a, b in tpl.pairs:  # "%1 %2": split caption and key at a known caption (else at the last blank)
            if a in values and b in values and tpl.kinds.get(a) in ("table", "parent-table"):
                values[a], values[b] = _split_caption(values[a], values[b])
        child = None
        if tpl.inner is not None and depth < _MAX_DEPTH and values.get(tpl.inner, "").strip():
            # a text of a cut length that matched whole may still end inside its (last) inner text
            inner_cut = truncated and cut in (None, tpl.inner)
            inside_bc = wrapped or (not tpl.dataverse and not dataverse)
            child = self.classify(values[tpl.inner], inner_cut, depth + 1, dataverse or tpl.dataverse, inside_bc,
                                  extra)
            if child.tpl is None and tpl.parts[-1] == "." and not values[tpl.inner].rstrip().endswith("."):
                # the wrapper's own period may be the inner text's (one dot where BC writes two)
                alt = self.classify(values[tpl.inner].rstrip() + ".", inner_cut, depth + 1, dataverse or tpl.dataverse,
                                    inside_bc, extra)
                child = alt if alt.tpl is not None else child
        head, tail = _render(tpl, values, split=tpl.inner if child is not None else None)
        parent: tuple[str | None, str | None] = (None, None)
        spec = _PARENTS.get(tpl.text)
        if spec is not None:
            fmt = {f"p{k}": _clean(v) for k, v in values.items()}
            try:
                table = spec[0].format(**fmt)
                key = spec[1].format(**fmt) if spec[1] is not None else None
                parent = (table or None, key or None)
            except KeyError:  # a cut text lacks the placeholder
                parent = (None, None)
        cause, method, detail = tpl.category or (DATAVERSE_ERROR if tpl.tier == 2 else UNCLASSIFIED), tpl.method, \
            tpl.detail
        if tpl.wrap == "inner":
            cause, detail = UNCLASSIFIED, f"{tpl.detail}: BC's wrapper; the cause is its inner text's"
        elif tpl.wrap == "inner-dataverse":
            cause, detail = DATAVERSE_ERROR, f"{tpl.detail}: a Dataverse fault; the cause is its inner text's"
        # a shipped (English) template matched: the text is English; a local template may be in any language
        language = detect_language(core) if tpl.method == "local template" else "en"
        return _Res(text, tpl, head, tail, child, parent=parent, cause=cause, method=method, detail=detail,
                    language=language)

    def _unmatched(self, text: str, core: str, truncated: bool, depth: int, dataverse: bool, wrapped: bool,
                   extra: str, context: bool) -> _Res:
        """A text no template matches: platform prefixes, error codes, wording rules, fuzzy, language.

        ``context``: the text (with ``extra``) says it comes from Dataverse, or is inside a Dataverse fault.
        """
        m = _EXCEPTION_PREFIX.match(core)
        if m is not None and depth < _MAX_DEPTH:  # an exception type name says nothing: classify what follows
            res = self.classify(core[m.end():], truncated, depth + 1, dataverse or "Xrm" in m.group(0), wrapped,
                                extra)
            res.text = text
            return res
        h = _HTTP_PREFIX.match(core)
        if h is not None and h.end() < len(core) and depth < _MAX_DEPTH:
            res = self.classify(core[h.end():], truncated, depth + 1, dataverse, wrapped, extra)
            if res.outcome().cause != UNCLASSIFIED:
                res.text = text
                return res
        j = _JSON_MESSAGE.search(core)
        if j is not None and depth < _MAX_DEPTH:  # a Web API error body: its "message" is the fault's text
            inner = j.group(1).replace('\\"', '"').replace("\\n", " ").strip()
            if inner:
                # the same body shape comes from Graph and other services: Dataverse only if the text says so
                res = self.classify(inner, truncated, depth + 1, context, wrapped, extra)
                if res.outcome().cause != UNCLASSIFIED:
                    res.text = text
                    return res
        masked = mask(core)
        language = detect_language(core)
        whole = f"{core} {extra}" if extra else core  # codes and rules read the suffixes too
        codes = codes_in(whole)
        for code_hex, name, cause, rule in codes:
            if cause:
                return _Res(text, masked=masked, cause=cause, method="error code",
                            detail=f"{code_hex} {name} (rule {rule})", language=language)
        for rule in TEXT_RULES:
            if rule.in_wrapper and not wrapped:
                continue  # a generic AL runtime error is a synchronization cause only inside BC's wrappers
            if (context or not rule.needs_context) and rule.text_rx is not None and rule.text_rx.search(whole):
                return _Res(text, masked=masked, cause=rule.cause, method="wording rule",
                            detail=f"{rule.name}: {rule.why}", language=language)
        fuzzy = self.fuzzy(masked) if language == "en" else None
        if fuzzy is not None:
            score, tpl = fuzzy
            cause = tpl.category or (DATAVERSE_ERROR if tpl.tier == 2 else UNCLASSIFIED)
            return _Res(text, masked=masked, cause=cause, method="fuzzy",
                        detail=f"{score:.0f}% like {tpl.method} {tpl.text!r} ({tpl.detail})", language=language)
        if codes:
            code_hex, name, _, rule = codes[0]
            return _Res(text, masked=masked, cause=DATAVERSE_ERROR, method="error code",
                        detail=f"{code_hex} {name}: no cause (rule {rule}); read the text", language=language)
        if dataverse:
            detail = "inner text of a Dataverse fault that no template, code or rule knows"
        elif language != "en":
            detail = (f"the text is in {_LANGUAGE_NAMES.get(language, language)}, and the catalogues are English: "
                      "BC writes its messages in the language of the session that ran the job")
        else:
            detail = "no template, error code or wording rule matches"
        return _Res(text, masked=masked, detail=detail, language=language)

    def fuzzy(self, masked: str) -> tuple[float, Template] | None:
        """The template an unmatched (masked) text is a rewording of, when one is at least FUZZY_CUTOFF alike."""
        if not 20 <= len(masked) <= 600:
            return None
        if self._fuzzy is None:
            groups: dict[str, list[tuple[str, Template]]] = {}
            for t in self.templates + self.derived:
                if t.inner is not None or t.weight < _FUZZY_MIN_WEIGHT or (t.tier == 2 and not t.category):
                    continue  # (a Dataverse message with no cause, fuzzily alike, proves nothing)
                sk = _skeleton(mask(re.sub(r"%\d", "X1", t.text.replace("\\\\", " "))))
                groups.setdefault(sk.split(" ", 1)[0], []).append((sk, t))
            self._fuzzy = groups
        sk = _skeleton(masked)
        bucket = self._fuzzy.get(sk.split(" ", 1)[0])
        if not bucket:
            return None
        best = process.extractOne(sk, [b[0] for b in bucket], scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
        if best is None:
            return None
        # alike in letters is not alike in meaning ("already open" vs "already coupled", "key" vs "note"):
        # every word of the template (3 letters or more) must be in the text, but one in a long template
        # (8 words or more: one changed word there is a rewording, in a short one it is another message)
        words = set(_CONTENT_WORD.findall(bucket[best[2]][0].lower()))
        if len(words - set(_CONTENT_WORD.findall(sk.lower()))) > (1 if len(words) >= 8 else 0):
            return None
        return best[1], bucket[best[2]][1]


_CONTENT_WORD = re.compile(r"(?<![<\w])[a-z][a-z'-]{2,}")


_LANGUAGE_NAMES = {"fr": "French", "de": "German", "es": "Spanish", "nl": "Dutch", "da": "Danish", "it": "Italian",
                   "sv": "Swedish", "nb": "Norwegian", "pt": "Portuguese"}


def _cut_literal(value: str, following: str) -> tuple[str, int]:
    """Split off the start of the literal ``following`` that a cut value ends with; return (value, chars)."""
    clean = _clean(value)
    for j in range(min(len(following), len(clean)), 0, -1):
        if clean.endswith(following[:j]):
            return clean[:-j].rstrip(), len(following[:j].replace(" ", ""))
    return value, 0


def _split_caption(a: str, b: str) -> tuple[str, str]:
    combined = _clean(f"{a} {b}")
    for cap in TABLE_CAPTIONS:
        if combined.startswith(cap + " ") and len(combined) > len(cap) + 1:
            return cap, combined[len(cap) + 1:]
    if " " in combined:
        head, _, last = combined.rpartition(" ")
        return head, last
    return a, b


def _render(tpl: Template, values: dict[int, str], split: int | None) -> tuple[str, str]:
    """Render the template with tokens; when ``split`` is a placeholder, return the text before and after it."""
    out: list[str] = []
    head = None
    for part in tpl.parts:
        if isinstance(part, str):
            out.append(part.replace("\\\\", " "))
            continue
        if part == split and head is None:
            head = "".join(out)
            out = []
            continue
        kind = tpl.kinds.get(part, "value")
        value = _clean(values.get(part, ""))
        if kind in _KEPT and value and len(value) <= 60:
            out.append(value)
        else:
            out.append(_TOKENS.get(kind, "<value>"))
    if head is None:
        return _clean("".join(out)), ""
    tail = "".join(out)
    return _clean(head) + (" " if head[-1:].isspace() else ""), (" " if tail[:1].isspace() else "") + _clean(tail)


LOCAL_TEMPLATES_ENV = "SYNCANALYSIS_TEMPLATES"
_local: tuple[str, ...] | None = None  # set by use_templates(); None = from the environment variable


def local_templates() -> tuple[str, ...]:
    """The local template files in use: those of :func:`use_templates`, else of ``$SYNCANALYSIS_TEMPLATES``."""
    if _local is not None:
        return _local
    return tuple(p for p in os.environ.get(LOCAL_TEMPLATES_ENV, "").split(os.pathsep) if p.strip())


def use_templates(*paths: str | Path) -> int:
    """Use local template files (besides the shipped catalogues) from now on, in this process.

    A local file has the catalogue's columns ``template,source,category``: the text as BC (or your
    extension) writes it with ``%1``, ``%2``… for its values, where it comes from, and one of the
    causes of :data:`~syncanalysis.analysis.causes.CAUSES`. Local templates are matched with the
    reviewed catalogue, before BC's labels and Dataverse's messages; a workspace classifies its texts
    again when the templates in use change. ``use_templates()`` with no path goes back to the shipped
    catalogues only. The environment variable ``SYNCANALYSIS_TEMPLATES`` (paths separated by
    ``os.pathsep``) does the same for every process, e.g. the CLI.

    Parameters
    ----------
    paths
        CSV files.

    Returns
    -------
    int
        The number of templates now in use in the reviewed tier (shipped plus local).

    Raises
    ------
    CatalogueError
        A file cannot be read, or has a bad header, an empty template, an unknown category or a template
        that is listed twice; the templates in use are then unchanged.
    """
    global _local
    chosen = tuple(dict.fromkeys(str(p) for p in paths))  # a file named twice is read once
    key = _key_of(chosen)
    matcher = _MATCHERS.get(key) or _Matcher(chosen)  # read and checked before it replaces anything
    _local = chosen
    _MATCHERS[key] = matcher
    return len(matcher.templates)


# Matchers by the local files in use and their state (path, mtime, size): an edited file is read again.
_MATCHERS: dict[tuple[tuple[str, int, int], ...], _Matcher] = {}


def _local_key() -> tuple[tuple[str, int, int], ...]:
    return _key_of(local_templates())


def _key_of(paths: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((path, st.st_mtime_ns, st.st_size))
        except OSError:  # _Matcher names the file that cannot be read
            out.append((path, -1, -1))
    return tuple(out)


def _matcher() -> _Matcher:
    key = _local_key()
    matcher = _MATCHERS.get(key)
    if matcher is None:
        if len(_MATCHERS) >= 4:
            _MATCHERS.clear()
        matcher = _MATCHERS[key] = _Matcher(tuple(p for p, _, _ in key))
    return matcher


def classifier_fingerprint() -> str:
    """A digest of everything classification depends on: this code, the rules, the catalogues, local templates.

    Stored in the workspace with the signatures; when it differs, :func:`assign_signatures` classifies
    every text again, so a new catalogue or a local template (or an edited one) takes effect on old
    history too.
    """
    h = hashlib.sha256(_base_fingerprint().encode())
    for path in local_templates():
        try:
            h.update(Path(path).read_bytes())
        except OSError:
            h.update(path.encode())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def _base_fingerprint() -> str:
    h = hashlib.sha256()
    pkg = importlib.resources.files("syncanalysis")
    for name in ("analysis/signatures.py", "analysis/rules.py", "analysis/causes.py", *(f"data/{f}" for f in (
            *CATALOGUE_FILES, "bc-integration-labels.csv", "dataverse-error-codes.csv"))):
        h.update((pkg / name).read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# Classification of many texts


def _cluster(masked: Iterable[tuple[str, str]], known: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """Group masked texts: each joins the first earlier representative with ratio >= CLUSTER_CUTOFF.

    Items are ``(masked text, cause)``; ``known`` maps representatives already in use (e.g. stored
    signatures) to their signature. Texts are compared only within their bucket (:func:`_bucket`: the
    same cause, first word and named things), and visited in sorted order, so the result depends only
    on the set of texts.
    """
    reps: dict[tuple[str, ...], list[str]] = {}
    sig_of_rep: dict[tuple[str, str], str] = {}
    for (rep, cause), sig in sorted(known.items()):
        key = rep[:_CLUSTER_KEY_LEN]
        reps.setdefault(_bucket(rep, cause), []).append(key)
        sig_of_rep.setdefault((key, cause), sig)
    out: dict[tuple[str, str], str] = {}
    for m, cause in sorted(set(masked)):
        key = m[:_CLUSTER_KEY_LEN]
        if (key, cause) in sig_of_rep:
            out[m, cause] = sig_of_rep[key, cause]
            continue
        bucket = reps.setdefault(_bucket(m, cause), [])
        best = process.extractOne(key, bucket, scorer=fuzz.ratio, score_cutoff=CLUSTER_CUTOFF) if bucket else None
        if best is not None:
            out[m, cause] = sig_of_rep[best[0], cause]
            sig_of_rep[key, cause] = out[m, cause]
            continue
        sig = m if len(m) <= _MAX_UNMATCHED_SIG else m[:_MAX_UNMATCHED_SIG - 1].rstrip() + "…"
        bucket.append(key)
        sig_of_rep[key, cause] = sig
        out[m, cause] = sig
    return out


_NAMED = re.compile(r"(?<![<\w])[A-Z][\w/.'-]*")
# What a record operation is, in lower case: "Cannot update …" and "Cannot insert …" are two problems.
_OPERATIONS = re.compile(r"\b(?:insert|update|modify|delete|create|couple|uncouple|read|write|assign|share|"
                         r"append|retrieve|synchroni[sz]e|import|export|to|from)\b")


def _bucket(masked: str, cause: str) -> tuple[str, ...]:
    """What two texts must share to be grouped: the cause, the first word and the capitalised words in order.

    Capitalised words are what names things in an error text — tables, apps, directions ("Customer"
    vs "Account", "to Dataverse" vs "to Business Central") — and the operation words (insert, update,
    delete, to, from…) say what was done, so texts that differ in them are different problems however
    alike the rest is.
    """
    head = masked[:_CLUSTER_KEY_LEN]
    return (cause, head.split(" ", 1)[0].lower(), *_NAMED.findall(head)[1:], *_OPERATIONS.findall(head.lower()))


def _signature(r: _Res, leaf_sigs: dict[tuple[str, str], str]) -> str:
    if r.tpl is None:
        return leaf_sigs.get((r.masked or "", r.cause), r.masked or EMPTY_SIGNATURE)
    if r.child is None:
        return r.head
    return r.head + _signature(r.child, leaf_sigs) + r.tail


def _distinct(messages: Iterable[str] | pd.Series) -> list[str]:
    s = messages if isinstance(messages, pd.Series) else pd.Series(list(messages), dtype=object)
    s = s[s.notna()]
    return [str(x) for x in pd.unique(s.astype(object))]


def _chunks(items: list[str], progress: bool, desc: str) -> Iterator[str]:
    if not progress:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, unit="text", mininterval=0.5)


def _classify_texts(texts: list[str], known: dict[tuple[str, str], str] | None = None,
                    progress: bool = False) -> pd.DataFrame:
    m = _matcher()
    results = [m.classify(t, _maybe_truncated(t)) for t in _chunks(texts, progress, "Classifying error texts")]
    leaves = [r.leaf() for r in results]
    leaf_sigs = _cluster(((lf.masked, lf.cause) for lf in leaves if lf.tpl is None and lf.masked), known or {})
    rows = []
    for r in results:
        d = r.outcome()
        leaf = r.leaf()
        template = d.tpl.text if d.tpl is not None else None
        inner = d.text if d is not r else (leaf.text if leaf is not r else None)
        rows.append((r.text, _signature(r, leaf_sigs), template, d.cause, inner, d.parent[0], d.parent[1],
                     d.method, d.detail, leaf.language))
    return pd.DataFrame(rows, columns=COLUMNS, dtype=object)


def classify(messages: Iterable[str] | pd.Series, *, progress: bool = False) -> pd.DataFrame:
    """Classify error texts: signature, template, cause, how it matched, inner text, parent record, language.

    Parameters
    ----------
    messages
        Error texts (duplicates and missing values are fine; each distinct text is classified once).
    progress
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per distinct text, in order of first appearance, with columns ``error_message,
        signature, template, cause, inner_message, parent_table, parent_key, match, match_detail,
        language``. ``template`` is ``None`` when no template decided the cause (an error code, a
        wording rule or a fuzzy match may still have: ``match`` says which, ``match_detail`` which
        one and why); ``cause`` is ``"unclassified"`` when nothing did, and ``match_detail`` then
        says why (e.g. the text's language).

    Examples
    --------
    >>> row = classify(["Salesperson/Purchaser NEWSP must be coupled to a Dataverse row."]).iloc[0]
    >>> row.signature, row.cause, row.parent_table, row.parent_key
    ('Salesperson/Purchaser <key> must be coupled to a Dataverse row.', 'not-coupled', 'Salesperson/Purchaser', 'NEWSP')
    """
    return _classify_texts(_distinct(messages), progress=progress)


# ------------------------------------------------------------------------------------------------
# Workspace

def error_text_sql(alias: str = "") -> str:
    """SQL for the text of a ``job_errors`` row, the key of ``signatures``: Error Message, else Message.

    Parameters
    ----------
    alias
        Table alias to qualify the columns with (e.g. ``"e"``), or empty.

    Examples
    --------
    >>> error_text_sql("e")
    "coalesce(nullif(e.error_message, ''), nullif(e.message, ''))"
    """
    p = f"{alias}." if alias else ""
    return f"coalesce(nullif({p}error_message, ''), nullif({p}message, ''))"


_NEW_TEXTS_SQL = f"""
SELECT DISTINCT t.text FROM (
    SELECT {error_text_sql()} AS text FROM job_errors
    UNION ALL
    SELECT nullif(error_message, '') FROM skipped_records
) t
WHERE t.text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM signatures s WHERE s.error_message = t.text)
ORDER BY t.text
"""


def _known_representatives(ws: Workspace) -> dict[tuple[str, str], str]:
    """Masked representatives (with their cause) of the unmatched groups already stored, with their signatures.

    New unmatched texts join these groups, so signatures stay stable across incremental runs.
    """
    m = _matcher()
    wrappers = [t.text for t in m.templates if t.inner is not None]
    rows = ws.con.execute(
        "SELECT error_message, signature FROM signatures WHERE template IS NULL OR list_contains(?, template)",
        [wrappers],
    ).fetchall()
    known: dict[tuple[str, str], str] = {}
    for text, sig in rows:
        r = m.classify(text, _maybe_truncated(text))
        leaf = r.leaf()
        if leaf.tpl is not None or not leaf.masked:
            continue
        # strip the wrappers' rendered heads and tails to recover the stored group signature
        node, inner_sig = r, sig
        while node.tpl is not None and node.child is not None:
            if inner_sig.startswith(node.head) and inner_sig.endswith(node.tail):
                inner_sig = inner_sig[len(node.head):len(inner_sig) - len(node.tail) if node.tail else None]
            node = node.child
        known.setdefault((leaf.masked, leaf.cause), inner_sig)
    return known


def assign_signatures(ws: Workspace, *, progress: bool = False) -> int:
    """Classify the workspace's new error texts and set ``job_errors.signature`` / ``cause``.

    Every distinct text of ``job_errors`` (Error Message, else Message: :func:`error_text_sql`) and of
    ``skipped_records.error_message`` that is not in the ``signatures`` table yet is classified
    once (see :func:`classify`) and stored there; then job errors without a signature or cause get
    them by a set-based update. When the classifier changed since the stored signatures were made
    (:func:`classifier_fingerprint`: new catalogues, rules or local templates), every text is
    classified again. Runs in one transaction; running it again does nothing.

    Parameters
    ----------
    ws
        The workspace.
    progress
        Show a progress bar while classifying.

    Returns
    -------
    int
        The number of new distinct texts classified.
    """
    fingerprint = classifier_fingerprint()
    with ws.transaction() as con:
        stored = con.execute("SELECT value FROM meta WHERE key = 'classifier'").fetchall()
        if not stored or stored[0][0] != fingerprint:  # new rules or templates: classify everything again
            con.execute("DELETE FROM signatures")
            con.execute("UPDATE job_errors SET signature = NULL, cause = NULL WHERE signature IS NOT NULL "
                        "OR cause IS NOT NULL")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('classifier', ?)", [fingerprint])
        texts = [r[0] for r in con.execute(_NEW_TEXTS_SQL).fetchall()]
        if texts:
            frame = _classify_texts(texts, _known_representatives(ws), progress)
            with registered(con, frame, "new_signatures") as name:
                con.execute(f"INSERT INTO signatures SELECT {', '.join(COLUMNS)} FROM {name}")
        con.execute(
            f"""UPDATE job_errors SET signature = s.signature, cause = s.cause
            FROM signatures s
            WHERE (job_errors.signature IS NULL OR job_errors.cause IS NULL)
              AND s.error_message = {error_text_sql("job_errors")}"""
        )
    return len(texts)


# ------------------------------------------------------------------------------------------------
# CLI


def run_classify(messages: list[str], *, as_json: bool) -> str:
    """Return what ``syncanalysis classify [MESSAGE...] [--json]`` prints for ``messages``.

    Parameters
    ----------
    messages
        Error texts, in the order to report them (repeats are reported again).
    as_json
        Return a JSON array (one object per message) instead of text blocks.

    Returns
    -------
    str
        For each message: signature, template, cause with its title, remedy and action, how it was
        matched (``match``: template, local template, label, dataverse code message, error code,
        wording rule, fuzzy or none; ``match_detail``: which one, and why), its language, and the
        parent record when the text names one.
    """
    frame = classify(messages).set_index("error_message", drop=False)
    items = []
    for msg in messages:
        row = frame.loc[msg]
        info = cause_info(row.cause)
        items.append({
            "message": msg, "signature": row.signature, "template": row.template, "cause": row.cause,
            "title": info.title, "transient": info.transient, "remedy": info.remedy, "action": info.action,
            "bc_action": info.bc_action, "inner_message": row.inner_message,
            "parent_table": row.parent_table, "parent_key": row.parent_key,
            "match": row.match, "match_detail": row.match_detail, "language": row.language,
        })
    if as_json:
        return json.dumps(items, indent=2, ensure_ascii=False)
    blocks = []
    for it in items:
        lines = [
            f"Message:   {it['message']}",
            f"Signature: {it['signature']}",
            f"Template:  {it['template'] if it['template'] is not None else '(none)'}",
            f"Cause:     {it['cause']} - {it['title']}{' (transient)' if it['transient'] else ''}",
            f"Matched:   {it['match']}{' - ' + it['match_detail'] if it['match_detail'] else ''}",
        ]
        if it["language"] != "en":
            lines.append(f"Language:  {it['language']}")
        if it["inner_message"]:
            lines.append(f"Inner:     {it['inner_message']}")
        if it["parent_table"]:
            lines.append(f"Parent:    {it['parent_table']} {it['parent_key'] or '(key not named)'}")
        lines += [f"Action:    {it['action']}", f"Remedy:    {it['remedy']}"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def ensure_signatures(ws: Workspace) -> int:
    """Classify the error texts that have no signature yet, unless the workspace is read-only.

    What panels, the report and the diagnosis call before grouping by signature or cause; returns the
    number of new texts classified (0 on a read-only workspace, which keeps what was classified before).
    """
    if ws.read_only:
        return 0
    missing = ws.con.execute("SELECT count(*) FROM (SELECT 1 FROM job_errors WHERE signature IS NULL LIMIT 1)"
                             ).fetchall()[0][0]
    stale = ws.con.execute("SELECT count(*) FROM meta WHERE key = 'classifier' AND value = ?",
                           [classifier_fingerprint()]).fetchall()[0][0] == 0
    return assign_signatures(ws) if missing or stale else 0
