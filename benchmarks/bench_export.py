"""Benchmark the export of a triage list (issue 16): 100,000 records to xlsx and CSV with BC's captions.

Baselines measured in the same run on the same frame: pandas ``to_csv`` (what a bare CSV costs) and
xlsxwriter writing the same cells one by one (``export.FAST_XLSX = False``, the library's fallback).
Each case is the best of three runs.

Usage: ``python benchmarks/bench_export.py [--rows N]``. Last line: one JSON object of the figures, each
with its bound.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from syncanalysis import export as ex


def frame(n: int) -> pd.DataFrame:
    """Records as records() gives them: ids, flags, a state, long error texts, times."""
    i = np.arange(n)
    return pd.DataFrame({
        "mapping_name": np.where(i % 2, "CUSTOMER", "CONTACT"), "table_id": np.full(n, 18, "int32"),
        "bc_record_id": [f"Customer: C{k:06d}" for k in i], "crm_description": [f"Adatum {k}" for k in i],
        "skipped": i % 3 == 0, "bc_record_exists": True, "crm_record_exists": i % 5 != 0, "state": "skipped",
        "error_message": [f"Modifying Customer failed because of the following error: The length of the string is "
                          f"{120 + k % 50}, but it must be less than or equal to 100 characters. Value: <{k}>"
                          for k in i],
        "failed_on": pd.Timestamp("2026-10-01") + pd.to_timedelta(i, unit="s"), "cause": "field-length",
        "integration_id": [str(uuid.UUID(int=int(k))) for k in i],
    })


def timed(fn, repeat: int = 3) -> float:
    """The best of ``repeat`` runs (the first also pays for loading captions and imports)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    df = frame(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        csv_base = timed(lambda: df.to_csv(out / "bare.csv", index=False))
        csv = timed(lambda: ex.export_frame(df, out / "r.csv", language="fr"))
        xlsx = timed(lambda: ex.export_frame(df, out / "r.xlsx", language="fr"))
        ex.FAST_XLSX = False
        try:
            cells = timed(lambda: ex.export_frame(df, out / "slow.xlsx", language="fr"))
        finally:
            ex.FAST_XLSX = True
    print(f"{args.rows:,} records: CSV {csv:.2f} s (pandas to_csv {csv_base:.2f} s), xlsx {xlsx:.2f} s "
          f"(xlsxwriter cell by cell {cells:.2f} s)")
    print(f"ratios: CSV {csv / csv_base:.1f}x pandas to_csv, xlsx {xlsx / cells:.2f}x cell by cell")
    # seconds bounded for the default 100,000 rows (scaled for --rows): what a consultant waits for
    scale = args.rows / 100_000
    print(json.dumps({"rows": args.rows, "rows_min": args.rows,
                      "csv_s": round(csv, 2), "csv_s_max": round(5 * scale, 2),
                      "xlsx_s": round(xlsx, 2), "xlsx_s_max": round(10 * scale, 2),
                      "csv_vs_pandas": round(csv / csv_base, 1), "csv_vs_pandas_max": 6,
                      "xlsx_vs_cell_by_cell": round(xlsx / cells, 2), "xlsx_vs_cell_by_cell_max": 0.6}))


if __name__ == "__main__":
    main()
