"""Benchmark the resolution actions: a bulk Retry of 100,000 selected couplings against a per-row loop.

Set-up (not timed): a scale-10 twin (~230k couplings, 14 days) published into a workspace, with exactly
100,000 couplings (both records present) marked Skipped. Then, each on its own copy of the workspace file:

* bulk: ``actions.run(ws, "retry", Selection(state="skipped"))`` - the selection resolved in SQL,
  enablement vectorised, the twin's rows mapped by one hash lookup, one audit row, one publish;
  timed end to end, with the part spent loading and storing the twin (``twin.state``) reported apart.
* loop (the baseline, measured in the same run): what a person would write - for each key, look the
  coupling up, un-skip it with one UPDATE and one twin lookup, then load/publish the twin like the bulk
  run (writing only the couplings it changed). The per-row part is measured on ``--loop-sample`` keys (default 2,000) and scaled to 100,000
  (``--full-loop`` runs all of them; it takes minutes).

Last line: one JSON object of the figures, each with its bound.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from syncanalysis import Workspace
from syncanalysis import actions as act
from syncanalysis.actions import backends
from syncanalysis.analysis.records import Selection
from syncanalysis.twin.model import BC, DV
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import load_twin, publish

N = 100_000


def build(folder: Path, scale: float, days: int) -> Path:
    """Simulate, publish, then mark exactly N couplings (both records present) Skipped and publish again.

    Both records: a coupling whose other record is gone is in state "broken", not "skipped".
    """
    path = folder / "base.duckdb"
    t = time.perf_counter()
    sim = Simulation(ScenarioConfig(days=days, scale=scale, seed=3))
    sim.run()
    w = sim.world
    for tb in w.tables.values():
        tb.skipped[:] = False
    need = N
    for name in ("CONTACT", "CUSTOMER", "ITEM-PRODUCT", "VENDOR"):
        tb = w.table(name)
        rows = np.flatnonzero(tb.coupled & tb.exists[BC] & tb.exists[DV])[:need]
        tb.skipped[rows] = True
        need -= len(rows)
        if need <= 0:
            break
    if need > 0:
        raise SystemExit(f"scale {scale} has too few couplings for {N:,} skipped ones; use a larger --scale.")
    with Workspace(path) as ws:
        publish(ws, sim, scenario="bench-actions")
        couplings = ws.count("couplings")
    print(f"set-up: scale {scale}, {days} days, {couplings:,} couplings, {N:,} skipped "
          f"({time.perf_counter() - t:.0f} s)")
    return path


def copy(base: Path, name: str) -> Path:
    target = base.with_name(name)
    shutil.copy(base, target)
    return target


def bulk(base: Path) -> dict[str, float]:
    """The library's Retry, end to end, with the time spent loading and publishing the twin."""
    spent = {"load": 0.0, "publish": 0.0}
    real_load, real_publish = backends.load_twin, backends.publish

    def timed(fn, key):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - t
        return wrapper

    backends.load_twin, backends.publish = timed(real_load, "load"), timed(real_publish, "publish")
    try:
        with Workspace(copy(base, "bulk.duckdb")) as ws:
            t = time.perf_counter()
            p = act.plan(ws, "retry", Selection(state="skipped"))
            t_plan = time.perf_counter() - t
            r = act.execute(ws, p, who="bench")
            total = time.perf_counter() - t
            left = ws.count("couplings", filters={"skipped": True})
    finally:
        backends.load_twin, backends.publish = real_load, real_publish
    assert r.counts["targets"] == N and r.counts["changed"] + r.counts["refused"] == N, r.counts
    assert left == r.counts["refused"], (left, r.counts)
    return {"total": total, "plan": t_plan, "twin_load": spent["load"], "twin_publish": spent["publish"],
            "changed": r.counts["changed"]}


def loop(base: Path, sample: int) -> dict[str, float]:
    """The per-row baseline: one SELECT + one UPDATE + one twin lookup per key, then publish."""
    with Workspace(copy(base, "loop.duckdb")) as ws:
        con = ws.con
        keys = con.execute("SELECT environment, company, table_id, CAST(integration_id AS VARCHAR) FROM couplings "
                           "WHERE skipped ORDER BY ALL").fetchall()
        t = time.perf_counter()
        sim = load_twin(ws)
        t_load = time.perf_counter() - t
        by_table = {tb.config.table_id: tb for tb in sim.world.tables.values()}
        t = time.perf_counter()
        index = {tid: {g: i for i, g in enumerate(tb.ids[BC])} for tid, tb in by_table.items()}  # built once
        changed = []
        con.begin()
        for env, company, table_id, integration_id in keys[:sample]:
            where = "environment = ? AND company = ? AND table_id = ? AND integration_id = ?"
            params = [env, company, table_id, integration_id]
            found = con.execute(f"SELECT skipped, bc_record_exists FROM couplings WHERE {where}", params).fetchall()
            if found and found[0][0] and found[0][1] is not False:
                con.execute(f"UPDATE couplings SET skipped = false WHERE {where}", params)
                tb = by_table[table_id]
                tb.skipped[index[table_id][integration_id]] = False
                changed.append((table_id, integration_id))
        con.commit()
        per_row = (time.perf_counter() - t) / sample
        t = time.perf_counter()
        # like the bulk run: only the couplings it changed are written
        publish(ws, sim, couplings=pd.DataFrame(changed, columns=["table_id", "integration_id"]))
        t_publish = time.perf_counter() - t
    return {"per_row": per_row, "rows": sample, "twin_load": t_load, "twin_publish": t_publish,
            "total_100k": t_load + per_row * N + t_publish}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--loop-sample", type=int, default=2000, help="keys the per-row loop runs (then scaled)")
    parser.add_argument("--full-loop", action="store_true", help="run the loop over all 100,000 keys")
    parser.add_argument("--repeat", type=int, default=3, help="bulk runs (each on a fresh copy); the fastest counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as tmp:
        base = build(Path(tmp), args.scale, args.days)
        b = min((bulk(base) for _ in range(max(args.repeat, 1))), key=lambda f: f["total"])
        own = b["total"] - b["twin_load"] - b["twin_publish"]
        print(f"bulk Retry of {N:,}: {b['total']:.2f} s (plan {b['plan']:.2f} s; twin load {b['twin_load']:.2f} s, "
              f"twin publish {b['twin_publish']:.2f} s; the action itself {own:.2f} s), {b['changed']:,} un-skipped")
        lp = loop(base, N if args.full_loop else args.loop_sample)
        print(f"per-row loop: {lp['per_row'] * 1000:.2f} ms per key over {lp['rows']:,} keys -> "
              f"{lp['total_100k']:.0f} s for {N:,} (incl. twin load {lp['twin_load']:.2f} s and publish "
              f"{lp['twin_publish']:.2f} s)")
        speedup = lp["total_100k"] / b["total"]
        print(f"speed-up of the bulk Retry over the loop: {speedup:.0f}x "
              f"(action path without the twin's storage: {lp['per_row'] * N / own:.0f}x)")
    print(json.dumps({
        "retry_100k_s": round(b["total"], 2), "retry_100k_s_max": 2,
        "retry_100k_action_s": round(own, 2), "retry_100k_action_s_max": 2,
        "twin_load_publish_s": round(b["twin_load"] + b["twin_publish"], 2),
        "loop_100k_s": round(lp["total_100k"], 1), "loop_measured_rows": lp["rows"],
        "speedup_vs_loop": round(speedup, 1), "speedup_vs_loop_min": 50,
    }))


if __name__ == "__main__":
    main()
