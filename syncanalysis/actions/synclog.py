"""Synchronization Log of one record (page 5333's action), with the whole history instead of the last job.

BC's Synchronization Log opens page 5338 filtered to the coupling's two Last Synch. Job IDs. Here:
every job that touched the record, every error logged for it, its coupling's state over time
(reconstructed from the errors, the skip rule of spec §6.4, the last successful jobs and the actions
audited in this workspace) and, on the twin, both apps' field values side by side. The twin stores a
field value as an integer code and a text length; :func:`field_value_text` renders it as a realistic text.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .. import bc
from ..analysis.records import Selection, local_record_sql, records_relation
from ..analysis.signatures import error_text_sql
from ..sql import registered
from ..twin import operations as ops
from ..twin.model import BC, DV
from ..twin.state import has_twin, load_twin
from ..workspace import Workspace
from .base import CAPTIONS, ActionError

_DIRECTION = {bc.TO_INTEGRATION: "to Dataverse", bc.FROM_INTEGRATION: "from Dataverse"}
# State of the coupling after an audited action that changed it.
_STATE_AFTER = {"retry": "failed", "retry-all": "failed", "synchronize": "ok", "remove-coupling": "uncoupled",
                "restore-records": "ok", "delete-records": "uncoupled", "find-for-deleted": "skipped"}


@dataclass
class SyncLog:
    """One record's Synchronization Log.

    Attributes
    ----------
    record
        The coupling row (records() columns incl. ``state``), or the record id alone when it is not
        coupled; on the twin also both apps' modified-on times.
    jobs
        Every job that touched it: jobs that logged an error for it, its Last Synch. (CRM) Job IDs and
        the jobs of audited actions on it (column ``why``).
    errors
        Every error logged for it (its BC record or its Dataverse row), newest first.
    timeline
        time, event, direction, detail, state: the coupling's state over time (reconstructed).
    versions
        On the twin: field, dataverse_field, direction, bc_value, dataverse_value, bc_length,
        dataverse_length, differs (the stored codes and lengths), then dataverse_caption (BC's caption of
        the Dataverse field), bc_text and dataverse_text (the values as :func:`field_value_text` renders
        them; blank where the app does not hold the record). ``None`` for loaded history.
    """

    record: dict[str, Any]
    jobs: pd.DataFrame
    errors: pd.DataFrame
    timeline: pd.DataFrame
    versions: pd.DataFrame | None


def _coupling(ws: Workspace, environment: str, company: str, bc_record_id: str | None, table_id: int | None,
              integration_id: str | None) -> pd.DataFrame:
    sql, params = records_relation(ws, Selection(environment=environment, company=company))
    clauses, extra = [], []
    if integration_id is not None:
        clauses.append("r.integration_id = TRY_CAST(? AS UUID)")
        extra.append(str(integration_id).strip("{}"))
    if table_id is not None:
        clauses.append("r.table_id = ?")
        extra.append(int(table_id))
    if bc_record_id is not None:
        clauses.append("r.bc_record_id = ?")
        extra.append(bc_record_id)
    frame = ws.con.execute(
        f"SELECT r.*, m.integration_table_caption FROM ({sql}) r LEFT JOIN mappings m ON m.environment = r.environment "
        f"AND m.company = r.company AND m.name = r.mapping_name WHERE {' AND '.join(clauses)}", params + extra).df()
    return frame


def sync_log(ws: Workspace, *, environment: str, company: str, bc_record_id: str | None = None,
             table_id: int | None = None, integration_id: str | None = None) -> SyncLog:
    """Return the Synchronization Log of one record.

    Parameters
    ----------
    ws
        The workspace.
    environment, company
        Where the record lives.
    bc_record_id
        The BC record as BC formats it (``Customer: 10000``); or give ``integration_id`` (and ``table_id``).
    table_id, integration_id
        The coupling's key.

    Raises
    ------
    ActionError
        When neither a record id nor a coupling key is given, or the key matches no coupling.
    """
    if bc_record_id is None and integration_id is None:
        raise ActionError("Say which record: bc_record_id (e.g. 'Customer: 10000') or table_id and integration_id.")
    found = _coupling(ws, environment, company, bc_record_id, table_id, integration_id)
    if found.empty and bc_record_id is None:
        raise ActionError(f"No coupling with table {table_id} and Integration ID {integration_id} in "
                          f"{environment}/{company}.")
    if found.empty:
        # BC's ShowLog needs the table's mapping (CRMSynchSkippedRecords T132); only checkable when mappings are loaded
        caption = bc.split_record_id(bc_record_id)[0] or bc_record_id
        known = ws.con.execute("SELECT list(DISTINCT table_caption) FROM mappings WHERE environment = ? AND company = ?",
                               [environment, company]).fetchall()[0][0] or []
        if known and caption not in known:
            raise ActionError(f"No Integration Table Mapping was found for table {caption}. (BC's Synchronization "
                              f"Log works on records of the mapped tables: {', '.join(sorted(known))}.)")
    if len(found):
        record = found.iloc[0].to_dict()
        record["integration_id"] = str(record["integration_id"])
        record["crm_id"] = None if pd.isna(record.get("crm_id")) else str(record["crm_id"])
    else:
        record = {"environment": environment, "company": company, "bc_record_id": bc_record_id, "state": "not coupled"}
    record = {k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in record.items()}
    bc_rid = record.get("bc_record_id")
    dv_rid = None
    if record.get("crm_id") and record.get("integration_table_caption"):
        dv_rid = f"{record['integration_table_caption']}: {bc.format_guid(record['crm_id'])}"
    # for §6.4 (see _timeline): whether a run of the mapping in that direction came between two failures
    errors = ws.con.execute(
        f"""
        WITH e AS (
            SELECT e.error_no, e.logged_at, e.job_id, j.mapping_name, j.synch_direction, e.source_record_id,
                   e.destination_record_id, e.message, {error_text_sql("e")} AS error_message,
                   e.signature, e.cause, e.job_inferred, j.start_datetime AS job_start
            FROM job_errors e LEFT JOIN jobs j ON j.environment = e.environment AND j.company = e.company
                                              AND j.job_id = e.job_id
            WHERE e.environment = ? AND e.company = ?
              AND ({local_record_sql("e")} = ?
                   OR e.source_record_id = ? OR e.destination_record_id = ?
                   -- a record of page exports: the page 5339 error its latest error is (page 5333's, matched by
                   -- second and text); page errors name no record, so its earlier ones are unknown
                   OR (e.source_record_id IS NULL AND e.destination_record_id IS NULL AND e.error_no = ?))),
        p AS (
            SELECT *, lag(message) OVER w AS prev_message, lag(job_start) OVER w AS prev_start
            FROM e WINDOW w AS (PARTITION BY synch_direction ORDER BY error_no))
        SELECT * EXCLUDE (prev_message, prev_start),
               coalesce(message = prev_message, false) AS same_as_previous,
               coalesce(EXISTS (
                   SELECT 1 FROM jobs r WHERE r.environment = ? AND r.company = ? AND r.mapping_name = p.mapping_name
                      AND r.synch_direction = p.synch_direction AND coalesce(r.job_queue_log_entry_no, 1) > 0
                      AND r.start_datetime > p.prev_start AND r.start_datetime < p.job_start), true) AS run_between
        FROM p ORDER BY error_no DESC
        """, [environment, company, bc_rid, dv_rid, dv_rid, record.get("error_no") if record.get("inferred") else None,
              environment, company]).df()
    actions = _actions(ws, environment, company, record.get("integration_id"))
    why = pd.DataFrame({"job_id": errors["job_id"].astype(str), "why": "error for this record"})
    extra = [(record.get("last_synch_job_id"), "Last Synch. Job ID"),
             (record.get("last_synch_crm_job_id"), "Last Synch. CRM Job ID")]
    extra += [(j, f"action #{a['action_id']} ({CAPTIONS.get(a['action'], a['action'])})")
              for a in actions for j in a["jobs"]]
    extra_frame = pd.DataFrame([(str(j), w) for j, w in extra if j is not None], columns=["job_id", "why"])
    why = pd.concat([why, extra_frame], ignore_index=True) if len(extra_frame) else why
    why = why.groupby("job_id", as_index=False)["why"].agg(lambda s: "; ".join(dict.fromkeys(s)))
    with registered(ws.con, why, "synclog_jobs") as name:
        jobs = ws.con.execute(
            "SELECT j.job_id, j.start_datetime, j.finish_datetime, j.mapping_name, j.synch_direction, j.type, "
            "j.trigger, j.job_queue_log_entry_no, j.inserted, j.modified, j.deleted, j.unchanged, j.skipped, "
            f"j.failed, j.uncoupled, j.coupled, j.message, j.inferred, w.why FROM jobs j JOIN {name} w "
            "ON CAST(j.job_id AS VARCHAR) = w.job_id WHERE j.environment = ? AND j.company = ? "
            "ORDER BY j.start_datetime DESC", [environment, company]).df()
    timeline = _timeline(record, errors, jobs, actions)
    versions = _versions(ws, environment, company, record)
    return SyncLog(record=record, jobs=jobs, errors=errors, timeline=timeline, versions=versions)


def _actions(ws: Workspace, environment: str, company: str, integration_id: str | None) -> list[dict[str, Any]]:
    """Audited actions whose targets include the coupling, with this coupling's result (few rows)."""
    if not integration_id:
        return []
    rows = ws.con.execute(
        "SELECT a.action_id, a.\"at\", a.who, a.action, a.dry_run, a.backend, t.result, t.detail, "
        "CAST(a.outcome AS VARCHAR) FROM actions a JOIN action_targets t USING (action_id) "
        "WHERE a.environment = ? AND a.company = ? AND t.table_id <> 5338 AND t.integration_id = TRY_CAST(? AS UUID) "
        "ORDER BY a.action_id", [environment, company, str(integration_id)]).fetchall()
    out = []
    for action_id, at, who, action, dry_run, backend, result, detail, outcome in rows:
        data = json.loads(outcome or "{}")
        when = pd.Timestamp(data["twin_clock"]).to_pydatetime() if data.get("twin_clock") else at  # twin time
        out.append({"action_id": action_id, "at": when, "who": who, "action": action, "dry_run": dry_run,
                    "backend": backend, "result": result, "detail": detail,
                    "jobs": [] if dry_run else data.get("jobs", [])})
    return out


def _timeline(record: dict[str, Any], errors: pd.DataFrame, jobs: pd.DataFrame,
              actions: list[dict[str, Any]]) -> pd.DataFrame:
    """The coupling's state over time, reconstructed (spec §6.4/§6.5)."""
    events: list[dict[str, Any]] = []
    finish = dict(zip(jobs["job_id"].astype(str), jobs["finish_datetime"])) if len(jobs) else {}
    for col, result_col, direction, caption in (
            ("last_synch_job_id", "last_synch_result", "from Dataverse", "Last Synch. Job ID"),
            ("last_synch_crm_job_id", "last_synch_crm_result", "to Dataverse", "Last Synch. CRM Job ID")):
        job = record.get(col)
        if job is not None and record.get(result_col) == "Success" and str(job) in finish:
            events.append({"time": finish[str(job)], "event": "synchronized", "direction": direction,
                           "detail": f"last successful job ({caption})", "state": "ok"})
    # §6.4: a failure with the same Message as the previous one in that direction makes the coupling Skipped
    # when nothing succeeded in between: no run came between (a failing coupling is retried by every run,
    # so a run without an error for it succeeded), or the coupling was Skipped then (Retry keeps Failure)
    errs = errors.sort_values("error_no").assign(direction=errors["synch_direction"].map(_DIRECTION))
    skipped_now: dict[object, bool] = {}
    for time, msg, direction, same, between in zip(
            errs["logged_at"], errs["message"], errs["direction"].astype(object).fillna("(unknown)"),
            errs["same_as_previous"], errs["run_between"]):
        repeat = bool(same) and (not between or skipped_now.get(direction, False))
        skipped_now[direction] = repeat
        events.append({"time": time, "event": "failed, Skipped" if repeat else "failed", "direction": direction,
                       "detail": ("same failure as the previous run in this direction → Skipped (§6.4, "
                                  "reconstructed): " if repeat else "") + str(msg),
                       "state": "skipped" if repeat else "failed"})
    for a in actions:
        caption = CAPTIONS.get(a["action"], a["action"])
        if a["dry_run"]:
            events.append({"time": a["at"], "event": f"dry run: {caption}", "direction": None,
                           "detail": f"#{a['action_id']} by {a['who']}: {a['detail']}", "state": None})
            continue
        state = _STATE_AFTER.get(a["action"]) if a["result"] == "changed" else None
        if a["result"] == "failed":
            state = "skipped" if "Skipped again" in str(a["detail"]) else "failed"
        events.append({"time": a["at"], "event": f"action: {caption}", "direction": None,
                       "detail": f"#{a['action_id']} by {a['who']} ({a['backend']}): {a['detail']}", "state": state})
    frame = pd.DataFrame(events, columns=["time", "event", "direction", "detail", "state"])
    if len(frame):
        frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
        frame["state"] = frame["state"].ffill()
    now = {"time": frame["time"].max() if len(frame) else None, "event": "now", "direction": None,
           "detail": f"state {record.get('state')}" + (", Skipped" if record.get("skipped") and
                                                         record.get("state") != "skipped" else ""),
           "state": record.get("state")}
    return pd.concat([frame, pd.DataFrame([now])], ignore_index=True) if len(frame) else pd.DataFrame([now])


def _versions(ws: Workspace, environment: str, company: str, record: dict[str, Any]) -> pd.DataFrame | None:
    """Both apps' field values side by side (twin only)."""
    if not has_twin(ws, environment, company):
        return None
    sim = load_twin(ws, environment, company)
    w = sim.world
    mapping = record.get("mapping_name")
    rid = record.get("bc_record_id") or ""
    if mapping not in w.tables:
        caption = bc.split_record_id(rid)[0]
        mapping = next((n for n, t in w.tables.items() if t.config.bc_caption == caption), None)
        if mapping is None:
            return None
    tb = w.table(mapping)
    row = -1
    if record.get("integration_id"):
        row = int(ops.rows_for_ids(w, mapping, [record["integration_id"]])[0])
    if row < 0 and bc.split_record_id(rid)[1] is not None:
        hit = np.flatnonzero(tb.key == bc.split_record_id(rid)[1])
        row = int(hit[-1]) if len(hit) else -1
    cols = ["field", "dataverse_field", "direction", "bc_value", "dataverse_value", "bc_length", "dataverse_length",
            "differs", "dataverse_caption", "bc_text", "dataverse_text"]
    if row < 0 or not (tb.exists[BC][row] or tb.exists[DV][row]):
        return pd.DataFrame(columns=cols)
    ms = [tb.mod[BC][row], tb.mod[DV][row]]
    record["twin_bc_exists"], record["twin_dataverse_exists"] = bool(tb.exists[BC][row]), bool(tb.exists[DV][row])
    record["twin_bc_modified_at"], record["twin_dataverse_modified_on"] = (
        pd.Timestamp(int(m), unit="ms") if m >= 0 else None for m in ms)
    table = tb.config.bc_caption
    rows = []
    for c, f in enumerate(tb.config.fields):
        bv = int(tb.vals[BC][row, c]) if tb.exists[BC][row] else None
        dv = int(tb.vals[DV][row, c]) if tb.exists[DV][row] else None
        bl = int(tb.lens[BC][row, c]) if tb.exists[BC][row] else None
        dl = int(tb.lens[DV][row, c]) if tb.exists[DV][row] else None
        differs = bool(tb.exists[BC][row] and tb.exists[DV][row] and (bv != dv or bl != dl))
        # both apps' values are rendered under the BC field's name, so equal codes read the same
        rows.append((f.bc_field, f.dv_field, f.direction, bv, dv, bl, dl, differs, f.dv_caption or None,
                     field_value_text(f.bc_field, bv, bl, table=table), field_value_text(f.bc_field, dv, dl, table=table)))
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------------------------
# Field values of the twin as text

# Made-up words are consonant-vowel syllables (17 x 6 = 102 of them): three syllables hold every code the twin
# draws (1..1,000,006 < 102**3), and the word ends where a separator or a final consonant starts.
_CONSONANTS, _VOWELS, _FINALS = "bcdfghjklmnprstvz", "aeiouy", "lnrst"
_CITY = ["Falls", "Bay", "City", "Springs", "Heights", "Harbour", "Valley", "Park", "Bridge", "Hill", "Ridge", "Port"]
_CITY_MID = ["North", "South", "East", "West", "Upper", "Lower", "Old", "New", "Lake", "Sea", "on", "St", "Mill", "Green"]
_COMPANY_END = ["Ltd.", "Corporation", "GmbH", "S.A.", "Inc.", "AB", "B.V.", "A/S", "AG", "Group", "& Co.", "Oy", "SARL",
                "Trading", "Holding", "Partners"]
_COMPANY_MID = ["Nordic", "International", "Logistics", "Consulting", "Industries", "Services", "Systems", "Foods",
                "Electronics", "Engineering", "Retail", "Distribution", "Import", "Export", "Office", "Supply", "Works",
                "Design", "Digital", "Medical", "Travel", "Energy", "Wine", "Toys", "Motors", "Europe", "North", "Global",
                "EU", "UK", "US", "DK", "Oil", "Gas", "Art", "Tech", "Home", "Food"]
_FIRST = ["Anna", "Ben", "Chloé", "David", "Eva", "Farid", "Greta", "Hugo", "Inès", "Jonas", "Karin", "Luca", "Maja",
          "Nils", "Olivia", "Paul", "Rosa", "Sven", "Tanja", "Vera", "Walter", "Yara"]
_PERSON_MID = ["Maria", "Jean", "Louise", "Anne", "Peter", "Karl", "Sofia", "Erik", "Marie", "Jan", "Ole", "Ida", "J.",
               "M.", "K.", "L."]
_SURNAME_MID = ["Andersen", "Dubois", "Meyer", "Rossi", "Hansen", "Keller", "Novak", "Petit", "Weber", "Olsen", "van",
                "de", "von", "Costa", "Berg"]
_STREET_END = ["Street", "Road", "Avenue", "Lane", "Way", "Boulevard", "Drive", "Place", "Square", "Court"]
_STREET_MID = ["North", "South", "Old", "New", "Harbour", "Market", "Church", "Mill", "Park", "Station", "Bridge", "Upper",
               "Lower", "Industrial", "Business", "Garden", "Lake", "West", "East", "Oak", "Elm", "Fir", "St", "Ash"]
_DOMAINS = ["contoso.com", "fabrikam.com", "adatum.com", "litware.com", "cronus.dk", "northwind.net", "tailspin.de",
            "woodgrove.ch", "relecloud.eu", "lamna.se", "coho.fr", "proseware.co.uk", "alpineski.at", "fourthcoffee.it"]
_LOCAL = ["sales", "info", "office", "team", "orders", "contact", "accounts", "support", "hr", "it", "dk", "de", "fr", "uk",
          "crm", "erp", "ops", "web", "pay"]
_COUNTRY_CODES = ["+1", "+31", "+33", "+41", "+44", "+45", "+46", "+47", "+49", "+353"]
_POST_PREFIX = ["DK-", "DE-", "FR-", "GB-", "NL-", "SE-", "CH-", "AT-", "BE-", "NO-"]
_CURRENCY_WORDS = ["Dollar", "Krone", "Franc", "Euro", "Peso", "Pound", "Rand", "Real", "Dinar", "Lira", "Mark",
                   "Crown", "Shilling", "Rupee", "Yen", "Won", "Zloty", "Forint", "Leu", "Lev"]
_CURRENCY_MID = ["New", "Old", "Central", "Nordic", "Gold", "Silver", "Island", "Federal", "Royal", "of", "CFA", "Bank"]
_UNIT_WORDS = ["Piece", "Box", "Pallet", "Hour", "Kilogram", "Litre", "Pack", "Set", "Metre", "Carton", "Roll", "Day",
               "of", "per", "unit", "large", "small", "standard", "case", "bag", "can"]
_ITEM_WORDS = ["Office", "Chair", "Desk", "Lamp", "Cabinet", "Table", "Shelf", "Sofa", "Stool", "Bench", "Locker",
               "Oak", "Steel", "Black", "White", "Grey", "Glass", "Ergonomic", "Conference", "Storage", "Swivel", "XL",
               "Set", "of", "2", "4", "with", "Drawers", "Wheels", "Meeting", "Lounge", "Outdoor", "10"]
_JOB_WORDS = ["Sales", "Purchasing", "Manager", "Director", "Assistant", "Coordinator", "Accountant", "Controller",
              "Buyer", "Engineer", "Consultant", "Head", "of", "Marketing", "Service", "Senior", "Junior", "Regional",
              "IT", "HR", "Finance", "Lead", "Officer", "Specialist", "Planner", "Logistics", "and", "Team", "Key"]
_WORDS = ["Standard", "Service", "Contract", "Annual", "Review", "Priority", "Customer", "Regional", "Delivery", "Order",
          "Project", "General", "Special", "Agreement", "Terms", "Update", "Office", "North", "Local", "Main", "Extra",
          "Monthly", "Support", "Plan", "and", "for", "the", "of", "new", "EU", "to", "on", "in", "Q1", "Q2"]
_POST_TAIL = ["CEDEX", "Box", "PO", "AB", "3A", "12", "Nord", "Centre", "BP", "Sud"]
_NUMBER_TAIL = ["S", "W", "A", "B", "XL", "RED", "BLUE", "01", "02", "T", "EU"]
_CODE_TAIL = ["EU", "DK", "DE", "FR", "US", "GB", "01", "02", "10", "20", "A", "B", "X", "NEW", "OLD", "STD", "EXP"]
_AMOUNT_WORDS = ("price", "cost", "amount", "limit", "balance", "discount", "(lcy)")
_PEOPLE_TABLES = {"Salesperson/Purchaser", "Employee", "Resource", "User"}


def _kind(field: str, table: str | None) -> str:
    """What a field holds, from its BC name (and the table, for Name, Code and Description)."""
    f = " ".join(field.casefold().replace("_", " ").split())
    if any(w in f for w in _AMOUNT_WORDS):
        return "amount"
    if f in ("e-mail", "email", "e-mail 2", "email address") or "e-mail" in f:
        return "email"
    if "phone" in f or f in ("fax no.", "telex no."):
        return "phone"
    if f in ("post code", "zip code", "postal code"):
        return "post code"
    if f in ("first name", "middle name"):
        return "first name"
    if f in ("surname", "last name"):
        return "surname"
    if f in ("name", "name 2", "search name"):
        return "person" if table in _PEOPLE_TABLES else "company"
    if f in ("contact", "full name"):
        return "person"
    if f.startswith("address"):
        return "address"
    if f in ("city", "county"):
        return "city"
    if f == "job title":
        return "job title"
    if f in ("no.", "no. 2", "vendor item no.") or f.endswith(" no."):
        return "number"
    if f in ("code", "symbol") or f.endswith(" code"):
        return "code"
    if f.startswith("description"):
        return {"Currency": "currency name", "Unit of Measure": "unit", "Item": "item"}.get(table or "", "words")
    return "words"


def _word(z: int) -> str:
    """A made-up word (lower case, consonant-vowel syllables) that only code ``z`` gives."""
    n = len(_CONSONANTS) * len(_VOWELS)
    digits = []
    while z or len(digits) < 3:
        z, d = divmod(z, n)
        digits.append(d)
    return "".join(_CONSONANTS[d // len(_VOWELS)] + _VOWELS[d % len(_VOWELS)] for d in reversed(digits))


def _letters(z: int, length: int) -> str:
    """``z`` modulo 26**length in upper-case letters (a code's text, or a value too short for a word)."""
    out = []
    for _ in range(length):
        z, d = divmod(z, 26)
        out.append(chr(65 + d))
    return "".join(reversed(out))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


@lru_cache(maxsize=256)
def _fillable(room: int, lengths: tuple[int, ...]) -> bool:
    """Whether words of these lengths (each after a one-character separator) make exactly ``room`` characters."""
    return room == 0 or any(n + 1 <= room and _fillable(room - n - 1, lengths) for n in lengths)


def _fill(room: int, words: Sequence[str], rng: random.Random, sep: str = " ") -> str:
    """Exactly ``room`` characters of words, each after ``sep`` (a word is cut only when no choice fits)."""
    by_length: dict[int, list[str]] = {}
    for w in words:
        by_length.setdefault(len(w), []).append(w)
    lengths = tuple(sorted(by_length))
    out, used = "", set()
    while room > 0:
        fits = [w for n in lengths if n + 1 <= room and _fillable(room - n - 1, lengths) for w in by_length[n]]
        if not fits:  # cannot come out exact (room 1 or 2): a final letter, or a cut word
            if room < 3:  # extends the last word (or what comes before)
                return out + rng.choice(_FINALS) * room
            return out + sep + rng.choice([w for w in words if len(w) >= room - 1] or [w * room for w in words])[: room - 1]
        # real words first, unused ones first; the short ones only to come out exact
        fresh = [w for w in fits if w not in used] or fits
        word = rng.choice([w for w in fresh if len(w) >= 4] or fresh)
        used.add(word)
        out, room = out + sep + word, room - len(word) - 1
    return out


def _words_after(key: str, room: int, middle: Sequence[str], ends: Sequence[str], rng: random.Random) -> str:
    """``key`` then exactly ``room`` characters: a final consonant or two (odd or short room), words, an end word."""
    if room <= 2:
        return key + (rng.choice(_FINALS) + "s")[:room]
    lengths = tuple(sorted({len(w) for w in middle}))
    if room % 2 == 1 and room >= 5 and rng.random() < 0.5:
        key, room = key + rng.choice(_FINALS), room - 1
    fitting = [e for e in ends if len(e) + 1 == room or (len(e) + 1 < room and _fillable(room - len(e) - 1, lengths))]
    tail = f" {rng.choice(fitting)}" if fitting else ""
    return key + _fill(room - len(tail), middle, rng) + tail


def _person(first: str, key: str, room: int, rng: random.Random) -> str:
    """A person's name ending with ``key`` (the surname that tells codes apart), ``room`` characters before it."""
    prefix = next(p for p in (first + " ", first[0] + ". ", first[0] + " ", "") if len(p) <= room)
    room -= len(prefix)
    if room % 2 == 1:
        key, room = key + rng.choice(_FINALS), room - 1
    if not prefix:
        return key
    return prefix[:-1] + _fill(room, _PERSON_MID, rng) + " " + key


def _groups(rng: random.Random, n: int) -> str:
    """``n`` characters of digits in groups of three (``"123 456 7"``)."""
    text = "".join(rng.choice("0123456789") if i % 4 < 3 else " " for i in range(n))
    return text[:-1] + rng.choice("0123456789") if text.endswith(" ") else text


def _phone(z: int, length: int, rng: random.Random) -> str:
    d = str(z).zfill(7)
    core = f"{d[:-4]} {d[-4:]}"
    if length <= len(d):
        return d[-length:]
    room = length - len(core)
    if room <= 1:
        return ("0" + core)[-length:]
    if room <= 5:
        return f"{_groups(rng, room - 1)} {core}"
    cc = rng.choice([c for c in _COUNTRY_CODES if len(c) <= room - 3])
    area, ext = room - len(cc) - 2, ""
    if area >= 12:  # a long number ends with an extension
        ext, area = " ext. " + _digits(rng, area - 3 - 6), 3
    return f"{cc} {_groups(rng, area)} {core}{ext}"


def _email(key: str, room: int, rng: random.Random) -> str:
    if room <= 2:
        return key + (rng.choice(_FINALS) + "s")[:room]
    lengths = tuple(sorted({len(w) for w in _LOCAL}))
    domains = [d for d in _DOMAINS if len(d) + 1 <= room and _fillable(room - len(d) - 1, lengths)]
    if not domains:  # no room for a whole domain: a short one
        return key + "@" + _word(rng.randrange(1_000_000))[: room - 1]
    domain = rng.choice(domains)
    return key + _fill(room - len(domain) - 1, _LOCAL, rng, sep=".") + "@" + domain


def _numbered(z: int, n: int, prefixes: Sequence[str], tails: Sequence[str], rng: random.Random) -> str:
    """The code's digits (its last ``n`` when that is all there is room for), a prefix and tail words around."""
    digits = str(z)
    if n <= len(digits):
        return digits[-n:]
    if n - len(digits) <= 2:
        return digits.zfill(n)
    prefix = rng.choice([p for p in prefixes if len(p) + len(digits) + 3 <= n] or [""])
    width = max(len(digits), 4)
    if n - len(prefix) - width < 2:  # no room for a tail word: leading zeros
        return prefix + digits.zfill(n - len(prefix))
    core = prefix + digits.zfill(width)
    return core + _fill(n - len(core), tails, rng, sep="-" if "-" not in prefix else " ")


def field_value_text(field: str, code: int | None, length: int | None, *, table: str | None = None) -> str:
    """Render a twin field value (an integer code and a text length) as a realistic text.

    The twin keeps each field value as an integer code and, for text fields, the length the text has.
    This gives that value a text a user could have typed, of exactly that length (a value longer than
    the other app's field stays that long): a company name for Name (``"Kabeto Logistics Ltd."``), a
    person's name for a salesperson's Name, an e-mail address for E-Mail, a phone number for Phone No., a
    street for Address, a city, a post code, an upper-case code (Code, Currency Code, Symbol), an item
    number for No., an amount for Unit Price, Credit Limit (LCY) and the like (no length: the code in
    cents), readable words for any other field.

    The text depends on ``(field, code, length, table)`` only, so equal codes and lengths read the same
    in both apps, and different codes read differently: the name part is a made-up word only that code
    gives (phone numbers, post codes and numbers end with the code's digits, amounts are the code in
    cents). Values too short for that word (under six characters for the twin's codes, e.g. a three-letter
    Currency Code) are the code modulo 26**length in letters (or its last digits), which differ for
    codes closer than that.

    Parameters
    ----------
    field
        The BC field's name (both apps' values are rendered under it, so they compare).
    code
        The stored value; ``None`` when the app does not hold the record (gives ``""``).
    length
        The text's length; ``0`` or ``None`` for a field without one (amounts, codes of free length).
    table
        The BC table's caption: a Salesperson/Purchaser's Name is a person's, a Currency's Code is
        an ISO-like code and its Description a currency name, an Item's Description a product.

    Returns
    -------
    str
        The text, exactly ``length`` characters long when a length is given (amounts keep their format).

    Examples
    --------
    >>> field_value_text("Name", 1234, 20) == field_value_text("Name", 1234, 20)
    True
    >>> len(field_value_text("Phone No.", 56789, 14)), field_value_text("Unit Price", 123456, 0)
    (14, '1,234.56')
    """
    if code is None:
        return ""
    kind = _kind(field, table)
    if kind == "amount":
        return f"{int(code) / 100:,.2f}"
    z = int(code) & 0xFFFFFFFF if int(code) < 0 else int(code)  # int32 codes: negatives apart from the rest
    n = int(length or 0)
    rng = random.Random(zlib.crc32(f"{kind}|{z}|{n}".encode()))
    word = _word(z)
    if kind == "phone":
        return _phone(z, n or 7, rng)
    if kind == "post code":
        return _numbered(z, n or max(len(str(z)), 5), _POST_PREFIX, _POST_TAIL, rng)
    if kind == "number":
        return _numbered(z, n or max(len(str(z)), 5), ["C", "V", "IT", "P-", "ART"], _NUMBER_TAIL, rng)
    if kind == "code":
        if n and n < len(word):
            return _letters(z, n)
        rest = n - len(word) if n else 0
        if rest <= 3:
            return word.upper() + _digits(rng, rest)
        return word.upper() + _fill(rest, _CODE_TAIL, rng, sep="-")
    if n and n < len(word):  # no room for the word: the code in letters (upper case: never a word's text)
        return _letters(z, n)
    key = word.capitalize()
    if kind == "email":
        return _email(word, n - len(word), rng) if n else f"{word}@{rng.choice(_DOMAINS)}"
    if kind == "address":
        number = f"{z % 97 + 1} "
        if n and n < len(number) + len(word):  # no room for a house number
            return _words_after(key, n - len(word), _STREET_MID, _STREET_END, rng)
        room = n - len(number) - len(word) if n else 1 + len(_STREET_END[z % len(_STREET_END)])
        return number + _words_after(key, room, _STREET_MID, _STREET_END, rng)
    if kind == "person":
        first = _FIRST[z % len(_FIRST)]
        return _person(first, key, n - len(word), rng) if n else f"{first} {key}"
    middle, ends = {"company": (_COMPANY_MID, _COMPANY_END), "first name": (_PERSON_MID, []),
                    "surname": (_SURNAME_MID, []), "city": (_CITY_MID, _CITY),
                    "job title": (_JOB_WORDS, []), "currency name": (_CURRENCY_MID, _CURRENCY_WORDS),
                    "unit": (_UNIT_WORDS, _UNIT_WORDS[:12]), "item": (_ITEM_WORDS, _ITEM_WORDS[:11])
                    }.get(kind, (_WORDS, _WORDS))
    if not n:  # no length: the word and one more
        return f"{key} {rng.choice(ends or middle)}"
    return _words_after(key, n - len(word), middle, ends, rng)
