"""Page exports show the BC user's local time; loads convert it to UTC when told the zone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from python_calamine import CalamineWorkbook
from test_sources_helpers import snapshot, write_xlsx

from syncanalysis import Workspace
from syncanalysis.cli import main
from syncanalysis.sources import SourceError, format_report, load_files

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
ENV, COMPANY = "PRODUCTION", "CRONUS International Ltd."
HEADER = ["No.", "Date/Time", "Error Message", "Help Link", "Source", "Destination"]
US = "%m/%d/%Y %I:%M:%S %p"


def _errors_page(path: Path, shown: list[str]) -> Path:
    rows = [[i + 1, t, f"Customer C{i:05d} must be coupled to a Dataverse row.", "", "View", "View"]
            for i, t in enumerate(shown)]
    return write_xlsx(path, HEADER, rows)


def _logged(ws: Workspace) -> list[dt.datetime]:
    return ws.sql("SELECT logged_at FROM job_errors ORDER BY error_no")["logged_at"].dt.to_pydatetime().tolist()


def test_page_times_are_converted_from_the_users_zone_with_its_daylight_saving(tmp_path):
    path = _errors_page(tmp_path / "errors.xlsx", ["1/15/2026 9:30:00 AM", "7/15/2026 9:30:00 AM"])
    ws = Workspace()
    (report,) = load_files(ws, [path], environment=ENV, company=COMPANY, progress=False, timezone="europe/paris")
    # CET is UTC+1 in winter, CEST UTC+2 in summer
    assert _logged(ws) == [dt.datetime(2026, 1, 15, 8, 30), dt.datetime(2026, 7, 15, 7, 30)]
    assert report.timezone == "Europe/Paris" and report.details["timezone"] == "Europe/Paris"
    assert not [w for w in report.warnings if "time zone" in w]
    assert "local time in Europe/Paris, stored as UTC" in format_report(report)


def test_without_a_zone_page_times_are_read_as_utc_with_a_warning(tmp_path):
    path = _errors_page(tmp_path / "errors.xlsx", ["1/15/2026 9:30:00 AM", "7/15/2026 9:30:00 AM"])
    ws = Workspace()
    (report,) = load_files(ws, [path], environment=ENV, company=COMPANY, progress=False)
    assert _logged(ws) == [dt.datetime(2026, 1, 15, 9, 30), dt.datetime(2026, 7, 15, 9, 30)]
    assert report.details["timezone"] == "UTC" and report.timezone is None
    assert any("BC user's time zone" in w for w in report.warnings)
    ws2 = Workspace()
    (utc,) = load_files(ws2, [path], environment=ENV, company=COMPANY, progress=False, timezone="UTC")
    assert _logged(ws2) == _logged(ws) and not [w for w in utc.warnings if "time zone" in w]


def test_times_with_an_offset_keep_it_whatever_the_zone(tmp_path):
    path = _errors_page(tmp_path / "errors.xlsx", ["2026-07-15T09:30:00+05:30", "2026-07-15 09:30:00"])
    ws = Workspace()
    load_files(ws, [path], environment=ENV, company=COMPANY, progress=False, timezone="America/New_York")
    assert _logged(ws) == [dt.datetime(2026, 7, 15, 4, 0), dt.datetime(2026, 7, 15, 13, 30)]


def test_an_unknown_zone_is_refused_before_anything_is_read(tmp_path):
    path = _errors_page(tmp_path / "errors.xlsx", ["1/15/2026 9:30:00 AM"])
    ws = Workspace()
    before = snapshot(ws)
    with pytest.raises(SourceError) as e:
        load_files(ws, [path], environment=ENV, company=COMPANY, progress=False, timezone="Europe/Pariss")
    assert "unknown time zone 'Europe/Pariss'" in str(e.value) and "Europe/Paris" in str(e.value)
    assert "IANA" in str(e.value)
    assert snapshot(ws) == before


def _shift_page(src: Path, dst: Path, zone: str) -> Path:
    """The page export as a user in ``zone`` would export it: every date/time shown in local time."""
    rows = CalamineWorkbook.from_path(str(src)).get_sheet_by_index(0).to_python()
    header, body = rows[0], rows[1:]
    frame = pd.DataFrame(body, columns=header)
    for col in ("Start Date/Time", "Finish Date/Time"):
        t = pd.to_datetime(frame[col], format=US).dt.tz_localize("UTC").dt.tz_convert(zone)
        frame[col] = t.dt.strftime(US).str.replace(r"(^|/| )0(\d)", r"\1\2", regex=True)
    return write_xlsx(dst, header, frame.astype(object).where(frame.notna(), None).values.tolist())


def test_local_time_page_jobs_pair_with_the_table_jobs_once_the_zone_is_given(tmp_path):
    table = SAMPLE / "tables" / "Integration Synch. Job.csv.gz"
    page = SAMPLE / "pages" / "en" / "Integration Synchronization Jobs.xlsx"
    local = _shift_page(page, tmp_path / "Integration Synchronization Jobs.xlsx", "Asia/Kolkata")  # UTC+05:30

    def load(page_file: Path, zone: str | None) -> tuple[Workspace, dict]:
        ws = Workspace()
        load_files(ws, [table], environment=ENV, company=COMPANY, progress=False)
        (report,) = load_files(ws, [page_file], environment=ENV, company=COMPANY, progress=False, timezone=zone)
        return ws, report.links

    utc_ws, utc_links = load(page, "UTC")
    local_ws, local_links = load(local, "Asia/Kolkata")
    wrong_ws, wrong_links = load(local, None)
    assert utc_links["page jobs matched to existing jobs"] > 10_000
    assert local_links == utc_links
    query = "SELECT job_id, start_datetime, finish_datetime FROM jobs ORDER BY job_id"
    pd.testing.assert_frame_equal(local_ws.sql(query), utc_ws.sql(query))
    # read as UTC, the same page pairs with nothing: every job becomes an inferred one
    assert wrong_links.get("page jobs matched to existing jobs", 0) < utc_links["page jobs matched to existing jobs"] / 10
    assert wrong_ws.count("jobs") > utc_ws.count("jobs")


def test_cli_load_takes_the_zone(tmp_path, capsys):
    path = _errors_page(tmp_path / "errors.xlsx", ["1/15/2026 9:30:00 AM"])
    db = tmp_path / "w.duckdb"
    assert main(["load", str(path), "--workspace", str(db), "--environment", ENV, "--company", COMPANY,
                 "--timezone", "Asia/Kolkata"]) == 0
    assert "local time in Asia/Kolkata" in capsys.readouterr().out
    with Workspace(db) as ws:
        assert _logged(ws) == [dt.datetime(2026, 1, 15, 4, 0)]


def test_table_exports_are_utc_whatever_the_zone(tmp_path):
    table = SAMPLE / "tables" / "Integration Synch. Job.csv.gz"
    plain, zoned = Workspace(), Workspace()
    load_files(plain, [table], environment=ENV, company=COMPANY, progress=False)
    (report,) = load_files(zoned, [table], environment=ENV, company=COMPANY, progress=False, timezone="Asia/Kolkata")
    query = "SELECT job_id, start_datetime, finish_datetime FROM jobs ORDER BY job_id"
    pd.testing.assert_frame_equal(plain.sql(query), zoned.sql(query))
    assert report.timezone is None and report.details["timezone"] == "UTC"
    assert "local time" not in format_report(report) and not report.warnings
