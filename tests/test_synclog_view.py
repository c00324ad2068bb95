"""The Synchronization Log as a consultant reads it: BC's captions (English, French, German), full UTC dates,
no internal column names, and the twin's stored field values as realistic texts that agree with the
"differs" mark. Built on a small twin workspace with planted differences and markup in an error message."""

from __future__ import annotations

import random
import re

import numpy as np
import pandas as pd
import pytest

from syncanalysis import actions as act
from syncanalysis import bc
from syncanalysis.actions.synclog import _kind, field_value_text
from syncanalysis.analysis.records import Selection, records
from syncanalysis.twin.model import BC, DV, TO
from syncanalysis.twin.scenario import ScenarioConfig, Simulation, default_mappings
from syncanalysis.twin.state import publish
from syncanalysis.widgets import SyncLogPanel
from syncanalysis.widgets import synclog as view
from syncanalysis.workspace import Workspace

ENV, COMPANY = "PRODUCTION", "CRONUS International Ltd."
HOSTILE = "<script>alert(1)</script> <b>bold</b> & more"
RAW_NAMES = ("twin_bc_exists", "twin_dataverse_exists", "twin_bc_modified_at", "twin_dataverse_modified_on",
             "inferred", "signature", "error_job_id", "bc_record_id", "integration_table_caption", "crm_description",
             "last_synch_crm_result", "start_datetime", "bc_value", "dataverse_value", "differs</th>")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 21-day twin with two customers whose apps' versions differ (Name by code, Phone No. by length)."""
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    cu = sim.world.table("CUSTOMER")
    names = [f.bc_field for f in cu.config.fields]
    healthy = np.flatnonzero(cu.coupled & cu.exists[BC] & cu.exists[DV] & ~cu.skipped
                             & (cu.result[TO] == bc.RESULT_SUCCESS) & (cu.vals[BC] == cu.vals[DV]).all(axis=1)
                             & (cu.lens[BC] == cu.lens[DV]).all(axis=1))
    name_row, phone_row, same_row = (int(r) for r in healthy[:3])
    cu.vals[DV][name_row, names.index("Name")] += 7  # same length, another value
    cu.lens[DV][phone_row, names.index("Phone No.")] += 3  # same code, a longer text
    path = tmp_path_factory.mktemp("synclog") / "ws.duckdb"
    with Workspace(path) as ws:
        publish(ws, sim, scenario="synclog-view")
        no = int(records(ws, Selection(state="skipped"), order_by="-error_no", limit=1)["error_no"].iloc[0])
        ws.con.execute("UPDATE job_errors SET error_message = ? || error_message, message = ? || message "
                       "WHERE error_no = ?", [HOSTILE, HOSTILE, no])
        skipped = records(ws, Selection(state="skipped"), order_by="-error_no", limit=1).iloc[0]["bc_record_id"]
    rid = {k: f"Customer: {cu.key[r]}" for k, r in (("name", name_row), ("phone", phone_row), ("same", same_row))}
    return {"path": path, "rid": rid, "skipped": skipped}


@pytest.fixture
def ws(world: dict):
    with Workspace(world["path"]) as workspace:
        yield workspace


def _panel(ws: Workspace, rid: str, language: str = "en") -> SyncLogPanel:
    return SyncLogPanel(ws, environment=ENV, company=COMPANY, bc_record_id=rid, language=language)


def _html(panel: SyncLogPanel) -> str:
    return "".join(getattr(panel, n).value for n in ("title", "record_html", "errors_html", "jobs_html",
                                                     "timeline_html", "versions_html"))


def _headers(html: str) -> list[str]:
    return re.findall(r"<th>([^<]*)</th>", html)


def _cells(html: str) -> list[str]:
    """The text of every table cell (inside the clip span)."""
    return re.findall(r'<td[^>]*><span title="[^"]*">([^<]*)</span></td>', html)


# -- labels ----------------------------------------------------------------------------------------------------
def test_every_label_is_a_caption_or_a_human_label_never_a_column_name(ws: Workspace, world: dict) -> None:
    for rid in (world["skipped"], world["rid"]["name"]):
        html = _html(_panel(ws, rid))
        heads = _headers(html)
        assert heads and not [t for t in heads if "_" in t], heads  # raw column names have underscores
        for raw in RAW_NAMES:
            assert raw not in html, raw
    html = _html(_panel(ws, world["rid"]["name"]))
    for label in ("Integration Table Mapping Name", "Coupled To", "Coupled Record Exists", "Last Synch. CRM Result",
                  "Start Date/Time", "Finish Date/Time", "Duration", "Inserted",
                  "Exists in Business Central (twin)", "Exists in Dataverse (twin)", "Value in Business Central",
                  "Value in Dataverse", "Length in Dataverse"):
        assert f"<th>{label}</th>" in html, label
    errors = _panel(ws, world["skipped"]).errors_html.value
    assert _headers(errors)[:6] == ["No.", "Date/Time", "Synch. Direction", "Source Record ID",
                                    "Destination Record ID", "Error Message"]


def test_french_and_german_captions_with_english_where_the_catalogue_has_none(ws: Workspace, world: dict) -> None:
    panel = _panel(ws, world["skipped"], "fr")
    html = _html(panel)
    for label in ("Nom mappage table intégration", "Couplé à", "L&#39;enregistrement couplé existe",
                  "Résultat dernière synch. CRM", "Date/heure de début", "Durée", "Date/heure", "N°",
                  "Message d&#39;erreur", "Existe dans Business Central (jumeau)"):
        assert f"<th>{label}</th>" in html, label
    assert "Journal de synchronisation" in panel.title.value
    assert panel.tabs.get_title(0) == "Erreurs de synchronisation d'intégration"
    cells = _cells(html)
    assert "Oui" in cells and "Yes" not in cells and "No" not in cells  # BC's Oui/Non
    assert "Synchronisation" in cells  # the job Type option in French
    de = _html(_panel(ws, world["skipped"], "de"))
    assert "<th>Integrationstabellen-Zuordnungsname</th>" in de and "Ja" in _cells(de)
    # a caption row with no French translation falls back to English
    assert view.caption(("5331 CRM Integration Record", "Option Mapping Failure"), "fr") == "Option Mapping Failure"
    with pytest.raises(ValueError, match="language"):
        _panel(ws, world["skipped"], "es")
    with pytest.raises(ValueError, match="language"):
        view.record_html({"state": "ok"}, "xx")


def test_internal_columns_of_a_record_get_human_labels_and_yes_no() -> None:
    record = {"environment": "PRODUCTION", "company": "CRONUS", "bc_record_id": "Customer: 10000", "state": "skipped",
              "skipped": True, "bc_record_exists": True, "crm_record_exists": False, "inferred": True,
              "integration_id": "2b02e56f-5920-5be9-b0af-827dd44f52f3", "signature": "abc123", "error_job_id": "x",
              "twin_bc_exists": True, "twin_dataverse_exists": False, "failed_on": pd.NaT, "cause": None,
              "latest_error_on": pd.Timestamp("2026-10-02 14:33:49.987654"), "latest_parent": "Salesperson: SP1"}
    html = view.record_html(record)
    rows = dict(re.findall(r'<tr><th>([^<]*)</th><td><span title="[^"]*">([^<]*)</span></td></tr>', html))
    assert rows["Reconstructed from other exports (errors, page 5333)"] == "Yes"
    assert rows["Exists in Business Central (twin)"] == "Yes" and rows["Exists in Dataverse (twin)"] == "No"
    assert rows["Record Exists"] == "Yes" and rows["Coupled Record Exists"] == "No"
    assert rows["Table Name"] == "Customer" and rows["Description"] == "10000"
    assert rows["Latest error, either direction: Date/Time"] == "2026-10-02 14:33:49 UTC"
    assert rows["Integration ID (made up: the page export has none)"] == "{2B02E56F-5920-5BE9-B0AF-827DD44F52F3}"
    assert rows["Latest parent"] == "Salesperson: SP1"  # a column the view does not know: readable, not raw
    assert "abc123" not in html and "Failed On" not in html and "Cause" not in html  # internal / empty: left out
    assert not [k for k in rows if "_" in k]
    assert "Table d&#39;intégration" not in view.record_html(record, "fr")  # no Integration Table: nothing shown
    assert "<th>Ignoré</th><td><span title=\"Oui\">Oui</span>" in view.record_html(record, "fr")


# -- dates ------------------------------------------------------------------------------------------------------
def test_every_date_is_full_to_the_second_in_utc_and_blanks_are_blank(ws: Workspace, world: dict) -> None:
    for rid in (world["skipped"], world["rid"]["name"]):
        panel = _panel(ws, rid)
        html = _html(panel)
        cells = _cells(html)
        dated = [c for c in cells if re.match(r"\d{4}-\d{2}-\d{2}", c)]
        assert dated and all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", c) for c in dated), dated
        assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", html)  # no fractions of seconds anywhere
        assert not {"NaT", "nan", "None", "NaN", "<NA>"} & set(cells)
        assert not re.search(r'title="(NaT|nan|None|NaN|&lt;NA&gt;)"', html)
        n_times = len(panel.log.timeline) + 2 * len(panel.log.jobs) + len(panel.log.errors)
        assert len(dated) >= n_times  # every time of the tables is shown as a date
    assert view.when(pd.Timestamp("2026-10-02 14:33:49.999999")) == "2026-10-02 14:33:49 UTC"
    assert view.when(pd.Timestamp("2026-10-02 16:33:49", tz="Europe/Paris")) == "2026-10-02 14:33:49 UTC"
    assert view.when(pd.NaT) == view.when(None) == view.when(float("nan")) == ""


# -- field values -----------------------------------------------------------------------------------------------
# the twin's fields, one of each kind of value and limit (Customer's and Vendor's Name read alike)
TWIN_FIELDS = sorted({(f.bc_field, _kind(f.bc_field, m.bc_caption), max(f.bc_length, f.dv_length)): m.bc_caption
                      for m in default_mappings() for f in m.fields}.items())
TWIN_FIELDS = [(field, table, limit) for (field, _, limit), table in TWIN_FIELDS]


def test_field_values_are_realistic_texts_of_the_stored_length() -> None:
    t = field_value_text
    assert t("Name", 1234, 20) == t("Name", 1234, 20)  # deterministic
    assert t("Name", 1234, 20, table="Customer") == t("Name", 1234, 20)
    rng = random.Random(7)
    for _ in range(200):
        code, n = rng.randrange(1, 1_000_000), rng.randrange(12, 60)
        name = t("Name", code, n, table="Customer")
        assert re.fullmatch(r"[A-Z][a-z]+( \S+)*", name), name
        assert re.fullmatch(r"[a-z]+(\.[a-z]+)*@[a-z]+(\.[a-z]+)+", t("E-Mail", code, max(n, 18))), t("E-Mail", code, n)
        assert re.fullmatch(r"(\+\d+ )?[\d ]+( ext\. \d+)?", t("Phone No.", code, n)), t("Phone No.", code, n)
        assert re.fullmatch(r"\d+ [A-Z][a-z]+( \S+)*", t("Address", code, max(n, 16))), t("Address", code, n)
        assert re.fullmatch(r"[A-Z][a-z]+( [A-Za-z]+)*", t("City", code, n))
        assert re.fullmatch(r"[A-Z]{3}", t("Code", code, 3, table="Currency"))
        assert re.search(r"\d{4}", t("Post Code", code, 8))
        assert re.fullmatch(r"\w+( [A-Z]\.?| [A-Z][a-z]+)* [A-Z][a-z]+",
                            t("Name", code, 16, table="Salesperson/Purchaser")), t("Name", code, 16, table="Salesperson/Purchaser")
    assert t("Unit Price", 123456, 0) == "1,234.56" and t("Credit Limit (LCY)", 5, 0) == "0.05"
    assert t("Name", None, None) == "" and t("Name", 12, None) != ""
    for field, table, limit in TWIN_FIELDS:
        for n in (3, 7, limit // 2, limit, limit + 25):  # a too-long value stays too long
            if limit:
                text = t(field, 999_999, n, table=table)
                assert len(text) == n and text == text.strip() and "  " not in text, (field, n, text)


def test_different_codes_give_different_texts() -> None:
    rng = random.Random(11)
    codes = sorted({rng.randrange(1, 1_000_007) for _ in range(1000)} | {1, 2, 7, 8, 999_999, 1_000_006})
    for field, table, limit in TWIN_FIELDS:
        for n in sorted({6, 9, 14, limit, limit + 30} if limit else {0}):
            texts = {field_value_text(field, c, n, table=table) for c in codes}
            assert len(texts) == len(codes), (field, n)
            # a different length reads differently too
            assert field_value_text(field, 4242, n, table=table) != field_value_text(field, 4242, n + 1, table=table) \
                or not limit
        if limit:  # shorter than a word: codes closer than 26**length (or 10**length) still differ
            for c in codes[:300]:
                assert field_value_text(field, c, 3, table=table) != field_value_text(field, c + 7, 3, table=table)


def test_both_versions_read_as_texts_that_agree_with_the_differs_mark(ws: Workspace, world: dict) -> None:
    for key, field in (("name", "Name"), ("phone", "Phone No."), ("same", None)):
        log = act.sync_log(ws, environment=ENV, company=COMPANY, bc_record_id=world["rid"][key])
        v = log.versions
        assert {"field", "bc_value", "dataverse_value", "bc_length", "dataverse_length", "differs", "bc_text",
                "dataverse_text", "dataverse_caption"} <= set(v.columns)
        assert (v["bc_text"].str.len() == v["bc_length"]).where(v["bc_length"] > 0, True).all()
        assert ((v["bc_text"] != v["dataverse_text"]) == v["differs"]).all()
        assert v.loc[v["differs"], "field"].tolist() == ([field] if field else [])
        html = view.versions_html(v)
        rows = re.findall(r"<tr( class=\"sa-diff\")?>(.*?)</tr>", html.split("<tbody>", 1)[1])
        assert len(rows) == len(v)
        for (mark, row), (_, r) in zip(rows, v.iterrows()):
            cells = re.findall(r'<span title="[^"]*">([^<]*)</span>', row)
            assert bool(mark) == bool(r["differs"]) == ("≠ differs" in cells)
            assert cells[3] == r["bc_text"].replace("&", "&amp;") and cells[5] == r["dataverse_text"].replace("&", "&amp;")
            assert (cells[3] != cells[5]) == bool(r["differs"])
            if r["field"] in ("Name", "Address", "City", "E-Mail"):  # the stored code itself is not shown
                assert not any(str(r["bc_value"]) in c for c in cells)
        if field:
            fr = view.versions_html(v, "fr")
            assert fr.count('<tr class="sa-diff">') == 1 and ">≠ diffère<" in fr
        assert "Account Name (name)" in html  # BC's caption of the Dataverse field, with its name
    same_log = act.sync_log(ws, environment=ENV, company=COMPANY, bc_record_id=world["rid"]["same"])
    assert "Both apps hold the same values." in view.versions_html(same_log.versions)


def test_versions_of_codes_only_are_rendered_and_a_look_alike_pair_says_so() -> None:
    frame = pd.DataFrame({"field": ["Symbol", "Name"], "dataverse_field": ["currencysymbol", "name"],
                          "direction": [bc.TO_INTEGRATION, bc.BIDIRECTIONAL], "bc_value": [1, 500],
                          "dataverse_value": [1 + 26 ** 3, 500], "bc_length": [3, 20], "dataverse_length": [3, 20],
                          "differs": [True, False]})
    html = view.versions_html(frame)
    assert field_value_text("Name", 500, 20) in html and field_value_text("Symbol", 1, 3) in html
    assert html.count('<tr class="sa-diff">') == 1 and "same text, different stored values" in html
    assert "ToIntegrationTable" in html and "Bidirectionnel" in view.versions_html(frame, "fr")
    assert "No twin behind this workspace" in view.versions_html(None)
    assert "Aucun jumeau" in view.versions_html(None, "fr")


# -- escaping -----------------------------------------------------------------------------------------------------
def test_markup_in_error_messages_is_shown_as_text(ws: Workspace, world: dict) -> None:
    panel = _panel(ws, world["skipped"])
    html = _html(panel)
    assert HOSTILE in panel.log.errors["error_message"].iloc[0]
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;bold&lt;/b&gt; &amp; more" in panel.errors_html.value
    assert "&lt;script&gt;" in panel.timeline_html.value  # the failure's detail quotes the message


def test_the_panel_keeps_its_attributes_and_the_log_its_shape(ws: Workspace, world: dict) -> None:
    panel = _panel(ws, world["skipped"])
    assert panel.value == {"environment": ENV, "company": COMPANY, "bc_record_id": world["skipped"]}
    assert panel.language == "en" and panel.log.errors is not None
    assert panel.errors_html.value.count("<tr>") == len(panel.log.errors) + 1
    assert "Synchronization Log — " in panel.title.value
    assert {"job_id", "why", "inferred", "deleted"} <= set(panel.log.jobs.columns)
    assert {"error_no", "message", "error_message", "job_inferred"} <= set(panel.log.errors.columns)
    assert list(panel.log.timeline.columns) == ["time", "event", "direction", "detail", "state"]


def test_errors_show_causes_by_title_and_messages_in_full() -> None:
    tail = "Value: " + "x" * 1200 + " END-OF-MESSAGE"
    errors = pd.DataFrame({"error_no": [7], "logged_at": [pd.Timestamp("2026-05-01 10:00:00")],
                           "synch_direction": ["ToIntegrationTable"], "source_record_id": ["Customer: 10000"],
                           "destination_record_id": ["Dataverse Account: {ABC}"],
                           "error_message": ["The length of the string is 1230, but it must be less than or equal "
                                             "to 100 characters. " + tail], "cause": ["field-length"]})
    html = view.errors_html(errors)
    text = re.sub(r"<[^>]+>", " ", html)
    assert "END-OF-MESSAGE" in text and "…" not in text
    assert "Value longer than the destination field" in text and "field-length" not in text
