"""Benchmark the triage panel: one page render (query + widget update) over 1,000,000 error rows.

The workspace is the demo (90 days, scale 1) replicated in SQL until ``job_errors`` holds at least
1,000,000 rows: every replica gets new coupling GUIDs, new BC record ids (``Customer: 10000~3``) and new
error numbers, so the panel lists ~17 times the couplings, each with its own errors. The baseline,
measured in the same run, is a bare page of the error table (``SELECT * FROM job_errors ORDER BY
logged_at DESC LIMIT 50 OFFSET n``), i.e. what page 5339 shows, at the same offsets; the cases run in
turns so that a busy machine slows them alike.

The panel keeps the filtered, sorted keys in a temporary index (rebuilt on a filter, sort or workspace
change), so a page at any depth is a range of that index plus ``records()`` for its 50 keys; the figures
include the cost of a filter and a sort change, where that index is built. ``widget_update_ms`` is the
part of a page render outside ``records()``: the index range (about 1 ms) and the widget updates.

Usage: ``python benchmarks/bench_panel.py [--rows N] [--repeat N] [--keep PATH]``.
Last line: one JSON object of the figures, each with its bound.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from syncanalysis.demo import ensure_demo
from syncanalysis.workspace import Workspace

PAGE_MS_MAX = 200
FILTER_MS_MAX = 300  # a filter change (issue 16): count, facets, list order and the first page
OPEN_MS_MAX = 2000  # opening the panel: every click of a consultant under 2 s
PAGE_VS_BARE_MAX = 40  # a page (latest errors, signatures, widgets) against a bare SELECT of 50 error rows


def replicate(ws: Workspace, rows: int) -> int:
    """Copy couplings and errors until ``job_errors`` has ``rows`` rows; return the number of copies added."""
    con = ws.con
    n_err = con.execute("SELECT count(*) FROM job_errors").fetchall()[0][0]
    copies = max(0, -(-rows // n_err) - 1)
    if not copies:
        return 0
    top = con.execute("SELECT max(error_no) FROM job_errors").fetchall()[0][0]
    con.execute(f"CREATE TEMP TABLE _k AS SELECT range AS k FROM range(1, {copies + 1})")
    with ws.transaction():
        # new record ids for BC keys: '<caption>: <key>~k' (source for BC-side errors, destination otherwise)
        con.execute(
            "INSERT INTO couplings SELECT c.* REPLACE ("
            " CAST(md5(CAST(integration_id AS VARCHAR) || k)::UUID AS UUID) AS integration_id,"
            " CAST(md5(CAST(crm_id AS VARCHAR) || k)::UUID AS UUID) AS crm_id,"
            " bc_record_id || '~' || k AS bc_record_id,"
            " crm_description || ' ' || k AS crm_description)"
            " FROM couplings c, _k")
        con.execute(
            f"INSERT INTO job_errors SELECT e.* REPLACE (error_no + k * {top} AS error_no,"
            " CASE WHEN source_table LIKE 'Dataverse %' OR source_table LIKE 'CRM %' THEN source_record_id"
            "      ELSE source_record_id || '~' || k END AS source_record_id,"
            " CASE WHEN source_table LIKE 'Dataverse %' OR source_table LIKE 'CRM %'"
            "      THEN destination_record_id || '~' || k ELSE destination_record_id END AS destination_record_id,"
            " logged_at + to_seconds(k) AS logged_at)"
            " FROM job_errors e, _k")
        # a new load row, so the panel's latest-error index is rebuilt for the new history
        con.execute("INSERT INTO loads (load_id, source, kind, loaded_at) "
                    "SELECT coalesce(max(load_id), 0) + 1, 'bench:replicate', 'bench', now() FROM loads")
    con.execute("DROP TABLE _k")
    return copies


def interleaved(cases: dict, repeat: int) -> dict[str, list[float]]:
    """Run every case ``repeat`` times, one of each in turn; return the milliseconds per case."""
    out: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(repeat):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn(i)
            out[name].append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="error rows to reach (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=21, help="page renders per case (median reported)")
    ap.add_argument("--keep", type=Path, help="keep the replicated workspace at this path")
    args = ap.parse_args()

    from syncanalysis.analysis.signatures import assign_signatures
    from syncanalysis.widgets import triage
    from syncanalysis.widgets.triage import TriagePanel

    demo = ensure_demo(progress=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_panel_"))
    path = args.keep or tmp / "panel.duckdb"
    shutil.copyfile(demo, path)
    try:
        ws = Workspace(path)
        t = time.perf_counter()
        assign_signatures(ws)  # classified once on the demo; the copies carry the signatures along
        copies = replicate(ws, args.rows)
        build_s = time.perf_counter() - t
        n_err, n_coup = ws.con.execute(
            "SELECT (SELECT count(*) FROM job_errors), (SELECT count(*) FROM couplings)").fetchall()[0]
        print(f"workspace: {n_err:,} error rows, {n_coup:,} couplings ({copies} copies of the demo, {build_s:.1f} s)")

        t = time.perf_counter()
        panel = TriagePanel(ws, page_size=50)
        open_ms = (time.perf_counter() - t) * 1000
        pages = panel.pages
        print(f"panel opened in {open_ms:.0f} ms (latest-error index, counts, facets): {panel.total:,} records, "
              f"{pages:,} pages")

        # Split each render into its query and its widget update by timing the panel's records() call.
        query_log: list[float] = []
        real_records = triage.records

        def timed_records(*a, **k):
            t0 = time.perf_counter()
            out = real_records(*a, **k)
            query_log.append((time.perf_counter() - t0) * 1000)
            return out

        triage.records = timed_records

        # what a user pages through (the first pages) and the deep end of the list (the sort keeps more rows);
        # the cases run in turns, so a busy machine slows them alike and the ratio stays fair
        first = list(range(10))
        deep = [pages // 2, pages * 3 // 4, pages - 1]
        page_queries: list[float] = []

        def page_case(i: int) -> None:
            query_log.clear()
            panel.go_to_page(first[i % 10])
            page_queries.append(query_log[0])
            assert len(panel.page_rows) == 50

        cases = {
            "page": page_case,
            "bare": lambda i: bare_page(first[i % 10] * 50),
            "deep": lambda i: panel.go_to_page(deep[i % 3]),
            "bare_deep": lambda i: bare_page(int(n_err * (0.5, 0.75, 0.99)[i % 3])),
        }

        def bare_page(offset: int) -> None:
            ws.con.execute("SELECT * FROM job_errors ORDER BY logged_at DESC, error_no LIMIT 50 OFFSET ?",
                           [offset]).df()

        ms = interleaved(cases, args.repeat)
        widget_ms = [total - q for total, q in zip(ms["page"], page_queries)]
        # what a filter or sort change costs (count, facets, the list index, the first page)
        states = ["skipped", None]
        # with a ticked record, so the change also clears the selection (as a user's would)
        ms |= interleaved({"filter": lambda i: (panel.select_rows([0]), panel.set_filters(state=states[i % 2]))}, 6)
        orders = [("bc_record_id", False), ("failed_on", True)]
        ms |= interleaved({"sort": lambda i: panel.sort_by(*orders[i % 2])}, 6)
        panel.set_filters(state="skipped")
        skipped_pages = panel.pages
        ms |= interleaved({"filtered": lambda i: panel.go_to_page(i % min(10, skipped_pages))}, args.repeat)
        panel.set_filters(state=None)
        panel.sort_by("bc_record_id", descending=False)
        ms |= interleaved({"sorted": lambda i: panel.go_to_page(first[i % 10])}, args.repeat)
        triage.records = real_records

        med = {k: statistics.median(v) for k, v in ms.items()}
        print(f"page render (query + widgets), first 10 pages: median {med['page']:.1f} ms, max "
              f"{max(ms['page']):.1f} ms over {args.repeat}")
        print(f"  outside records() (index range, widgets): median {statistics.median(widget_ms):.1f} ms")
        print(f"  skipped only ({skipped_pages:,} pages):               median {med['filtered']:.1f} ms")
        print(f"  sorted by BC record:                      median {med['sorted']:.1f} ms")
        print(f"  deep pages (middle .. last of {pages:,}):     median {med['deep']:.1f} ms")
        print(f"filter change (count, facets, index, page): median {med['filter']:.0f} ms; sort change "
              f"median {med['sort']:.0f} ms")
        print(f"baseline bare SELECT page of job_errors:    median {med['bare']:.1f} ms "
              f"(deep offsets {med['bare_deep']:.1f} ms)")
        figures = {
            "error_rows": n_err, "error_rows_min": args.rows, "couplings": n_coup, "couplings_min": 1,
            "page_ms": round(med["page"], 1), "page_ms_max": PAGE_MS_MAX,
            "page_filtered_ms": round(med["filtered"], 1), "page_filtered_ms_max": PAGE_MS_MAX,
            "page_sorted_ms": round(med["sorted"], 1), "page_sorted_ms_max": PAGE_MS_MAX,
            "page_deep_ms": round(med["deep"], 1), "page_deep_ms_max": PAGE_MS_MAX,
            "widget_update_ms": round(statistics.median(widget_ms), 1), "widget_update_ms_max": PAGE_MS_MAX,
            "bare_select_ms": round(med["bare"], 1), "bare_select_ms_max": PAGE_MS_MAX,
            # the baselines: a bare SELECT of 50 error rows, and at deep offsets (slow: what the index avoids)
            "bare_select_deep_ms": round(med["bare_deep"], 1), "bare_select_deep_ms_max": 10 * OPEN_MS_MAX,
            "page_deep_vs_bare_deep": round(med["deep"] / max(med["bare_deep"], 1e-9), 2),
            "page_deep_vs_bare_deep_max": 1,
            "page_vs_bare_select": round(med["page"] / max(med["bare"], 1e-9), 1),
            "page_vs_bare_select_max": PAGE_VS_BARE_MAX,
            "filter_change_ms": round(med["filter"]), "filter_change_ms_max": FILTER_MS_MAX,
            "sort_change_ms": round(med["sort"]), "sort_change_ms_max": FILTER_MS_MAX,
            "open_ms": round(open_ms), "open_ms_max": OPEN_MS_MAX,
        }
        ws.close()
        print(json.dumps(figures))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
