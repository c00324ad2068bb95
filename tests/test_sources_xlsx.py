"""Workbooks read by fastexcel (every cell as text, through Arrow into DuckDB), the careful way and in one pass."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from test_sources_helpers import file_hash, snapshot, write_xlsx

from syncanalysis import Workspace
from syncanalysis.errors import SchemaError
from syncanalysis.sources import UnreadableFileError, ValueParseError, files, load_files, read, typed

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "sample_data" / "pages" / "en" / "Integration Synchronization Errors.xlsx"
ENV, COMPANY = "PRODUCTION", "CRONUS International Ltd."


def _mixed_sheet(path: Path, rows: int = 3000) -> Path:
    """Shared strings, dates, whole and decimal numbers, booleans, markup, blank rows and cells, a stray column."""
    body = []
    for i in range(rows):
        if i % 397 == 5:
            body.append([None] * 7)  # a blank row (block cuts land near some of them)
            continue
        body.append([i + 1, dt.datetime(2026, 1, 1) + dt.timedelta(minutes=37 * i),
                     f"Customer C{i % 50:05d} <b>&amp; é</b>\nline two" if i % 3 else None,
                     1.5 * i if i % 7 else None, i % 2 == 0, "View", "stray" if i % 501 == 0 else None])
    return write_xlsx(path, ["No.", "Date/Time", "Error Message", "Amount", "Flag", "Source"], body)


@pytest.fixture(params=["careful", "one pass"])
def either_way(request, monkeypatch):
    """Load the careful way, or in one pass decided on the first 500 rows (a bad file falls back to careful)."""
    monkeypatch.setattr(files, "_HEAD_ROWS", 500 if request.param == "one pass" else 1 << 40)
    return request.param


def _load(path: Path):
    ws = Workspace()
    (report,) = load_files(ws, [path], environment=ENV, company=COMPANY, progress=False)
    return ws, report


def test_one_pass_gives_the_rows_a_careful_load_gives(monkeypatch):
    monkeypatch.setattr(files, "_HEAD_ROWS", 1 << 40)
    careful_ws, careful = _load(PAGE)
    monkeypatch.setattr(files, "_HEAD_ROWS", 5000)
    fast_ws, fast = _load(PAGE)
    assert fast.one_pass and not careful.one_pass
    assert fast.rows_inserted == careful.rows_inserted == careful_ws.count("job_errors") > 50_000
    query = "SELECT * FROM job_errors ORDER BY error_no"
    pd.testing.assert_frame_equal(careful_ws.sql(query), fast_ws.sql(query))
    assert fast.details["parts"][0]["columns"] == careful.details["parts"][0]["columns"]
    assert fast_ws.sql("SELECT kind, rows_inserted FROM loads").values.tolist() == [["page-5339", careful.rows_inserted]]
    # a second load of the same file merges the careful way and changes nothing
    (again,) = load_files(fast_ws, [PAGE], environment=ENV, company=COMPANY, progress=False)
    assert not again.one_pass and again.rows_inserted == again.rows_updated == 0


def test_a_bad_value_deep_in_the_sheet_is_named_by_its_sheet_row(either_way, tmp_path):
    rows = [[i, f"2026-01-{1 + i % 28:02d} 10:00:00", f"Message {i}", "", "View", "View"] for i in range(1, 4001)]
    rows[3210][1] = "not a date"
    path = write_xlsx(tmp_path / "errors.xlsx", ["No.", "Date/Time", "Error Message", "Help Link", "Source",
                                                 "Destination"], rows)
    ws = Workspace()
    before = snapshot(ws)
    with pytest.raises(ValueParseError) as e:
        load_files(ws, [path], environment=ENV, company=COMPANY, progress=False)
    assert e.value.row == 3212 and e.value.value == "not a date"  # header in row 1, first data row 2
    assert snapshot(ws) == before


def test_a_corrupt_sheet_is_refused_and_changes_nothing(either_way, tmp_path):
    good = _mixed_sheet(tmp_path / "good.xlsx", rows=3000)
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("xl/worksheets/"):
                at = len(data) * 2 // 3
                data = data[:at] + b"<c r=" + data[at:]  # broken XML two thirds in
            dst.writestr(info, data)
    ws = Workspace()
    before, digest = snapshot(ws), file_hash(bad)
    with pytest.raises(UnreadableFileError) as e:
        load_files(ws, [bad], environment=ENV, company=COMPANY, progress=False)
    assert "bad.xlsx" in str(e.value)
    assert snapshot(ws) == before and file_hash(bad) == digest


def test_every_cell_is_read_as_the_text_bc_shows(tmp_path):
    # typed cells (numbers, dates, booleans), a sheet starting in row 3 column C, blank rows between
    import xlsxwriter

    path = tmp_path / "typed.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("Errors")
    when = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    ws.write_row(2, 2, ["No.", "Date/Time", "Error Message", "Help Link", "Source", "Destination"])
    ws.write_row(3, 2, [1.0, None, "Customer <b>C1</b> & é", True, "View", "View"])
    ws.write_datetime(3, 3, dt.datetime(2026, 5, 4, 3, 2, 1, 250000), when)
    ws.write_row(6, 2, [12345678901234, "2026-05-04 03:02:02", 2.5, None, "View", "View"])
    wb.close()
    con = Workspace().con
    part, = read.read_workbook(path, read.Temp(con))
    assert (part.sheet, part.header_row, part.rows) == ("Errors", 3, 2)
    assert part.headers[:3] == ["No.", "Date/Time", "Error Message"]
    assert con.execute(f"SELECT _row FROM {part.view} ORDER BY _row").fetchall() == [(4,), (7,)]
    assert part.sample == [["1", "2026-05-04 03:02:01.250", "Customer <b>C1</b> & é", "true", "View", "View"],
                           ["12345678901234", "2026-05-04 03:02:02", "2.5", "", "View", "View"]]


def _page_rows(n: int) -> list[list[object]]:
    return [[n + 1 - i, f"{1 + i % 12}/{1 + i % 28}/2026 {1 + i % 12}:{i % 60:02d}:07 {'AM' if i % 2 else 'PM'}",
             f"Customer C{i % 900:05d} must be coupled to a Dataverse row. <b>{i}</b>", "", "View", "View"]
            for i in range(n)]


PAGE_HEADER = ["No.", "Date/Time", "Error Message", "Help Link", "Source", "Destination"]


@pytest.mark.parametrize("problem", ["repeated row", "long message", "unknown date form"])
def test_one_pass_falls_back_to_the_careful_load_for_what_the_first_rows_did_not_show(either_way, tmp_path,
                                                                                        problem):
    rows = _page_rows(4000)
    if problem == "repeated row":
        rows[3500] = list(rows[3000])
    elif problem == "long message":
        rows[3500][2] = "x" * 3000
    else:
        rows[3500][1] = 46085.25  # an Excel serial date among US dates: read once the whole column is profiled
    path = write_xlsx(tmp_path / "page.xlsx", PAGE_HEADER, rows)
    ws, report = _load(path)
    assert not report.one_pass
    if problem == "repeated row":
        assert report.rows_rejected == 1 and ws.count("job_errors") == 3999
    elif problem == "long message":
        assert any("longer than 2048" in w for w in report.warnings)
        assert ws.sql("SELECT max(length(error_message)) AS n FROM job_errors")["n"][0] == 2048
    else:
        assert ws.sql("SELECT logged_at FROM job_errors WHERE error_no = 501")["logged_at"][0] == \
            pd.Timestamp("1899-12-30") + pd.Timedelta(days=46085.25)
    assert ws.count("job_errors") == 4000 - (problem == "repeated row") and ws.count("loads") == 1


def test_one_pass_page_rows_carry_the_page_fidelity(either_way, tmp_path):
    ws, report = _load(write_xlsx(tmp_path / "page.xlsx", PAGE_HEADER, _page_rows(3000)))
    assert report.one_pass == (either_way == "one pass")
    assert ws.sql("SELECT DISTINCT fidelity FROM job_errors")["fidelity"].tolist() == [1]


def test_both_ways_read_local_times_in_the_given_zone(either_way, tmp_path):
    path = write_xlsx(tmp_path / "page.xlsx", PAGE_HEADER, _page_rows(3000))
    ws = Workspace()
    (report,) = load_files(ws, [path], environment=ENV, company=COMPANY, progress=False, timezone="Asia/Kolkata")
    assert report.one_pass == (either_way == "one pass") and report.timezone == "Asia/Kolkata"
    shown = pd.to_datetime([r[1] for r in _page_rows(3000)], format="%m/%d/%Y %I:%M:%S %p")
    expected = sorted(zip([r[0] for r in _page_rows(3000)], shown - pd.Timedelta(hours=5, minutes=30)))
    got = ws.sql("SELECT error_no, logged_at FROM job_errors ORDER BY error_no")
    assert list(zip(got["error_no"], got["logged_at"])) == expected


def _without_row_numbers(src: Path, dst: Path, after: int = 0) -> Path:
    """The workbook with the ``r`` attributes of rows (and their cells) from sheet row ``after`` on removed."""
    def strip(m: re.Match) -> bytes:
        row = int(m.group(1))
        return m.group(0) if row <= after else re.sub(rb' r="[A-Z]*\d+"', b"", m.group(0))

    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename.startswith("xl/worksheets/"):
                data = re.sub(rb'<row r="(\d+)"[^>]*>.*?</row>', strip, data, flags=re.S)
            out.writestr(info, data)
    return dst


@pytest.mark.parametrize("after", [0, 1000])
def test_rows_without_their_numbers_are_numbered_right(either_way, tmp_path, after):
    rows = _page_rows(4000)
    rows[3210][1] = "not a date"
    path = _without_row_numbers(write_xlsx(tmp_path / "n.xlsx", PAGE_HEADER, rows), tmp_path / "bare.xlsx", after)
    with zipfile.ZipFile(path) as z:
        assert b'<row r="3000"' not in z.read("xl/worksheets/sheet1.xml")
    with pytest.raises(ValueParseError) as e:
        _load(path)
    assert e.value.row == 3212 and e.value.value == "not a date"
    rows[3210] = list(rows[100])  # a repeated row instead: dropped once, nothing else
    path = _without_row_numbers(write_xlsx(tmp_path / "d.xlsx", PAGE_HEADER, rows), tmp_path / "dup.xlsx", after)
    ws, report = _load(path)
    assert report.rows_rejected == 1 and ws.count("job_errors") == 3999


def test_an_xls_workbook_loads(either_way):
    (report,) = load_files(Workspace(), [ROOT / "tests" / "data" / "xls" / "Integration Synchronization Errors.xls"],
                           environment=ENV, company=COMPANY, progress=False)
    assert report.kind == "page-5339" and report.rows_inserted == 29


def test_one_pass_counts_the_errors_it_links_to_jobs(monkeypatch):
    jobs = ROOT / "sample_data" / "tables" / "Integration Synch. Job.csv.gz"
    got = {}
    for way, head in (("careful", 1 << 40), ("one pass", 5000)):
        monkeypatch.setattr(files, "_HEAD_ROWS", head)
        ws = Workspace()
        load_files(ws, [jobs], environment=ENV, company=COMPANY, progress=False)
        (report,) = load_files(ws, [PAGE], environment=ENV, company=COMPANY, progress=False, timezone="UTC")
        assert report.one_pass == (way == "one pass")
        got[way] = (report.links, ws.sql("SELECT * FROM job_errors ORDER BY error_no"))
    assert got["careful"][0]["errors linked to a job by time"] > 50_000
    assert got["one pass"][0] == got["careful"][0]
    pd.testing.assert_frame_equal(got["one pass"][1], got["careful"][1])


def _errors_table_csv(path: Path, n: int, dates: dict[int, str]) -> Path:
    pd.DataFrame({
        "No.": range(1, n + 1),
        "Integration Synch. Job ID": ["00000000-0000-0000-0000-000000000001"] * n,
        "Message": [f"Error {i}" for i in range(1, n + 1)],
        "Date/Time": [dates.get(i, f"{1 + i % 12}/{1 + i % 28}/2026 10:{i % 60:02d}:00") for i in range(1, n + 1)],
        "Error Message": [f"Error {i}" for i in range(1, n + 1)],
    }).to_csv(path, index=False)
    return path


LATE = [
    ("2026-05-06T07:08:09+02:00", dt.datetime(2026, 5, 6, 5, 8, 9)),  # an offset the first rows did not show
    ("2026-05-06 07:08:09 -02", dt.datetime(2026, 5, 6, 9, 8, 9)),  # an hour-only offset after a space
    ("5/6/26 07:08:09", dt.datetime(2026, 5, 6, 7, 8, 9)),  # a two-digit year
    ("46148.25", dt.datetime(2026, 5, 6, 6, 0)),  # an Excel serial date
]


@pytest.mark.parametrize("late, stored", LATE)
@pytest.mark.parametrize("way", ["careful", "one pass"])
def test_a_date_form_only_late_rows_show_is_read_as_a_full_profile_reads_it(monkeypatch, tmp_path, late, stored,
                                                                              way):
    # more rows than the profile's first rows; the date order is decided by a day above 12 early on
    monkeypatch.setattr(files, "_FAST_MIN_BYTES", 0 if way == "one pass" else 1 << 60)
    path = _errors_table_csv(tmp_path / "errors.csv", typed.PROFILE_ROWS + 5000, {typed.PROFILE_ROWS + 3000: late})
    ws, report = _load(path)
    assert not report.one_pass  # the one-pass load fell back: its first rows did not foresee the value
    got = ws.sql(f"SELECT logged_at FROM job_errors WHERE error_no = {typed.PROFILE_ROWS + 3000}")["logged_at"][0]
    assert got.to_pydatetime() == stored
    assert ws.count("job_errors") == typed.PROFILE_ROWS + 5000


@pytest.mark.parametrize("late, stored", LATE)
def test_a_date_form_only_later_rows_show_is_read_right(either_way, tmp_path, late, stored):
    rows = _page_rows(4000)
    rows[3500][1] = float(late) if late[0].isdigit() and "." in late and "/" not in late else late
    ws, report = _load(write_xlsx(tmp_path / "page.xlsx", PAGE_HEADER, rows))
    assert not report.one_pass
    got = ws.sql("SELECT logged_at FROM job_errors WHERE error_no = 501")["logged_at"][0]
    assert got.to_pydatetime() == stored and ws.count("job_errors") == 4000


@pytest.mark.parametrize("way", ["careful", "one pass"])
def test_a_value_beyond_its_columns_type_is_named_by_file_row_and_column(monkeypatch, tmp_path, way):
    monkeypatch.setattr(files, "_FAST_MIN_BYTES", 0 if way == "one pass" else 1 << 60)
    frame = pd.read_csv(ROOT / "sample_data" / "tables" / "Integration Synch. Job.csv.gz", dtype=str, nrows=300)
    frame.loc[120, "Inserted"] = "3000000000"  # beyond the INTEGER of jobs.inserted
    path = tmp_path / "Integration Synch. Job.csv"
    frame.to_csv(path, index=False)
    ws = Workspace()
    before = snapshot(ws)
    with pytest.raises(ValueParseError) as e:
        load_files(ws, [path], environment=ENV, company=COMPANY, progress=False)
    assert (e.value.row, e.value.column, e.value.value) == (122, "Inserted", "3000000000")
    assert "too large" in str(e.value) and "Integration Synch. Job.csv" in str(e.value)
    assert snapshot(ws) == before


def test_check_casts_names_what_does_not_fit():
    ws = Workspace()
    with pytest.raises(SchemaError) as e:
        ws.check_casts("jobs", "SELECT 'E' AS environment, 'C' AS company, 3000000000::BIGINT AS inserted")
    assert "'inserted'" in str(e.value) and "3000000000" in str(e.value)
    ws.check_casts("jobs", "SELECT 'E' AS environment, 'C' AS company, 3::BIGINT AS inserted")


def test_a_zip_feature_pythons_zipfile_lacks_is_read(either_way, tmp_path):
    # general-purpose flag bit 5 ("patched data") on the sheet: Python's zipfile refuses it, calamine reads it
    data = bytearray(write_xlsx(tmp_path / "g.xlsx", PAGE_HEADER, _page_rows(3000)).read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    i = data.find(b"PK\x01\x02")
    while i >= 0:
        n = int.from_bytes(data[i + 28:i + 30], "little")
        if data[i + 46:i + 46 + n] == name:
            data[i + 8:i + 10] = (int.from_bytes(data[i + 8:i + 10], "little") | 0x20).to_bytes(2, "little")
            break
        i = data.find(b"PK\x01\x02", i + 4)
    path = tmp_path / "bit5.xlsx"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as z, pytest.raises(NotImplementedError):
        z.open("xl/worksheets/sheet1.xml")
    ws, report = _load(path)
    assert report.rows_inserted == 3000
