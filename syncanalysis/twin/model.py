"""The twin's world: records of both apps, their couplings (table 5331) and the mappings (5335/5336).

State is kept column-wise in numpy arrays, one :class:`TableState` per mapping, so that the engine
decides a whole run's records with set operations. Sides are indexed ``BC = 0`` and ``DV = 1``;
directions ``TO = 0`` (BC -> Dataverse) and ``FROM = 1``, so the source side of a direction is the
direction's own index. Times are integer milliseconds since the Unix epoch; ``-1`` is blank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .. import bc

BC, DV = 0, 1
TO, FROM = 0, 1
DIRECTION_NAMES = (bc.TO_INTEGRATION, bc.FROM_INTEGRATION)
BLANK = -1
GUID = "<U36"  # numpy dtype of GUID text (lower case, with dashes)

# Per-record faults planted on one side: the transfer *from* that side fails with the fault's text.
FAULT_NONE = 0
FAULT_NO_RELATION = 1  # contact whose company has no business relation
FAULT_NO_EXCHANGE_RATE = 2  # currency without exchange rate
FAULT_UOM_SETUP = 3  # unit group misconfigured in Dataverse


@dataclass(frozen=True)
class FieldMapping:
    """Table 5336 row: one field pair with its own direction and the field lengths of each app."""

    bc_field: str
    dv_field: str
    direction: str = bc.BIDIRECTIONAL
    bc_length: int = 0  # 0 = not a text field with a limit
    dv_length: int = 0
    dv_caption: str = ""  # caption of the Dataverse field in BC (table 5341 "Name" is "Account Name")

    @property
    def dv_label(self) -> str:
        """The Dataverse field as BC's messages name it: its caption, else its column name."""
        return self.dv_caption or self.dv_field

    def transfers(self, direction: int) -> bool:
        """Whether a run in ``direction`` writes this field."""
        return self.direction in (bc.BIDIRECTIONAL, DIRECTION_NAMES[direction])


@dataclass
class Parent:
    """A reference from a mapping's BC record to a record of another mapping (e.g. Salesperson Code)."""

    role: str
    mapping: str
    bc_field: str
    # Message when the parent is not coupled, per direction ({caption}, {key}, {service}); "" = not checked.
    to_message: str = ""
    from_message: str = ""
    family: str = "helper"


@dataclass
class MappingConfig:
    """Table 5335 row plus its field mappings (5336) and the captions needed for messages."""

    name: str
    table_id: int
    crm_table_id: int
    direction: str
    only_coupled: bool = True
    deletion_resolution: str = "None"
    update_resolution: str = "None"
    dependency_filter: str = ""
    fields: tuple[FieldMapping, ...] = ()
    parents: tuple[Parent, ...] = ()
    key_prefix: str = ""
    # step of the BC table's No. Series (a record BC creates gets the next number); 0 = the key comes from
    # the Dataverse row (currency ISO code, unit name, salesperson code)
    no_series_step: int = 0
    inactivity_timeout_min: int = 720
    table_filter: str = ""
    integration_table_filter: str = ""

    def __post_init__(self) -> None:
        if self.direction not in bc.DIRECTIONS:
            raise ValueError(f"direction {self.direction!r} not in {bc.DIRECTIONS}")
        if self.deletion_resolution not in bc.DELETION_RESOLUTIONS:
            raise ValueError(f"deletion resolution {self.deletion_resolution!r} not in {bc.DELETION_RESOLUTIONS}")
        if self.update_resolution not in bc.UPDATE_RESOLUTIONS:
            raise ValueError(f"update resolution {self.update_resolution!r} not in {bc.UPDATE_RESOLUTIONS}")

    @property
    def bc_caption(self) -> str:
        """The caption of the BC table (``table_id``)."""
        return bc.BC_TABLES[self.table_id]

    @property
    def dv_caption(self) -> str:
        """The caption of the Dataverse table (``crm_table_id``)."""
        return bc.CRM_TABLES[self.crm_table_id][0]

    def caption(self, side: int) -> str:
        """The table caption of ``side`` (BC or Dataverse)."""
        return self.bc_caption if side == BC else self.dv_caption

    def runs(self, direction: int) -> bool:
        """Whether the mapping synchronizes in ``direction`` at all."""
        return self.direction in (bc.BIDIRECTIONAL, DIRECTION_NAMES[direction])

    @property
    def echo_suppressed(self) -> bool:
        """Spec §6.2: Bidirectional without From-only fields skips rows last modified by the integration user."""
        return self.direction == bc.BIDIRECTIONAL and not any(
            f.direction == bc.FROM_INTEGRATION for f in self.fields
        )


def _empty(dtype: object, n: int, fill: object) -> np.ndarray:
    return np.full(n, fill, dtype=dtype)


@dataclass
class TableState:
    """All records of one mapping: both apps' versions and the coupling between them.

    A row is one record identity: it may exist in BC only, in Dataverse only, in both (coupled or
    not) or, after deletions, in neither.
    """

    config: MappingConfig
    n_fields: int
    key: np.ndarray = field(default=None)  # BC primary key (object)
    name: np.ndarray = field(default=None)  # description shown as "Coupled To" (object)
    exists: list[np.ndarray] = field(default_factory=list)  # [BC, DV] bool
    ids: list[np.ndarray] = field(default_factory=list)  # [BC SystemId, Dataverse id] (GUID text, dtype GUID)
    mod: list[np.ndarray] = field(default_factory=list)  # [SystemModifiedAt, ModifiedOn] ms
    by_integration: list[np.ndarray] = field(default_factory=list)  # last modified by the integration user
    vals: list[np.ndarray] = field(default_factory=list)  # [BC, DV] (n, F) int32 field values
    lens: list[np.ndarray] = field(default_factory=list)  # [BC, DV] (n, F) int16 text lengths
    fault: list[np.ndarray] = field(default_factory=list)  # [BC, DV] int8 planted fault code
    incident: list[np.ndarray] = field(default_factory=list)  # [BC, DV] int16 incident of the fault/value
    parents: dict[str, np.ndarray] = field(default_factory=dict)  # role -> row in the parent mapping
    # coupling (table 5331)
    coupled: np.ndarray = field(default=None)
    wm: list[np.ndarray] = field(default_factory=list)  # [Last Synch. Modified On, Last Synch. CRM Modified On]
    result: list[np.ndarray] = field(default_factory=list)  # [Last Synch. CRM Result (TO), Last Synch. Result (FROM)]
    job: list[np.ndarray] = field(default_factory=list)  # [Last Synch. CRM Job ID, Last Synch. Job ID] job index
    last_msg: list[np.ndarray] = field(default_factory=list)  # Message of the last failure per direction
    fail_at: list[np.ndarray] = field(default_factory=list)  # Date/Time of that failure's 5339 row (ms)
    key_used: np.ndarray = field(default=None)  # a BC record with this key existed (BC never reuses a number)
    in_filter: np.ndarray = field(default=None)  # the BC record matches the mapping's Table Filter (e.g. not Blocked)
    in_int_filter: np.ndarray = field(default=None)  # the Dataverse row matches its Integration Table Filter
    skipped: np.ndarray = field(default=None)
    # mapping watermarks: [Synch. Int. Tbl. Mod. On Fltr. (BC side), Synch. Modified On Filter (DV side)]
    mapping_wm: list[int] = field(default_factory=lambda: [BLANK, BLANK])

    def __post_init__(self) -> None:
        if self.key is None:
            self.key = np.empty(0, dtype=object)
            self.name = np.empty(0, dtype=object)
            self.exists = [np.empty(0, bool), np.empty(0, bool)]
            # fixed-width text: stored out of band with the numeric arrays (see twin.state), no per-object cost
            self.ids = [np.empty(0, GUID), np.empty(0, GUID)]
            self.mod = [np.empty(0, np.int64), np.empty(0, np.int64)]
            self.by_integration = [np.empty(0, bool), np.empty(0, bool)]
            self.vals = [np.empty((0, self.n_fields), np.int32) for _ in range(2)]
            self.lens = [np.empty((0, self.n_fields), np.int16) for _ in range(2)]
            self.fault = [np.empty(0, np.int8), np.empty(0, np.int8)]
            self.incident = [np.empty(0, np.int16), np.empty(0, np.int16)]
            self.parents = {p.role: np.empty(0, np.int64) for p in self.config.parents}
            self.coupled = np.empty(0, bool)
            self.wm = [np.empty(0, np.int64), np.empty(0, np.int64)]
            self.result = [np.empty(0, np.int8), np.empty(0, np.int8)]
            self.job = [np.empty(0, np.int64), np.empty(0, np.int64)]
            self.last_msg = [np.empty(0, object), np.empty(0, object)]
            self.fail_at = [np.empty(0, np.int64), np.empty(0, np.int64)]
            self.key_used = np.empty(0, bool)
            self.in_filter = np.empty(0, bool)
            self.in_int_filter = np.empty(0, bool)
            self.skipped = np.empty(0, bool)

    def __len__(self) -> int:
        return len(self.key)

    def add(
        self,
        keys: np.ndarray,
        names: np.ndarray,
        *,
        bc_ids: np.ndarray,
        dv_ids: np.ndarray,
        bc_exists: np.ndarray | bool,
        dv_exists: np.ndarray | bool,
        coupled: np.ndarray | bool,
        mod: int | np.ndarray,
        vals: np.ndarray,
        lens: np.ndarray,
        parents: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Append records; both sides start with the same field values. Returns the new rows."""
        k = len(keys)
        start = len(self)
        cat = np.concatenate
        self.key = cat([self.key, np.asarray(keys, object)])
        self.name = cat([self.name, np.asarray(names, object)])
        ex = [np.broadcast_to(bc_exists, k), np.broadcast_to(dv_exists, k)]
        for s, new_ids in ((BC, bc_ids), (DV, dv_ids)):
            self.exists[s] = cat([self.exists[s], ex[s]])
            self.ids[s] = cat([self.ids[s], np.asarray(new_ids, GUID)])
            self.mod[s] = cat([self.mod[s], np.broadcast_to(np.int64(mod), k)])
            self.by_integration[s] = cat([self.by_integration[s], np.zeros(k, bool)])
            self.vals[s] = cat([self.vals[s], vals.astype(np.int32)])
            self.lens[s] = cat([self.lens[s], lens.astype(np.int16)])
            self.fault[s] = cat([self.fault[s], np.zeros(k, np.int8)])
            self.incident[s] = cat([self.incident[s], np.zeros(k, np.int16)])
        c = np.broadcast_to(coupled, k)
        self.coupled = cat([self.coupled, c])
        for d in (TO, FROM):
            # a coupled record starts as if synchronized at `mod` with success
            self.wm[d] = cat([self.wm[d], np.where(c, np.int64(mod), BLANK)])
            self.result[d] = cat([self.result[d], np.where(c, bc.RESULT_SUCCESS, bc.RESULT_BLANK).astype(np.int8)])
            self.job[d] = cat([self.job[d], np.full(k, BLANK, np.int64)])
            self.last_msg[d] = cat([self.last_msg[d], np.full(k, None, object)])
            self.fail_at[d] = cat([self.fail_at[d], np.full(k, BLANK, np.int64)])
        self.key_used = cat([self.key_used, ex[BC].copy()])
        self.in_filter = cat([self.in_filter, np.ones(k, bool)])
        self.in_int_filter = cat([self.in_int_filter, np.ones(k, bool)])
        self.skipped = cat([self.skipped, np.zeros(k, bool)])
        for p in self.config.parents:
            given = (parents or {}).get(p.role)
            self.parents[p.role] = cat([self.parents[p.role], np.full(k, -1, np.int64) if given is None else given])
        return np.arange(start, start + k)

    def uncouple(self, rows: np.ndarray) -> None:
        """Delete the coupling rows (5331) of ``rows``."""
        self.coupled[rows] = False
        self.skipped[rows] = False
        for d in (TO, FROM):
            self.wm[d][rows] = BLANK
            self.result[d][rows] = bc.RESULT_BLANK
            self.job[d][rows] = BLANK
            self.last_msg[d][rows] = None
            self.fail_at[d][rows] = BLANK

    def couple(self, rows: np.ndarray, at: int) -> None:
        """Create couplings for ``rows`` whose records exist in both apps (Set Up Coupling)."""
        self.uncouple(rows)
        self.coupled[rows] = True
        for d in (TO, FROM):
            self.wm[d][rows] = at
        self.wm[BC][rows] = self.mod[BC][rows]
        self.wm[DV][rows] = self.mod[DV][rows]

    def next_keys(self, n: int) -> np.ndarray:
        """The next ``n`` numbers of the BC table's No. Series, after every key used so far.

        A key is a prefix and a number (``C00010``, ``1000``); the series continues the highest one
        with the same width, by the mapping's ``no_series_step``.
        """
        step = self.config.no_series_step
        if step <= 0:
            raise ValueError(f"Mapping {self.config.name} has no No. Series (its keys come from Dataverse).")
        parts = [re.fullmatch(r"(\D*)(\d+)", str(k)) for k in self.key]
        found = [(int(p.group(2)), p.group(1), len(p.group(2))) for p in parts if p]
        top, prefix, width = max(found) if found else (0, self.config.key_prefix, 5)
        return np.array([f"{prefix}{top + step * (i + 1):0{width}d}" for i in range(n)], dtype=object)

    def rows_by_key(self, keys: list[str] | np.ndarray) -> np.ndarray:
        """Return the rows of the BC keys, raising for unknown keys."""
        from ..errors import TwinError

        index = {k: i for i, k in enumerate(self.key)}
        missing = [k for k in keys if k not in index]
        if missing:
            raise TwinError(f"Mapping {self.config.name} has no record(s) with key {missing[:5]}.")
        return np.array([index[k] for k in keys], dtype=np.int64)
