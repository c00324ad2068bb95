"""The bad-input corpus: every file gets a clear SourceError naming where and what to do, and writes nothing.

The files are generated here (tmp_path), not committed.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from test_sources_helpers import file_hash, snapshot, write_xlsx

from syncanalysis import Workspace
from syncanalysis.errors import SyncAnalysisError
from syncanalysis.sources import (
    DuplicateRowError,
    EnvironmentConflictError,
    UnreadableFileError,
    UnrecognisedFileError,
    ValueParseError,
    load_files,
)

ERR_HEADER = ["No.", "Date/Time", "Error Message", "Help Link", "Source", "Destination"]
JOB_HEADER = ["Start Date/Time", "Finish Date/Time", "Duration", "Inserted", "Modified", "Deleted", "Unchanged",
              "Failed", "Skipped", "Direction", "Type", "Message"]


def _err_rows(n: int = 3) -> list[list[object]]:
    return [[i, f"3/{i % 27 + 1}/2026 10:00:0{i % 9} AM", f"Error {i}", "", "View", ""] for i in range(1, n + 1)]


def _csv(path: Path, header: list[str], rows: list[list[object]], sep: str = ",") -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=sep)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def ws(tmp_path):
    """A file workspace already holding one good load, so 'unchanged' is checked against real content."""
    w = Workspace(tmp_path / "w.duckdb")
    load_files(w, [write_xlsx(tmp_path / "good.xlsx", ERR_HEADER, _err_rows())], environment="E", company="C",
               progress=False)
    yield w
    w.close()


def _xlsx_bytes(tmp_path: Path) -> bytes:
    return write_xlsx(tmp_path / "tmp.xlsx", ERR_HEADER, _err_rows(50)).read_bytes()


def _corrupt_xlsx(tmp_path: Path) -> bytes:
    """A complete zip whose worksheet XML is garbage."""
    src = zipfile.ZipFile(io.BytesIO(_xlsx_bytes(tmp_path)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = b"<worksheet><sheetData><row r='1'><c r='A1' t='s'><v>0</v></c>" + b"\x00\xff garbage"
            z.writestr(item, data)
    return out.getvalue()


CASES = {
    "empty file": (lambda tp: (tp / "empty.csv", b""), UnreadableFileError, r"empty"),
    "only blanks": (lambda tp: (tp / "blank.csv", b"\n\n   \n"), UnreadableFileError, r"empty"),
    "header only csv": (lambda tp: (tp / "header.csv", (",".join(ERR_HEADER) + "\n").encode()),
                        UnreadableFileError, r"header but no data rows"),
    "header only xlsx": (lambda tp: (write_xlsx(tp / "h.xlsx", ERR_HEADER, []), None), UnreadableFileError,
                         r"sheet 'Sheet1', row 1: the sheet has a header but no data rows"),
    "another page": (lambda tp: (write_xlsx(tp / "customers.xlsx", ["No.", "Name", "Responsibility Center",
                                                                      "Location Code", "Phone No.", "Contact"],
                                            [["10000", "Adatum", "", "RED", "555", "Ann"]]), None),
                     UnrecognisedFileError, r"not an export of a known page or table"),
    "unknown columns": (lambda tp: (tp / "unknown.csv", b"Foo,Bar,Baz\nx,y,z\n1,2,3\n"),
                        UnrecognisedFileError, r"its columns are 'Foo', 'Bar', 'Baz'"),
    "required column missing": (lambda tp: (write_xlsx(tp / "nodate.xlsx", ["No.", "Error Message", "Help Link"],
                                                       [[1, "Boom", ""]]), None),
                                UnrecognisedFileError, r"lacks the column\(s\) 'Date/Time'"),
    "truncated xlsx": (lambda tp: (tp / "cut.xlsx", _xlsx_bytes(tp)[:1500]), UnreadableFileError,
                       r"truncated or corrupt"),
    "corrupt xlsx": (lambda tp: (tp / "corrupt.xlsx", _corrupt_xlsx(tp)), UnreadableFileError, r"corrupt"),
    "binary garbage": (lambda tp: (tp / "garbage.csv", bytes(range(256)) * 64), UnreadableFileError,
                       r"binary data"),
    "date fitting no locale": (lambda tp: (_csv(tp / "dates.csv", ERR_HEADER, [
        [1, "13/01/2026 10:00:00", "a", "", "", ""], [2, "01/13/2026 10:00:00", "b", "", "", ""]]), None),
        ValueParseError, r"row 3, column 'Date/Time': this date column fits no locale.*value '01/13/2026"),
    "date that is no date": (lambda tp: (_csv(tp / "nodate.csv", ERR_HEADER, [
        [1, "2026-01-01 10:00:00", "a", "", "", ""], [2, "next tuesday", "b", "", "", ""]]), None),
        ValueParseError, r"row 3, column 'Date/Time': this value is not a date/time.*'next tuesday'"),
    "text in a number column": (lambda tp: (write_xlsx(tp / "jobs.xlsx", JOB_HEADER, [
        ["3/2/2026 10:00:01 AM", "3/2/2026 10:00:03 AM", "2 seconds", 0, 1, 0, 4, 1, 0,
         "Customer to Dataverse Account.", "Synchronization", ""],
        ["3/2/2026 10:01:01 AM", "3/2/2026 10:01:03 AM", "2 seconds", "many", 1, 0, 4, 1, 0,
         "Customer to Dataverse Account.", "Synchronization", ""]]), None),
        ValueParseError, r"sheet 'Sheet1', row 3, column 'Inserted': this value is not a whole number.*'many'"),
    "unknown option caption": (lambda tp: (write_xlsx(tp / "jobs2.xlsx", JOB_HEADER, [
        ["3/2/2026 10:00:01 AM", "3/2/2026 10:00:03 AM", "2 seconds", 0, 1, 0, 4, 1, 0,
         "Customer to Dataverse Account.", "Teleportation", ""]]), None),
        ValueParseError, r"column 'Type': this value is not a known Type value.*'Teleportation'"),
    "conflicting duplicates": (lambda tp: (_csv(tp / "dups.csv", ERR_HEADER, [
        [1, "2026-01-01 10:00:00", "a", "", "", ""], [2, "2026-01-01 10:00:00", "b", "", "", ""],
        [1, "2026-01-01 10:00:00", "changed", "", "", ""]]), None),
        DuplicateRowError, r"rows 2 and 4 have the same key \(error_no=1\) but different values"),
    "two environments": (lambda tp: (_csv(tp / "envs.csv", ERR_HEADER + ["Environment"], [
        [1, "2026-01-01 10:00:00", "a", "", "", "", "PROD"], [2, "2026-01-01 10:00:00", "b", "", "", "", "TEST"]]),
        None), EnvironmentConflictError, r"row 3, column 'Environment': one load must hold one environment, "
                                         r"but this file has 'PROD' \(row 2\) and 'TEST'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_files_get_a_clear_error_and_change_nothing(case, ws, tmp_path):
    make, error, pattern = CASES[case]
    path, data = make(tmp_path)
    if data is not None:
        path.write_bytes(data)
    ws.con.execute("CHECKPOINT")
    before, digest = snapshot(ws), file_hash(ws.path)
    with pytest.raises(error, match=pattern) as info:
        load_files(ws, [path], environment="E", company="C", progress=False)
    assert isinstance(info.value, SyncAnalysisError)
    assert str(path) in str(info.value)
    assert info.value.hint  # says what to do
    assert snapshot(ws) == before
    ws.con.execute("CHECKPOINT")
    assert file_hash(ws.path) == digest
    # no temporary objects are left behind
    assert ws.sql("SELECT count(*) AS n FROM duckdb_tables() WHERE temporary")["n"][0] == 0


def test_environment_argument_contradicting_the_file(ws, tmp_path):
    path = _csv(tmp_path / "env.csv", ERR_HEADER + ["Environment"], [[9, "2026-01-01 10:00:00", "a", "", "", "",
                                                                        "PROD"]])
    before = snapshot(ws)
    with pytest.raises(EnvironmentConflictError, match=r"--environment 'E' contradicts the file's environment column, "
                                                       r"which says 'PROD'"):
        load_files(ws, [path], environment="E", progress=False)
    assert snapshot(ws) == before


def test_identical_duplicates_are_dropped_and_counted_as_rejected(ws, tmp_path):
    rows = [[10, "2026-01-01 10:00:00", "a", "", "", ""], [11, "2026-01-01 10:00:00", "b", "", "", ""],
            [10, "2026-01-01 10:00:00", "a", "", "", ""]]
    (r,) = load_files(ws, [_csv(tmp_path / "dup.csv", ERR_HEADER, rows)], environment="E", company="C",
                      progress=False)
    assert (r.rows_inserted, r.rows_rejected) == (2, 1)
    assert any("repeat an earlier row" in w for w in r.warnings)
    assert ws.sql(f"SELECT rows_rejected FROM loads WHERE load_id = {r.load_id}")["rows_rejected"][0] == 1
    (again,) = load_files(ws, [tmp_path / "dup.csv"], environment="E", company="C", progress=False)
    assert again.load_id is None  # idempotent: rejected rows alone do not make a new load


def test_long_messages_are_cut_to_bcs_limit_and_markup_is_kept_verbatim(ws, tmp_path):
    long = "x" * 3000
    markup = "<script>alert('x')</script> & <b>bold</b>"
    rows = [[20, "2026-01-01 10:00:00", long, "", "", ""], [21, "2026-01-01 10:00:00", markup, "", "", ""]]
    (r,) = load_files(ws, [_csv(tmp_path / "long.csv", ERR_HEADER, rows)], environment="E", company="C",
                      progress=False)
    got = ws.query("job_errors", filters={"error_no": [20, 21]}, order_by="error_no")
    assert len(got["error_message"][0]) == 2048 and len(got["message"][0]) == 250
    assert got["error_message"][1] == markup
    assert any("longer than 2048 characters" in w and "row 2" in w for w in r.warnings)


def test_digits_in_text_columns_are_text(ws, tmp_path):
    header = ["Table ID", "Table Name", "Description", "Record Exists", "Coupled To", "Coupled Record Exists",
              "Error Message", "Failed On"]
    rows = [[18, "Customer", 10000, "Yes", 12345, "No", 404, "3/2/2026 10:00:01 AM"]]
    load_files(ws, [write_xlsx(tmp_path / "skipped.xlsx", header, rows)], environment="E", company="C",
               progress=False)
    got = ws.query("skipped_records")
    assert (got["description"][0], got["coupled_to"][0], got["error_message"][0]) == ("10000", "12345", "404")
