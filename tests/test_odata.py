"""OData readers: BC web services / API pages and the Dataverse Web API, against recorded-shape payloads."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pytest
import responses
from requests import exceptions as requests_exc
from responses import matchers

from syncanalysis import Workspace
from syncanalysis.errors import SchemaError
from syncanalysis.sources import odata
from syncanalysis.sources.odata import (
    AuthError,
    BCODataSource,
    ClientCredentials,
    DataverseSource,
    DeviceCode,
    ODataError,
    check_coupled_rows,
    load_odata,
)

DATA = Path(__file__).parent / "data" / "odata"
TENANT = "6f1e8a52-3c1d-4b8e-9a77-2f0c1d2e3f40"
ROOT = f"https://api.businesscentral.dynamics.com/v2.0/{TENANT}/Production/ODataV4"
COMPANY = "CRONUS USA, Inc."
CO_ROOT = ROOT + "/Company('CRONUS%20USA%2C%20Inc.')"
JOBS = CO_ROOT + "/integrationSynchJobs"
ERRORS = CO_ROOT + "/integrationSynchJobErrors"
MAPPINGS = CO_ROOT + "/integrationTableMappings"
API = f"https://api.businesscentral.dynamics.com/v2.0/{TENANT}/Production/api/contoso/syncAnalysis/v1.0"
API_CO = API + "/companies(1b6f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d)"
DV = "https://contoso.crm4.dynamics.com/api/data/v9.2"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.SECRET-ACCESS-TOKEN.c2lnbmF0dXJl"


def payload(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def at(url: str, **kw) -> None:
    """Register a GET of exactly ``url`` (query included) with ``kw`` as the response."""
    parts = urlsplit(url)
    base = parts._replace(query="").geturl()
    responses.get(base, match=[matchers.query_param_matcher(dict(parse_qsl(parts.query)))], **kw)


class Token:
    """A token function that counts its calls."""

    def __init__(self, value: str = TOKEN) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> str:
        self.calls += 1
        return self.value


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def token() -> Token:
    return Token()


@pytest.fixture
def bc_ws(token, sleeps) -> BCODataSource:
    return BCODataSource(ROOT, company=COMPANY, token=token, max_page_size=2, sleep=sleeps.append,
                         environment="Production")


def register_jobs() -> None:
    at(JOBS, json=payload("ws_jobs_page1.json"))
    at(payload("ws_jobs_page1.json")["@odata.nextLink"], json=payload("ws_jobs_page2.json"))


# ------------------------------------------------------------------------------------------------
# paging, headers, mapping


@responses.activate
def test_reads_every_page_with_prefer_header_and_bearer_token(bc_ws, token):
    register_jobs()
    jobs = bc_ws.read("jobs")
    assert len(responses.calls) == 2  # followed @odata.nextLink to the end
    for call in responses.calls:
        assert call.request.headers["Prefer"] == "odata.maxpagesize=2"
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert call.request.headers["Data-Access-Intent"] == "ReadOnly"
    assert "skiptoken" in responses.calls[1].request.url
    assert token.calls == 2
    assert jobs["job_id"].tolist() == [f"3b7e2a10-5c1d-4f2e-9a61-0d2c4b6e8f0{i}" for i in range(1, 5)]
    assert jobs["synch_direction"].tolist() == ["ToIntegrationTable", "FromIntegrationTable", "ToIntegrationTable",
                                                "Bidirectional"]
    assert jobs["type"].tolist() == ["Synchronization"] * 3 + ["Uncoupling"]
    # UTC 'Z' times -> naive UTC, milliseconds kept; 0001-01-01 (a running job) -> NULL
    assert jobs["start_datetime"].iloc[0] == pd.Timestamp("2026-03-02 08:00:00.127")
    assert pd.isna(jobs["finish_datetime"].iloc[2])
    assert jobs["mapping_name"].iloc[2] == "CONTACT" and jobs["failed"].iloc[0] == 2
    assert set(jobs["environment"]) == {"Production"} and set(jobs["company"]) == {COMPANY}
    # page-only computed columns are not canonical data; the job queue entry no. is not on page 5338
    assert "job_queue_log_entry_no" not in jobs and "duration_ms" not in jobs


@responses.activate
def test_web_service_error_list_keeps_the_full_message_and_says_what_it_lacks(bc_ws):
    at(ERRORS, json=payload("ws_errors.json"))
    r = bc_ws._read("job_errors")
    errors = r.frame
    full = payload("ws_errors.json")["value"][0]["Message"]
    assert len(full) > 250
    assert errors["error_message"].iloc[0] == full  # markup kept verbatim
    assert errors["message"].iloc[0] == full[:250]
    assert errors["error_no"].tolist() == [4312, 4313]
    assert "job_id" not in errors and "source_record_id" not in errors  # page 5339 exposes neither
    assert any("page 5339" in n for n in r.details["notes"])
    assert r.details["fields"]["error_message"] == "Message"
    assert "HelpLink" in r.details["ignored_fields"]


@responses.activate
def test_api_pages_map_record_ids_blank_options_empty_guids_and_0001_dates(token, sleeps):
    at(API + "/companies?$select=id,name", json=payload("api_companies.json"))
    at(API_CO + "/crmIntegrationRecords", json=payload("api_couplings.json"))
    at(API_CO + "/integrationSynchJobErrors", json=payload("api_errors.json"))
    src = BCODataSource(API, company=COMPANY, token=token, sleep=sleeps.append)
    assert src.entity_url("couplings") == API_CO + "/crmIntegrationRecords"  # company id looked up by name
    r = src._read("couplings")
    c = r.frame.set_index("integration_id")
    assert r.rejected == 1 and len(c) == 3  # the row with an empty Integration ID has no key
    first = c.loc["a1000000-0000-4000-8000-000000000001"]
    assert pd.isna(first["last_synch_result"]) and first["last_synch_crm_result"] == "Failure"  # _x0020_ = blank: NULL
    assert pd.isna(first["last_synch_job_id"]) and pd.isna(first["last_synch_modified_on"])
    assert first["skipped"] and first["table_id"] == 18
    assert c.loc["c5050000-0000-4000-8000-000000000001", "crm_id"] == "25a17064-1ae7-e611-80f4-e0071b661f01"
    assert r.watermark == pd.Timestamp("2026-03-02 08:30:01").to_pydatetime()
    assert r.details["timestamp_field"] == "systemModifiedAt"

    e = src.read("job_errors").set_index("error_no")
    assert e.loc[4312, "source_table"] == "Customer" and e.loc[4312, "source_key"] == "10000"
    assert e.loc[4312, "destination_table"] == "Dataverse Account"
    assert e.loc[4312, "destination_key"] == "{8B390C24-9C72-E511-80D4-00155D2A68D1}"
    assert pd.isna(e.loc[4314, "destination_record_id"]) and pd.isna(e.loc[4314, "destination_key"])
    assert e.loc[4314, "job_id"] == "3b7e2a10-5c1d-4f2e-9a61-0d2c4b6e8f02" and not e.loc[4314, "job_inferred"]
    assert "<Partners>" in e.loc[4314, "error_message"]


@responses.activate
def test_page_5335_options_are_decoded_and_table_ids_come_from_captions(bc_ws):
    at(MAPPINGS, json=payload("ws_mappings.json"))
    m = bc_ws.read("mappings").set_index("name")
    assert m.loc["CUSTOMER", "deletion_conflict_resolution"] == "Restore Records"
    assert m.loc["CUSTOMER", "update_conflict_resolution"] == "Send Update to Integration"
    assert m.loc["CONTACT", "deletion_conflict_resolution"] == "None"
    assert m.loc["CUSTOMER", "table_id"] == 18 and m.loc["CUSTOMER", "integration_table_id"] == 5341
    assert m.loc["CONTACT", "table_id"] == 5050 and m.loc["CONTACT", "integration_table_id"] == 5342
    assert pd.isna(m.loc["CONTACT", "synch_modified_on_filter"])
    assert m.loc["CUSTOMER", "synch_int_tbl_mod_on_fltr"] == pd.Timestamp("2026-03-02 08:00:00.127")
    assert m.loc["CUSTOMER", "table_filter"].startswith("VERSION(1)")


@responses.activate
def test_an_unknown_option_value_or_a_missing_key_field_is_a_clear_error(bc_ws):
    bad = payload("ws_jobs_page2.json")
    bad["value"][0]["Synch_Direction"] = "Sideways"
    at(JOBS, json=bad)
    with pytest.raises(ODataError, match=r"integrationSynchJobs: field 'Synch_Direction' has the value 'Sideways'"):
        bc_ws.read("jobs")
    responses.reset()
    no_key = payload("ws_jobs_page2.json")
    for row in no_key["value"]:
        del row["ID"]
    at(JOBS, json=no_key)
    with pytest.raises(ODataError, match=r"no field for \['job_id'\].*Start_Date_Time"):
        bc_ws.read("jobs")
    responses.reset()
    bad = payload("ws_jobs_page2.json")
    bad["value"][1]["Failed"] = "two"
    at(JOBS, json=bad)
    with pytest.raises(ODataError, match=r"field 'Failed' has 'two' \(row 2 of the feed\), which is not a whole number"):
        bc_ws.read("jobs")


# ------------------------------------------------------------------------------------------------
# retries and errors


@responses.activate
def test_429_waits_as_retry_after_says_then_succeeds(bc_ws, sleeps):
    at(JOBS, status=429, headers={"Retry-After": "3"}, json={"error": {"code": "TooManyRequests", "message": "x"}})
    at(JOBS, status=503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    at(JOBS, status=504)
    at(JOBS, json=payload("ws_jobs_page2.json"))
    assert len(bc_ws.read("jobs")) == 2
    # seconds as given; an HTTP date far ahead is capped at max_wait; no header -> exponential back-off
    assert sleeps == [3.0, 120.0, 4.0]
    assert len(responses.calls) == 4


@responses.activate
def test_throttling_gives_up_after_the_capped_attempts(token, sleeps):
    src = BCODataSource(ROOT, company=COMPANY, token=token, sleep=sleeps.append, max_attempts=3)
    at(JOBS, status=429, headers={"Retry-After": "1"})
    with pytest.raises(ODataError, match="after 3 attempts") as exc:
        src.read("jobs")
    assert exc.value.status == 429 and sleeps == [1.0, 1.0] and len(responses.calls) == 3


@pytest.mark.parametrize("status, fixture, expected", [
    (401, "bc_error_401.json", r"HTTP 401\).*Check the tenant, client id.*rejected the client credentials"),
    (403, "bc_error_403.json", r"HTTP 403\).*permission set.*TableData 5338"),
    (404, "bc_error_404.json", r"HTTP 404\).*'integrationSynchJobs' is not published: publish page 5338"),
])
@responses.activate
def test_http_errors_name_the_url_say_what_to_do_and_hide_the_token(bc_ws, token, status, fixture, expected):
    at(JOBS, status=status, json=payload(fixture))
    with pytest.raises(ODataError, match=expected) as exc:
        bc_ws.read("jobs")
    msg = str(exc.value)
    assert JOBS in msg and exc.value.url == JOBS and exc.value.status == status
    assert TOKEN not in msg and TOKEN not in repr(exc.value) and "SECRET" not in msg
    # a 401 is retried once with a fresh token (it may have expired), then reported
    assert len(responses.calls) == (2 if status == 401 else 1)
    assert token.calls == len(responses.calls)


@responses.activate
def test_a_token_echoed_by_the_server_is_masked_in_the_message(bc_ws):
    at(JOBS, status=400, json={"error": {"code": "BadRequest", "message": f"Bad header 'Bearer {TOKEN}'."}})
    with pytest.raises(ODataError, match=r"failed \(HTTP 400\).*Bad header 'Bearer \*\*\*'") as exc:
        bc_ws.read("jobs")
    assert TOKEN not in str(exc.value)


@responses.activate
def test_secret_query_values_are_masked_in_messages_and_sources(token, sleeps):
    src = BCODataSource(ROOT + "?tenant=default&sig=abc123", company=COMPANY, token=token, sleep=sleeps.append)
    assert src.entity_url("jobs") == JOBS + "?tenant=default&sig=***"
    responses.get(JOBS, status=404, json=payload("bc_error_404.json"))
    with pytest.raises(ODataError) as exc:
        src.read("jobs")
    assert "abc123" not in str(exc.value) and "tenant=default" in str(exc.value)
    assert "sig=abc123" in responses.calls[0].request.url  # but the request itself carries it


@responses.activate
def test_the_token_is_never_sent_over_plain_http(bc_ws, token, sleeps):
    page = payload("ws_jobs_page2.json") | {"@odata.nextLink": JOBS.replace("https://", "http://") + "?$skiptoken=1"}
    at(JOBS, json=page)
    with pytest.raises(ODataError, match="not an https URL"):
        bc_ws.read("jobs")
    assert len(responses.calls) == 1  # the http page was never asked for
    plain = BCODataSource(ROOT.replace("https://", "http://"), company=COMPANY, token=token, sleep=sleeps.append)
    with pytest.raises(ODataError, match="Refusing to send the access token"):
        plain.read("jobs")
    assert len(responses.calls) == 1


@pytest.mark.parametrize("body", [requests_exc.ChunkedEncodingError("IncompleteRead"),
                                  requests_exc.ContentDecodingError("bad gzip"),
                                  requests_exc.TooManyRedirects("30 redirects"),
                                  requests_exc.InvalidURL("no host")], ids=lambda e: type(e).__name__)
@responses.activate
def test_transport_failures_are_clear_errors_not_tracebacks(bc_ws, body):
    at(JOBS, body=body)
    with pytest.raises(ODataError, match=f"integrationSynchJobs.*{type(body).__name__}"):
        bc_ws.read("jobs")


@responses.activate
def test_a_next_link_that_is_not_text_is_refused(bc_ws):
    at(JOBS, json=payload("ws_jobs_page2.json") | {"@odata.nextLink": {"href": "x"}})
    with pytest.raises(ODataError, match="next page link that is not a URL"):
        bc_ws.read("jobs")


@responses.activate
def test_a_next_link_to_another_host_is_not_followed(bc_ws):
    page = payload("ws_jobs_page2.json") | {"@odata.nextLink": "https://evil.example.com/steal?$skiptoken=1"}
    at(JOBS, json=page)
    with pytest.raises(ODataError, match="another host"):
        bc_ws.read("jobs")
    assert len(responses.calls) == 1


def test_a_token_string_or_credentials_in_the_url_are_refused():
    with pytest.raises(AuthError, match="function"):
        BCODataSource(ROOT, company=COMPANY, token=TOKEN)
    with pytest.raises(ODataError, match="user name or password"):
        BCODataSource("https://me:pw@bc.example.com/ODataV4", company=COMPANY, token=Token())
    with pytest.raises(AuthError, match="function"):
        DataverseSource("https://contoso.crm4.dynamics.com", token=TOKEN)


# ------------------------------------------------------------------------------------------------
# loading into the workspace


@responses.activate
def test_incremental_load_filters_on_the_watermark_and_adds_only_newer_rows(bc_ws):
    ws = Workspace()
    register_jobs()
    first = load_odata(ws, bc_ws, environment="Production", tables=("jobs",))
    assert (first.rows_inserted, first.rows_updated) == (4, 0)
    last = ws.last_load(JOBS, "odata")
    # held back to the job still running (no finish) so its final counters are read next time
    assert last["watermark"] == pd.Timestamp("2026-03-02 08:45:00.500")
    assert json.loads(last["details"])["timestamp_field"] == "Start_Date_Time"

    responses.reset()
    at(JOBS + "?$filter=Start_Date_Time ge 2026-03-02T08:45:00.500Z", json=payload("ws_jobs_since.json"))
    second = load_odata(ws, bc_ws, environment="Production", tables=("jobs",))
    assert len(responses.calls) == 1
    assert "%24filter=Start_Date_Time%20ge%202026-03-02T08:45:00.500Z" in responses.calls[0].request.url.replace(
        "$", "%24")
    assert (second.rows_inserted, second.rows_updated) == (1, 1)  # the new job; the running one finished
    running = ws.query("jobs", filters={"mapping_name": "CONTACT"}).iloc[0]
    assert running["modified"] == 40 and running["duration_ms"] == 130_400
    assert ws.count("jobs") == 5 and ws.last_load(JOBS, "odata")["watermark"] == pd.Timestamp(
        "2026-03-02 09:30:00.015")

    responses.reset()
    newest = payload("ws_jobs_since.json")
    newest["value"] = newest["value"][-1:]
    at(JOBS + "?$filter=Start_Date_Time ge 2026-03-02T09:30:00.015Z", json=newest)
    loads = ws.count("loads")
    third = load_odata(ws, bc_ws, environment="Production", tables=("jobs",))
    assert (third.rows_inserted, third.rows_updated, third.load_id) == (0, 0, None)
    assert ws.count("loads") == loads


@responses.activate
def test_loading_twice_changes_nothing(token, sleeps):
    at(API + "/companies?$select=id,name", json=payload("api_companies.json"))
    at(API_CO + "/crmIntegrationRecords", json=payload("api_couplings.json"))
    at(API_CO + "/integrationSynchJobErrors", json=payload("api_errors.json"))
    src = BCODataSource(API, company=COMPANY, token=token, sleep=sleeps.append)
    ws = Workspace()
    first = load_odata(ws, src, environment="Production", tables=("job_errors", "couplings"), incremental=False)
    assert first.tables["couplings"].inserted == 3 and first.tables["job_errors"].inserted == 2
    loads = ws.sql("SELECT source, kind, environment, company, rows_rejected FROM loads ORDER BY load_id")
    assert loads["source"].tolist() == [API_CO + "/integrationSynchJobErrors", API_CO + "/crmIntegrationRecords"]
    assert loads["rows_rejected"].tolist() == [0, 1] and set(loads["company"]) == {COMPANY}
    before = {t: ws.sql(f"SELECT * FROM {t} ORDER BY ALL") for t in ("couplings", "job_errors", "loads")}
    again = load_odata(ws, src, environment="Production", tables=("job_errors", "couplings"), incremental=False)
    assert (again.rows_inserted, again.rows_updated, again.load_id) == (0, 0, None)
    for t, df in before.items():
        pd.testing.assert_frame_equal(ws.sql(f"SELECT * FROM {t} ORDER BY ALL"), df)


@responses.activate
def test_read_since_finds_the_timestamp_field_and_progress_asks_for_a_count(bc_ws):
    at(ERRORS + "?$top=1", json=payload("ws_errors.json") | {"value": payload("ws_errors.json")["value"][:1]})
    at(ERRORS + "?$filter=Date_Time ge 2026-03-02T08:00:03.000Z", json=payload("ws_errors.json"))
    assert len(bc_ws.read("job_errors", since=pd.Timestamp("2026-03-02 08:00:03.000400"))) == 2
    assert len(responses.calls) == 2
    at(MAPPINGS + "?$count=true", json=payload("ws_mappings.json") | {"@odata.count": 2})
    r = bc_ws._read("mappings", since=pd.Timestamp("2026-03-02"), progress=True)  # mappings: always in full
    assert len(r.frame) == 2 and "read fully" in r.details["notes"][0] and len(responses.calls) == 3


@responses.activate
def test_a_failure_while_writing_rolls_back_every_entity_set(bc_ws, monkeypatch):
    register_jobs()
    at(MAPPINGS, json=payload("ws_mappings.json"))
    ws = Workspace()
    upsert = Workspace.upsert

    def failing(self, table, frame, **kw):
        if table == "jobs":
            raise SchemaError("disk full")
        return upsert(self, table, frame, **kw)

    monkeypatch.setattr(Workspace, "upsert", failing)
    with pytest.raises(SchemaError):
        load_odata(ws, bc_ws, environment="Production", tables=("jobs", "mappings"))
    assert ws.count("mappings") == 0 and ws.count("loads") == 0


@responses.activate
def test_a_failing_entity_set_writes_nothing(bc_ws):
    register_jobs()
    at(MAPPINGS, status=404, json=payload("bc_error_404.json"))
    ws = Workspace()
    with pytest.raises(ODataError, match="integrationTableMappings"):
        load_odata(ws, bc_ws, environment="Production", tables=("mappings", "jobs"))
    assert ws.count("jobs") == 0 and ws.count("loads") == 0 and ws.count("mappings") == 0


@responses.activate
def test_the_token_is_used_but_never_stored(tmp_path, token, sleeps):
    register_jobs()
    at(MAPPINGS, json=payload("ws_mappings.json"))
    at(ERRORS, json=payload("ws_errors.json"))
    src = BCODataSource(ROOT, company=COMPANY, token=token, sleep=sleeps.append)
    with Workspace(tmp_path / "w.duckdb") as ws:
        report = load_odata(ws, src, environment="Production", tables=("mappings", "jobs", "job_errors"))
        assert report.rows_inserted == 2 + 4 + 2 and token.calls == 4
        assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in responses.calls)
        cols = ws.sql("SELECT table_name, column_name FROM information_schema.columns "
                      "WHERE data_type IN ('VARCHAR', 'JSON')")
        assert {"source", "details", "content_hash"} <= set(cols.loc[cols.table_name == "loads", "column_name"])
        for t, c in cols.itertuples(index=False):
            hits = ws.sql(f'SELECT count(*) AS n FROM "{t}" WHERE CAST("{c}" AS VARCHAR) LIKE ?',
                          ["%SECRET-ACCESS-TOKEN%"])
            assert hits["n"].iloc[0] == 0, (t, c)
        assert json.loads(ws.sql("SELECT details FROM loads WHERE source = ?", [ERRORS])["details"].iloc[0])[
            "entity_set"] == "integrationSynchJobErrors"
    assert TOKEN not in (tmp_path / "w.duckdb").read_bytes().decode("latin-1")
    assert TOKEN not in repr(src) and TOKEN not in repr(src._http)


# ------------------------------------------------------------------------------------------------
# msal


class FakeConfidential:
    instances: list[FakeConfidential] = []

    def __init__(self, client_id, client_credential=None, authority=None, token_cache=None, **kw):
        self.client_id, self.credential, self.authority, self.cache = client_id, client_credential, authority, \
            token_cache
        self.scopes: list = []
        FakeConfidential.instances.append(self)

    def acquire_token_for_client(self, scopes):
        self.scopes.append(scopes)
        if self.client_id == "bad-app":
            return {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
        return {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3599}


def _reaches(obj, secret: str, depth: int = 5, seen: set | None = None) -> bool:
    """Whether ``secret`` is reachable from ``obj`` through attributes, dicts and sequences."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth < 0:
        return False
    seen.add(id(obj))
    if isinstance(obj, str):
        return secret in obj
    if isinstance(obj, dict):
        return any(_reaches(k, secret, depth - 1, seen) or _reaches(v, secret, depth - 1, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        return any(_reaches(v, secret, depth - 1, seen) for v in obj)
    return hasattr(obj, "__dict__") and _reaches(vars(obj), secret, depth - 1, seen)


def test_client_credentials_read_the_secret_from_the_environment(monkeypatch):
    FakeConfidential.instances = []
    monkeypatch.setattr(odata.msal, "ConfidentialClientApplication", FakeConfidential)
    monkeypatch.setenv("SYNCANALYSIS_CLIENT_SECRET", "s3cr3t-value")
    cred = ClientCredentials("contoso.onmicrosoft.com", "11111111-2222-3333-4444-555555555555")
    assert cred() == TOKEN and cred() == TOKEN
    first, second = FakeConfidential.instances  # one app per call, sharing one token cache
    assert first.credential == "s3cr3t-value" and first.cache is second.cache is not None
    assert first.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert first.scopes == second.scopes == [[odata.BC_SCOPE]]
    # the secret is not reachable from the object (its docstring's promise), however deep one looks
    assert "s3cr3t" not in repr(cred) and not _reaches(cred, "s3cr3t-value")

    bad = ClientCredentials("contoso.onmicrosoft.com", "bad-app")
    with pytest.raises(AuthError, match="AADSTS7000215") as exc:
        bad()
    assert "s3cr3t" not in str(exc.value)

    monkeypatch.delenv("SYNCANALYSIS_CLIENT_SECRET")
    with pytest.raises(AuthError, match="SYNCANALYSIS_CLIENT_SECRET holding the client secret of app x is not set"):
        ClientCredentials("contoso.onmicrosoft.com", "x")()


@responses.activate
def test_client_credentials_drive_a_bc_read(monkeypatch, sleeps):
    monkeypatch.setattr(odata.msal, "ConfidentialClientApplication", FakeConfidential)
    monkeypatch.setitem(os.environ, "MY_SECRET", "another-secret")
    cred = ClientCredentials(TENANT, "app", secret_env="MY_SECRET")
    at(MAPPINGS, json=payload("ws_mappings.json"))
    BCODataSource(ROOT, company=COMPANY, token=cred, sleep=sleeps.append).read("mappings")
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_device_code_prompts_once_and_then_uses_the_cache(monkeypatch, tmp_path):
    class FakePublic:
        def __init__(self, client_id, authority=None, token_cache=None):
            self.cache, self.accounts = token_cache, []

        def get_accounts(self):
            return self.accounts

        def acquire_token_silent(self, scopes, account):
            return {"access_token": "silent-" + TOKEN}

        def initiate_device_flow(self, scopes):
            return {"user_code": "ABCD-EFGH", "message": "To sign in, use a web browser to open the page "
                    "https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."}

        def acquire_token_by_device_flow(self, flow):
            self.accounts = [{"username": "consultant@contoso.com"}]
            return {"access_token": TOKEN}

    monkeypatch.setattr(odata.msal, "PublicClientApplication", FakePublic)
    shown: list[str] = []
    dc = DeviceCode(TENANT, "public-app", cache_path=tmp_path / "msal.json", prompt=shown.append)
    assert dc() == TOKEN and dc() == "silent-" + TOKEN
    assert len(shown) == 1 and "ABCD-EFGH" in shown[0]
    assert TOKEN not in repr(dc)


# ------------------------------------------------------------------------------------------------
# Dataverse


ACCOUNTS = ["8b390c24-9c72-e511-80d4-00155d2a68d1", "8d390c24-9c72-e511-80d4-00155d2a68d1",
            "9f390c24-9c72-e511-80d4-00155d2a68d1"]
CONTACT = "25a17064-1ae7-e611-80f4-e0071b661f01"


def coupling_frame() -> pd.DataFrame:
    n = len(ACCOUNTS) + 1
    return pd.DataFrame({
        "environment": "Production", "company": COMPANY,
        "table_id": [18, 18, 18, 5050],
        "integration_id": [str(uuid.UUID(int=i + 1)) for i in range(n)],
        "crm_id": ACCOUNTS + [CONTACT.upper()],
        "last_synch_result": ["Success", "", "Failure", ""],
        "skipped": [False, False, True, False],
        "bc_record_exists": [True, True, True, False],
        "crm_record_exists": [True, True, True, None],
        "bc_record_id": ["Customer: 10000", "Customer: 20000", "Customer: 30000", "Contact: CT000001"],
        "crm_description": ["Adatum", "Trey Research", "<b>Fabrikam</b>", "Ann Beebe"],
    })


def in_filter(pk: str, ids: list[str]) -> str:
    return f"Microsoft.Dynamics.CRM.In(PropertyName='{pk}',PropertyValues=[{','.join(repr(i) for i in ids)}])"


@responses.activate
def test_dataverse_check_batches_ids_and_updates_only_crm_record_exists(sleeps):
    ws = Workspace()
    ws.ingest({"couplings": coupling_frame(),
               "mappings": pd.DataFrame({"environment": ["Production"], "company": [COMPANY], "name": ["CUSTOMER"],
                                         "table_id": [18], "integration_table_id": [5341]}),
               }, source="setup", kind="test")
    # another company's couplings to the same rows must not be touched
    ws.ingest({"couplings": coupling_frame().assign(company="Other", crm_record_exists=None)}, source="o", kind="test")
    responses.get(f"{DV}/accounts", json=payload("dv_accounts_batch1.json"), match=[matchers.query_param_matcher(
        {"$select": "accountid", "$filter": in_filter("accountid", ACCOUNTS[:2])})])
    at(payload("dv_accounts_batch1.json")["@odata.nextLink"], json=payload("dv_accounts_batch1_page2.json"))
    responses.get(f"{DV}/accounts", json=payload("dv_accounts_batch2.json"), match=[matchers.query_param_matcher(
        {"$select": "accountid", "$filter": in_filter("accountid", ACCOUNTS[2:])})])
    responses.get(f"{DV}/contacts", json=payload("dv_contacts.json"), match=[matchers.query_param_matcher(
        {"$select": "contactid", "$filter": in_filter("contactid", [CONTACT])})])
    token = Token("dv-" + TOKEN)
    dv = DataverseSource("https://contoso.crm4.dynamics.com", token=token, batch_size=2, max_page_size=1,
                         sleep=sleeps.append)
    before = ws.query("couplings", order_by=["company", "integration_id"], limit=None)
    report = check_coupled_rows(ws, dv, environment="Production", company=COMPANY)
    assert len(responses.calls) == 4  # 2 account batches (the first one two pages) + 1 contact batch
    assert all(c.request.headers["Prefer"] == "odata.maxpagesize=1" for c in responses.calls)
    assert all(c.request.headers["OData-Version"] == "4.0" for c in responses.calls)
    assert (report.kind, report.tables["couplings"].read, report.tables["couplings"].updated) == ("dataverse", 4, 2)
    after = ws.query("couplings", order_by=["company", "integration_id"], limit=None)
    mine = after["company"] == COMPANY
    assert after.loc[mine, "crm_record_exists"].tolist() == [True, True, False, True]
    assert after.loc[~mine, "crm_record_exists"].isna().all()
    other = [c for c in after.columns if c != "crm_record_exists"]
    pd.testing.assert_frame_equal(after[other], before[other])
    details = json.loads(ws.sql("SELECT details FROM loads WHERE kind = 'dataverse'")["details"].iloc[0])
    assert details["missing"] == {"account": 1, "contact": 0}
    assert ws.sql("SELECT source FROM loads WHERE kind = 'dataverse'")["source"].iloc[0] == DV


@responses.activate
def test_dataverse_errors_name_the_table_and_the_missing_privilege(sleeps):
    responses.get(f"{DV}/contacts", status=403, json=payload("dv_error_403.json"))
    dv = DataverseSource("https://contoso.crm4.dynamics.com", token=Token(), sleep=sleeps.append)
    with pytest.raises(ODataError, match=r"Dataverse refused access \(HTTP 403\).*/contacts.*Read on the Dataverse "
                                         r"table 'contact'.*prvReadContact") as exc:
        dv.existing_ids("contact", [CONTACT])
    assert TOKEN not in str(exc.value)
    with pytest.raises(ODataError, match="not a GUID"):
        dv.existing_ids("contact", ["CT000001"])
    assert dv.existing_ids("contact", []) == set()


@responses.activate
def test_unknown_dataverse_tables_are_looked_up_in_entity_definitions(sleeps):
    at(f"{DV}/EntityDefinitions(LogicalName='pricelevel')?$select=EntitySetName,PrimaryIdAttribute",
       json={"@odata.context": f"{DV}/$metadata#EntityDefinitions(EntitySetName,PrimaryIdAttribute)/$entity",
             "EntitySetName": "pricelevels", "PrimaryIdAttribute": "pricelevelid", "MetadataId": str(uuid.uuid4())})
    responses.get(f"{DV}/pricelevels", json={"value": [{"pricelevelid": ACCOUNTS[0]}]})
    dv = DataverseSource(DV, token=Token(), sleep=sleeps.append)
    assert dv.existing_ids("pricelevel", [ACCOUNTS[0].upper(), "{" + ACCOUNTS[1] + "}"]) == {ACCOUNTS[0]}
    assert dv.entity("pricelevel") == ("pricelevels", "pricelevelid") and len(responses.calls) == 2


# ------------------------------------------------------------------------------------------------
# secrets that must not leak (issue 15)


@responses.activate
def test_an_expired_lowercased_or_cut_token_echoed_by_the_server_is_masked(sleeps):
    tokens = iter(["eyJhbGciOiJSUzI1NiJ9.OLD-EXPIRED-TOKEN.c2ln", TOKEN])
    src = BCODataSource(ROOT, company=COMPANY, token=lambda: next(tokens), sleep=sleeps.append)
    at(JOBS, status=401, json={"error": {"code": "Unauthorized", "message": "expired"}})
    echo = (f"Bad header 'Bearer {TOKEN.lower()}'; previous eyJhbGciOiJSUzI1NiJ9.OLD-EXPIRED-TOKEN.c2ln; "
            f"starts {TOKEN[:16]}")
    at(JOBS, status=400, json={"error": {"code": "BadRequest", "message": echo}})
    with pytest.raises(ODataError) as exc:
        src.read("jobs")
    text = str(exc.value)
    assert "Bad header 'Bearer ***'" in text and "previous ***" in text and "starts ***" in text
    for secret in ("OLD-EXPIRED-TOKEN", TOKEN.lower(), TOKEN[:16], "secret-access-token"):
        assert secret.lower() not in text.lower()


def test_a_failing_token_function_leaves_no_trace_of_its_text(sleeps):
    import traceback

    def token() -> str:
        raise RuntimeError("login failed for password=hunter2")

    src = BCODataSource(ROOT, company=COMPANY, token=token, sleep=sleeps.append)
    with pytest.raises(AuthError) as exc:
        src.read("jobs")
    assert exc.value.__context__ is None and exc.value.__cause__ is None
    assert "hunter2" not in "".join(traceback.format_exception(exc.value))
    with pytest.raises(AuthError, match="space or line break"):
        BCODataSource(ROOT, company=COMPANY, token=lambda: TOKEN[:20] + "\n" + TOKEN[20:]).read("jobs")


@responses.activate
def test_secret_looking_parameters_are_masked_in_messages_and_loads(token, sleeps, tmp_path):
    query = "refresh_token=r3fr3sh&client-secret=cl13nt&x-api-key=ap1k3y&pwd=pa55&tenant=default"
    src = BCODataSource(ROOT + "?" + query, company=COMPANY, token=token, sleep=sleeps.append)
    url = src.entity_url("jobs")
    assert "tenant=default" in url and not any(s in url for s in ("r3fr3sh", "cl13nt", "ap1k3y", "pa55"))
    responses.get(JOBS, json=payload("ws_jobs_page2.json"))
    with Workspace(tmp_path / "w.duckdb") as ws:
        load_odata(ws, src, environment="Production", tables=("jobs",))
        stored = ws.sql("SELECT source, CAST(details AS VARCHAR) AS d FROM loads").to_string()
    assert not any(s in stored for s in ("r3fr3sh", "cl13nt", "ap1k3y", "pa55")) and "tenant=default" in stored


@responses.activate
def test_couplings_read_over_odata_replace_the_ones_made_from_page_lines(token, sleeps, tmp_path):
    from syncanalysis.sources import load_files

    page = tmp_path / "Coupled Data Synchronization Errors.csv"
    page.write_text("Table ID,Table Name,Description,Record Exists,Coupled To,Coupled Record Exists,Error Message,"
                    "Failed On\r\n18,Customer,10000,Yes,Adatum,Yes,The Customer 10000 failed,3/2/2026 8:00:00 AM\r\n",
                    encoding="utf-8")
    at(API + "/companies?$select=id,name", json=payload("api_companies.json"))
    at(API_CO + "/crmIntegrationRecords", json=payload("api_couplings.json"))
    with Workspace() as ws:
        load_files(ws, [page], environment="Production", company=COMPANY, progress=False)
        assert ws.sql("SELECT count(*) AS n FROM couplings WHERE fidelity = 1")["n"][0] == 1  # made from the line
        src = BCODataSource(API, company=COMPANY, token=token, sleep=sleeps.append)
        load_odata(ws, src, environment="Production", tables=("couplings",))
        assert ws.sql("SELECT count(*) AS n FROM couplings WHERE fidelity = 1")["n"][0] == 0  # gave way
        assert ws.count("couplings") == 3
