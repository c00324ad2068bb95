"""The demo scenario: a mid-size company synchronized with Dataverse for N days, with planted incidents.

:func:`default_mappings` gives BC's default mappings (names, directions, field mappings).
:class:`Simulation` runs the job queue clock (a recurring entry per mapping every 30 minutes,
on hold after an idle run until a BC change or the inactivity timeout wakes it), applies steady
edits in both apps, and fires the incidents, recording each as ground truth.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import bc
from ..errors import TwinError
from . import messages as m
from . import operations as ops
from .engine import World, run_mapping
from .model import (
    BC,
    DV,
    FAULT_NO_EXCHANGE_RATE,
    FAULT_NO_RELATION,
    FAULT_UOM_SETUP,
    FROM,
    TO,
    FieldMapping,
    MappingConfig,
    Parent,
)

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
INTERVAL = 30 * MINUTE
DEFAULT_START = dt.datetime(2026, 8, 24)  # a Monday

_MUST_BE_COUPLED = m.fill(m.MUST_BE_COUPLED_ROW, "{caption}", "{key}", "{service}")


def default_mappings() -> list[MappingConfig]:
    """BC's default Dataverse mappings with their default directions and typical settings."""
    B, T, F = bc.BIDIRECTIONAL, bc.TO_INTEGRATION, bc.FROM_INTEGRATION
    salesperson = Parent("salesperson", "SALESPEOPLE", "Salesperson Code", to_message=_MUST_BE_COUPLED, family="subscriber")
    currency = Parent("currency", "CURRENCY", "Currency Code", to_message=m.CURRENCY_NOT_FOUND.replace("%1", "{key}"))
    return [
        MappingConfig("SALESPEOPLE", 13, 5340, F, only_coupled=True, inactivity_timeout_min=1440, key_prefix="",
                      fields=(FieldMapping("Name", "fullname", F, 50, 200, "Full Name"),
                              FieldMapping("E-Mail", "internalemailaddress", F, 80, 100, "Primary Email"),
                              FieldMapping("Phone No.", "mobilephone", F, 30, 64, "Mobile Phone")),
                      integration_table_filter="VERSION(1) SORTING(Field1) WHERE(Field31=1(0),Field96=1(0))"),
        MappingConfig("CURRENCY", 4, 5345, T, only_coupled=False, inactivity_timeout_min=1440,
                      fields=(FieldMapping("Code", "isocurrencycode", T, 10, 5),
                              FieldMapping("Symbol", "currencysymbol", T, 10, 10),
                              FieldMapping("Description", "currencyname", T, 30, 100))),
        MappingConfig("UNIT OF MEASURE", 204, 5362, T, only_coupled=False, inactivity_timeout_min=1440,
                      fields=(FieldMapping("Code", "name", T, 10, 200),
                              FieldMapping("Description", "description", T, 50, 200))),
        MappingConfig("ITEM-PRODUCT", 27, 5348, T, only_coupled=False, no_series_step=1, dependency_filter="UNIT OF MEASURE",
                      fields=(FieldMapping("No.", "productnumber", T, 20, 100),
                              FieldMapping("Description", "name", T, 100, 100),
                              FieldMapping("Unit Price", "price", T),
                              FieldMapping("Unit Cost", "standardcost", T)),
                      parents=(Parent("uom", "UNIT OF MEASURE", "Base Unit of Measure",
                                      to_message=m.fill(m.UNIT_GROUP_NOT_FOUND, "{key}", "{service}")),),
                      table_filter="VERSION(1) SORTING(Field1) WHERE(Field54=1(0))"),
        MappingConfig("CUSTOMER", 18, 5341, B, only_coupled=False, no_series_step=10, deletion_resolution="None",
                      update_resolution="None", dependency_filter="SALESPEOPLE|CURRENCY",
                      fields=(FieldMapping("Name", "name", B, 100, 160, "Account Name"),
                              FieldMapping("Phone No.", "telephone1", B, 30, 50, "Main Phone"),
                              FieldMapping("Address", "address1_line1", B, 100, 250, "Address 1: Street 1"),
                              FieldMapping("City", "address1_city", B, 30, 80, "Address 1: City"),
                              FieldMapping("E-Mail", "emailaddress1", B, 80, 100, "Email"),
                              FieldMapping("Credit Limit (LCY)", "creditlimit", T, dv_caption="Credit Limit")),
                      parents=(salesperson, currency),
                      table_filter="VERSION(1) SORTING(Field1) WHERE(Field39=1(0))",
                      integration_table_filter="VERSION(1) SORTING(Field1) WHERE(Field4=1(3),Field54=1(0))"),
        MappingConfig("VENDOR", 23, 5341, B, only_coupled=True, no_series_step=10, deletion_resolution="Remove Coupling",
                      update_resolution="Send Update to Integration", dependency_filter="SALESPEOPLE|CURRENCY",
                      fields=(FieldMapping("Name", "name", B, 100, 160, "Account Name"),
                              FieldMapping("Phone No.", "telephone1", B, 30, 50, "Main Phone"),
                              FieldMapping("Address", "address1_line1", B, 100, 250, "Address 1: Street 1"),
                              FieldMapping("E-Mail", "emailaddress1", B, 80, 100, "Email")),
                      parents=(Parent("salesperson", "SALESPEOPLE", "Purchaser Code", to_message=_MUST_BE_COUPLED,
                                      family="subscriber"), currency),
                      table_filter="VERSION(1) SORTING(Field1) WHERE(Field39=1(0))",
                      integration_table_filter="VERSION(1) SORTING(Field1) WHERE(Field4=1(11),Field54=1(0))"),
        MappingConfig("CONTACT", 5050, 5342, B, only_coupled=False, no_series_step=10, deletion_resolution="Restore Records",
                      update_resolution="Get Update from Integration", dependency_filter="CUSTOMER|VENDOR",
                      fields=(FieldMapping("First Name", "firstname", B, 30, 50, "First Name"),
                              FieldMapping("Surname", "lastname", B, 30, 50, "Last Name"),
                              FieldMapping("E-Mail", "emailaddress1", B, 80, 100, "Email"),
                              FieldMapping("Phone No.", "telephone1", B, 30, 50, "Business Phone"),
                              FieldMapping("Job Title", "jobtitle", B, 30, 100, "Job Title")),
                      parents=(Parent("company", "CUSTOMER", "Company No.", to_message=_MUST_BE_COUPLED,
                                      from_message=m.CONTACT_NO_COMPANY, family="subscriber"),),
                      table_filter="VERSION(1) SORTING(Field1) WHERE(Field5050=1(1))",
                      integration_table_filter="VERSION(1) SORTING(Field1) WHERE(Field54=1(0))"),
    ]


# ------------------------------------------------------------------------------------------------
# Names
_SYL = ["Ad", "at", "um", "Fab", "ri", "kam", "Con", "to", "so", "Lit", "ware", "Tail", "spin", "Al", "pine",
        "Nor", "th", "wind", "Woodg", "rove", "Mar", "ga", "rie", "Pro", "se", "ware", "Blue", "Yon", "der"]
_SUFFIX = ["Ltd.", "Corporation", "GmbH", "S.A.", "Inc.", "AB", "B.V.", "Trading", "Group", "& Co."]
_FIRST = ["Anna", "Ben", "Chloé", "David", "Eva", "Farid", "Greta", "Hugo", "Inès", "Jonas", "Karin", "Luca",
          "Maja", "Nils", "Olivia", "Paul", "Quentin", "Rosa", "Sven", "Tanja", "Ugo", "Vera", "Walter", "Yara"]
_LAST = ["Andersen", "Bauer", "Costa", "Dubois", "Eriksson", "Fischer", "García", "Hansen", "Ivanova", "Jensen",
         "Keller", "Lambert", "Meyer", "Novak", "Olsen", "Petit", "Rossi", "Schmidt", "Thomas", "Weber"]


def _company_names(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.integers(0, len(_SYL), size=(n, 3))
    s = rng.integers(0, len(_SUFFIX), n)
    return np.array([f"{_SYL[x].capitalize()}{_SYL[y].lower()}{_SYL[z].lower()} {_SUFFIX[w]}"
                     for (x, y, z), w in zip(a, s)], dtype=object)


def _person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    f = rng.integers(0, len(_FIRST), n)
    s = rng.integers(0, len(_LAST), n)
    return np.array([f"{_FIRST[i]} {_LAST[j]}" for i, j in zip(f, s)], dtype=object)


# ------------------------------------------------------------------------------------------------
@dataclass
class Incident:
    """Ground truth of one planted incident."""

    id: int
    kind: str
    mapping: str
    description: str
    start: int | None = None  # for gaps: when the sync stopped
    end: int | None = None  # for gaps: when it resumed
    from_errors: bool = True  # window and keys are read off the errors tagged with this incident
    rules: tuple[str, ...] = ()  # engine rules (engine.RULES) whose errors make up the incident


@dataclass
class JobQueueEntry:
    """The recurring job queue entry of one mapping (codeunit 5339, 30-minute interval)."""

    mapping: str
    next_run: int
    status: str = "Ready"  # Ready | On Hold | On Hold with Inactivity Timeout
    timeout: int = 720 * MINUTE


@dataclass
class ScenarioConfig:
    """Knobs of the demo scenario."""

    days: int = 90
    scale: float = 1.0
    seed: int = 7
    start: dt.datetime = DEFAULT_START
    environment: str = "PRODUCTION"
    company: str = "CRONUS International Ltd."
    weekly_retry_all: bool = True

    def __post_init__(self) -> None:
        if self.days < 14:
            raise TwinError(f"days must be at least 14 to hold every planted incident; got {self.days}.")
        if self.scale <= 0:
            raise TwinError(f"scale must be positive; got {self.scale}.")


# Records at scale 1: (mapping, initial coupled records, new BC records per day, new Dataverse rows per day,
# BC edits per record-day, Dataverse edits per record-day, Dataverse deletions per day).
_SIZES = {
    "SALESPEOPLE": (40, 0, 0.0, 0.0, 0.004, 0.0),
    "CURRENCY": (12, 0, 0.0, 0.01, 0.0, 0.0),
    "UNIT OF MEASURE": (14, 0, 0.0, 0.0, 0.0, 0.0),
    "ITEM-PRODUCT": (2600, 4, 0.0, 0.05, 0.0, 0.0),
    "CUSTOMER": (8200, 14, 2, 0.03, 0.025, 3.5),
    "VENDOR": (1600, 2, 0.5, 0.02, 0.006, 0.1),
    "CONTACT": (9400, 22, 6, 0.02, 0.03, 4.0),
}
_NIGHT_BATCH = {"CUSTOMER": 3.0, "ITEM-PRODUCT": 4.0, "CONTACT": 3.0}
_CURRENCIES = ["EUR", "USD", "GBP", "DKK", "SEK", "CHF", "CAD", "AUD", "JPY", "PLN", "CZK", "HUF"]
_UOMS = ["PCS", "BOX", "KG", "L", "M", "HOUR", "DAY", "SET", "PACK", "CAN", "BAG", "ROLL", "PAIR", "TON"]


class Simulation:
    """Run the demo scenario on a fresh :class:`World`.

    Parameters
    ----------
    config
        Days, scale, seed and identity of the simulated company.
    progress
        Show a ``tqdm`` bar over simulated days.
    """

    def __init__(self, config: ScenarioConfig | None = None, *, progress: bool = False) -> None:
        self.config = config or ScenarioConfig()
        c = self.config
        self.world = World(default_mappings(), seed=c.seed, environment=c.environment, company=c.company)
        self.rng = self.world.rng
        self.t0 = int(c.start.replace(tzinfo=dt.UTC).timestamp() * 1000)
        self.t_end = self.t0 + c.days * DAY
        self.progress = progress
        self.incidents: list[Incident] = []
        self._events: list[tuple[int, int, Callable[[int], None]]] = []
        self._pending: list[tuple] = []  # planned user edits (see _later), applied when the clock gets there
        self._active_days: set[int] = set()  # days whose activity advance() has planned
        self._seq = 0
        self.entries = {name: JobQueueEntry(name, self.t0 + 5 * MINUTE + i * 2 * MINUTE,
                                            timeout=self.world.table(name).config.inactivity_timeout_min * MINUTE)
                        for i, name in enumerate(self.world.tables)}
        self._populate()
        self._plant()
        for day in range(c.days):
            # a salesperson opens a Dataverse account that is not in BC yet: created in the foreground
            self.at(self.t0 + day * DAY + 11 * HOUR + int(self.rng.integers(0, 4 * HOUR)), self._foreground_create)
        self._held_since: dict[str, int] = {}
        self.clock = self.t0  # simulated now, ms; run() and advance() move it
        if c.weekly_retry_all:
            # an admin presses Retry All on Monday and Thursday mornings
            for day in [d for d in range(c.days) if d % 7 in (0, 3) and d >= 7]:
                self.at(self.t0 + day * DAY + 8 * HOUR + 40 * MINUTE, lambda t: ops.retry_all(self.world))

    # -- set-up --------------------------------------------------------------------------
    def _n(self, base: float) -> int:
        return max(1, int(round(base * self.config.scale)))

    def _keys(self, mapping: str, start: int, n: int) -> np.ndarray:
        if start:  # continue the No. Series after every number used (also those of re-created records)
            return self.world.table(mapping).next_keys(n)
        r = np.arange(start, start + n)
        fmt = {"CUSTOMER": "C{:05d}", "VENDOR": "V{:05d}", "CONTACT": "CT{:06d}", "ITEM-PRODUCT": "{:d}"}[mapping]
        base = 1000 if mapping == "ITEM-PRODUCT" else 10
        return np.array([fmt.format(base + i * (1 if mapping == "ITEM-PRODUCT" else 10)) for i in r], dtype=object)

    def _new_values(self, mapping: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.world.table(mapping).config
        vals = self.rng.integers(1, 1_000_000, size=(n, len(cfg.fields)), dtype=np.int32)
        lens = np.zeros((n, len(cfg.fields)), np.int16)
        for c, f in enumerate(cfg.fields):
            if f.bc_length:
                lens[:, c] = self.rng.integers(3, max(4, min(f.bc_length, f.dv_length or f.bc_length) * 2 // 3), n)
        return vals, lens

    def _add(self, mapping: str, keys: np.ndarray, names: np.ndarray, *, bc_exists: bool, dv_exists: bool,
             coupled: bool, at: int, parents: dict[str, np.ndarray] | None = None) -> np.ndarray:
        vals, lens = self._new_values(mapping, len(keys))
        return self.world.table(mapping).add(
            keys, names, bc_ids=self.world.new_ids(len(keys)), dv_ids=self.world.new_ids(len(keys)),
            bc_exists=bc_exists, dv_exists=dv_exists, coupled=coupled, mod=at, vals=vals, lens=lens, parents=parents)

    def _parents_for(self, mapping: str, n: int) -> dict[str, np.ndarray]:
        """Pick parent records among the coupled ones (new records reference healthy parents)."""
        out = {}
        for p in self.world.table(mapping).config.parents:
            pt = self.world.table(p.mapping)
            healthy = np.flatnonzero(pt.coupled & pt.exists[BC] & pt.exists[DV] & (pt.incident[BC] == 0))
            choice = healthy[self.rng.integers(0, len(healthy), n)]
            if p.role == "currency":  # most customers trade in the local currency (no Currency Code)
                choice = np.where(self.rng.random(n) < 0.8, -1, choice)
            out[p.role] = choice
        return out

    def _populate(self) -> None:
        w, t0 = self.world, self.t0 - 30 * DAY
        sp = self._n(_SIZES["SALESPEOPLE"][0])
        codes = np.array([f"{_FIRST[i % len(_FIRST)][0]}{_LAST[i % len(_LAST)][0]}{i // 20 or ''}" for i in range(sp)], dtype=object)
        self._add("SALESPEOPLE", codes, _person_names(self.rng, sp), bc_exists=True, dv_exists=True, coupled=True, at=t0)
        self._add("CURRENCY", np.array(_CURRENCIES, object), np.array(_CURRENCIES, object), bc_exists=True,
                  dv_exists=True, coupled=True, at=t0)
        self._add("UNIT OF MEASURE", np.array(_UOMS, object), np.array(_UOMS, object), bc_exists=True,
                  dv_exists=True, coupled=True, at=t0)
        for mapping in ("ITEM-PRODUCT", "CUSTOMER", "VENDOR", "CONTACT"):
            n = self._n(_SIZES[mapping][0])
            names = _person_names(self.rng, n) if mapping == "CONTACT" else _company_names(self.rng, n)
            self._add(mapping, self._keys(mapping, 0, n), names, bc_exists=True, dv_exists=True, coupled=True,
                      at=t0, parents=self._parents_for(mapping, n))
        for t in w.tables.values():
            t.mapping_wm = [t0, t0]

    # -- events --------------------------------------------------------------------------
    def at(self, when: int, fn: Callable[[int], None]) -> None:
        """Schedule ``fn(time)`` at ``when`` (ms)."""
        if when < self.t_end:
            heapq.heappush(self._events, (when, self._seq, fn))
            self._seq += 1

    def _incident(self, kind: str, mapping: str, description: str, *, from_errors: bool = True,
                  rules: tuple[str, ...] = ()) -> Incident:
        inc = Incident(len(self.incidents) + 1, kind, mapping, description, from_errors=from_errors, rules=rules)
        self.incidents.append(inc)
        return inc

    def _day(self, fraction: float, hour: float) -> int:
        return self.t0 + int(self.config.days * fraction) * DAY + int(hour * HOUR)

    def _plant(self) -> None:
        w = self.world
        s = self._n

        # 1. A new salesperson, not coupled to a Dataverse user, is assigned to customers.
        sp_inc = self._incident("salesperson-not-coupled", "CUSTOMER",
                                "New salesperson not coupled to a Dataverse user blocks customers",
                                rules=("parent",))
        sp_row: list[int] = []

        def new_salesperson(t: int) -> None:
            rows = self._add("SALESPEOPLE", np.array(["NEWSP"], object), np.array(["Nora Sandberg"], object),
                             bc_exists=True, dv_exists=False, coupled=False, at=t)
            w.table("SALESPEOPLE").incident[BC][rows] = sp_inc.id
            sp_row.append(int(rows[0]))
            self._assign_parent(t, "CUSTOMER", "salesperson", rows[0], s(90), spread=5 * DAY)

        def fix_salesperson(t: int) -> None:
            spt = w.table("SALESPEOPLE")
            row = np.array(sp_row)
            spt.exists[DV][row] = True
            spt.couple(row, t)
            spt.incident[BC][row] = 0
            blocked = self._keys_failing("CUSTOMER", sp_inc.id)
            if len(blocked):
                ops.synchronize_now(w, "CUSTOMER", blocked, TO, t + 20 * MINUTE)

        self.at(self._day(0.11, 9), new_salesperson)
        self.at(self._day(0.26, 10.5), fix_salesperson)

        # 2. Prospect contacts imported in BC whose company has no business relation to a customer.
        ct_inc = self._incident("contact-company-not-coupled", "CONTACT",
                                "Contacts whose company has no customer relation and is not coupled",
                                rules=("fault",))

        def import_prospects(t: int) -> None:
            ct = w.table("CONTACT")
            n = s(400)
            rows = self._add("CONTACT", self._keys("CONTACT", len(ct), n), _person_names(self.rng, n),
                             bc_exists=False, dv_exists=False, coupled=False, at=t,
                             parents=self._parents_for("CONTACT", n))
            self._later(t + np.arange(n) * 900, "CONTACT", BC, rows, kind=2)  # the import creates them one by one
            ct.fault[BC][rows] = FAULT_NO_RELATION
            ct.incident[BC][rows] = ct_inc.id
            self.at(t + 2 * HOUR, lambda t2: self._touch("CONTACT", rows[: n // 2], BC, t2, HOUR * 6))

        def convert_prospects(t: int) -> None:
            ct = w.table("CONTACT")
            rows = np.flatnonzero(ct.incident[BC] == ct_inc.id)
            ct.fault[BC][rows] = 0
            ct.incident[BC][rows] = 0
            ops.synchronize_now(w, "CONTACT", list(ct.key[rows]), TO, t)

        self.at(self._day(0.33, 11), import_prospects)
        self.at(self._day(0.50, 14), convert_prospects)

        # 3. Accounts deleted in Dataverse; CUSTOMER has no deletion-conflict rule.
        del_inc = self._incident("deleted-in-dataverse", "CUSTOMER", "Accounts deleted in Dataverse, no deletion rule",
                                 rules=("deleted",))

        def delete_accounts(t: int) -> None:
            ct = w.table("CUSTOMER")
            cand = np.flatnonzero(ct.coupled & ct.exists[DV] & ct.exists[BC] & ~ct.skipped)
            rows = self.rng.choice(cand, s(250), replace=False)
            ct.exists[DV][rows] = False
            ct.incident[DV][rows] = del_inc.id
            # sales staff notice and edit those customers in BC during the afternoon and next morning
            self.at(t + 15 * MINUTE, lambda t2: self._touch("CUSTOMER", rows, BC, t2, 20 * HOUR))

        self.at(self._day(0.44, 14), delete_accounts)

        # 4. Concurrent edits of the same customers in both apps (update conflicts, no resolution).
        cf_inc = self._incident("update-conflicts", "CUSTOMER", "Concurrent edits in BC and Dataverse", rules=("conflict",))

        def concurrent_edits(t: int) -> None:
            ct = w.table("CUSTOMER")
            cand = np.flatnonzero(ct.coupled & ct.exists[DV] & ct.exists[BC] & ~ct.skipped & (ct.incident[DV] == 0))
            rows = self.rng.choice(cand, s(1000), replace=False)
            when = t + self.rng.integers(0, 9 * HOUR, len(rows))
            for side in (BC, DV):
                # the same field (Phone No.), edited in BC and seven minutes later in Dataverse
                self._later(when + (0 if side == BC else 7 * MINUTE), "CUSTOMER", side, rows, kind=0, field=1,
                            value=self.rng.integers(1, 1_000_000, len(rows)))
                ct.incident[side][rows] = cf_inc.id

        self.at(self._day(0.55, 8), concurrent_edits)
        self.at(self._day(0.55, 8) + DAY, concurrent_edits)

        # 5. The integration user loses a privilege; BC disables the connection; sync stops.
        perm_inc = self._incident("connection-disabled", "CUSTOMER",
                                  "Integration user lost prvCreateAccount; connection disabled", from_errors=False)

        def lose_privilege(t: int) -> None:
            w.missing_create_privilege["account"] = perm_inc.id
            self._add_new("CUSTOMER", t + 5 * MINUTE, s(3))

        def re_enable(t: int) -> None:
            w.missing_create_privilege.pop("account", None)
            w.connection_enabled = True
            perm_inc.end = t
            for e in self.entries.values():
                if e.status != "On Hold":
                    e.status, e.next_run = "Ready", min(e.next_run, t + 2 * MINUTE)

        self.at(self._day(0.66, 10), lose_privilege)
        self.at(self._day(0.66, 10) + 30 * HOUR, re_enable)
        self._perm_incident = perm_inc

        # 6. Dataverse throttling and time-outs for a few hours; heals by itself.
        thr_inc = self._incident("throttling", "CUSTOMER", "Dataverse service protection limits and time-outs",
                                 rules=("throttling",))

        def throttle(t: int) -> None:
            w.throttling = (0.35, thr_inc.id)
            for mapping in ("CUSTOMER", "CONTACT", "ITEM-PRODUCT"):
                self._touch(mapping, None, BC, t, 3 * HOUR, count=s(300))

        self.at(self._day(0.73, 13), throttle)
        self.at(self._day(0.73, 13) + 4 * HOUR, lambda t: setattr(w, "throttling", None))

        # 7. A new currency without an exchange rate, missing in Dataverse until fixed.
        cur_inc = self._incident("currency-missing", "CUSTOMER", "Currency NOK missing in Dataverse", rules=("parent",))

        def new_currency(t: int) -> None:
            rows = self._add("CURRENCY", np.array(["NOK"], object), np.array(["Norwegian Krone"], object),
                             bc_exists=True, dv_exists=False, coupled=False, at=t)
            cur = w.table("CURRENCY")
            cur.fault[BC][rows] = FAULT_NO_EXCHANGE_RATE
            cur.incident[BC][rows] = cur_inc.id
            self._cur_row = int(rows[0])
            # spread over half a day, so that the customers meet the missing currency before it is fixed
            # (each fails once, then is Skipped on the same failure: few runs per customer)
            self._assign_parent(t + HOUR, "CUSTOMER", "currency", rows[0], s(45), spread=12 * HOUR)

        def fix_currency(t: int) -> None:
            cur = w.table("CURRENCY")
            row = np.array([self._cur_row])
            cur.fault[BC][row] = 0
            cur.mod[BC][row] = t  # the exchange rate is added and the currency touched
            cur.by_integration[BC][row] = False
            # the incident ends when the currency reaches Dataverse (its sync clears the tag)
            self.at(t + HOUR, lambda t2: self._resync_failing("CUSTOMER", cur_inc.id, t2))

        self.at(self._day(0.78, 9), new_currency)
        self.at(self._day(0.83, 11), fix_currency)

        # 8. New items with a unit of measure whose unit group is set up wrongly in Dataverse.
        uom_inc = self._incident("uom-setup", "ITEM-PRODUCT", "Unit group PALLET misconfigured in Dataverse",
                                 rules=("parent",))

        def new_uom(t: int) -> None:
            rows = self._add("UNIT OF MEASURE", np.array(["PALLET"], object), np.array(["pallet"], object),
                             bc_exists=True, dv_exists=False, coupled=False, at=t)
            u = w.table("UNIT OF MEASURE")
            u.fault[BC][rows] = FAULT_UOM_SETUP
            u.incident[BC][rows] = uom_inc.id
            self._uom_row = int(rows[0])
            it = w.table("ITEM-PRODUCT")
            n = s(35)
            new = self._add("ITEM-PRODUCT", self._keys("ITEM-PRODUCT", len(it), n),
                            _company_names(self.rng, n), bc_exists=False, dv_exists=False, coupled=False, at=t,
                            parents={"uom": np.full(n, rows[0])})
            self._later(t + HOUR + np.arange(n) * 20 * MINUTE, "ITEM-PRODUCT", BC, new, kind=2)
            self.at(t + 2 * DAY, lambda t2: self._touch("ITEM-PRODUCT", new, BC, t2, DAY))

        def fix_uom(t: int) -> None:
            u = w.table("UNIT OF MEASURE")
            row = np.array([self._uom_row])
            u.fault[BC][row] = 0
            u.incident[BC][row] = 0
            ops.synchronize_now(w, "UNIT OF MEASURE", ["PALLET"], TO, t)
            self.at(t + HOUR, lambda t2: self._resync_failing("ITEM-PRODUCT", uom_inc.id, t2))

        self.at(self._day(0.86, 10), new_uom)
        self.at(self._day(0.93, 15), fix_uom)

        # 9. An import in Dataverse writes account names longer than BC's Name (Text[100]).
        len_inc = self._incident("field-length", "CUSTOMER", "Account names longer than 100 characters",
                                 rules=("length",))

        def long_names(t: int) -> None:
            ct = w.table("CUSTOMER")
            cand = np.flatnonzero(ct.coupled & ct.exists[DV] & ct.exists[BC] & (ct.incident[DV] == 0))
            rows = self.rng.choice(cand, s(300), replace=False)
            self._later(t + np.arange(len(rows)) * 1500, "CUSTOMER", DV, rows, kind=0, field=0,
                        value=self.rng.integers(1, 1_000_000, len(rows)), length=self.rng.integers(101, 160, len(rows)))
            ct.incident[DV][rows] = len_inc.id

        self.at(self._day(0.22, 16), long_names)

        # 10. Someone sets the CONTACT job queue entry on hold on Friday evening until Monday.
        hold_inc = self._incident("job-queue-on-hold", "CONTACT", "CONTACT job queue entry on hold over a weekend",
                                  from_errors=False)
        friday = self._day(0.5, 0)
        friday += ((4 - dt.datetime.fromtimestamp(friday / 1000, dt.UTC).weekday()) % 7) * DAY
        hold_at, release_at = friday + 18 * HOUR, friday + 3 * DAY + 7.5 * HOUR

        def hold(t: int) -> None:
            self.entries["CONTACT"].status = "On Hold"
            hold_inc.start = t

        def release(t: int) -> None:
            e = self.entries["CONTACT"]
            e.status, e.next_run = "Ready", t
            hold_inc.end = t

        self.at(int(hold_at), hold)
        self.at(int(release_at), release)

    def _foreground_create(self, t: int) -> None:
        """A salesperson creates an account in Sales and opens it in BC right away.

        BC creates the customer in the foreground (Job Queue Log Entry No. 0).
        """
        if not self.world.connection_enabled:
            return
        tb = self.world.table("CUSTOMER")
        row = self._add("CUSTOMER", self._keys("CUSTOMER", len(tb), 1), _company_names(self.rng, 1), bc_exists=False,
                        dv_exists=True, coupled=False, at=t, parents=self._parents_for("CUSTOMER", 1))
        ops.synchronize_now(self.world, "CUSTOMER", list(tb.key[row]), FROM, t + 20_000, foreground=True)

    # -- helpers used by incidents ----------------------------------------------------------
    def _touch(self, mapping: str, rows: np.ndarray | None, side: int, t: int, spread: int, count: int = 0) -> None:
        """Users edit records (a mapped field) over ``spread`` ms from ``t``."""
        tb = self.world.table(mapping)
        if rows is None:
            alive = np.flatnonzero(tb.exists[side])
            rows = self.rng.choice(alive, min(count, len(alive)), replace=False)
        rows = rows[tb.exists[side][rows]]
        f = int(self.rng.integers(0, len(tb.config.fields)))
        self._later(t + self.rng.integers(0, spread, len(rows)), mapping, side, rows, kind=0, field=f,
                    value=self.rng.integers(1, 1_000_000, len(rows)))

    def _assign_parent(self, t: int, mapping: str, role: str, parent_row: int, n: int, spread: int) -> None:
        """New and existing records start referencing ``parent_row`` (e.g. the new salesperson)."""
        tb = self.world.table(mapping)
        existing = np.flatnonzero(tb.coupled & tb.exists[BC] & tb.exists[DV] & (tb.incident[BC] == 0))
        rows = self.rng.choice(existing, n // 2, replace=False)
        tb.parents[role][rows] = parent_row
        self._later(t + self.rng.integers(0, spread, len(rows)), mapping, BC, rows, kind=1)
        new = self._add_new(mapping, t, n - n // 2, spread=spread)
        tb.parents[role][new] = parent_row

    def _add_new(self, mapping: str, t: int, n: int, spread: int = HOUR) -> np.ndarray:
        tb = self.world.table(mapping)
        names = _person_names(self.rng, n) if mapping == "CONTACT" else _company_names(self.rng, n)
        rows = self._add(mapping, self._keys(mapping, len(tb), n), names, bc_exists=False, dv_exists=False,
                         coupled=False, at=t, parents=self._parents_for(mapping, n))
        self._later(t + np.sort(self.rng.integers(0, spread, n)), mapping, BC, rows, kind=2)
        return rows

    def _later(self, times: np.ndarray, mapping: str, side: int, rows: np.ndarray, *, kind: int,
               field: int | None = None, value: np.ndarray | None = None, length: np.ndarray | None = None) -> None:
        """Plan user edits at ``times`` (kinds as in :meth:`_day_edits`).

        ``field``/``value``/``length`` pin a mapped-field edit. The edits happen when the clock gets there, so
        no record is modified in the future.
        """
        k = len(rows)
        self._pending.append((np.asarray(times, np.int64), mapping, side, np.asarray(rows, np.int64),
                              np.full(k, kind, np.int8), np.full(k, -1 if field is None else field, np.int16),
                              np.zeros(k, np.int64) if value is None else np.asarray(value, np.int64),
                              np.full(k, -1, np.int64) if length is None else np.asarray(length, np.int64)))

    def _keys_failing(self, mapping: str, incident: int) -> list[str]:
        """BC keys whose errors were tagged with ``incident`` (what an admin would pick to resync)."""
        log = self.world.errors
        keys: list[str] = []
        for mp, key, inc in zip(log.mapping, log.key, log.incident):
            sel = (inc == incident) & (mp == mapping)
            keys.extend(key[sel])
        return sorted(set(keys))

    def _resync_failing(self, mapping: str, incident: int, t: int) -> None:
        keys = self._keys_failing(mapping, incident)
        if keys:
            ops.synchronize_now(self.world, mapping, keys, TO, t)

    # -- steady activity -----------------------------------------------------------------
    def _day_edits(self, day_start: int) -> list[tuple[int, str, int, np.ndarray, np.ndarray]]:
        """Generate one day of user activity: (time, mapping, side, rows, kind) batches.

        kind: 0 edit a mapped field, 1 edit an unmapped field, 2 create, 3 delete.
        """
        weekday = dt.datetime.fromtimestamp(day_start / 1000, dt.UTC).weekday()
        busy = 1.0 if weekday < 5 else 0.12
        out = []
        for mapping, (_, new_bc, new_dv, e_bc, e_dv, del_dv) in _SIZES.items():
            tb = self.world.table(mapping)
            for side, rate in ((BC, e_bc), (DV, e_dv)):
                alive = np.flatnonzero(tb.exists[side])
                k = self.rng.poisson(rate * len(alive) * busy) if rate and len(alive) else 0
                if k:
                    rows = alive[self.rng.integers(0, len(alive), k)]
                    kind = (self.rng.random(k) < (0.3 if side == DV else 0.05)).astype(np.int8)
                    out.append((self._times(day_start, k), mapping, side, rows, kind))
            for side, rate in ((BC, new_bc), (DV, new_dv)):
                k = self.rng.poisson(rate * self.config.scale * busy) if rate else 0
                if k:
                    names = _person_names(self.rng, k) if mapping == "CONTACT" else _company_names(self.rng, k)
                    rows = self._add(mapping, self._keys(mapping, len(tb), k), names, bc_exists=False,
                                     dv_exists=False, coupled=False, at=day_start,
                                     parents=self._parents_for(mapping, k))
                    out.append((self._times(day_start, k), mapping, side, rows, np.full(k, 2, np.int8)))
            if mapping in _NIGHT_BATCH:
                # nightly BC batch jobs (cost adjustment, contact classification) modify a few records hourly
                hours = np.r_[0:7, 19:24]
                k = self.rng.poisson(_NIGHT_BATCH[mapping] * self.config.scale, len(hours))
                alive = np.flatnonzero(tb.exists[BC])
                if k.sum() and len(alive):
                    t = day_start + np.repeat(hours, k) * HOUR + self.rng.integers(0, HOUR, k.sum())
                    rows = alive[self.rng.integers(0, len(alive), k.sum())]
                    out.append((t, mapping, BC, rows, np.zeros(k.sum(), np.int8)))
            k = self.rng.poisson(del_dv * self.config.scale * busy) if del_dv else 0
            if k:
                alive = np.flatnonzero(tb.exists[DV] & tb.exists[BC])
                rows = alive[self.rng.integers(0, len(alive), k)]
                out.append((self._times(day_start, k), mapping, DV, rows, np.full(k, 3, np.int8)))
        return out

    def _times(self, day_start: int, k: int) -> np.ndarray:
        # office hours, 07:00-19:00, busiest around 10:00 and 15:00
        hours = np.clip(np.where(self.rng.random(k) < 0.5, self.rng.normal(10, 1.6, k), self.rng.normal(15, 1.8, k)), 7, 18.99)
        return day_start + (hours * HOUR).astype(np.int64)

    def _flatten(self, batches: list) -> dict[str, np.ndarray]:
        """Turn edit batches into time-ordered columns; a batch may carry field/value/length pins."""
        names = list(self.world.tables)
        if not batches:
            return {"t": np.empty(0, np.int64), "table": np.empty(0, np.int8), "side": np.empty(0, np.int8),
                    "row": np.empty(0, np.int64), "kind": np.empty(0, np.int8), "field": np.empty(0, np.int16),
                    "value": np.empty(0, np.int64), "length": np.empty(0, np.int64)}
        t = np.concatenate([b[0] for b in batches])
        order = np.argsort(t, kind="stable")

        def col(i: int, fill: int, dtype: type) -> np.ndarray:
            return np.concatenate([np.asarray(b[i], dtype) if len(b) > i else np.full(len(b[0]), fill, dtype)
                                   for b in batches])[order]

        return {
            "t": t[order],
            "table": np.concatenate([np.full(len(b[0]), names.index(b[1]), np.int8) for b in batches])[order],
            "side": np.concatenate([np.full(len(b[0]), b[2], np.int8) for b in batches])[order],
            "row": col(3, 0, np.int64), "kind": col(4, 0, np.int8), "field": col(5, -1, np.int16),
            "value": col(6, 0, np.int64), "length": col(7, -1, np.int64),
        }

    def _take_pending(self, edits: dict[str, np.ndarray], end: int) -> dict[str, np.ndarray]:
        """Merge the planned edits due before ``end`` into ``edits``; keep the later ones planned."""
        if not self._pending:
            return edits
        due, keep = [], []
        for b in self._pending:
            now = b[0] < end
            if now.any():
                due.append(tuple(x[now] if isinstance(x, np.ndarray) else x for x in b))
            if (~now).any():
                keep.append(tuple(x[~now] if isinstance(x, np.ndarray) else x for x in b))
        self._pending = keep
        if not due:
            return edits
        merged = self._flatten(due)
        t = np.concatenate([edits["t"], merged["t"]])
        order = np.argsort(t, kind="stable")
        out = {k: np.concatenate([edits[k], merged[k]])[order] for k in merged}
        return out

    def _apply(self, edits: dict[str, np.ndarray], lo: int, hi: int) -> None:
        """Apply edits[lo:hi] (already in time order) to the world."""
        if hi <= lo:
            return
        names = list(self.world.tables)
        for ti in np.unique(edits["table"][lo:hi]):
            tb = self.world.tables[names[ti]]
            sl = slice(lo, hi)
            sel = edits["table"][sl] == ti
            for side in (BC, DV):
                s2 = sel & (edits["side"][sl] == side)
                if not s2.any():
                    continue
                rows, kind, t = edits["row"][sl][s2], edits["kind"][sl][s2], edits["t"][sl][s2]
                create, delete = kind == 2, kind == 3
                tb.exists[side][rows[create]] = True
                live = tb.exists[side][rows] & ~delete
                r, tt, kd = rows[live], t[live], kind[live]
                tb.mod[side][r] = np.maximum(tb.mod[side][r], tt)
                tb.by_integration[side][r] = False
                pin = edits["field"][sl][s2][live]
                pinned = (kd == 0) & (pin >= 0)
                if pinned.any():
                    pr, pf = r[pinned], pin[pinned].astype(np.int64)
                    tb.vals[side][pr, pf] = edits["value"][sl][s2][live][pinned]
                    plen = edits["length"][sl][s2][live][pinned]
                    has_len = plen >= 0
                    tb.lens[side][pr[has_len], pf[has_len]] = plen[has_len]
                    kd = np.where(pinned, -1, kd)  # done: not also a random edit below
                mapped = r[kd == 0]
                if len(mapped):
                    f = self.rng.integers(0, tb.n_fields, len(mapped))
                    tb.vals[side][mapped, f] = self.rng.integers(1, 1_000_000, len(mapped))
                    lim = np.array([fm.dv_length if side == DV else fm.bc_length for fm in tb.config.fields])[f]
                    has = lim > 0
                    # now and then a user types more than the other app's field holds
                    other = np.array([fm.bc_length if side == DV else fm.dv_length for fm in tb.config.fields])[f]
                    too_long = has & (self.rng.random(len(mapped)) < 0.06) & (other > 0) & (lim > other)
                    newlen = np.where(too_long, other + self.rng.integers(1, 30, len(mapped)),
                                      self.rng.integers(3, np.maximum(4, np.minimum(lim, np.where(other > 0, other, lim)) * 2 // 3 + 1)))
                    tb.lens[side][mapped[has], f[has]] = newlen[has]
                gone = delete & tb.exists[side][rows]
                tb.exists[side][rows[gone]] = False
                tb.mod[side][rows[gone]] = t[gone]
                tb.incident[side][rows[gone]] = 0  # an everyday deletion, not part of any planted incident

    # -- the clock -----------------------------------------------------------------------
    def run(self) -> World:
        """Simulate every day of the scenario and return the world."""
        days = range(self.config.days)
        for day in tqdm(days, desc="simulating", unit="day", disable=not self.progress):
            day_start = self.t0 + day * DAY
            self._run_until(day_start + DAY, self._flatten(self._day_edits(day_start)))
        self.clock = self.t_end
        self._finish_incidents()
        return self.world

    def advance(self, hours: float, *, activity: bool = False) -> list:
        """Run the job queue forward by ``hours`` from :attr:`clock` and return the new jobs.

        Without ``activity`` nobody edits records meanwhile, so what changes is only what the job
        queue does with the current state (e.g. after a resolution action). With ``activity`` users
        keep editing both apps as in the scenario.
        """
        if hours <= 0:
            raise TwinError(f"hours must be positive; got {hours}.")
        first_new = len(self.world.jobs)
        stop = self.clock + int(hours * HOUR)
        t = self.clock
        while t < stop:
            day_start = self.t0 + ((t - self.t0) // DAY) * DAY
            end = min(stop, day_start + DAY)
            if activity and day_start not in self._active_days:
                # a whole day of activity, planned once (it creates records): what falls after this
                # advance stays planned for the next one
                self._active_days.add(day_start)
                self._pending.extend(self._day_edits(day_start))
            self._run_until(end, self._flatten([]))
            t = end
        self.clock = stop
        return self.world.jobs[first_new:]

    def _run_until(self, end: int, edits: dict[str, np.ndarray]) -> None:
        """Run the clock to ``end``: apply ``edits`` (time-ordered), fire events, run due job queue entries."""
        names = list(self.world.tables)
        pos = 0
        edits = self._take_pending(edits, end)

        def bc_times(e: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            # BC changes wake entries on hold for inactivity (event-driven rescheduling, ~30 s later).
            return {n: e["t"][(e["table"] == i) & (e["side"] == BC)] for i, n in enumerate(names)}

        bc_edit_times = bc_times(edits)
        while True:
            for e in self.entries.values():
                if e.status == "On Hold with Inactivity Timeout":
                    times = bc_edit_times[e.mapping]
                    j = np.searchsorted(times, self._held_since.get(e.mapping, 0), side="right")
                    if j < len(times):
                        e.next_run = min(e.next_run, int(times[j]) + 30_000)
            ready = [e for e in self.entries.values() if e.status != "On Hold"]
            t_job = min((e.next_run for e in ready), default=end)
            t_evt = self._events[0][0] if self._events else end
            t_next = min(t_job, t_evt, end)
            hi = int(np.searchsorted(edits["t"], t_next, side="left"))
            self._apply(edits, pos, hi)
            pos = hi
            if t_next >= end:
                break
            if t_evt <= t_job:
                _, _, fn = heapq.heappop(self._events)
                fn(t_evt)
                if self._pending:  # the event planned edits: merge them with the rest of the period
                    edits = self._take_pending({k: v[pos:] for k, v in edits.items()}, end)
                    pos = 0
                    bc_edit_times = bc_times(edits)
                self._wake(t_evt)
                continue
            entry = min(ready, key=lambda e: (e.next_run, e.mapping))
            self._run_entry(entry, t_job)

    def wake(self, mapping: str | None = None) -> None:
        """Set job queue entries on hold for inactivity Ready now (as a BC change on their table would)."""
        for e in self.entries.values():
            if (mapping is None or e.mapping == mapping) and e.status == "On Hold with Inactivity Timeout":
                e.status, e.next_run = "Ready", self.clock + 30_000

    def _wake(self, t: int) -> None:
        """Event-driven rescheduling, and planted events.

        A BC change on a mapped table sets an entry on hold for inactivity Ready again about 30 s later (spec
        §6.1); planted events change records outside the day's edits.
        """
        for e in self.entries.values():
            if e.status != "On Hold with Inactivity Timeout":
                continue
            tb = self.world.table(e.mapping)
            changed = tb.exists[BC] & ~tb.by_integration[BC] & (tb.mod[BC] > self._held_since.get(e.mapping, 0)) & (tb.mod[BC] >= t)
            if changed.any():
                e.next_run = min(e.next_run, max(t, int(tb.mod[BC][changed].min())) + 30_000)

    def _run_entry(self, entry: JobQueueEntry, t: int) -> None:
        w = self.world
        if not w.connection_enabled:
            # The run fails before any record: the error lands in the Job Queue Log Entry, not in 5338.
            w.next_job_queue_log_entry()
            entry.status, entry.next_run = "Ready", t + INTERVAL
            if self._perm_incident.start is None:
                self._perm_incident.start = t
            return
        jobs = run_mapping(w, entry.mapping, t)
        busy = sum(j.counts["inserted"] + j.counts["modified"] + j.counts["failed"] for j in jobs)
        if busy == 0:  # HaveJobsBeenIdle -> On Hold with Inactivity Timeout
            entry.status = "On Hold with Inactivity Timeout"
            entry.next_run = t + entry.timeout
            self._held_since[entry.mapping] = jobs[-1].finish
            self._wake(jobs[-1].finish)  # a BC edit already planned for later wakes it then
        else:
            entry.status = "Ready"
            entry.next_run = jobs[-1].finish + INTERVAL - (jobs[-1].finish - t) + int(self.rng.integers(0, 20_000))

    def _finish_incidents(self) -> None:
        """Fill each incident's window and affected keys from the errors tagged with it."""
        log = self.world.errors
        if not log.job:
            return
        inc = np.concatenate(log.incident)
        at = np.concatenate(log.at)
        # the key a reader of 5339 sees: the BC record's, unless the row names no BC record (a failed
        # insert from Dataverse: source = the Dataverse row, destination blank) — then the Dataverse id
        keys = np.concatenate(log.key).astype(object)
        src = np.concatenate(log.source)
        dst = np.concatenate(log.destination)
        directions = np.array([j.direction for j in self.world.jobs], np.int8)
        dv_only = (directions[np.concatenate(log.job)] == FROM) & (dst == "")
        keys[dv_only] = bc.split_record_ids(pd.Series(src[dv_only], dtype=object))[1].to_numpy(dtype=object)
        self.affected: dict[int, list[str]] = {}
        mapping = np.concatenate(log.mapping)
        rule = np.concatenate(log.rule)
        for incident in self.incidents:
            # the incident's own mapping and failure rule: knock-on errors (contacts of deleted accounts,
            # conflicts on records that also carry a too-long name) are not the incident itself
            sel = (inc == incident.id) & (mapping == incident.mapping)
            if incident.rules:
                sel &= np.isin(rule, incident.rules)
            self.affected[incident.id] = sorted(set(keys[sel].tolist()))
            if incident.from_errors and sel.any():
                incident.start, incident.end = int(at[sel].min()), int(at[sel].max())
            elif incident.kind == "connection-disabled" and sel.any():
                incident.start = int(at[sel].min())


def simulate(days: int = 90, scale: float = 1.0, seed: int = 7, *, progress: bool = False) -> Simulation:
    """Run the demo scenario and return the finished :class:`Simulation` (its ``world`` holds the history)."""
    sim = Simulation(ScenarioConfig(days=days, scale=scale, seed=seed), progress=progress)
    sim.run()
    return sim
