"""Benchmark: loading BC exports into a workspace against bare readers measured in the same run.

1. CSV: a table 5339 export (Integration Synch. Job Errors, field captions as headers) of N error rows
   (default 1,000,000), made from ``sample_data``'s errors repeated and renumbered. Our
   :func:`syncanalysis.sources.load_files` into a fresh workspace (recognition, parsing, checks, merge,
   linking) against DuckDB's bare ``read_csv`` of the same file into a table (target: within 2x) and
   against a plain pandas ``read_csv`` + insert of the frame into DuckDB (we must be faster).
2. xlsx: a page 5339 export (Integration Synchronization Errors) of M rows (default 100,000), against a
   bare calamine parse of the same file (``python_calamine`` ``to_python()``; target: at most 1.0x) and a
   bare fastexcel read of it to Arrow (target: within 1.5x). The pandas ``read_excel(engine="calamine")``
   time is printed for reference.

Each figure is the best of ``--repeat`` runs. The last line is one JSON object with every figure and
its bound (``_max``). Run from the repository root: ``python benchmarks/bench_ingest.py``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

from syncanalysis import Workspace
from syncanalysis.sources import load_files

ROOT = Path(__file__).resolve().parents[1]
ERRORS_CSV = ROOT / "sample_data" / "tables" / "Integration Synch. Job Errors.csv.gz"
ERRORS_XLSX = ROOT / "sample_data" / "pages" / "en" / "Integration Synchronization Errors.xlsx"


def best(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` runs of ``fn``."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def make_csv(path: Path, rows: int) -> None:
    """Write a table 5339 CSV export of ``rows`` rows (sample errors repeated, renumbered)."""
    con = duckdb.connect()
    con.execute(
        f"""COPY (
            SELECT row_number() OVER () AS "No.", s."Integration Synch. Job ID", s."Source Record ID",
                   s."Destination Record ID", s."Message", s."Date/Time" + INTERVAL (r.i * 7) DAY AS "Date/Time",
                   s."Exception Detail", s."Error Message"
            FROM read_csv('{ERRORS_CSV}', all_varchar=false) s, range({rows // 60_000 + 2}) r(i)
            LIMIT {rows}
        ) TO '{path}' (HEADER, DELIMITER ',', TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S.%f')""")
    con.close()


def make_xlsx(path: Path, rows: int) -> None:
    """Write a page 5339 xlsx export of ``rows`` rows (sample page rows repeated, renumbered)."""
    import xlsxwriter
    from python_calamine import CalamineWorkbook

    src = CalamineWorkbook.from_path(str(ERRORS_XLSX)).get_sheet_by_index(0).to_python()
    header, body = src[0], src[1:]
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                         "strings_to_urls": False, "strings_to_formulas": False})
    ws = wb.add_worksheet("Integration Synchronization Err")
    ws.write_row(0, 0, header)
    for i in range(rows):
        r = body[i % len(body)]
        ws.write_number(i + 1, 0, rows - i)
        for j in range(1, len(r)):
            ws.write_string(i + 1, j, r[j])
    wb.close()


def ours(path: Path, repeat: int) -> float:
    """Best time of loading ``path`` into a fresh in-memory workspace (created outside the timing)."""
    times = []
    for _ in range(repeat):
        with Workspace() as ws:
            t = time.perf_counter()
            (report,) = load_files(ws, [path], environment="BENCH", company="CRONUS", progress=False)
            times.append(time.perf_counter() - t)
            assert report.rows_inserted > 0
    return min(times)


def duckdb_read_csv(path: Path) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}')")
    con.close()


def pandas_read_csv(path: Path) -> None:
    df = pd.read_csv(path)
    con = duckdb.connect()
    con.register("df", df)
    con.execute("CREATE TABLE t AS SELECT * FROM df")
    con.close()


def calamine_parse(path: Path) -> None:
    from python_calamine import CalamineWorkbook

    CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()


def fastexcel_to_arrow(path: Path) -> None:
    import fastexcel

    fastexcel.read_excel(str(path)).load_sheet(0, dtypes="string").__arrow_c_array__()


def fastexcel_to_duckdb(path: Path) -> None:
    """The floor of any xlsx load into DuckDB: fastexcel's text cells copied into a table, nothing typed."""
    import fastexcel

    con = duckdb.connect()
    con.register("sheet", fastexcel.read_excel(str(path)).load_sheet(0, dtypes="string"))
    con.execute("CREATE TABLE t AS SELECT * FROM sheet")
    con.close()


def pandas_read_excel(path: Path) -> None:
    pd.read_excel(path, engine="calamine")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv-rows", type=int, default=1_000_000)
    ap.add_argument("--xlsx-rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "Integration Synch. Job Errors.csv"
        xlsx_path = Path(tmp) / "Integration Synchronization Errors.xlsx"
        make_csv(csv_path, args.csv_rows)
        make_xlsx(xlsx_path, args.xlsx_rows)
        print(f"CSV {args.csv_rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB; "
              f"xlsx {args.xlsx_rows:,} rows, {xlsx_path.stat().st_size / 1e6:.1f} MB")
        t_read_csv = best(lambda: duckdb_read_csv(csv_path), args.repeat)
        t_pandas = best(lambda: pandas_read_csv(csv_path), args.repeat)
        t_csv = ours(csv_path, args.repeat)
        print(f"CSV ingest {t_csv:.2f} s; DuckDB read_csv {t_read_csv:.2f} s; pandas read_csv + insert {t_pandas:.2f} s")
        t_calamine = best(lambda: calamine_parse(xlsx_path), args.repeat)
        t_read_excel = best(lambda: pandas_read_excel(xlsx_path), args.repeat)
        t_fastexcel = best(lambda: fastexcel_to_arrow(xlsx_path), args.repeat)
        t_floor = best(lambda: fastexcel_to_duckdb(xlsx_path), args.repeat)
        t_xlsx = ours(xlsx_path, args.repeat)
        print(f"xlsx ingest {t_xlsx:.2f} s; calamine parse {t_calamine:.2f} s; fastexcel to Arrow "
              f"{t_fastexcel:.2f} s; pandas read_excel(calamine) {t_read_excel:.2f} s; for reference, fastexcel "
              f"into an untyped DuckDB table {t_floor:.2f} s ({t_floor / t_fastexcel:.2f}x fastexcel to Arrow)")
    result = {
        "ingest_vs_read_csv": round(t_csv / t_read_csv, 2), "ingest_vs_read_csv_max": 2,
        "ingest_vs_pandas": round(t_csv / t_pandas, 2), "ingest_vs_pandas_max": 1,
        "xlsx_vs_calamine": round(t_xlsx / t_calamine, 2), "xlsx_vs_calamine_max": 1.0,
        "xlsx_vs_fastexcel": round(t_xlsx / t_fastexcel, 2), "xlsx_vs_fastexcel_max": 1.5,
        "xlsx_vs_read_excel": round(t_xlsx / t_read_excel, 2),
        "csv_seconds": round(t_csv, 2), "xlsx_seconds": round(t_xlsx, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
