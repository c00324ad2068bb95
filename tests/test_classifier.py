"""How texts are matched: catalogue rules, tolerant matching, honesty on unknown texts, languages, local templates.

The texts here are written by hand after the shapes of real messages; the real messages themselves
(with their sources) are in ``tests/data/real_messages`` and judged by ``test_real_messages.py``.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from syncanalysis import cli
from syncanalysis.analysis import rules
from syncanalysis.analysis import signatures as sg
from syncanalysis.analysis.causes import CAUSES, cause_info
from syncanalysis.analysis.signatures import CatalogueError, classify, run_classify, use_templates
from syncanalysis.workspace import Workspace

WRAP_DV = "An error occurred when communicating with Dataverse. Detailed description: "
PRINCIPAL = ("Principal user (Id=4ecc4022-10fa-4920-a77a-0dcc8aacd07f, type=8, roleCount=1, privilegeCount=300, "
             "accessMode=0), is missing prvWriteAccount privilege (Id=7d5f1d0b-2a5d-4a64-9d3b-26fb4f9b7b1b) on "
             "OTC=1 for entity 'account'.")


def one(text: str) -> pd.Series:
    return classify([text]).iloc[0]


@pytest.fixture(autouse=True)
def _no_local_templates():
    use_templates()
    yield
    use_templates()


# -- catalogue rules ------------------------------------------------------------------------------
def test_every_catalogue_row_gets_a_cause_or_a_reason(capsys):
    codes, labels = rules.dataverse_code_causes(), rules.label_causes()
    assert len(codes) == 4059 and len(labels) == 1382
    for df in (codes, labels):
        assert df["rule"].ne("").all() and df["why"].str.len().gt(10).all()
        assert set(df["cause"]) - {rules.NO_CAUSE} <= set(CAUSES)
    counts = rules.rule_counts()
    with capsys.disabled():  # the table of how many rows each rule claims, for the reader of the test log
        print("\n" + counts.to_string(index=False))
    assert counts.groupby("catalogue")["rows"].sum().to_dict() == {"dataverse-error-codes": 4059,
                                                                    "bc-integration-labels": 1382}
    by_rule = counts.groupby(["catalogue", "rule"])["rows"].sum()
    # every rule claims rows (a rule that claims none is dead)
    assert {r.name for r in rules.DATAVERSE_RULES} == set(by_rule["dataverse-error-codes"].index)
    # the families the issue names land where a BC consultant would put them
    assert by_rule["dataverse-error-codes", "privilege"] > 50
    assert by_rule["dataverse-error-codes", "service-protection"] >= 5


@pytest.mark.parametrize(("name", "cause"), [
    ("PrivilegeDenied", "permission"), ("ThrottlingBurstRequestLimitExceededError", "throttling"),
    ("DuplicateRecord", "duplicate"), ("ObjectDoesNotExist", "not-found"), ("CrmSqlGovernorDatabaseRequestDenied",
                                                                           "timeout"),
    ("StringLengthTooLong", "field-length"), ("CrmSQLCharLengthTooLong", "field-length"),
    ("ImportSolutionError", rules.NO_CAUSE),
])
def test_code_families_map_to_causes(name, cause):
    codes = rules.dataverse_code_causes().set_index("name")
    assert codes.loc[name, "cause"] == cause, codes.loc[name].to_dict()


def test_error_codes_in_the_text_are_looked_up_as_hex_and_as_integers():
    for text in ("Error 0x80040220 while saving", "CRM ErrorCode: -2147220960"):
        r = one(text)
        assert (r.cause, r.match) == ("permission", "error code"), r.to_dict()
        assert "0x80040220" in r.match_detail and "PrivilegeDenied" in r.match_detail
    assert rules.codes_in("nothing here 0x12 and -21") == []


@pytest.mark.parametrize("text", [
    "Save failed for account. CRM ErrorCode: -2147220960",
    "Save failed for account. ErrorCode: 0x80040220",
    WRAP_DV + "Save failed for account. CRM ErrorCode: -2147220960",
])
def test_an_error_code_in_a_suffix_still_decides_the_cause(text):
    r = one(text)
    assert (r.cause, r.match) == ("permission", "error code"), r.to_dict()
    assert "ErrorCode" not in r.signature  # set aside from the signature all the same


def test_a_sql_number_in_a_suffix_is_read_by_the_wording_rules():
    r = one("Sql error: The operation failed. CRM ErrorCode: -2147204784 Sql ErrorCode: -2146232060 Sql Number: 1205")
    assert r.cause == "timeout", r.to_dict()  # SQL 1205: a deadlock victim


# -- tolerant matching ----------------------------------------------------------------------------
BARE_LENGTH = "The length of the string is 107, but it must be less than or equal to 100 characters."


def test_bare_string_length_text_is_field_length_as_inside_a_wrapper():
    bare = one(BARE_LENGTH)
    wrapped = one("Modifying Customer failed because of the following error: " + BARE_LENGTH)
    value = one(BARE_LENGTH[:-1] + ". Value: Nordic Trading and Consulting AB")
    assert bare.cause == wrapped.cause == value.cause == "field-length"
    assert one(WRAP_DV + BARE_LENGTH).cause == "field-length"


@pytest.mark.parametrize("variant", [
    lambda t: t.rstrip("."),                       # no final period
    lambda t: t.replace(" ", "  "),                # doubled blanks
    lambda t: t.replace(". ", ".\n"),              # line breaks
    lambda t: t.replace("'", "\u2019"),            # typographic quotes
    lambda t: t + " Request ID: 6629091b-1673-4b76-a0b7-b6ef8b841cf1",
    lambda t: t + " CRM ErrorCode: -2147220960",
    lambda t: t + " 2026-11-03T10:22:31.123Z",
    lambda t: t + "\r\n",
])
def test_matching_tolerates_periods_blanks_quotes_and_suffixes(variant):
    base = WRAP_DV + "CrmUpdate failed. " + PRINCIPAL
    ref = one(base)
    assert ref.cause == "permission"
    r = one(variant(base))
    assert r.cause == "permission", r.to_dict()
    assert r.signature.rstrip(".") == ref.signature.rstrip("."), (r.signature, ref.signature)


def test_known_prefixes_are_unwrapped():
    for prefix in ("Read Privilege Check For Owner failed with exception: ", "Sql error: ",
                   "CrmCreate failed. ", "The remote server returned an error: (400) Bad Request. "):
        r = one(prefix + "A record with matching key values already exists.")
        assert r.cause == "duplicate", (prefix, r.to_dict())


def test_wrappers_unwrap_recursively_to_the_innermost_cause():
    text = ("The data could not be updated because of the following error: Modifying Customer failed because of "
            "the following error: " + WRAP_DV + "CrmCreate failed. " + PRINCIPAL)
    r = one(text)
    assert r.cause == "permission"
    assert r.signature.startswith("The data could not be updated because of the following error: Modifying <table>")
    assert "<privilege>" in r.signature or "prvWriteAccount" in r.signature


def test_http_429_and_service_protection_are_throttling():
    for t in ("The remote server returned an error: (429) Too Many Requests.",
              "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
              WRAP_DV + "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds "
              "over time window of 300 seconds. Decrease number of concurrent requests or reduce the duration "
              "of requests and try again later."):
        assert one(t).cause == "throttling", t


# -- never confidently wrong ----------------------------------------------------------------------
def test_unknown_text_inside_the_dataverse_wrapper_is_a_dataverse_error_not_connection():
    inner = "Plugin Contoso.Validation threw an exception in step PreOperation of Update."
    r = one(WRAP_DV + inner)
    assert r.cause == "dataverse-error"
    assert inner.rstrip(".") in r.signature  # the inner text stays, so different faults stay apart
    remedy = CAUSES["dataverse-error"].remedy
    assert "inner text" in remedy and "not a connection problem" in remedy
    other = one(WRAP_DV + "Something else entirely went wrong in the platform today.")
    assert other.signature != r.signature


def test_unclassified_remedy_says_where_to_look():
    remedy = cause_info("unclassified").remedy.lower()
    assert "inner" in remedy and "call stack" in remedy and "template" in remedy


def test_loose_templates_do_not_swallow_unrelated_texts():
    for t in ("The Sales Header SO1001 was not found.", "The Item 1000 could not be found in the warehouse.",
              "The file report.pdf was not found."):
        r = one(t)
        assert r.cause == "unclassified" and r.template is None, (t, r.to_dict())


def test_a_disabled_connection_is_connection_only_when_the_text_says_so():
    assert one("Connection to Dynamics 365 is broken and that it has been disabled due to an error: "
               "The user is not a member of the organization.").cause == "connection"
    assert one(WRAP_DV + "The user is not a member of the organization.").cause != "connection"


def test_each_result_says_how_it_was_matched():
    texts = {
        "Salesperson/Purchaser NEWSP must be coupled to a Dataverse row.": "template",
        "Error 0x80040220 while saving": "error code",
        "The remote server returned an error: (429) Too Many Requests.": "wording rule",
        "Totally unknown failure 42": "none",
    }
    got = classify(list(texts)).set_index("error_message")["match"].to_dict()
    assert got == texts
    items = json.loads(run_classify(list(texts), as_json=True))
    assert [i["match"] for i in items] == list(texts.values())
    assert all("match_detail" in i and "language" in i for i in items)


# -- grouping of unknown texts --------------------------------------------------------------------
def test_unknown_texts_that_differ_in_table_or_direction_are_separate_signatures():
    texts = ["Cannot update the Customer record because it is locked by job 17.",
             "Cannot update the Account record because it is locked by job 17.",
             "Cannot update the Customer record because it is locked by job 18.",
             "Cannot insert the Customer record because it is locked by job 19."]
    sigs = classify(texts)["signature"].tolist()
    assert sigs[0] == sigs[2]  # only a value differs: one group
    assert len({sigs[0], sigs[1], sigs[3]}) == 3


def _errors(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"environment": "E", "company": "C", "error_no": range(1, len(texts) + 1),
                         "message": [t[:250] for t in texts], "error_message": texts})


def test_workspace_groups_unknown_texts_apart_by_table():
    texts = ["Cannot update the Customer record because it is locked by job 17.",
             "Cannot update the Account record because it is locked by job 17.",
             "Cannot update the Customer record because it is locked by job 18."]
    with Workspace() as ws:
        ws.ingest({"job_errors": _errors(texts)}, source="t", kind="test")
        sg.assign_signatures(ws)
        sigs = ws.query("job_errors", limit=None).sort_values("error_no")["signature"].tolist()
    assert sigs[0] == sigs[2] != sigs[1]


# -- languages ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "lang"), [
    ("Une erreur s'est produite lors de la communication avec Dataverse. Description détaillée : le délai "
     "d'attente est dépassé.", "fr"),
    ("Die Änderung von Debitor ist aufgrund des folgenden Fehlers fehlgeschlagen: Der Wert ist zu lang.", "de"),
    ("Se produjo un error al comunicarse con Dataverse. Descripción detallada: el usuario no tiene permisos.", "es"),
])
def test_non_english_texts_are_detected_and_not_guessed(text, lang):
    r = one(text)
    assert r.language == lang
    assert r.cause == "unclassified"
    assert "language" in r.match_detail or "English" in r.match_detail


def test_english_texts_with_french_values_stay_english():
    r = one("Salesperson/Purchaser LÉA must be coupled to a Dataverse row.")
    assert (r.language, r.cause) == ("en", "not-coupled")


# -- local templates ------------------------------------------------------------------------------
LOCAL = "template,source,category\nThe Contoso check %1 failed for %2.,Contoso extension,validation\n"


def test_local_templates_are_matched_and_bad_files_are_refused(tmp_path):
    text = "The Contoso check CREDIT failed for C00010."
    assert one(text).cause == "unclassified"
    f = tmp_path / "local.csv"
    f.write_text(LOCAL, encoding="utf-8")
    n = use_templates(f)
    assert n > 0
    r = one(text)
    assert (r.cause, r.template, r.match) == ("validation", "The Contoso check %1 failed for %2.", "local template")
    bad = tmp_path / "bad.csv"
    bad.write_text("template,source,category\nSomething %1,me,no-such-cause\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"bad\.csv.*no-such-cause|no-such-cause.*bad\.csv"):
        use_templates(bad)
    assert one(text).cause == "validation"  # a refused file leaves the templates in use unchanged


def test_a_workspace_reclassifies_when_local_templates_change(tmp_path):
    text = "The Contoso check CREDIT failed for C00010."
    with Workspace() as ws:
        ws.ingest({"job_errors": _errors([text])}, source="t", kind="test")
        assert sg.assign_signatures(ws) == 1
        assert ws.query("job_errors").iloc[0].cause == "unclassified"
        assert sg.ensure_signatures(ws) == 0  # nothing changed: nothing to do
        f = tmp_path / "local.csv"
        f.write_text(LOCAL, encoding="utf-8")
        use_templates(f)
        assert sg.ensure_signatures(ws) == 1  # the new template makes the stored signatures stale
        row = ws.query("job_errors").iloc[0]
        assert row.cause == "validation", row.to_dict()
        assert row.signature.startswith("The Contoso check ") and "CREDIT" not in row.signature
        stored = ws.query("signatures", limit=None).iloc[0]
        assert stored.match == "local template"
        # the same file edited in place (another cause) is read again and the history reclassified
        f.write_text(LOCAL.replace(",validation", ",permission"), encoding="utf-8")
        os.utime(f, ns=(1, 1))  # a new mtime even on a coarse-grained file system
        assert sg.ensure_signatures(ws) == 1
        assert ws.query("job_errors").iloc[0].cause == "permission"


def test_cli_classify_takes_local_templates_and_shows_the_match(tmp_path, capsys):
    f = tmp_path / "local.csv"
    f.write_text(LOCAL, encoding="utf-8")
    rc = cli.main(["classify", "--templates", str(f), "--json", "The Contoso check CREDIT failed for C00010."])
    assert rc in (0, None)
    item = json.loads(capsys.readouterr().out)[0]
    assert (item["cause"], item["match"]) == ("validation", "local template")


# -- schema v2 -> v3 --------------------------------------------------------------------------------
def _as_v2(path) -> None:
    """Turn a workspace file back into schema 2: signatures without the match columns."""
    import duckdb

    con = duckdb.connect(str(path))
    for col in ("match", "match_detail", "language"):
        con.execute(f'ALTER TABLE signatures DROP COLUMN "{col}"')
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()


def test_a_v2_workspace_is_upgraded_in_place_and_its_texts_classified_again(tmp_path):
    from syncanalysis.schema import SCHEMA_VERSION
    from syncanalysis.workspace import WorkspaceError

    path = tmp_path / "old.duckdb"
    texts = ["An error occurred when communicating with Dataverse. Detailed description: Plugin X threw.",
             "Customer C1 must be coupled to a Dataverse row."]
    with Workspace(path) as ws:
        ws.ingest({"job_errors": _errors(texts)}, source="t", kind="test")
        sg.assign_signatures(ws)
    _as_v2(path)
    with pytest.raises(WorkspaceError, match=r"schema version 2.*without read_only"):
        Workspace(path, read_only=True)
    with Workspace(path) as ws:
        assert ws.schema_version == SCHEMA_VERSION
        assert ws.query("signatures", limit=None).empty  # a cache: rebuilt with how each text matched
        assert ws.query("job_errors", limit=None)["error_message"].tolist() == texts  # history kept
        assert sg.ensure_signatures(ws) == 2
        got = ws.query("job_errors", limit=None).sort_values("error_no")["cause"].tolist()
        assert got == ["dataverse-error", "not-coupled"]
        assert set(ws.query("signatures", limit=None)["match"]) == {"template"}


# -- prefixes must not become part of a caption ---------------------------------------------------------
@pytest.mark.parametrize("prefix", ["Error: ", "Sql error: ", "The remote server returned an error: (400) Bad Request. ",
                                    "System.ServiceModel.FaultException: "])
def test_a_prefix_before_a_caption_is_not_read_as_the_table(prefix):
    r = one(prefix + "Customer C00010 must be coupled to a Dataverse row.")
    assert (r.cause, r.parent_table, r.parent_key) == ("not-coupled", "Customer", "C00010"), r.to_dict()


def test_http_reason_phrases_of_several_words_are_unwrapped_whole():
    r = one("The remote server returned an error: (404) Not Found. The user is disabled.")
    assert r.cause == "permission", r.to_dict()


def test_fuzzy_matches_need_the_templates_words():
    for t in ("The specified key does not exist.", "The record is already open."):
        assert one(t).cause == "unclassified", t
    reworded = one("The contact cannot be created because the company does not exist.")
    assert (reworded.cause, reworded.match) == ("not-coupled", "fuzzy")


def test_generic_dataverse_messages_need_dataverse_context():
    assert one("An unexpected error occurred.").cause == "unclassified"
    assert one(WRAP_DV + "An unexpected error occurred.").cause == "dataverse-error"


def test_deep_wrapper_chains_reach_the_innermost_cause():
    text = ("The data could not be updated because of the following error: Modifying Customer failed because of the "
            "following error: " + WRAP_DV + "CrmCreate failed. Sql error: Generic SQL error.")
    r = one(text)
    assert r.cause == "timeout", r.to_dict()


def test_the_environment_variable_selects_local_templates(tmp_path, monkeypatch):
    f = tmp_path / "env.csv"
    f.write_text(LOCAL, encoding="utf-8")
    text = "The Contoso check CREDIT failed for C00010."
    monkeypatch.setattr(sg, "_local", None)  # as in a new process: no use_templates() call
    monkeypatch.setenv(sg.LOCAL_TEMPLATES_ENV, str(f))
    before = sg.classifier_fingerprint()
    assert sg.local_templates() == (str(f),)
    assert (one(text).cause, one(text).match) == ("validation", "local template")
    monkeypatch.delenv(sg.LOCAL_TEMPLATES_ENV)
    assert one(text).cause == "unclassified"
    assert sg.classifier_fingerprint() != before
