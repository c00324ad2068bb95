"""The HTML report (syncanalysis.report): self-contained, per environment/company, findings, escaped data."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import markupsafe
import pandas as pd
import pytest

from syncanalysis.analysis.trends import history_range
from syncanalysis.report import MAX_FINDINGS, write_report
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import publish
from syncanalysis.workspace import Workspace

OTHER_CO = "Fabrikam <Inc> & Co"
EVIL = '<script>alert("pwned")</script> <img src="https://evil.example/x.png"> field too long'


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Two companies side by side; one error text full of markup, frequent enough to be a top signature."""
    ws = Workspace(tmp_path_factory.mktemp("report") / "two.duckdb")
    for seed, company in ((11, "CRONUS International Ltd."), (12, OTHER_CO)):
        sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=seed, company=company))
        sim.run()
        publish(ws, sim, scenario=f"h6-report-{seed}")
    job = ws.con.execute("SELECT job_id, start_datetime FROM jobs WHERE company = ? AND mapping_name = 'CUSTOMER' "
                         "AND synch_direction = 'ToIntegrationTable' ORDER BY start_datetime LIMIT 1 OFFSET 50",
                         [OTHER_CO]).fetchall()[0]
    top = ws.con.execute("SELECT max(error_no) FROM job_errors WHERE company = ?", [OTHER_CO]).fetchall()[0][0]
    n = 300
    ws.ingest({"job_errors": pd.DataFrame({
        "environment": "PRODUCTION", "company": OTHER_CO, "error_no": range(top + 1, top + 1 + n),
        "job_id": job[0], "logged_at": job[1] + dt.timedelta(seconds=5),
        "source_record_id": [f"Customer: X{i:04d}" for i in range(n)], "destination_record_id": "",
        "source_table": "Customer", "message": EVIL, "error_message": EVIL})}, source="evil", kind="test")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def report(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = write_report(ws, tmp_path_factory.mktemp("out") / "sub" / "report.html")
    assert path.exists() and path.suffix == ".html"
    return path.read_text(encoding="utf-8")


def test_self_contained(report: str) -> None:
    lowered = report.lower()
    for tag in ("<script", "<link", "<iframe", "<object", "<embed", "@import", "url("):
        assert tag not in lowered, tag
    sources = re.findall(r'\bsrc="([^"]*)"', report)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert all(h.startswith("#") for h in re.findall(r'\bhref="([^"]*)"', report))
    # the only http(s) text is the escaped data text of the error message, never an attribute
    for m in re.finditer(r"https?://", report):
        assert report[max(0, m.start() - 40):m.start()].endswith(("src=&quot;", "src=&#34;")), report[m.start() - 60:m.end() + 20]


def test_markup_in_data_is_escaped(report: str) -> None:
    assert "<script>" not in report and 'src="https://evil' not in report
    assert str(markupsafe.escape(EVIL)) in report  # shown, as text
    assert f"{str(markupsafe.escape(OTHER_CO))}</h2>" in report and f"{OTHER_CO}</h2>" not in report


def test_sections_time_range_and_findings(ws: Workspace, report: str) -> None:
    from syncanalysis.analysis.findings import diagnose

    assert len(re.findall(r"<h2 id=\"scope-\d\">", report)) == 2
    for company in ("CRONUS International Ltd.", OTHER_CO):
        first, last = history_range(ws, company=company)
        assert f"History from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}" in report
        findings = diagnose(ws, company=company)
        assert findings
        for f in findings[:MAX_FINDINGS]:
            assert str(markupsafe.escape(f.title)) in report, f.title
    assert "How to read this" in report
    assert report.count("<img ") >= 2 * 7


@dataclass
class FakeFinding:
    code: str
    severity: str
    title: str
    environment: str = "PRODUCTION"
    company: str = "CRONUS International Ltd."
    mapping: str | None = "CUSTOMER"
    start: dt.datetime | None = dt.datetime(2026, 9, 1)
    end: dt.datetime | None = None
    ongoing: bool = True
    affected: int = 12
    evidence: dict = field(default_factory=dict)
    remedy: str = "Couple the parent first, then Retry."
    action: str | None = "Retry"
    selection: object | None = None


def test_given_findings_one_company(ws: Workspace, tmp_path: Path) -> None:
    fake = [FakeFinding("PARENT_NOT_COUPLED", "high", "Salesperson <b>NEWSP</b> blocks 12 customers",
                        evidence={"example": EVIL, "records": 12}),
            FakeFinding("CHRONIC_ERRORS", "low", "Slow & steady")]
    text = write_report(ws, tmp_path / "one.html", company="CRONUS International Ltd.", findings=fake).read_text()
    assert len(re.findall(r"<h2 id=\"scope-\d\">", text)) == 1 and OTHER_CO not in text
    assert str(markupsafe.escape(fake[0].title)) in text and "<b>NEWSP</b>" not in text
    assert "Slow &amp; steady" in text and "Couple the parent first, then Retry." in text
    assert "<script>" not in text and "Findings (2: 1 high, 1 low)" in text


def test_the_report_carries_the_one_stylesheet_unescaped(report: str) -> None:
    from syncanalysis.html import STYLESHEET

    assert f"<style>{STYLESHEET}</style>" in report  # a <style> element is raw text: escaping would break the CSS
