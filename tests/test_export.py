"""syncanalysis.export: the xlsx/CSV files a consultant attaches to a ticket, headed with BC's captions in
English, French and German. Files are read back with python-calamine (xlsx) and the csv module (CSV), not
with the code under test."""

from __future__ import annotations

import csv
import datetime as dt
import re
import sys
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

import syncanalysis.export as ex
from syncanalysis import Workspace
from syncanalysis.actions import PlanFileBackend, execute, plan
from syncanalysis.analysis.causes import cause_info
from syncanalysis.analysis.records import Selection, count_records
from syncanalysis.export import export_frame, export_plan, export_records, export_result

MARKUP = 'The field <b>Name</b> &amp; "Code" of table Customer\r\ncontains a value (<br/>)\nthat is too long:\t_x000D_ ok'
FORMULA = "=HYPERLINK(\"http://evil\",\"click\")"
LONG = "Detailed description: " + "x" * 40_000
# BC's captions by language: (bc_record_id, crm_description, skipped, bc_record_exists, error_message, failed_on)
CAPTIONS = {
    "en": ["Description", "Coupled To", "Skipped", "Record Exists", "Error Message", "Failed On (UTC)"],
    "fr": ["Description", "Couplé à", "Ignoré", "L'enregistrement existe", "Message d'erreur", "Échec le (UTC)"],
    "de": ["Beschreibung", "Gekoppelt an", "Übersprungen", "Datensatz vorhanden", "Fehlermeldung",
           "Fehlgeschlagen am (UTC)"],
}
OWN = {  # our own columns: state, cause, latest_error, latest_error_on
    "en": ["State", "Cause", "Latest Error", "Latest Error On (UTC)"],
    "fr": ["État", "Cause", "Dernière erreur", "Dernière erreur le (UTC)"],
    "de": ["Zustand", "Ursache", "Letzter Fehler", "Letzter Fehler am (UTC)"],
}
YES_NO = {"en": ("Yes", "No"), "fr": ("Oui", "Non"), "de": ("Ja", "Nein")}


def _frame() -> pd.DataFrame:
    """Four records as records() gives them, with the awkward values of real data."""
    return pd.DataFrame({
        "bc_record_id": ["Customer: C1", FORMULA, "Customer: -5", "Customer: C4"],
        "crm_description": ["Firm 1", None, "@Firm", "Firm 4"],
        "skipped": pd.array([True, False, None, True], dtype="boolean"),
        "bc_record_exists": [True, True, False, True],
        "error_message": [MARKUP, None, "", "short"],
        "failed_on": pd.to_datetime(["2026-01-02 08:00:01.987654", None, "2026-03-04 23:59:59", "2026-01-01 06:00"], format="ISO8601"),
        "state": ["skipped", "ok", "broken", "skipped"],
        "cause": ["not-coupled", None, "deleted", "conflict"],
        "latest_error": [MARKUP, None, None, LONG],
        "latest_error_on": pd.to_datetime(["2026-01-02 08:00:01", None, None, "2026-01-01"], format="ISO8601"),
        "table_id": np.array([18, 18, 23, 18], dtype="int32"),
        "error_no": [5.0, np.nan, 7.0, 8.0],  # integers that went float by a missing value
        "last_synch_result": ["Success", "Failure", None, None],
        "integration_id": [uuid.UUID(int=i) for i in range(4)],
        "signature": ["a1b2", None, "c3d4", "e5f6"],
        "last_synch_job_id": [uuid.UUID(int=9)] * 4,
    })


def _read_xlsx(path: Path) -> tuple[str, list[list]]:
    book = CalamineWorkbook.from_path(str(path))
    (name,) = book.sheet_names
    return name, book.get_sheet_by_name(name).to_python()


def _read_csv(path: Path) -> tuple[bytes, list[list[str]], str]:
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    sep = ";" if text.split("\r\n", 1)[0].count(";") > text.split("\r\n", 1)[0].count(",") else ","
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return raw, list(csv.reader(fh, delimiter=sep)), sep


def _read(path: Path) -> list[list]:
    return _read_xlsx(path)[1] if path.suffix == ".xlsx" else _read_csv(path)[1]


def _cells(rows: list[list], header: str) -> list:
    j = rows[0].index(header)
    return [r[j] for r in rows[1:]]


@pytest.fixture(params=[True, False], ids=["fast-xlsx", "xlsxwriter-cells"])
def xlsx_path(request, monkeypatch):
    """Both ways of writing the sheet's cells (column operations, or xlsxwriter's own cell by cell)."""
    monkeypatch.setattr(ex, "FAST_XLSX", request.param)
    return request.param


# -- headers and values -------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "fr", "de"])
@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_headers_are_bcs_captions_in_the_language(tmp_path, lang, suffix, xlsx_path):
    frame = _frame()
    path = export_frame(frame, tmp_path / f"records{suffix}", language=lang)
    assert path == tmp_path / f"records{suffix}" and path.exists()
    rows = _read(path)
    header = rows[0]
    assert header[:6] == CAPTIONS[lang]
    assert header[6:10] == OWN[lang]
    assert len(rows) - 1 == len(frame)
    # internal columns (hashes, job ids) are left out; the Integration ID stays
    assert len(header) == len(frame.columns) - 2
    assert {"ID intégration", "Integration ID", "Integrations-ID"} & set(header)
    assert not {"signature", "Signature", "Last Synch. Job ID"} & set(header)
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed into place


@pytest.mark.parametrize("lang", ["en", "fr", "de"])
def test_values_as_bc_shows_them_in_both_formats(tmp_path, lang, xlsx_path):
    frame = _frame()
    yes, no = YES_NO[lang]
    x = _read(export_frame(frame, tmp_path / "r.xlsx", language=lang))
    c = _read(export_frame(frame, tmp_path / "r.csv", language=lang))
    skipped, exists, failed = CAPTIONS[lang][2], CAPTIONS[lang][3], CAPTIONS[lang][5]
    for rows in (x, c):
        assert _cells(rows, skipped) == [yes, no, "", yes]  # a missing boolean is an empty cell
        assert _cells(rows, exists) == [yes, yes, no, yes]
        assert _cells(rows, OWN[lang][1]) == [cause_info(k).title if isinstance(k, str) else "" for k in frame["cause"]]
        assert _cells(rows, OWN[lang][1])[0] == "A related (parent) record is not coupled"
        for row in rows:
            assert not {"nan", "NaN", "NaT", "None", "<NA>"} & {str(v) for v in row}
    # times: real date/times in xlsx, ISO text in CSV, to the second, missing as empty
    assert _cells(x, failed) == [dt.datetime(2026, 1, 2, 8, 0, 1), "", dt.datetime(2026, 3, 4, 23, 59, 59),
                                 dt.datetime(2026, 1, 1, 6)]
    assert _cells(c, failed) == ["2026-01-02 08:00:01", "", "2026-03-04 23:59:59", "2026-01-01 06:00:00"]
    # integers as numbers (also those a missing value had turned into floats)
    table_id = {"en": "Table ID", "fr": "ID table", "de": "Tabellen-ID"}[lang]
    error_no = {"en": "Latest Error No.", "fr": "N° dernière erreur", "de": "Nr. letzter Fehler"}[lang]
    assert _cells(x, table_id) == [18, 18, 23, 18] and all(isinstance(v, float | int) for v in _cells(x, table_id))
    assert _cells(x, error_no) == [5, "", 7, 8]
    assert _cells(c, table_id) == ["18", "18", "23", "18"] and _cells(c, error_no) == ["5", "", "7", "8"]
    # BC's option captions and our state labels in the language
    result = {"en": "Last Synch. Result", "fr": "Résultat dernière synch.", "de": "Letztes Synch.-Ergebnis"}[lang]
    assert _cells(c, result) == {"en": ["Success", "Failure", "", ""], "fr": ["Réussite", "Échec", "", ""],
                                 "de": ["Erfolg", "Fehler", "", ""]}[lang]
    assert _cells(x, OWN[lang][0]) == _cells(c, OWN[lang][0])
    assert _cells(c, OWN[lang][0])[0] == {"en": "Skipped", "fr": "Ignoré", "de": "Übersprungen"}[lang]


def test_formulas_are_neutralised_in_both_formats(tmp_path, xlsx_path):
    for suffix in (".xlsx", ".csv"):
        rows = _read(export_frame(_frame(), tmp_path / f"r{suffix}"))
        assert _cells(rows, "Description")[1] == "'" + FORMULA
        assert _cells(rows, "Description")[2] == "Customer: -5"  # a '-' inside the text is fine
        assert _cells(rows, "Coupled To")[2] == "'@Firm"
        cells = [str(v) for row in rows for v in row]
        assert not [v for v in cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_markup_and_line_breaks_survive_intact(tmp_path, xlsx_path):
    for suffix in (".xlsx", ".csv"):
        rows = _read(export_frame(_frame(), tmp_path / f"r{suffix}"))
        assert _cells(rows, "Error Message")[0] == MARKUP
        assert _cells(rows, "Latest Error")[0] == MARKUP
    raw = (tmp_path / "r.csv").read_bytes().decode("utf-8-sig")
    assert '"' + MARKUP.replace('"', '""') + '"' in raw  # quoted, its quotes doubled


def test_text_longer_than_an_excel_cell_is_cut_with_a_note(tmp_path, xlsx_path):
    for lang, word in (("en", "truncated"), ("fr", "tronqué"), ("de", "gekürzt")):
        rows = _read(export_frame(_frame(), tmp_path / f"r-{lang}.xlsx", language=lang))
        cell = _cells(rows, OWN[lang][2])[3]
        assert len(cell) <= ex.EXCEL_CELL_LIMIT
        assert cell.startswith(LONG[:30_000]) and word in cell and "40022" in cell
    # the CSV keeps the whole text
    rows = _read(export_frame(_frame(), tmp_path / "r.csv"))
    assert _cells(rows, "Latest Error")[3] == LONG


def test_fast_and_cell_by_cell_xlsx_read_back_the_same(tmp_path, monkeypatch):
    frame = _frame()
    frame.loc[0, "crm_description"] = "  spaced  \x01 ctrl \ufffe"
    fast = _read(export_frame(frame, tmp_path / "fast.xlsx", language="fr"))
    monkeypatch.setattr(ex, "FAST_XLSX", False)
    slow = _read(export_frame(frame, tmp_path / "slow.xlsx", language="fr"))
    assert fast == slow
    assert _cells(fast, "Couplé à")[0].startswith("  spaced  \x01 ctrl ")  # (U+FFFE: _xFFFE_, as xlsxwriter does)


# -- the files ----------------------------------------------------------------------------------------------
def test_xlsx_header_bold_frozen_filtered_widths_fitted_text_wrapped(tmp_path, xlsx_path):
    path = export_frame(_frame(), tmp_path / "r.xlsx", language="de", sheet="Gekoppelte [Fehler]: Kunden/Debitoren",
                        title="CUSTOMER, skipped & co")
    name, _ = _read_xlsx(path)
    assert name == "Gekoppelte Fehler KundenDebitor"  # Excel's 31 characters, without []:*?/\\
    with zipfile.ZipFile(path) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        styles = z.read("xl/styles.xml").decode()
        core = z.read("docProps/core.xml").decode()
    assert 'ySplit="1"' in sheet and 'state="frozen"' in sheet
    assert re.search(r'<autoFilter ref="A1:[A-Z]+5"/>', sheet)
    widths = [float(w) for w in re.findall(r'<col [^>]*width="([\d.]+)"', sheet)]
    assert widths and max(widths) <= ex.MAX_WIDTH + 3 and min(widths) >= 8
    assert "<b/>" in styles and 'wrapText="1"' in styles
    assert "CUSTOMER, skipped &amp; co" in core


def test_csv_is_excel_friendly(tmp_path):
    raw, rows, sep = _read_csv(export_frame(_frame(), tmp_path / "en.csv"))
    assert raw.startswith(b"\xef\xbb\xbf") and sep == ","
    assert raw.endswith(b"\r\n") and b"\n" not in raw.split(b"\r\n", 1)[0]  # CRLF ends every record
    assert len(rows) == len(_frame()) + 1  # the line breaks inside a quoted field make no extra record
    raw, rows, sep = _read_csv(export_frame(_frame(), tmp_path / "fr.csv", language="fr"))
    assert sep == ";"  # French and German Excel split on the list separator
    assert "Échec le (UTC)" in rows[0]
    _, rows, sep = _read_csv(export_frame(_frame(), tmp_path / "de.csv", language="de", delimiter=","))
    assert sep == "," and "Fehlgeschlagen am (UTC)" in rows[0]


def test_columns_chooses_and_orders_internal_ones_included(tmp_path):
    rows = _read(export_frame(_frame(), tmp_path / "r.csv", columns=["signature", "bc_record_id", "table_id"]))
    assert rows[0] == ["Signature", "Description", "Table ID"]
    assert [r[0] for r in rows[1:]] == ["a1b2", "", "c3d4", "e5f6"]


def test_other_frames_unknown_columns_and_empty_frames(tmp_path, xlsx_path):
    frame = pd.DataFrame({"name": ["a", "b"], "my_count": [1, None],
                          "at": [pd.Timestamp("2026-01-01 10:00:00.5", tz="Europe/Paris"), None],
                          "flag": [True, None], "ratio": [0.5, np.inf]})
    header = ["Name", "My count", "At (UTC)", "Flag", "Ratio"]
    for suffix in (".xlsx", ".csv"):
        rows = _read(export_frame(frame, tmp_path / f"o{suffix}"))
        assert rows[0] == header
        assert rows[1] in (["a", "1", "2026-01-01 09:00:00", "Yes", "0.5"], ["a", 1, dt.datetime(2026, 1, 1, 9), "Yes", 0.5])
        assert [str(v) for v in rows[2]] == ["b", "", "", "", ""]
        assert _read(export_frame(frame.iloc[:0], tmp_path / f"e{suffix}")) == [header]
    _, rows, _ = _read_csv(export_frame(frame, tmp_path / "fr.csv", language="fr"))
    assert rows[1][-1] == "0,5"  # the decimal comma that goes with the ';' separator


def test_bad_requests_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"'\.txt'.*\.xlsx or \.csv"):
        export_frame(_frame(), tmp_path / "r.txt")
    with pytest.raises(ValueError, match=r"'\(none\)'"):
        export_frame(_frame(), tmp_path / "r")
    with pytest.raises(ValueError, match="'es'.*en, fr, de"):
        export_frame(_frame(), tmp_path / "r.csv", language="es")
    assert ex.check_language("FR-fr") == "fr"
    with pytest.raises(ValueError, match="'nope'"):
        export_frame(_frame(), tmp_path / "r.csv", columns=["nope"])
    with pytest.raises(ValueError, match="more than once"):
        export_frame(_frame(), tmp_path / "r.csv", columns=["state", "state"])
    monkeypatch.setitem(sys.modules, "xlsxwriter", None)  # not installed
    with pytest.raises(ImportError, match="pip install xlsxwriter"):
        export_frame(_frame(), tmp_path / "r.xlsx")
    export_frame(_frame(), tmp_path / "r.csv")  # CSV needs nothing
    assert not list(tmp_path.glob("*.xlsx")) and not list(tmp_path.glob(".*"))


def test_100k_rows_round_trip_whole(tmp_path):
    # (speed is benchmarks/bench_export.py's, not a timed assertion here)
    n = 100_000
    frame = pd.DataFrame({
        "mapping_name": np.where(np.arange(n) % 2, "CUSTOMER", "VENDOR"), "table_id": np.full(n, 18, "int32"),
        "bc_record_id": [f"Customer: C{i:06d}" for i in range(n)], "skipped": np.arange(n) % 3 == 0,
        "crm_record_exists": np.arange(n) % 5 != 0, "state": "skipped",
        "error_message": pd.Series([f"The record <{i % 200}> & its parent failed\nagain" for i in range(n)]),
        "failed_on": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n), unit="s"),
        "integration_id": [str(uuid.UUID(int=i)) for i in range(n)], "cause": "not-coupled",
    })
    for suffix in (".xlsx", ".csv"):
        path = export_frame(frame, tmp_path / f"big{suffix}", language="fr")
        rows = _read(path)
        assert len(rows) == n + 1
        assert rows[-1][2] == f"Customer: C{n - 1:06d}" and rows[-1][6] == "The record <199> & its parent failed\nagain"


# -- a real workspace: records, a preview and a run ---------------------------------------------------------
def _id(i: int) -> str:
    return str(uuid.UUID(int=1000 + i))


@pytest.fixture
def ws() -> Workspace:
    """Five skipped customers (one with a formula as its number) and one healthy, each with its last error."""
    job = str(uuid.UUID(int=1))
    n = 6
    couplings = pd.DataFrame({
        "environment": "E", "company": "C", "table_id": 18, "integration_id": [_id(i) for i in range(n)],
        "crm_id": [_id(10 + i) for i in range(n)], "skipped": [True] * 5 + [False],
        "bc_record_exists": True, "crm_record_exists": True,
        "bc_record_id": [f"Customer: C{i}" for i in range(4)] + [f"Customer: {FORMULA}", "Customer: OK"],
        "crm_description": [f"Firm {i}" for i in range(n)], "last_synch_crm_job_id": job,
        "last_synch_crm_result": ["Failure"] * 5 + ["Success"]})
    errors = pd.DataFrame({
        "environment": "E", "company": "C", "error_no": range(1, 6), "job_id": job,
        "logged_at": pd.to_datetime([f"2026-01-0{i + 1} 10:00:00.250" for i in range(5)]),
        "source_record_id": [f"Customer: C{i}" for i in range(4)] + [f"Customer: {FORMULA}"],
        "destination_record_id": "", "source_table": "Customer",
        "message": [MARKUP[:250]] * 5, "error_message": [MARKUP] * 5,
        "signature": "s1", "cause": "not-coupled"})
    w = Workspace()
    w.ingest({"couplings": couplings, "job_errors": errors}, source="t", kind="test")
    return w


@pytest.mark.parametrize("lang", ["en", "fr", "de"])
@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_export_records_round_trip(ws, tmp_path, lang, suffix):
    sel = Selection(state="skipped")
    path = export_records(ws, sel, tmp_path / f"skipped{suffix}", language=lang)
    rows = _read(path)
    header = rows[0]
    assert len(rows) - 1 == count_records(ws, sel) == 5
    assert set(CAPTIONS[lang]) <= set(header) and set(OWN[lang]) <= set(header)
    assert header[0] == {"en": "Integration Table Mapping Name", "fr": "Nom mappage table intégration",
                         "de": "Integrationstabellen-Zuordnungsname"}[lang]
    assert "'Customer: " + FORMULA not in _cells(rows, CAPTIONS[lang][0])  # the text starts with "Customer: "
    assert "Customer: " + FORMULA in _cells(rows, CAPTIONS[lang][0])
    assert set(_cells(rows, CAPTIONS[lang][4])) == {MARKUP[:250]}  # page 5333's Error Message (250 characters)
    assert set(_cells(rows, OWN[lang][2])) == {MARKUP}
    assert set(_cells(rows, OWN[lang][1])) == {cause_info("not-coupled").title}
    assert set(_cells(rows, CAPTIONS[lang][2])) == {YES_NO[lang][0]}
    failed = _cells(rows, CAPTIONS[lang][5])
    first = dt.datetime(2026, 1, 5, 10) if suffix == ".xlsx" else "2026-01-05 10:00:00"
    assert failed[0] == first  # newest first, to the second
    assert not {"Signature", "signature"} & set(header)
    if suffix == ".xlsx":
        assert _read_xlsx(path)[0] == {"en": "Records", "fr": "Enregistrements", "de": "Datensätze"}[lang]


def test_export_records_of_everything(ws, tmp_path):
    rows = _read(export_records(ws, None, tmp_path / "all.csv"))
    assert len(rows) - 1 == count_records(ws) == 6
    assert "OK" in _cells(rows, "State")


@pytest.mark.parametrize("lang", ["en", "fr", "de"])
def test_export_plan_and_result(ws, tmp_path, lang):
    p = plan(ws, "retry", Selection(environment="E", company="C", mapping="CUSTOMER"),
             backend=PlanFileBackend(tmp_path / "plans" / "retry.json"))
    assert len(p.targets) == 6
    labels = {"en": ("Predicted Outcome", "Status", "Will change", "No change", "Result", "Detail", "In the plan file"),
              "fr": ("Résultat prévu", "Statut", "Sera modifié", "Aucune modification", "Résultat", "Détail",
                     "Dans le fichier de plan"),
              "de": ("Voraussichtliches Ergebnis", "Status", "Wird geändert", "Keine Änderung", "Ergebnis", "Details",
                     "In der Plandatei")}[lang]
    outcome, status, change, noop, result, detail, planned = labels
    for suffix in (".xlsx", ".csv"):
        rows = _read(export_plan(p, tmp_path / f"preview{suffix}", language=lang))
        assert len(rows) - 1 == len(p.targets)
        assert outcome in rows[0] and status in rows[0] and CAPTIONS[lang][0] in rows[0]
        assert sorted(_cells(rows, status)) == sorted([change] * 5 + [noop])
        assert "'=" not in "".join(map(str, _cells(rows, CAPTIONS[lang][0])))
    if lang == "en":
        assert _read_xlsx(tmp_path / "preview.xlsx")[0] == "Preview"
    r = execute(ws, p, who="test")
    for suffix in (".xlsx", ".csv"):
        rows = _read(export_result(r, tmp_path / f"result{suffix}", language=lang))
        assert len(rows) - 1 == len(r.outcome) == 6
        header = rows[0]
        assert header.index(status) < header.index(result) < header.index(detail) < header.index(outcome)
        assert sorted(_cells(rows, result)) == sorted([planned] * 5 + [noop])
        assert all(_cells(rows, detail))
