"""Error signatures, catalogue templates and causes (syncanalysis.analysis.signatures / causes)."""

from __future__ import annotations

import json
import string

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncanalysis.analysis import signatures as sg
from syncanalysis.analysis.causes import BC_ACTIONS, CAUSES, cause_info
from syncanalysis.analysis.signatures import (
    CatalogueError,
    assign_signatures,
    catalogue,
    classify,
    mask,
    run_classify,
    templates,
)
from syncanalysis.twin.export import canonical_frames
from syncanalysis.workspace import Workspace

TEMPLATES = templates()
PLAIN = [t for t in TEMPLATES if t.inner is None]
WRAPPERS = [t for t in TEMPLATES if t.inner is not None]

# Realistic values per placeholder kind (two sets, so that "differ only in values" can be checked).
VALUES = [
    {"table": "Customer", "parent-table": "Salesperson/Purchaser", "key": "C00010", "n": "125", "text": "Adatum Corp",
     "guid": "{4ECC4022-10FA-4920-A77A-0DCC8AACD07F}", "id": "6629091b-1673-4b76-a0b7-b6ef8b841cf1", "code": "PCS",
     "name": "CUSTOMER", "value": "Foo", "detail": "Request ID: 6629091b-1673-4b76-a0b7-b6ef8b841cf1",
     "user": "svc-sync01", "privilege": "prvCreateAccount", "email": "a@contoso.com", "url": "https://x.crm4.dynamics.com",
     "op": "Create", "service": "Dataverse", "field": "Name"},
    {"table": "Vendor", "parent-table": "Salesperson/Purchaser", "key": "V20000", "n": "7", "text": "Fabrikam Ltd",
     "guid": "{0E1E748D-B828-4789-8247-CFA948666021}", "id": "e82d80d2-025b-4a7e-bc8a-482650c3d8f4", "code": "BOX",
     "name": "VENDOR", "value": "Bar", "detail": "Request ID: e82d80d2-025b-4a7e-bc8a-482650c3d8f4",
     "user": "svc-sync02", "privilege": "prvWriteContact", "email": "b@fabrikam.com", "url": "https://y.crm.dynamics.com",
     "op": "Create", "service": "Dataverse", "field": "City"},
]
UNKNOWN_INNER = "Something odd happened in extension Contoso Tools"


def fill(tpl: sg.Template, values: dict[int, str]) -> str:
    """Fill a catalogue template like BC does (an AL line break becomes a newline)."""
    return "".join(p.replace("\\\\", "\n") if isinstance(p, str) else values[p] for p in tpl.parts)


def realistic(tpl: sg.Template, which: int = 0, inner: str = UNKNOWN_INNER) -> dict[int, str]:
    values = {k: (inner if kind == "message" else VALUES[which][kind]) for k, kind in tpl.kinds.items()}
    for k, rx in sg._CONSTRAINED.get(tpl.text, {}).items():  # a loose template's value must be a known name
        values[k] = rx.split("|")[0].replace("\\", "")
    return values


def one(text: str) -> pd.Series:
    return classify([text]).iloc[0]


BY_TEXT = {t.text: t for t in TEMPLATES}


def own_cause(tpl: sg.Template) -> str:
    """The cause of a template filled with values; for a wrapper, with an inner text nothing knows."""
    return {"inner": "unclassified", "inner-dataverse": "dataverse-error"}.get(tpl.wrap, tpl.category)


def assert_own_template(row: pd.Series, tpl: sg.Template, text: str) -> None:
    """The text classifies to its template, or to a more specific one it is also an instance of
    (e.g. "%1 %2 must be coupled to a %3 row." filled with Dataverse is "… to a Dataverse row.")."""
    assert row.cause == own_cause(tpl)
    if row.template != tpl.text:
        other = BY_TEXT[row.template]
        assert other.regex.fullmatch(text) and other.weight > tpl.weight, (row.template, tpl.text)


# -- catalogue and causes -------------------------------------------------------------------------

def test_catalogue_has_both_files_and_known_categories():
    cat = catalogue()
    assert set(cat.file) == set(sg.CATALOGUE_FILES)
    assert cat.template.is_unique
    assert set(cat.category) <= set(CAUSES)
    raw = pd.read_csv("syncanalysis/data/bc-error-templates.csv", dtype=str, keep_default_na=False)
    assert len(cat[cat.file == "bc-error-templates.csv"]) == len(raw)
    extra = cat[cat.file == "extra-templates.csv"]
    assert {"throttling", "timeout", "permission"} <= set(extra.category)


def test_every_cause_has_an_admin_remedy_and_bc_action():
    cat = catalogue()
    for code in set(cat.category):
        c = cause_info(code)
        assert c.code == code and c.title and len(c.remedy) > 80 and c.action
        assert c.bc_action is None or c.bc_action in BC_ACTIONS
    for code in ("timeout", "throttling", "pending"):
        assert CAUSES[code].transient and CAUSES[code].bc_action is None
    for code in ("not-coupled", "conflict", "deleted", "permission", "field-length"):
        assert not CAUSES[code].transient
    assert "Retry" in CAUSES["not-coupled"].action and "Set Up Coupling" in CAUSES["not-coupled"].action
    assert "Restore Records" in CAUSES["deleted"].action and "Delete Records" in CAUSES["deleted"].action
    assert "Resolve Update Conflicts" in CAUSES["conflict"].action
    assert "Retry All" in CAUSES["permission"].action
    assert cause_info("nonsense").code == "unclassified" == cause_info(None).code


def test_bad_catalogue_file_names_file_and_line(tmp_path):
    bad = tmp_path / "extra.csv"
    bad.write_text("template,source,category\nFoo %1 bar.,somewhere,no-such-category\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"extra\.csv, line 2: unknown category 'no-such-category'"):
        sg._read_catalogue_file(bad)
    bad.write_text("text,category\nx,y\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="header"):
        sg._read_catalogue_file(bad)
    with pytest.raises(CatalogueError, match="no literal text"):
        sg._compile("%1", "src", "validation", "extra.csv")


# -- every template, filled ------------------------------------------------------------------------

@pytest.mark.parametrize("tpl", TEMPLATES, ids=lambda t: t.text[:50])
def test_each_template_filled_with_values_classifies_to_itself(tpl):
    text = fill(tpl, realistic(tpl))
    row = one(text)
    assert_own_template(row, tpl, text)
    assert "%" not in row.signature


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_templates_filled_with_random_values_keep_their_category(data):
    tpl = data.draw(st.sampled_from(TEMPLATES))
    word = st.text(alphabet=string.ascii_letters + string.digits + "-_/", min_size=1, max_size=15)
    values = {k: data.draw(word) for k in tpl.kinds}
    values.update({k: v for k, v in realistic(tpl).items() if k in sg._CONSTRAINED.get(tpl.text, {})})
    text = fill(tpl, values)
    assert_own_template(one(text), tpl, text)


def test_signatures_identical_for_values_and_distinct_per_template():
    texts0 = [fill(t, realistic(t, 0)) for t in TEMPLATES]
    sig0 = classify(texts0).set_index("error_message").signature
    sig1 = classify([fill(t, realistic(t, 1)) for t in TEMPLATES]).set_index("error_message").signature
    first = [sig0[t] for t in texts0]
    assert first == list(sig1[[fill(t, realistic(t, 1)) for t in TEMPLATES]])
    # one signature per template (two templates filled to the same text aside, see assert_own_template)
    assert len(set(first)) == len(set(texts0))
    for tpl, sig in zip(TEMPLATES, first):
        for v in VALUES[0].values():
            if v not in ("Dataverse", "Salesperson/Purchaser", "Create"):  # kept names of things
                assert v not in sig or v in tpl.text, (v, sig)


def _long_placeholder(tpl: sg.Template) -> int | None:
    """The last placeholder whose first occurrence follows 20 literal characters of the template (or all of
    them): a text cut inside its value is still attributed to the template."""
    first: dict[int, int] = {}
    for covered, k, *_ in tpl.prefixes:
        first[k] = min(covered, first.get(k, covered))
    ok = [k for k, covered in first.items() if covered >= min(sg._MIN_PREFIX_LITERAL, tpl.weight)]
    return max(ok, key=lambda k: first[k]) if ok else None


@pytest.mark.parametrize("tpl", [t for t in TEMPLATES if _long_placeholder(t) or len(t.text) > 260],
                         ids=lambda t: t.text[:50])
@pytest.mark.parametrize("limit", [sg.MESSAGE_LEN, sg.ERROR_MESSAGE_LEN])
def test_template_cut_at_the_field_length_still_matches(tpl, limit):
    values = realistic(tpl)
    k = _long_placeholder(tpl)
    if k is not None:  # a long value, so the cut lands in it
        values[k] = " ".join(["Consolidated Holding Services"] * (limit // 20))
    text = fill(tpl, values)
    if len(text) <= limit:
        pytest.skip("no placeholder to make long and the text is shorter than the limit")
    row = one(text[:limit])
    if row.template != tpl.text and k is not None:
        # another template that reads the same up to the cut is an equally good answer
        head = tpl.parts[: tpl.parts.index(k) + 1]
        assert BY_TEXT[row.template].parts[: len(head)] == head, row.template
    else:
        assert (row.template, row.cause) == (tpl.text, own_cause(tpl))


@pytest.mark.parametrize("pad", range(60, 226, 5))
def test_wrapped_text_cut_anywhere_at_250(pad):
    """Shift the 250-char cut from the inner value back through the inner and the wrapper's literals."""
    head = f"Modifying Customer{'x' * pad} failed because of the following error: "
    inner = "The length of the string is 180, but it must be less than or equal to 100 characters. Value: Nordic Trading"
    cut = (head + inner + ".")[:250]
    kept = len(cut[len(head):].replace(" ", ""))  # literal characters of the inner text left
    row = one(cut)
    shown = len("Modifying") + len(cut[len(f"Modifying Customer{'x' * pad}"):].replace(" ", ""))
    if kept >= 20:
        assert row.cause == "field-length", row.signature
    elif shown >= 20:  # too little of the inner text to tell: the wrapper is known, the cause is not
        assert (row.cause, row.template) == ("unclassified", "Modifying %1 failed because of the following error: %2.")
    else:  # too little of any template
        assert row.cause == "unclassified"


# -- wrappers ---------------------------------------------------------------------------------------

def test_wrappers_are_classified_by_their_inner_text_recursively():
    length = ("The length of the string is 125, but it must be less than or equal to 100 characters. "
              "Value: Holding Services Consolidated")
    row = one(f"Modifying Customer failed because of the following error: {length}.")
    assert row.cause == "field-length"
    assert row.template == "The length of the string is %1, but it must be less than or equal to %2 characters. Value: %3"
    assert row.inner_message == length
    assert row.signature == ("Modifying <table> failed because of the following error: The length of the string "
                             "is <n>, but it must be less than or equal to <n> characters. Value: <text>.")

    nested = one("The data could not be updated because of the following error: Modifying Contact failed because "
                 "of the following error: Salesperson/Purchaser NEWSP must be coupled to a Dataverse row...")
    assert (nested.cause, nested.parent_table, nested.parent_key) == ("not-coupled", "Salesperson/Purchaser", "NEWSP")
    # one period short of BC's three: still found
    short = one("The data could not be updated because of the following error: Modifying Contact failed because "
                "of the following error: Salesperson/Purchaser NEWSP must be coupled to a Dataverse row.")
    assert (short.cause, short.signature) == ("not-coupled", nested.signature)
    assert nested.signature.startswith("The data could not be updated because of the following error: Modifying "
                                       "<table> failed because of the following error: Salesperson/Purchaser <key>")

    priv = one("An error occurred when communicating with Dataverse. Detailed description: CrmCreate failed. "
               "Principal user (Id=4ecc4022-10fa-4920-a77a-0dcc8aacd07f, type=8) is missing prvCreateAccount privilege")
    assert priv.cause == "permission"
    assert priv.signature == ("An error occurred when communicating with Dataverse. Detailed description: CrmCreate "
                              "failed. Principal user (Id=<guid>, type=8) is missing <privilege> privilege")
    assert priv.inner_message.startswith("Principal user (Id=")

    for t in ("Uncoupling Customer failed because of the following error: The Customer record cannot be updated "
              "because it is coupled to a deleted record..",
              "Coupling Customer failed because of the following error: The Customer record cannot be updated "
              "because it is coupled to a deleted record.."):
        assert one(t).cause == "deleted"

    unknown = one(f"Modifying Customer failed because of the following error: {UNKNOWN_INNER}.")
    # an unknown inner text: the wrapper is known, the cause is not (never the wrapper's guess)
    assert (unknown.cause, unknown.template) == ("unclassified", "Modifying %1 failed because of the following error: %2.")
    assert unknown.inner_message == UNKNOWN_INNER
    assert UNKNOWN_INNER in unknown.signature  # the inner text stays in the signature, so it is its own group

    # a disabled connection stays a connection problem whatever its inner text
    disabled = one("Connection to Dynamics 365 is broken and that it has been disabled due to an error: "
                   "The user is not a member of the organization.")
    assert disabled.cause == "connection"


def test_dataverse_service_texts_with_trailing_details():
    rid = "Request ID: 34c3377d-c484-49b4-b9d9-a7c2d50c53a8"
    cases = {
        f"An error occurred when communicating with Dataverse. Detailed description: Number of requests exceeded "
        f"the limit of 6000 over time window of 300 seconds. {rid}": "throttling",
        "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time window of "
        "300 seconds": "throttling",
        "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time window of "
        "300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.":
            "throttling",
        "Number of concurrent requests exceeded the limit of 52.": "throttling",
        "Generic SQL error. CRM ErrorCode: -2147204784 Sql ErrorCode: -2146232060 Sql Number: 1205": "timeout",
        "SQL timeout expired. CRM ErrorCode: -2147204783": "timeout",
        f"The operation timed out. Try again.\n{rid}": "timeout",
        "The user is not a member of the organization.": "permission",
        "Principal user (Id=a8b9, type=8, roleCount=2, privilegeCount=100, accessMode=0), is missing "
        "prvCreateaccount privilege (Id=1234) on OTC=1 for entity 'account'": "permission",
    }
    got = classify(list(cases)).set_index("error_message").cause.to_dict()
    assert got == cases
    assert all(cause_info(c).transient for c in got.values() if c in ("throttling", "timeout"))


# -- parents ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, parent", [
    ("Salesperson/Purchaser NEWSP must be coupled to a Dataverse row.", ("Salesperson/Purchaser", "NEWSP")),
    ("Customer C00010 must be coupled to a Dataverse row.", ("Customer", "C00010")),
    ("Payment Terms 14 DAYS must be coupled to a Dataverse record.", ("Payment Terms", "14 DAYS")),
    ("Item Unit of Measure (1000, PCS) must be coupled to a Dataverse record.", ("Item Unit of Measure", "1000,PCS")),
    ("Cannot find the currency with the value 'NOK' in Dataverse.", ("Currency", "NOK")),
    ("Cannot find the unit group 'PALLET' in Dataverse.", ("Unit of Measure", "PALLET")),
    ("Cannot create or update the currency NOK in Dataverse, because there is no exchange rate defined for it.",
     ("Currency Exchange Rate", "NOK")),
    ("The unit of measure in the unit group 'PALLET' has an incorrect name: expected name 'PALLET', found name "
     "'Pallet'.", ("Dataverse Uomschedule", "PALLET")),
    ("The contact CT000123 must have a contact company that has a business relation to a customer or vendor.",
     ("Contact Business Relation", None)),
    ("The contact cannot be synchronized because the company does not exist.", ("Dataverse Account", None)),
    ("The Customer record cannot be updated because it is coupled to a deleted record.", (None, None)),
])
def test_parent_record_is_extracted(text, parent):
    row = one(text)
    assert (row.parent_table, row.parent_key) == parent


# -- unmatched texts --------------------------------------------------------------------------------

def test_mask_hides_values():
    text = ("Customer C00010 (contact CT000123, Customer: C00010) of 'Adatum' with {4ECC4022-10FA-4920-A77A-"
            "0DCC8AACD07F} failed at https://org.crm4.dynamics.com/api for a@b.com after 1,200 ms. "
            "Request ID: 0HMVD2J5")
    assert mask(text) == ("Customer <key> (contact <key>, Customer: <key>) of '<value>' with <guid> failed at <url> "
                          "for <email> after <n> ms. Request ID: <id>")
    assert mask("Don't stop") == "Don't stop"


def test_unmatched_texts_cluster_into_stable_signatures():
    texts = [
        "Custom credit check of extension Contoso failed for customer C00010: exposure 12,000 exceeds 10,000.",
        "Custom credit check of extension Contoso failed for customer C00011: exposure 9 exceeds 5.",
        "Custom credit check of extension Contoso failed for the customer C00012: exposure 9 exceeds 5",
        "Warehouse location BLUE is blocked for integration.",
        "Warehouse location RED is blocked for integration.",
        "Posting date 01/02/2026 is not within your range of allowed posting dates.",
    ]
    df = classify(texts)
    assert (df.cause == "unclassified").all() and df.template.isna().all()
    sig = df.set_index("error_message").signature
    assert sig[texts[0]] == sig[texts[1]] == sig[texts[2]]
    assert sig[texts[3]] == sig[texts[4]]
    assert len({sig[texts[0]], sig[texts[3]], sig[texts[5]]}) == 3
    # same set in another order and with repeats -> the same signatures
    again = classify(list(reversed(texts)) + texts).set_index("error_message").signature
    assert again.to_dict() == sig.to_dict()
    # wrapped, the unknown inner text joins the same group
    wrapped = one(f"Modifying Customer failed because of the following error: {texts[1]}.")
    assert wrapped.signature == f"Modifying <table> failed because of the following error: {sig[texts[0]]}."


def test_classify_accepts_series_with_missing_values_and_blank_text():
    df = classify(pd.Series(["Sales header is not coupled.", None, "Sales header is not coupled.", "  "]))
    assert df.error_message.tolist() == ["Sales header is not coupled.", "  "]
    assert df.iloc[1].signature == sg.EMPTY_SIGNATURE and df.iloc[1].cause == "unclassified"
    assert list(df.columns) == sg.COLUMNS


# -- workspace --------------------------------------------------------------------------------------

def _errors(texts: list[tuple[int, str | None, str | None]]) -> pd.DataFrame:
    return pd.DataFrame({"environment": "E", "company": "C", "error_no": [n for n, _, _ in texts],
                         "message": [m for _, m, _ in texts], "error_message": [e for _, _, e in texts]})


def test_assign_signatures_fills_rows_once_and_is_idempotent():
    long_text = ("Modifying Customer failed because of the following error: The length of the string is 180, but it "
                 "must be less than or equal to 100 characters. Value: " + "Nordic Holding " * 20 + ".")
    rows = [
        (1, "Customer C1 must be coupled to a Dataverse row.", "Customer C1 must be coupled to a Dataverse row."),
        (2, "Customer C2 must be coupled to a Dataverse row.", "Customer C2 must be coupled to a Dataverse row."),
        (3, long_text[:250], None),  # older versions: only the 250-char Message
        (4, long_text[:250], long_text),
        (5, "Custom check failed for C1", "Custom check failed for C1"),
        (6, "Customer C1 must be coupled to a Dataverse row.", "Customer C1 must be coupled to a Dataverse row."),
    ]
    skipped = pd.DataFrame({"environment": "E", "company": "C", "table_id": [18], "description": ["C9"], "coupled_to": ["Nine"],
                            "error_message": ["Cannot find the currency with the value 'NOK' in Dataverse."]})
    with Workspace() as ws:
        ws.ingest({"job_errors": _errors(rows), "skipped_records": skipped}, source="t", kind="test")
        assert assign_signatures(ws) == 6  # 5 job error texts (rows 1 and 6 share one) + the skipped one
        je = ws.query("job_errors", limit=None).set_index("error_no")
        assert je.signature.notna().all() and je.cause.notna().all()
        assert je.loc[1, "signature"] == je.loc[2, "signature"] == "Customer <key> must be coupled to a Dataverse row."
        assert je.loc[3, "cause"] == je.loc[4, "cause"] == "field-length"
        assert je.loc[5, "cause"] == "unclassified"
        sigs = ws.query("signatures", limit=None).set_index("error_message")
        assert sigs.loc["Cannot find the currency with the value 'NOK' in Dataverse.", "parent_key"] == "NOK"
        before = ws.query("signatures", limit=None)
        assert assign_signatures(ws) == 0
        pd.testing.assert_frame_equal(ws.query("signatures", limit=None), before)

        # a reload keeps the signatures; a new variant of the custom text joins its group
        more = rows + [(7, "Custom check failed for C2", "Custom check failed for C2")]
        ws.ingest({"job_errors": _errors(more)}, source="t2", kind="test")
        assert assign_signatures(ws) == 1
        je = ws.query("job_errors", limit=None).set_index("error_no")
        assert je.signature.notna().all()
        assert je.loc[7, "signature"] == je.loc[5, "signature"]

        # a changed error text clears the row's signature (workspace rule) and gets a new one
        changed = [(2, "Sales header is not coupled.", "Sales header is not coupled.")]
        ws.ingest({"job_errors": _errors(changed)}, source="t3", kind="test")
        assert assign_signatures(ws) == 1
        assert ws.query("job_errors", filters={"error_no": 2}).iloc[0].cause == "not-coupled"


def test_incremental_groups_match_a_single_run_for_wrapped_unknown_texts():
    a = "Modifying Customer failed because of the following error: Custom check failed for C1."
    b = "Modifying Vendor failed because of the following error: Custom check failed for V2."
    with Workspace() as ws:
        ws.ingest({"job_errors": _errors([(1, a, a)])}, source="a", kind="test")
        assign_signatures(ws)
        ws.ingest({"job_errors": _errors([(2, b, b)])}, source="b", kind="test")
        assign_signatures(ws)
        sigs = ws.query("job_errors", limit=None).signature.tolist()
    assert sigs[0] == sigs[1] == classify([a, b]).signature.iloc[0]


# -- the twin's texts -------------------------------------------------------------------------------

FAMILIES = [  # (substring of the twin's text, expected cause)
    ("must be coupled to a Dataverse row", "not-coupled"),
    ("must have a contact company", "not-coupled"),
    ("company does not exist", "not-coupled"),
    ("bi-directional", "conflict"),
    ("coupled to a deleted record", "deleted"),
    ("The length of the string", "field-length"),
    ("Number of requests exceeded", "throttling"),
    ("timed out", "timeout"),
    ("missing prvCreate", "permission"),
    ("Cannot find the currency", "currency"),
    ("no exchange rate", "currency"),
    ("unit group", "uom"),
]


def test_twin_texts_all_get_a_catalogue_template_and_the_expected_cause(short_sim):
    errors = canonical_frames(short_sim)["job_errors"]
    df = classify(pd.concat([errors.error_message, errors.message]))  # full texts and their 250-char copies
    assert not (df.cause == "unclassified").any(), df[df.cause == "unclassified"].error_message.head().tolist()
    assert df.template.notna().all()
    seen = set()
    for text, cause in zip(df.error_message, df.cause):
        family = [c for sub, c in FAMILIES if sub in text]
        assert family, f"twin text of an unknown family: {text!r}"
        assert cause == family[0], (text, cause)
        seen.add(family[0])
    assert {"not-coupled", "conflict", "deleted", "field-length", "throttling", "timeout"} <= seen
    # few, readable signatures: messages of one family that differ only in values share one
    assert df.signature.nunique() <= 20
    assert not df.signature.str.contains(r"C\d{5}|CT\d{5}|[0-9a-f]{8}-", regex=True).any()


def test_assign_signatures_on_the_twin_workspace(short_sim):
    frames = canonical_frames(short_sim)
    with Workspace() as ws:
        ws.ingest(frames, source="twin:short", kind="twin")
        n = assign_signatures(ws)
        assert n == frames["job_errors"].error_message.nunique()
        left = ws.con.execute("SELECT count(*) FROM job_errors WHERE signature IS NULL OR cause IS NULL "
                              "OR cause = 'unclassified'").fetchone()[0]
        assert left == 0
        parents = ws.sql("SELECT DISTINCT parent_table FROM signatures WHERE parent_table IS NOT NULL").parent_table
        assert {"Salesperson/Purchaser", "Customer", "Currency", "Unit of Measure"} <= set(parents)


# -- CLI text ---------------------------------------------------------------------------------------

def test_run_classify_text_and_json():
    msgs = ["Salesperson/Purchaser NEWSP must be coupled to a Dataverse row.", "Totally unknown failure 42",
            "Salesperson/Purchaser NEWSP must be coupled to a Dataverse row."]
    out = run_classify(msgs, as_json=False)
    assert out.count("Signature: Salesperson/Purchaser <key> must be coupled to a Dataverse row.") == 2
    assert "Cause:     not-coupled" in out and "Parent:    Salesperson/Purchaser NEWSP" in out
    assert "Template:  (none)" in out and "Cause:     unclassified" in out
    items = json.loads(run_classify(msgs, as_json=True))
    assert [i["message"] for i in items] == msgs
    assert items[0]["cause"] == "not-coupled" and items[0]["action"] == CAUSES["not-coupled"].action
    assert items[1]["template"] is None and items[1]["signature"] == "Totally unknown failure <n>"
