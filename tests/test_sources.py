"""Loading BC exports from files: recognition, merging, linking, idempotency, the sample_data round trip."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from test_sources_helpers import caption, file_hash, write_config_package, write_xlsx

from syncanalysis import Workspace, bc
from syncanalysis.sources import (
    EnvironmentConflictError,
    FileLoadReport,
    ValueParseError,
    format_report,
    load_files,
    load_sample_data,
)
from syncanalysis.sources import captions as cap
from syncanalysis.twin.export import TABLE_EXPORTS, canonical_frames, write_sample_data

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
ENV, COMPANY = "PRODUCTION", "CRONUS International Ltd."


def _csv_rows(path: Path) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_csv('{path}', all_varchar=true)").fetchall()[0][0]


# ------------------------------------------------------------------------------------------------
# The repository's sample_data: tables, then EN and FR pages (once per module)
@pytest.fixture(scope="module")
def sample_ws():
    ws = Workspace()
    reports = load_sample_data(ws, SAMPLE, environment=ENV, company=COMPANY)
    yield ws, {Path(r.path).relative_to(SAMPLE).as_posix(): r for r in reports}
    ws.close()


def test_sample_data_tables_land_complete_and_pages_add_only_skipped_records_and_fills(sample_ws):
    ws, reports = sample_ws
    t = SAMPLE / "tables"
    assert ws.count("jobs") == _csv_rows(t / "Integration Synch. Job.csv.gz")
    assert ws.count("job_errors") == _csv_rows(t / "Integration Synch. Job Errors.csv.gz")
    assert ws.count("couplings") == _csv_rows(t / "CRM Integration Record.csv.gz")
    assert ws.count("mappings") == _csv_rows(t / "Integration Table Mapping.csv.gz")
    assert ws.count("incidents") == _csv_rows(SAMPLE / "ground_truth_incidents.csv")
    # every row carries the environment and company asked for
    for table in ("jobs", "job_errors", "couplings", "mappings", "skipped_records", "incidents"):
        assert ws.count(table, filters={"environment": ENV, "company": COMPANY}) == ws.count(table)
    pages = {k: r for k, r in reports.items() if k.startswith("pages/")}
    assert len(pages) == 6
    for name, r in pages.items():
        for table, res in r.tables.items():
            if table == "skipped_records" and name.startswith("pages/en"):
                continue
            assert res.inserted == 0, (name, table)
            if table != "couplings":  # the only fills: existence flags of skipped couplings
                assert res.updated == 0, (name, table)
    en33 = reports["pages/en/Coupled Data Synchronization Errors.xlsx"]
    assert en33.tables["skipped_records"].inserted == ws.count("skipped_records") > 0
    # French pages of the same data add nothing at all: no loads row either
    for name, r in pages.items():
        if name.startswith("pages/fr"):
            assert (r.rows_inserted, r.rows_updated, r.rows_deleted, r.load_id) == (0, 0, 0, None)
    assert ws.count("loads") == len([r for r in reports.values() if r.load_id])
    # page jobs found their table jobs: no job was made up
    assert ws.count("jobs", filters={"inferred": True}) == 0
    assert reports["pages/en/Integration Synchronization Jobs.xlsx"].links["page jobs matched to existing jobs"] == \
        ws.count("jobs")


def test_sample_data_skipped_records_are_linked_to_their_couplings(sample_ws):
    ws, _ = sample_ws
    linked = ws.sql("""
        SELECT s.table_id, s.description, c.bc_record_id, c.skipped, c.bc_record_exists, s.record_exists,
               c.crm_record_exists, s.coupled_record_exists, s.link_inferred, c.inferred
        FROM skipped_records s JOIN couplings c USING (environment, company, table_id, integration_id)""")
    total = ws.count("skipped_records")
    assert len(linked) >= 0.95 * total > 0
    assert linked["link_inferred"].all() and linked["inferred"].all()
    assert (linked["bc_record_id"].str.split(": ", n=1).str[1] == linked["description"]).all()
    assert linked["skipped"].all()
    assert (linked["bc_record_exists"] == linked["record_exists"]).all()
    assert (linked["crm_record_exists"] == linked["coupled_record_exists"]).all()
    # table names are stored in English whatever the page's language
    assert set(ws.sql("SELECT DISTINCT table_name FROM skipped_records")["table_name"]) <= set(bc.BC_TABLES.values())


def test_sample_data_loads_record_provenance(sample_ws):
    ws, reports = sample_ws
    loads = ws.sql("SELECT * FROM loads ORDER BY load_id")
    for row in loads.itertuples():
        path = Path(row.source)
        assert row.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row.environment == ENV and row.company == COMPANY
        assert row.rows_read > 0 and row.kind
        assert '"parts"' in row.details
    text = format_report(list(reports.values()))
    assert "caption (fr)" in text and "caption (en)" in text and "nothing new" in text
    assert "skipped records linked to couplings" in text


# ------------------------------------------------------------------------------------------------
# A small twin's exports (fast), for the scenarios sample_data cannot show alone
@pytest.fixture(scope="module")
def small(short_sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    frames = canonical_frames(short_sim)
    write_sample_data(short_sim, out, frames)
    return out, frames


def _files(folder: Path, sub: str) -> list[Path]:
    return sorted((folder / sub).glob("*.*"))


def test_table_exports_give_back_the_twins_canonical_rows(small):
    out, frames = small
    ws = Workspace()
    load_files(ws, _files(out, "tables"), environment="E", company="C", progress=False)
    jobs = ws.query("jobs", limit=None).set_index("job_id")
    want = frames["jobs"].assign(job_id=lambda d: d["job_id"].map(uuid.UUID)).set_index("job_id")
    assert len(jobs) == len(want)
    for col in ("start_datetime", "finish_datetime", "mapping_name", "inserted", "modified", "failed", "skipped",
                "synch_direction", "type", "job_queue_log_entry_no", "coupled", "uncoupled"):
        got, exp = jobs.loc[want.index, col], want[col]
        assert (got.fillna(-1).astype(str) == exp.fillna(-1).astype(str)).all(), col
    assert not jobs["inferred"].any()
    errs = ws.query("job_errors", limit=None).set_index("error_no")
    wante = frames["job_errors"].set_index("error_no")
    for col in ("logged_at", "message", "error_message", "source_table", "source_key", "exception_detail"):
        assert (errs.loc[wante.index, col].astype(str) == wante[col].astype(str)).all(), col
    assert (errs["job_id"].astype(str) == wante["job_id"].astype(str)).all()
    cp = ws.query("couplings", limit=None).set_index(["table_id", "integration_id"])
    wantc = frames["couplings"].assign(integration_id=lambda d: d["integration_id"].map(uuid.UUID)) \
        .set_index(["table_id", "integration_id"])
    assert len(cp) == len(wantc)
    for col in ("skipped", "last_synch_result", "last_synch_crm_result"):
        got, want = cp.loc[wantc.index, col].astype(object), wantc[col].astype(object)
        assert ((got == want) | (got.isna() & want.isna())).all(), col
    # BC record ids inferred from errors agree with the twin's own record ids
    derived = cp[cp["bc_record_id"].notna()]
    assert len(derived) > 0 and derived["inferred"].all()
    assert (derived["bc_record_id"] == wantc.loc[derived.index, "bc_record_id"]).all()
    maps = ws.query("mappings", limit=None).set_index("name")
    wantm = frames["mappings"].set_index("name")
    for col in ("table_id", "integration_table_id", "direction", "deletion_conflict_resolution",
                "update_conflict_resolution", "synch_only_coupled_records", "table_caption"):
        assert (maps.loc[wantm.index, col].astype(str) == wantm[col].astype(str)).all(), col


def test_pages_alone_infer_jobs_and_links_and_tables_later_replace_them(small):
    out, frames = small
    ws = Workspace()
    en = load_files(ws, _files(out, "pages/en"), environment="E", company="C", progress=False)
    n_jobs = len(frames["jobs"])
    assert ws.count("jobs") == n_jobs and ws.count("jobs", filters={"inferred": True}) == n_jobs
    linked = ws.count("job_errors", filters={"job_inferred": True})
    assert 0 < linked <= ws.count("job_errors")
    # a linked error lies inside its job's run
    bad = ws.sql("SELECT count(*) AS n FROM job_errors e JOIN jobs j USING (environment, company, job_id) "
                 "WHERE e.logged_at < date_trunc('second', j.start_datetime) OR e.logged_at > j.finish_datetime")
    assert bad["n"][0] == 0
    # the made-up job ids are deterministic: the French export of the same data adds nothing
    loads = ws.count("loads")
    fr = load_files(ws, _files(out, "pages/fr"), environment="E", company="C", progress=False)
    assert all(r.rows_inserted == r.rows_updated == 0 and r.load_id is None for r in fr)
    assert ws.count("loads") == loads
    # mapping names come from the Direction texts
    got = ws.sql("SELECT mapping_name, synch_direction, count(*) AS n FROM jobs WHERE type = 'Synchronization' "
                 "GROUP BY ALL ORDER BY ALL")
    want = frames["jobs"][frames["jobs"]["type"] == "Synchronization"].groupby(
        ["mapping_name", "synch_direction"]).size().reset_index(name="n")
    assert got.astype(str).values.tolist() == want.astype(str).values.tolist()
    # the table exports arrive: real jobs replace the inferred ones, errors point at them
    tables = load_files(ws, _files(out, "tables"), environment="E", company="C", progress=False)
    jobs_report = next(r for r in tables if "table-5338" in r.kind)
    assert jobs_report.tables["jobs"].deleted == n_jobs
    assert ws.count("jobs") == n_jobs and ws.count("jobs", filters={"inferred": True}) == 0
    orphans = ws.sql("SELECT count(*) AS n FROM job_errors e ANTI JOIN jobs j USING (environment, company, job_id) "
                     "WHERE e.job_id IS NOT NULL")
    assert orphans["n"][0] == 0
    assert ws.count("skipped_records", filters={"link_inferred": True}) == ws.count("skipped_records") > 0
    assert en[0].load_id is not None


def test_pages_before_the_jobs_table_repoint_errors_to_the_real_jobs(small):
    out, _ = small
    ws = Workspace()
    load_files(ws, _files(out, "pages/en"), environment="E", company="C", progress=False)
    inferred = set(ws.sql("SELECT job_id FROM jobs")["job_id"].astype(str))
    (rep,) = load_files(ws, [out / "tables" / "Integration Synch. Job.csv.gz"], environment="E", company="C",
                        progress=False)
    assert rep.links["inferred page jobs replaced by table jobs"] == len(inferred)
    assert rep.links["errors re-pointed to table jobs"] == rep.tables["job_errors"].updated > 0
    now = set(ws.sql("SELECT DISTINCT job_id FROM job_errors WHERE job_id IS NOT NULL")["job_id"].astype(str))
    assert not now & inferred


def test_the_same_file_twice_changes_nothing(small, tmp_path):
    out, _ = small
    path = out / "tables" / "Integration Synch. Job Errors.csv.gz"
    with Workspace(tmp_path / "w.duckdb") as ws:
        (first,) = load_files(ws, [path], progress=False)
        assert first.rows_inserted > 0 and first.load_id == 1
        assert (first.environment, first.company, first.environment_from) == ("default", "default", "default")
        (again,) = load_files(ws, [path], progress=False)
        assert (again.rows_inserted, again.rows_updated, again.load_id) == (0, 0, None)
        assert ws.count("loads") == 1


def _errors_csv(path: Path, nos: range, *, changed: dict[int, str] | None = None, sep: str = ",") -> Path:
    changed = changed or {}
    df = pd.DataFrame({
        "No.": list(nos),
        "Integration Synch. Job ID": [str(uuid.UUID(int=n % 7 + 1)) for n in nos],
        "Source Record ID": [f"Customer: C{n:05d}" for n in nos],
        "Destination Record ID": [f"Dataverse Account: {{{str(uuid.UUID(int=n + 100)).upper()}}}" for n in nos],
        "Message": [changed.get(n, f"Error {n}") for n in nos],
        "Date/Time": [f"2026-03-{1 + n % 28:02d} 10:{n % 60:02d}:00" for n in nos],
        "Error Message": [changed.get(n, f"Error {n}") for n in nos],
    })
    df.to_csv(path, index=False, sep=sep)
    return path


def test_overlapping_exports_merge_by_natural_key(tmp_path):
    ws = Workspace()
    (y,) = load_files(ws, [_errors_csv(tmp_path / "yesterday.csv", range(1, 101))], progress=False)
    (t,) = load_files(ws, [_errors_csv(tmp_path / "today.csv", range(51, 151), changed={60: "Now different"})],
                      progress=False)
    assert y.rows_inserted == 100
    assert (t.rows_inserted, t.rows_updated) == (50, 1)
    assert ws.count("job_errors") == 150
    assert ws.query("job_errors", filters={"error_no": 60})["error_message"][0] == "Now different"
    assert ws.query("job_errors", filters={"error_no": 60})["destination_table"][0] == "Dataverse Account"


def _german_pages(tmp_path: Path) -> list[Path]:
    de = lambda key: caption(key, "de")  # noqa: E731
    t38, p38 = cap.T5338, cap.P5338
    jobs_header = [de((t38, "Start Date/Time")), de((t38, "Finish Date/Time")), de((p38, "Duration (page column)")),
                   de((t38, "Inserted")), de((t38, "Modified")), de((t38, "Deleted")), de((t38, "Unchanged")),
                   de((t38, "Failed")), de((t38, "Skipped")), de((p38, "Direction (page column)")), de((t38, "Type")),
                   de((t38, "Message"))]
    sync = caption((t38, "Type=Synchronization (option)"), "de")
    customer, account = caption(("BC table", "18 (caption)"), "de"), caption(("Dataverse table", "5341 (caption)"), "de")
    conn = caption((p38, "Direction text (label)"), "de").replace("%1 ", "").replace(" %2.", "")
    jobs = [["02.03.2026 10:00:01", "02.03.2026 10:00:03", "2 Sekunden 340 Millisekunden", 0, 1, 0, 4, 1, 0,
             f"{customer} {conn} {account}.", sync, ""],
            ["13.03.2026 09:30:00", "13.03.2026 09:31:05", "1 Minute 5 Sekunden", 2, 0, 0, 0, 0, 0,
             f"{account} {conn} {customer}.", sync, ""],
            ["13.03.2026 09:45:00", "13.03.2026 09:45:02", "2 Sekunden", 0, 0, 0, 0, 0, 0, "",
             caption((t38, "Type=Coupling (option)"), "de"), ""]]
    t39, p39 = cap.T5339, cap.P5339
    errors_header = [de((t39, "No.")), de((t39, "Date/Time")), de((p39, "Message (page column caption)")),
                     de((p39, "HelpLink (page column)")), de((p39, "Source (page column)")),
                     de((p39, "Destination (page column)"))]
    view = caption((p39, "View (value of Source/Destination)"), "de")
    errors = [[7, "02.03.2026 10:00:02", "Customer C1 must be coupled.", "", view, view]]
    p33 = cap.P5333
    skipped_header = [de((p33, k)) for k in ("Table ID (column)", "Table Name (column)", "Description (column)",
                                              "Record Exists (column)", "Int. Description (column)",
                                              "Int. Record Exists (column)", "Error Message (column)",
                                              "Failed On (column)")]
    ja, nein = caption(("Boolean", "Yes (value)"), "de"), caption(("Boolean", "No (value)"), "de")
    skipped = [[18, customer, "C1", ja, "Firma 1", nein, "Customer C1 must be coupled.", "02.03.2026 10:00:02"]]
    return [write_xlsx(tmp_path / "Auftraege.xlsx", jobs_header, jobs),
            write_xlsx(tmp_path / "Fehler.xlsx", errors_header, errors),
            write_xlsx(tmp_path / "Gekoppelt.xlsx", skipped_header, skipped)]


def test_german_page_exports_are_recognised_and_parsed(tmp_path):
    ws = Workspace()
    reports = load_files(ws, _german_pages(tmp_path), environment="E", company="C", progress=False)
    assert [r.kind for r in reports] == ["page-5338", "page-5339", "page-5333"]
    assert {r.parts[0]["language"] for r in reports} == {"de"}
    jobs = ws.query("jobs", order_by="start_datetime")
    assert jobs["start_datetime"].tolist() == [pd.Timestamp("2026-03-02 10:00:01"), pd.Timestamp("2026-03-13 09:30:00"),
                                               pd.Timestamp("2026-03-13 09:45:00")]
    assert jobs["mapping_name"].tolist()[:2] == ["CUSTOMER", "CUSTOMER"]
    assert jobs["synch_direction"].tolist()[:2] == [bc.TO_INTEGRATION, bc.FROM_INTEGRATION]
    assert jobs["type"].tolist() == ["Synchronization", "Synchronization", "Coupling"]
    assert jobs["inferred"].all()
    err = ws.query("job_errors")
    assert err["job_id"][0] == jobs["job_id"][0] and bool(err["job_inferred"][0])
    sk = ws.query("skipped_records")
    assert (bool(sk["record_exists"][0]), bool(sk["coupled_record_exists"][0])) == (True, False)
    assert sk["table_name"][0] == "Customer"
    assert "dd.mm.yyyy" in format_report(reports)


def test_configuration_package_workbook_loads_every_table_in_one_load(small, tmp_path):
    out, frames = small
    sheets = []
    for name, (table, cols) in TABLE_EXPORTS.items():
        df = frames[table][list(cols)].head(200)
        rows = [[None if pd.isna(v) else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else
                 (bool(v) if isinstance(v, bool) else v)) for v in r] for r in df.itertuples(index=False)]
        rows = [[("Yes" if v else "No") if isinstance(v, bool) else v for v in r] for r in rows]
        table_id = {"jobs": 5338, "job_errors": 5339, "couplings": 5331, "mappings": 5335}[table]
        sheets.append((table_id, name, list(cols.values()), rows))
    path = write_config_package(tmp_path / "package.xlsx", sheets)
    ws = Workspace()
    (r,) = load_files(ws, [path], environment="E", company="C", progress=False)
    assert r.kind == "config-package"
    assert {p["kind"] for p in r.parts} == {"table-5338", "table-5339", "table-5331", "table-5335"}
    assert all(p["header_row"] == 3 and p["package"][0] == "SYNC" for p in r.parts)
    assert ws.count("loads") == 1
    assert ws.count("jobs") == min(200, len(frames["jobs"]))
    assert ws.count("couplings") == min(200, len(frames["couplings"]))
    assert ws.count("mappings") == len(frames["mappings"])
    got = ws.query("couplings", limit=None).set_index("integration_id")["skipped"]
    want = frames["couplings"].head(200).assign(i=lambda d: d["integration_id"].map(uuid.UUID)).set_index("i")["skipped"]
    assert (got.loc[want.index] == want).all()


def test_unknown_captions_are_matched_by_column_signature(tmp_path):
    dutch = ["Begindatum/-tijd", "Einddatum/-tijd", "Duur", "Ingevoegd", "Gewijzigd", "Verwijderd", "Ongewijzigd",
             "Mislukt", "Overgeslagen", "Richting", "Soort", "Bericht"]
    rows = [["3/2/2026 10:00:01 AM", "3/2/2026 10:00:03 AM", "2 seconds", 0, 1, 0, 4, 1, 0,
             "Customer to Dataverse Account.", "Synchronization", ""],
            ["3/13/2026 9:30:00 AM", "3/13/2026 9:31:05 AM", "1 minute 5 seconds", 2, 0, 0, 0, 0, 0,
             "Dataverse Account to Customer.", "Synchronization", "Done"]]
    ws = Workspace()
    (r,) = load_files(ws, [write_xlsx(tmp_path / "jobs.xlsx", dutch, rows)], progress=False)
    assert r.kind == "page-5338" and r.parts[0]["language"] is None
    hows = {c["header"]: (c["column"], c["matched_by"]) for c in r.parts[0]["columns"]}
    assert hows["Begindatum/-tijd"] == ("start_datetime", "column signature")
    assert hows["Mislukt"] == ("failed", "column signature")
    assert hows["Richting"][0] == "direction"
    assert ws.query("jobs", order_by="start_datetime")["failed"].tolist() == [1, 0]
    assert "column signature" in format_report(r)
    # one unknown caption among known ones is placed by its position and values
    header = ["No.", "Date/Time", "Foutbericht", "Help Link", "Source", "Destination"]
    (r,) = load_files(ws, [write_xlsx(tmp_path / "errors.xlsx", header, [[5, "3/2/2026 10:00:02 AM", "Boom", "",
                                                                          "View", ""]])], progress=False)
    cols = {c["header"]: (c["column"], c["matched_by"]) for c in r.parts[0]["columns"]}
    assert cols["Foutbericht"] == ("error_message", "column signature")
    assert ws.query("job_errors")["error_message"][0] == "Boom"


def test_csv_in_cp1252_with_semicolons_and_french_captions(tmp_path):
    header = ["N°", "Date/heure", "Message d'erreur", "Lien d'aide", "Source", "Destination"]
    lines = [";".join(header),
             "1 234;21/11/2026 23:51:15;Échec de la mise à jour – 5 €;;Afficher;",
             "1235;05/11/2026 07:44:49;\"Texte; avec point-virgule\";;;"]
    path = tmp_path / "erreurs.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    ws = Workspace()
    (r,) = load_files(ws, [path], progress=False)
    assert r.kind == "page-5339" and r.parts[0]["language"] == "fr"
    got = ws.query("job_errors", order_by="error_no")
    assert got["error_no"].tolist() == [1234, 1235]
    assert got["error_message"].tolist() == ["Échec de la mise à jour – 5 €", "Texte; avec point-virgule"]
    assert got["logged_at"].tolist() == [pd.Timestamp("2026-11-21 23:51:15"), pd.Timestamp("2026-11-05 07:44:49")]
    # UTF-8 with a BOM, comma separated, thousands with a narrow no-break space
    path2 = tmp_path / "bom.csv"
    path2.write_bytes(("\ufeffNo.,Date/Time,Error Message\n1\u202f236,2026-11-21T10:00:00Z,Boom\n").encode("utf-8"))
    (r2,) = load_files(ws, [path2], progress=False)
    assert r2.rows_inserted == 1 and ws.count("job_errors", filters={"error_no": 1236}) == 1


def test_environment_from_the_file_and_conflicts(tmp_path):
    path = tmp_path / "errors.csv"
    _errors_csv(path, range(1, 4))
    df = pd.read_csv(path).assign(Environment="SANDBOX", Company="Fabrikam")
    df.to_csv(path, index=False)
    ws = Workspace()
    (r,) = load_files(ws, [path], progress=False)
    assert (r.environment, r.company, r.environment_from) == ("SANDBOX", "Fabrikam", "file")
    assert ws.count("job_errors", filters={"environment": "SANDBOX", "company": "Fabrikam"}) == 3
    with pytest.raises(EnvironmentConflictError, match=r"--environment 'PROD' contradicts .* 'SANDBOX'"):
        load_files(ws, [path], environment="PROD", progress=False)
    assert ws.count("loads") == 1


def test_progress_bar_and_forced_kind(small, capsys):
    out, _ = small
    ws = Workspace()
    reports = load_files(ws, [out / "tables"], kind="auto", progress=True)
    assert isinstance(reports[0], FileLoadReport) and len(reports) == 4
    (r,) = load_files(ws, [out / "tables" / "Integration Synch. Job.csv.gz"], kind="table-5338", progress=True)
    assert r.kind == "table-5338" and r.load_id is None
    assert set(cap.KINDS) >= {"auto", "page-5338", "page-5339", "page-5333", "page-5335", "table-5338", "table-5339",
                              "table-5331", "table-5335"}


def test_integration_table_mappings_page(tmp_path):
    header = ["Name", "Table", "Table Filter", "Direction", "Integration Table", "Integration Table Filter",
              "Synch. Only Coupled Records", "Multi-Company Synchronization Enabled", "Integration Field",
              "Integration Field Type", "Table Config Templates", "Integration Table Config Templates",
              "Synch. Modified On Filter", "Synch. Int. Tbl. Mod. On Fltr.", "Resolve Deletion Conflicts",
              "Resolve Update Conflicts", "Disable Event-driven Synch. Job Rescheduling", "User Defined"]
    rows = [["CUSTOMER", "Customer", "", "Bidirectional", "Dataverse Account", "VERSION(1)", "No", "No", "", "",
             "", "", "11/19/2026 10:04:38 AM", "11/18/2026 8:54:22 AM", "Restore records",
             "Send data update to integration table", "No", "No"],
            ["VENDOR", "Vendor", "", "Bidirectional", "Dataverse Account", "", "Yes", "No", "", "", "", "", "", "",
             "", "", "No", "No"]]
    ws = Workspace()
    (r,) = load_files(ws, [write_xlsx(tmp_path / "mappings.xlsx", header, rows)], environment="E", company="C",
                      progress=False)
    assert r.kind == "page-5335"
    m = ws.query("mappings", order_by="name")
    assert m["table_id"].tolist() == [18, 23] and m["integration_table_id"].tolist() == [5341, 5341]
    assert m["deletion_conflict_resolution"].tolist() == ["Restore Records", "None"]
    assert m["update_conflict_resolution"].tolist() == ["Send Update to Integration", "None"]
    assert m["synch_only_coupled_records"].tolist() == [False, True]
    assert int(m["fidelity"][0]) == 1


def test_a_failed_load_leaves_a_file_workspace_byte_for_byte_unchanged(small, tmp_path):
    out, _ = small
    path = tmp_path / "w.duckdb"
    with Workspace(path) as ws:
        load_files(ws, [out / "tables" / "Integration Synch. Job.csv.gz"], progress=False)
    before = file_hash(path)
    bad = tmp_path / "bad.csv"
    _errors_csv(bad, range(1, 3000))
    text = bad.read_text().splitlines()
    text[2500] = text[2500].replace("2026-03", "2026-13")  # a month that does not exist, late in the file
    bad.write_text("\n".join(text) + "\n")
    with Workspace(path) as ws:
        with pytest.raises(ValueParseError, match="row 2501"):
            load_files(ws, [bad], progress=False)
    assert file_hash(path) == before


# ------------------------------------------------------------------------------------------------
# The one-pass path for big first loads, and its fall-back to the careful path
def _load_both_ways(monkeypatch, path: Path) -> tuple[Workspace, Workspace, FileLoadReport, FileLoadReport]:
    import syncanalysis.sources.files as files

    monkeypatch.setattr(files, "_FAST_MIN_BYTES", 0)  # every CSV tries the one-pass path
    fast_ws = Workspace()
    (fast,) = load_files(fast_ws, [path], environment=ENV, company=COMPANY, progress=False)
    monkeypatch.setattr(files, "_FAST_MIN_BYTES", 1 << 60)  # never
    careful_ws = Workspace()
    (careful,) = load_files(careful_ws, [path], environment=ENV, company=COMPANY, progress=False)
    return fast_ws, careful_ws, fast, careful


def _same_rows(a: Workspace, b: Workspace, table: str) -> None:
    key = ", ".join(TABLES_KEY[table])
    left, right = (w.sql(f"SELECT * FROM {table} ORDER BY {key}") for w in (a, b))
    pd.testing.assert_frame_equal(left, right)


TABLES_KEY = {"job_errors": ["error_no"], "jobs": ["job_id"], "couplings": ["table_id", "integration_id"]}


@pytest.mark.parametrize("name", ["Integration Synch. Job Errors", "Integration Synch. Job", "CRM Integration Record"])
def test_the_one_pass_load_gives_the_same_rows_as_the_careful_one(monkeypatch, name):
    table = TABLE_EXPORTS[name][0]
    fast_ws, careful_ws, fast, careful = _load_both_ways(monkeypatch, SAMPLE / "tables" / f"{name}.csv.gz")
    assert fast.one_pass and not careful.one_pass
    assert fast.rows_inserted == careful.rows_inserted == fast_ws.count(table) > 1000
    _same_rows(fast_ws, careful_ws, table)
    assert fast.details["parts"][0]["columns"] == careful.details["parts"][0]["columns"]


def test_a_value_after_the_first_rows_that_does_not_parse_falls_back_and_is_named(monkeypatch, tmp_path):
    import syncanalysis.sources.files as files
    path = _errors_csv(tmp_path / "e.csv", range(1, 3001))
    text = path.read_text().splitlines()
    text[2500] = text[2500].replace("2026-03-", "2026-13-")  # row 2501 of data: no such month
    path.write_text("\n".join(text) + "\n")
    monkeypatch.setattr(files, "_FAST_MIN_BYTES", 0)
    ws = Workspace()
    with pytest.raises(ValueParseError, match="row 2501"):
        load_files(ws, [path], progress=False)
    assert ws.count("job_errors") == 0 and ws.count("loads") == 0


def test_repeated_rows_after_the_first_rows_fall_back_to_the_careful_dedupe(monkeypatch, tmp_path):
    import syncanalysis.sources.files as files

    path = _errors_csv(tmp_path / "e.csv", range(1, 3001))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + lines[-5:]) + "\n")  # the last five rows twice
    monkeypatch.setattr(files, "_FAST_MIN_BYTES", 0)
    ws = Workspace()
    (r,) = load_files(ws, [path], progress=False)
    assert ws.count("job_errors") == 3000 and r.rows_rejected == 5 and not r.one_pass


def test_links_hold_for_names_with_quotes_and_the_word_and(small):
    out, _ = small
    plain, odd = Workspace(), Workspace()
    load_files(plain, _files(out, "tables") + _files(out, "pages/en"), environment="E", company="C", progress=False)
    load_files(odd, _files(out, "tables") + _files(out, "pages/en"), environment="PROD AND TEST",
               company="Smith AND Sons' Co", progress=False)
    for col in ("bc_record_id", "crm_record_exists"):
        n = plain.count("couplings", filters={col: None})
        assert n < plain.count("couplings") and odd.count("couplings", filters={col: None}) == n, col
    assert odd.count("skipped_records", filters={"integration_id": None}) == \
        plain.count("skipped_records", filters={"integration_id": None}) < plain.count("skipped_records")


def test_a_load_inside_a_callers_transaction_takes_the_careful_path(monkeypatch, tmp_path):
    import syncanalysis.sources.files as files

    monkeypatch.setattr(files, "_FAST_MIN_BYTES", 0)
    path = _errors_csv(tmp_path / "e.csv", range(1, 301))
    ws = Workspace()
    with ws.transaction():
        (r,) = load_files(ws, [path], progress=False)
    assert not r.one_pass and ws.count("job_errors") == 300


def test_the_null_guid_of_a_table_export_is_blank_not_a_bad_value(tmp_path):
    # BC writes a GUID field that was never set as the null GUID ({00000000-...} in RapidStart exports)
    path = tmp_path / "crm_integration_record.csv"
    path.write_text("Table ID,Integration ID,CRM ID,Last Synch. Job ID,Last Synch. CRM Job ID\n"
                    "18,{A1000000-0000-4000-8000-000000000001},{8B390C24-9C72-E511-80D4-00155D2A68D1},"
                    "{00000000-0000-0000-0000-000000000000},3b7e2a10-5c1d-4f2e-9a61-0d2c4b6e8f01\n", encoding="utf-8")
    ws = Workspace()
    load_files(ws, [path], progress=False)
    row = ws.query("couplings").iloc[0]
    assert pd.isna(row["last_synch_job_id"])
    assert str(row["last_synch_crm_job_id"]) == "3b7e2a10-5c1d-4f2e-9a61-0d2c4b6e8f01"
