"""Hand-built twin worlds for the engine tests (imported as a module, not through conftest)."""

from __future__ import annotations

import numpy as np

from syncanalysis import bc
from syncanalysis.twin import BC, DV, FieldMapping, MappingConfig, Parent, World

T0 = 1_800_000_000_000  # ms


def small_world(*, direction: str = bc.BIDIRECTIONAL, only_coupled: bool = False, deletion: str = "None",
                update: str = "None", n: int = 3, coupled: bool = True, with_parent: bool = False,
                extra_from_field: bool = False, fields: list[FieldMapping] | None = None) -> World:
    """Hand-built world: one CUSTOMER-like mapping with a bidirectional and a to-only field (or ``fields``)."""
    fields = list(fields) if fields is not None else [
        FieldMapping("Name", "name", bc.BIDIRECTIONAL, 100, 160, "Account Name"),
        FieldMapping("Credit Limit (LCY)", "creditlimit", bc.TO_INTEGRATION, dv_caption="Credit Limit")]
    if extra_from_field:
        fields.append(FieldMapping("Fax No.", "fax", bc.FROM_INTEGRATION))
    parents = (Parent("salesperson", "SALESPEOPLE", "Salesperson Code",
                      to_message="{caption} {key} must be coupled to a {service} row."),) if with_parent else ()
    configs = [MappingConfig("SALESPEOPLE", 13, 5340, bc.FROM_INTEGRATION,
                             fields=(FieldMapping("Name", "fullname", bc.FROM_INTEGRATION),)),
               MappingConfig("CUSTOMER", 18, 5341, direction, only_coupled=only_coupled, no_series_step=10,
                             deletion_resolution=deletion, update_resolution=update,
                             fields=tuple(fields), parents=parents)]
    w = World(configs, seed=1)
    sp = w.table("SALESPEOPLE")
    sp.add(np.array(["AB", "NEW"], object), np.array(["Ann B", "Nora"], object), bc_ids=w.new_ids(2),
           dv_ids=w.new_ids(2), bc_exists=True, dv_exists=np.array([True, False]), coupled=np.array([True, False]),
           mod=T0 - 10_000, vals=np.ones((2, 1), np.int32), lens=np.ones((2, 1), np.int16))
    t = w.table("CUSTOMER")
    t.add(np.array([f"C{i:05d}" for i in range(n)], object), np.array([f"Firm {i}" for i in range(n)], object),
          bc_ids=w.new_ids(n), dv_ids=w.new_ids(n), bc_exists=True, dv_exists=True, coupled=coupled,
          mod=T0 - 10_000, vals=np.ones((n, len(fields)), np.int32), lens=np.full((n, len(fields)), 10, np.int16),
          parents={"salesperson": np.zeros(n, np.int64)} if with_parent else None)
    for tb in w.tables.values():
        tb.mapping_wm = [T0 - 5_000, T0 - 5_000]  # beyond the 999 ms Dataverse slack of the records
    return w


def edit(w: World, side: int, row: int, at: int, field: int = 0, value: int | None = None) -> None:
    t = w.table("CUSTOMER")
    t.vals[side][row, field] = value if value is not None else t.vals[side][row, field] + 1
    t.mod[side][row] = at
    t.by_integration[side][row] = False


__all__ = ["BC", "DV", "T0", "edit", "small_world"]
