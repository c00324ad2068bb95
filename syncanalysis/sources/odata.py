"""Read the synchronization history of BC over OData v4, and check Dataverse rows over its Web API.

BC has no standard API for tables 5331/5335/5338/5339 (spec §9), so the reader accepts two shapes of
entity set, recognised by their field names (see ``docs/odata.md``):

* pages 5338, 5339 and 5335 published as OData web services (Web Services page), whose properties are
  the page's control names with spaces and ``/`` turned into ``_`` and dots removed
  (``Start_Date_Time``, ``Integration_Table_Mapping_Name``, ``No``);
* custom API pages over the tables 5331/5335/5338/5339 with camelCase fields (``startDateTime``,
  ``integrationSynchJobId``, ``crmId``, ``lastSynchCrmJobId``).

Fields are matched after lower-casing and dropping everything but letters and digits, so both shapes
map to the same canonical columns. From there a feed is a part like a file's sheet: read as text in
DuckDB (:func:`.read.read_feed`), typed and made canonical by the stages files go through
(:mod:`.typed`, :mod:`.canonical`), as the table export of the same table. Only the columns a service
exposes are written; the workspace keeps what it already knows for the others (page 5339 exposes no
job id or record ids).

Secrets never leave this module: the access token is fetched per request from a token function and
only ever placed in the ``Authorization`` header; URLs in messages and in ``loads.source`` carry no
credentials.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import duckdb
import msal
import pandas as pd
import requests
from tqdm.auto import tqdm

from .. import bc
from ..errors import SyncAnalysisError
from ..schema import TABLES
from ..sql import create_macros, ident, lit
from ..workspace import LoadReport, UpsertResult, Workspace
from . import captions as cap
from .canonical import canonical_sql
from .errors import SourceError
from .parse import mapped_sql
from .read import Part, Temp, read_feed
from .recognise import ColumnMatch, Match
from .typed import typed

log = logging.getLogger(__name__)

__all__ = [
    "BC_SCOPE",
    "DATAVERSE_ENTITIES",
    "DEFAULT_ENTITY_SETS",
    "DEFAULT_LOGICAL_NAMES",
    "SECRET_ENV",
    "AuthError",
    "BCODataSource",
    "ClientCredentials",
    "DataverseSource",
    "DeviceCode",
    "ODataError",
    "check_coupled_rows",
    "load_odata",
]

BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"
SECRET_ENV = "SYNCANALYSIS_CLIENT_SECRET"
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"

# Entity set names the reader expects unless told otherwise (BCODataSource(entity_sets=...)). Use them
# as the Service Name on the Web Services page, or as EntitySetName of your API pages.
DEFAULT_ENTITY_SETS = {
    "mappings": "integrationTableMappings",
    "jobs": "integrationSynchJobs",
    "job_errors": "integrationSynchJobErrors",
    "couplings": "crmIntegrationRecords",
}
TABLE_ORDER = ("mappings", "jobs", "job_errors", "couplings")

# BC table id -> Dataverse logical name, used when no mapping names the coupling's Dataverse table.
DEFAULT_LOGICAL_NAMES = {18: "account", 23: "account", 5050: "contact", 27: "product", 4: "transactioncurrency",
                         13: "systemuser", 204: "uomschedule"}
# Dataverse logical name -> (entity set, primary id column); others are looked up in EntityDefinitions.
DATAVERSE_ENTITIES = {
    "account": ("accounts", "accountid"),
    "contact": ("contacts", "contactid"),
    "product": ("products", "productid"),
    "transactioncurrency": ("transactioncurrencies", "transactioncurrencyid"),
    "systemuser": ("systemusers", "systemuserid"),
    "uomschedule": ("uomschedules", "uomscheduleid"),
}

# Query parameters whose values must never reach a message, a log or the workspace: these names, and any whose
# name (letters only) says token, secret, password, key, signature or credential.
_SECRET_PARAMS = {"code", "sig", "pwd", "pass", "auth", "authorization", "session", "sid", "sas"}
_SECRET_WORDS = re.compile(r"token|secret|passw|pwd|key|signature|credential|auth", re.I)
# What a service may echo of a token: a JWT (or its start), a bearer header, in any case.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[a-z0-9._~+/=\-]+")
_TOKEN_TEXT = re.compile(r"(?i)\beyj[a-z0-9_\-]{6,}(?:\.[a-z0-9_\-]*){0,2}")
_RETRY_STATUS = (429, 503, 504)
_GUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class ODataError(SyncAnalysisError):
    """An OData request failed or returned data the reader cannot use.

    Attributes
    ----------
    url
        The request URL without credentials (``None`` when no request was involved).
    status
        The HTTP status code, when the server answered.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class AuthError(ODataError):
    """No access token could be obtained (msal error, missing secret variable, empty token)."""


# ------------------------------------------------------------------------------------------------
# Authentication: token functions. Neither class keeps the secret or a token as an attribute.


def _authority(tenant_id: str, authority: str | None) -> str:
    return authority or f"https://login.microsoftonline.com/{tenant_id}"


def _token_from(result: Mapping[str, Any] | None, what: str) -> str:
    if result and result.get("access_token"):
        return str(result["access_token"])
    result = result or {}
    # msal's error/error_description never echo the client secret.
    detail = result.get("error_description") or result.get("error") or "no token returned"
    raise AuthError(f"{what} failed: {detail}. Check the tenant id, client id, the scope and the app's consent.")


class ClientCredentials:
    """Token function for a Microsoft Entra application (client credentials flow, through msal).

    The client secret is read from an environment variable when the first token is needed, handed to
    msal and never stored on this object, so it cannot end up in a notebook, a saved object or a ``repr``.

    Parameters
    ----------
    tenant_id
        Directory (tenant) id or domain.
    client_id
        Application (client) id of the app registration.
    scope
        ``BC_SCOPE`` for Business Central, ``https://<org>.crm.dynamics.com/.default`` for Dataverse.
    secret_env
        Name of the environment variable holding the client secret.
    authority
        Authority URL (default ``https://login.microsoftonline.com/<tenant_id>``).

    Examples
    --------
    The object names the variable, never its value:

    >>> ClientCredentials("contoso.onmicrosoft.com", "00000000-0000-0000-0000-000000000001", secret_env="BC_SECRET")
    ClientCredentials(tenant_id='contoso.onmicrosoft.com', client_id='00000000-0000-0000-0000-000000000001', scope='https://api.businesscentral.dynamics.com/.default', secret_env='BC_SECRET')
    """

    def __init__(self, tenant_id: str, client_id: str, scope: str = BC_SCOPE, *, secret_env: str = SECRET_ENV,
                 authority: str | None = None) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.scope = scope
        self.secret_env = secret_env
        self.authority = _authority(tenant_id, authority)
        # what msal may keep between calls: its token cache and the authority's metadata, never the secret
        self._cache = msal.TokenCache()
        self._http_cache: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return (f"ClientCredentials(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, "
                f"scope={self.scope!r}, secret_env={self.secret_env!r})")

    def __call__(self) -> str:
        """Return an access token (served from the token cache until it expires).

        The msal application holding the secret lives for this call only.
        """
        secret = os.environ.get(self.secret_env)
        if not secret:
            raise AuthError(
                f"The environment variable {self.secret_env} holding the client secret of app {self.client_id} "
                "is not set. Set it in the shell that starts Python (never in a notebook cell)."
            )
        app = msal.ConfidentialClientApplication(self.client_id, client_credential=secret, authority=self.authority,
                                                 token_cache=self._cache, http_cache=self._http_cache)
        result = app.acquire_token_for_client(scopes=[self.scope])
        return _token_from(result, f"Getting a token for app {self.client_id} (client credentials)")


class DeviceCode:
    """Token function for a person signing in with a device code (public client, through msal).

    The first call prints a code to enter at https://microsoft.com/devicelogin; later calls reuse the
    msal token cache (in memory, or in ``cache_path`` when given, written with owner-only permissions).

    Parameters
    ----------
    tenant_id, client_id
        The tenant and a public-client app registration allowed to call BC / Dataverse.
    scope
        ``BC_SCOPE`` or the Dataverse org's ``/.default`` scope.
    cache_path
        Optional msal token cache file (holds refresh tokens: keep it out of shared folders).
    prompt
        Where the device-code instructions go (default ``print``).
    authority
        Authority URL (default ``https://login.microsoftonline.com/<tenant_id>``).
    """

    def __init__(self, tenant_id: str, client_id: str, scope: str = BC_SCOPE, *, cache_path: str | Path | None = None,
                 prompt: Callable[[str], Any] = print, authority: str | None = None) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.scope = scope
        self.cache_path = Path(cache_path) if cache_path else None
        self.prompt = prompt
        self.authority = _authority(tenant_id, authority)
        self._app: Any = None
        self._cache: Any = None

    def __repr__(self) -> str:
        return (f"DeviceCode(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, scope={self.scope!r}, "
                f"cache_path={str(self.cache_path) if self.cache_path else None!r})")

    def _application(self) -> Any:
        if self._app is None:
            self._cache = msal.SerializableTokenCache()
            if self.cache_path and self.cache_path.exists():
                self._cache.deserialize(self.cache_path.read_text(encoding="utf-8"))
            self._app = msal.PublicClientApplication(self.client_id, authority=self.authority,
                                                     token_cache=self._cache)
        return self._app

    def _save(self) -> None:
        if self.cache_path and self._cache is not None and self._cache.has_state_changed:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.cache_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # an existing cache file keeps its mode otherwise: tokens are secrets
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self._cache.serialize())

    def __call__(self) -> str:
        """Return an access token, signing in with a device code when the cache has none."""
        app = self._application()
        result = None
        accounts = app.get_accounts()
        if accounts:
            result = app.acquire_token_silent([self.scope], account=accounts[0])
        if not result:
            flow = app.initiate_device_flow(scopes=[self.scope])
            if "user_code" not in flow:
                _token_from(flow, "Starting the device-code sign-in")
            self.prompt(flow["message"])
            result = app.acquire_token_by_device_flow(flow)
        token = _token_from(result, f"Signing in to app {self.client_id} with a device code")
        self._save()
        return token


# ------------------------------------------------------------------------------------------------
# HTTP


def _secret_param(name: str) -> bool:
    """Whether a query parameter's value is to be masked (``refresh_token``, ``client-secret``, ``x-api-key``, ...)."""
    if name.startswith("$"):  # OData's own options ($skiptoken, $filter) are not secrets
        return False
    return name.lower() in _SECRET_PARAMS or bool(_SECRET_WORDS.search(name))


def mask_tokens(text: str, token: str | None = None) -> str:
    """Mask what looks like an access token in ``text`` (a service may echo an expired, cut or lower-cased one).

    The token itself in any case, any JWT or JWT start, and what follows ``Bearer``.

    Examples
    --------
    >>> mask_tokens("Bad header 'Bearer abc.def' for EYJ0EXAIOIJKV1QI")
    "Bad header 'Bearer ***' for ***"
    """
    if token:
        text = re.sub(re.escape(token), "***", text, flags=re.I)
    return _TOKEN_TEXT.sub("***", _BEARER.sub(lambda m: f"{m.group(1)} ***", text))


def _redact(url: str) -> str:
    """Return ``url`` without user info and with secret-looking query values masked."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = [(k, "***" if _secret_param(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, quote_via=quote, safe="$'(),:/*"),
                       parts.fragment))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


@dataclass
class _Http:
    """GET with bearer token, retries on 429/503/504 and OData paging. Holds no token."""

    token: Callable[[], str]
    session: requests.Session
    service: str  # "Business Central" or "Dataverse", for messages
    max_page_size: int = 5000
    max_attempts: int = 5
    max_wait: float = 120.0
    timeout: float = 120.0
    sleep: Callable[[float], Any] = time.sleep
    extra_headers: dict[str, str] = field(default_factory=dict)
    hint: Callable[[int, str], str] = lambda status, url: ""
    allow_local_http: bool = False  # tests against a server on this machine only: never a token over http elsewhere

    def __repr__(self) -> str:
        return f"_Http(service={self.service!r}, max_page_size={self.max_page_size})"

    def _bearer(self) -> str:
        failed = None
        try:
            value = self.token()
        except SyncAnalysisError:
            raise
        except Exception as exc:  # a caller's token function: its text (and context) may hold secrets
            failed = type(exc).__name__
        if failed is not None:  # raised outside the handler: the original is not even the context
            raise AuthError(f"The token function for {self.service} raised {failed}. Check the credentials it uses.")
        if not isinstance(value, str) or not value.strip():
            raise AuthError(f"The token function for {self.service} returned no access token.")
        value = value.strip()
        if any(c.isspace() or ord(c) < 32 for c in value):  # it would end up whole in a header error
            raise AuthError(f"The token function for {self.service} returned a token with a space or line break; "
                            "an access token has neither.")
        return value

    def get(self, url: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET one JSON document, retrying throttling and transient failures."""
        if params:
            url = url + ("&" if "?" in url else "?") + urlencode(list(params.items()), quote_via=quote,
                                                                 safe="$'(),:/")
        safe = _redact(url)
        parts = urlsplit(url)
        if parts.scheme != "https" and not (self.allow_local_http and parts.scheme == "http"
                                            and parts.hostname in ("localhost", "127.0.0.1", "::1")):
            raise ODataError(f"Refusing to send the access token to {safe}: it is not an https URL. Use the "
                             f"service's https address.", url=safe)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._bearer()
            headers = {"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0",
                       "Prefer": f"odata.maxpagesize={int(self.max_page_size)}", **self.extra_headers,
                       "Authorization": f"Bearer {token}"}
            try:
                resp = self.session.get(url, headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_attempts:
                    raise ODataError(f"Cannot reach {self.service} at {safe} ({type(exc).__name__}) after "
                                     f"{attempt} attempts. Check the URL and the network.", url=safe) from None
                self.sleep(min(self.max_wait, 2.0 ** (attempt - 1)))
                continue
            except requests.RequestException as exc:  # too many redirects, a broken or undecodable body, ...
                raise ODataError(f"{self.service} at {safe}: the request failed ({type(exc).__name__}). Check the "
                                 "URL (a proxy or gateway may be in the way) and try again.", url=safe) from None
            status = resp.status_code
            log.debug("GET %s -> %s", safe, status)
            if status in _RETRY_STATUS and attempt < self.max_attempts:
                wait = _retry_after(resp.headers.get("Retry-After"))
                self.sleep(min(self.max_wait, 2.0 ** (attempt - 1) if wait is None else wait))
                continue
            if status == 401 and not refreshed:
                refreshed = True  # an expired token: the token function returns a fresh one
                attempt -= 1
                continue
            if status >= 400:
                raise self._error(resp, safe, token, attempt)
            try:
                return resp.json()
            except ValueError:
                raise ODataError(f"{self.service} answered {safe} with something that is not JSON "
                                 f"(content type {resp.headers.get('Content-Type')!r}). Is the URL an OData "
                                 "service root (…/ODataV4, …/api/<publisher>/<group>/<version>, …/api/data/v9.2)?",
                                 url=safe, status=status) from None

    def _error(self, resp: requests.Response, safe: str, token: str, attempts: int) -> ODataError:
        status = resp.status_code
        said = ""
        try:
            body = resp.json()
            err = body.get("error", {}) if isinstance(body, dict) else {}
            said = str(err.get("message") or "").strip() if isinstance(err, dict) else ""
        except ValueError:
            pass
        said = mask_tokens(said, token)
        if status == 401:
            what = ("refused the credentials (HTTP 401). Check the tenant, client id and secret (or sign in again), "
                    "and that the token's scope is this service's (Business Central: "
                    f"{BC_SCOPE}; Dataverse: https://<org>.crm.dynamics.com/.default).")
        elif status == 403:
            what = "refused access (HTTP 403): the user or app lacks permission to read it."
        elif status == 404:
            what = "has no such resource (HTTP 404)."
        elif status in _RETRY_STATUS:
            what = (f"is still throttling or unavailable (HTTP {status}) after {attempts} attempts. Try again later, "
                    "or read with a smaller max_page_size.")
        else:
            what = f"failed (HTTP {status})."
        hint = self.hint(status, safe)
        msg = f"{self.service} {what} URL: {safe}." + (f" {hint}" if hint else "")
        if said:
            msg += f" The service said: {said}"
        return ODataError(msg, url=safe, status=status)

    def pages(self, url: str, params: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Yield every page of a collection, following ``@odata.nextLink`` to the end."""
        host = urlsplit(url).netloc
        doc = self.get(url, params)
        while True:
            yield doc
            nxt = doc.get("@odata.nextLink")
            if not nxt:
                return
            if not isinstance(nxt, str):
                raise ODataError(f"{self.service} returned a next page link that is not a URL ({type(nxt).__name__}) "
                                 f"after {_redact(url)}; is this an OData service?", url=_redact(url))
            nxt = urljoin(url, nxt)
            if urlsplit(nxt).netloc != host:  # never send the token to another host
                raise ODataError(f"{self.service} returned a next page on another host ({_redact(nxt)}); "
                                 "refusing to follow it.", url=_redact(url))
            doc = self.get(nxt)


def _odata_literal(ts: pd.Timestamp | dt.datetime) -> str:
    """An OData ``Edm.DateTimeOffset`` literal (UTC, milliseconds) for a naive UTC timestamp."""
    ts = pd.Timestamp(ts)
    ts = ts.tz_convert(None) if ts.tzinfo else ts
    return ts.floor("ms").strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


# ------------------------------------------------------------------------------------------------
# Field maps: canonical column -> candidate field names (normalised: lower case, letters and digits).
# "=Name" matches that exact property name only (page 5338's key ``ID`` is the job id, while an API
# page's ``id`` is conventionally the SystemId).

_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "jobs": {
        "job_id": ("=ID", "jobid", "integrationsynchjobid"),
        "start_datetime": ("startdatetime",),
        "finish_datetime": ("finishdatetime",),
        "message": ("message",),
        "mapping_name": ("integrationtablemappingname", "mappingname"),
        "inserted": ("inserted",),
        "modified": ("modified",),
        "deleted": ("deleted",),
        "unchanged": ("unchanged",),
        "skipped": ("skipped",),
        "failed": ("failed",),
        "synch_direction": ("synchdirection",),
        "job_queue_log_entry_no": ("jobqueuelogentryno",),
        "type": ("type",),
        "uncoupled": ("uncoupled",),
        "coupled": ("coupled",),
    },
    "job_errors": {
        "error_no": ("no", "errorno", "entryno", "number"),
        "job_id": ("integrationsynchjobid", "jobid"),
        "logged_at": ("datetime", "loggedat"),
        "source_record_id": ("sourcerecordid",),
        "destination_record_id": ("destinationrecordid",),
        "message": ("message",),
        "error_message": ("errormessage",),
        "exception_detail": ("exceptiondetail",),
    },
    "couplings": {
        "table_id": ("tableid",),
        "integration_id": ("integrationid",),
        "crm_id": ("crmid",),
        "last_synch_modified_on": ("lastsynchmodifiedon",),
        "last_synch_crm_modified_on": ("lastsynchcrmmodifiedon",),
        "last_synch_result": ("lastsynchresult",),
        "last_synch_crm_result": ("lastsynchcrmresult",),
        "last_synch_job_id": ("lastsynchjobid",),
        "last_synch_crm_job_id": ("lastsynchcrmjobid",),
        "skipped": ("skipped",),
    },
    "mappings": {
        "name": ("name",),
        "table_id": ("tableid",),
        "table_caption": ("tablecaption", "tablecaptionvalue"),
        "integration_table_id": ("integrationtableid",),
        "integration_table_caption": ("integrationtablecaption", "integrationtablecaptionvalue"),
        "direction": ("direction",),
        "synch_only_coupled_records": ("synchonlycoupledrecords",),
        "deletion_conflict_resolution": ("deletionconflictresolution",),
        "update_conflict_resolution": ("updateconflictresolution",),
        "dependency_filter": ("dependencyfilter",),
        "table_filter": ("tablefilter", "tablefiltervalue"),
        "integration_table_filter": ("integrationtablefilter",),
        "synch_int_tbl_mod_on_fltr": ("synchinttblmodonfltr",),
        "synch_modified_on_filter": ("synchmodifiedonfilter",),
    },
}
# Fields read only to decide something (incremental filter, temporary mappings); never stored.
_EXTRA = {"systemmodifiedat", "deleteaftersynchronization"}
# Timestamp fields for incremental reads, in order of preference. Mappings are always read fully:
# their watermark fields change on every run and the table is small.
_TIMESTAMPS = {"jobs": ("systemmodifiedat", "startdatetime"), "job_errors": ("datetime", "systemmodifiedat"),
               "couplings": ("systemmodifiedat",), "mappings": ()}
# A job whose Start Date/Time is the watermark may still be running; hold the watermark back to the
# oldest unfinished job of the last day so its final counters are read next time.
_RUNNING_HORIZON = pd.Timedelta(days=1)

# What to publish, per table, for the 404 hint.
_PUBLISH = {
    "jobs": "page 5338 Integration Synch. Job List",
    "job_errors": "page 5339 Integration Synch. Error List",
    "mappings": "page 5335 Integration Table Mapping List",
    "couplings": "a custom API page over table 5331 CRM Integration Record",
}

_DELETION_ALIASES = {"deletecoupling": "Remove Coupling", "restorerecords": "Restore Records"}
_UPDATE_ALIASES = {"senddataupdatetointegrationtable": "Send Update to Integration",
                   "getdataupdatefromintegrationtable": "Get Update from Integration",
                   "sendupdatetointegrationtable": "Send Update to Integration",
                   "getupdatefromintegrationtable": "Get Update from Integration"}
_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {  # column: (allowed values, caption aliases)
    "synch_direction": (bc.DIRECTIONS, {}), "direction": (bc.DIRECTIONS, {}), "type": (bc.JOB_TYPES, {}),
    "last_synch_result": (bc.RESULT_NAMES, {}), "last_synch_crm_result": (bc.RESULT_NAMES, {}),
    "deletion_conflict_resolution": (bc.DELETION_RESOLUTIONS, _DELETION_ALIASES),
    "update_conflict_resolution": (bc.UPDATE_RESOLUTIONS, _UPDATE_ALIASES),
}

_XML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _decode(text: str) -> str:
    """Undo OData's XML name escaping (``Restore_x0020_Records`` -> ``Restore Records``)."""
    return _XML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", _decode(name).lower())


def _match_fields(table: str, names: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Return ``{canonical: property}`` and ``{normalised extra: property}`` for the given property names."""
    by_norm: dict[str, str] = {}
    for n in names:
        if not n.startswith("@"):
            by_norm.setdefault(_norm(n), n)
    present = {n for n in names if not n.startswith("@")}
    matched: dict[str, str] = {}
    for col, candidates in _FIELDS[table].items():
        for cand in candidates:
            if cand.startswith("="):
                if cand[1:] in present:
                    matched[col] = cand[1:]
                    break
            elif cand in by_norm and by_norm[cand] not in matched.values():
                matched[col] = by_norm[cand]
                break
    extras = {k: v for k, v in by_norm.items() if k in _EXTRA}
    return matched, extras


def _err(url: str, msg: str) -> ODataError:
    return ODataError(f"{url}: {msg}", url=url)


def _option_values(values: Iterable[str | None], column: str, prop: str, url: str) -> dict[str, str]:
    """Canonical name of each distinct option value (decoded, any spacing/case, or its 0-based index); '' for blank."""
    allowed, aliases = _OPTIONS[column]
    lookup = {_norm(a): a for a in allowed if a} | aliases
    mapping: dict[str, str] = {}
    for raw in values:
        if raw is None:
            continue
        text = _decode(raw).strip()
        if text in ("", "_blank_"):
            mapping[raw] = ""
        elif text.isdigit() and int(text) < len(allowed):
            mapping[raw] = allowed[int(text)]
        elif _norm(text) in lookup:
            mapping[raw] = lookup[_norm(text)]
        else:
            shown = [a or "(blank)" for a in allowed]
            raise _err(url, f"field {prop!r} has the value {raw!r}, which is not one of {shown}. "
                            "Is the field mapped to the right column?")
    return mapping


def _blank_datetime(col: str) -> str:
    """SQL: text column ``col`` is blank or BC's blank DateTime (0001-01-01, what OData shows for 0DT)."""
    return f"(coalesce(trim({col}), '') = '' OR starts_with({col}, '0001-01-01'))"


# The layout of the table export each entity set is read as (its typed and canonical stages).
_LAYOUT = {"jobs": "table-5338", "job_errors": "table-5339", "couplings": "table-5331", "mappings": "table-5335"}
_PAGE_5335 = {"table_caption": "_table", "integration_table_caption": "_integration_table"}


def _layout_match(table: str, matched: dict[str, str], names: list[str], url: str,
                  notes: list[str]) -> Match:
    """The fields as a :class:`~.recognise.Match` of the table's export layout (page 5335's where it shows captions)."""
    layout = cap.LAYOUTS[_LAYOUT[table]]
    targets = dict(matched)
    if table == "job_errors" and "error_message" not in targets and "message" in targets:
        # page 5339's "Message" control shows the full Error Message; the table's Message is its first 250 characters
        targets["error_message"] = targets.pop("message")
    if table == "mappings" and not {"table_id", "integration_table_id"} <= targets.keys():
        if not _PAGE_5335.keys() <= targets.keys():
            raise _err(url, f"the entity set has no field for ['table_id', 'integration_table_id'] nor their captions "
                            f"(it has {sorted(names)}). Add Table ID and Integration Table ID to the page.")
        layout = cap.LAYOUTS["page-5335"]  # page 5335 shows captions, not ids
        targets = {_PAGE_5335.get(c, c): p for c, p in targets.items() if c not in ("table_id", "integration_table_id")}
        notes.append("table ids derived from the table captions")
    by_target = {c.target: c for c in layout.columns}
    column = {p: by_target.get(c) for c, p in targets.items()}
    return Match(layout, [ColumnMatch(i, n, column.get(n), "field name" if column.get(n) else "unknown")
                          for i, n in enumerate(names)], None, 0.0, [])


def _cleaned(temp: Temp, part: Part, match: Match, table: str, extras: dict[str, str], url: str,
             notes: list[str]) -> int:
    """Point ``part.view`` at its rows as the typed stage reads them; returns the rows without a key.

    Option values become their canonical names, BC's blank DateTime (0001-01-01) blank; temporary
    mappings and rows without a key are left out, and of rows repeated with one key (a row that changed
    between two pages) the later is kept.
    """
    con = temp.con
    exprs, keys = [], []
    key_cols = [k for k in TABLES[table].key if k not in ("environment", "company")]
    for m in match.columns:
        raw, c = f"c{m.index}", m.column
        expr = raw
        if c is not None and c.target in _OPTIONS:
            vals = [r[0] for r in con.execute(f"SELECT DISTINCT {raw} FROM {part.view}").fetchall()]
            mapping = _option_values(vals, c.target, m.header, url)
            expr = mapped_sql(raw, mapping, "VARCHAR", blank="")
        elif c is not None and c.kind == cap.DATETIME:
            expr = f"CASE WHEN {_blank_datetime(raw)} THEN NULL ELSE {raw} END"
        exprs.append(f"{expr} AS {raw}")
        if c is not None and c.target in key_cols:
            folded = f"lower(trim({raw}, ' {{}}'))"
            keys.append(folded)
    has_key = " AND ".join(f"coalesce({k}, '') NOT IN ('', {lit(EMPTY_GUID)})" for k in keys) or "true"
    temporary = "false"
    if table == "mappings" and "deleteaftersynchronization" in extras:
        i = part.headers.index(extras["deleteaftersynchronization"])
        temporary = f"coalesce(lower(c{i}), '') IN ('true', '1', 'yes')"
    n_temp, n_keyless = con.execute(f"SELECT count(*) FILTER ({temporary}), count(*) FILTER (NOT {temporary} AND NOT "
                                    f"({has_key})) FROM {part.view}").fetchall()[0]
    if n_temp:
        notes.append(f"{n_temp} temporary one-off mappings skipped")
    if n_keyless:
        notes.append(f"{n_keyless} rows without {key_cols} skipped")
    latest = f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY _row DESC) = 1" if keys else ""
    view = temp.view("feedv", f"SELECT _row, {', '.join(exprs)} FROM {part.view} "
                              f"WHERE NOT {temporary} AND {has_key} {latest} ORDER BY _row")
    n = con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
    if n < part.rows - n_temp - n_keyless:
        notes.append(f"{part.rows - n_temp - n_keyless - n} repeated rows dropped")
    part.view, part.rows = view, n
    return int(n_keyless)


@dataclass
class _Read:
    """One entity set read: canonical rows, the load's watermark and what the reader did."""

    table: str
    source: str
    frame: pd.DataFrame
    watermark: dt.datetime | None
    rejected: int
    details: dict[str, Any]


class BCODataSource:
    """Business Central over OData v4: published pages 5338/5339/5335 or custom API pages.

    Parameters
    ----------
    base_url
        The service root: ``https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>/ODataV4``
        for web services, ``…/api/<publisher>/<group>/<version>`` for custom API pages, or either
        already ending in the company segment (``Company('…')`` / ``companies(…)``).
    company
        The company: its name (web services, or an API service whose ``companies`` are looked up
        by name) or its id (API). ``None`` when ``base_url`` already names it. Also the value of the
        ``company`` column unless :func:`load_odata` is given another.
    token
        A function returning an access token (``ClientCredentials``, ``DeviceCode`` or your own).
        Never a token string: it would end up in notebooks.
    entity_sets
        Canonical table -> entity set name, overriding :data:`DEFAULT_ENTITY_SETS`.
    session
        A ``requests.Session`` to use (a new one by default).
    max_page_size
        Rows per page asked with ``Prefer: odata.maxpagesize``.
    environment
        Value of the ``environment`` column of :meth:`read` (``load_odata`` sets its own).
    max_attempts
        Attempts per request on 429/503/504 or connection errors.
    max_wait
        Longest single wait in seconds, whatever ``Retry-After`` says.
    sleep
        Waits between attempts (tests pass a fake).
    read_only_intent
        Send ``Data-Access-Intent: ReadOnly`` so BC may serve the reads from a replica.
    timeout
        Seconds per request.
    """

    def __init__(self, base_url: str, *, company: str | None, token: Callable[[], str],
                 entity_sets: Mapping[str, str] | None = None, session: requests.Session | None = None,
                 max_page_size: int = 5000, environment: str | None = None, max_attempts: int = 5,
                 max_wait: float = 120.0, sleep: Callable[[float], Any] = time.sleep, read_only_intent: bool = True,
                 timeout: float = 120.0) -> None:
        if isinstance(token, str) or not callable(token):
            raise AuthError("token must be a function that returns an access token (e.g. ClientCredentials(...) or "
                            "DeviceCode(...)), not the token itself, so that no token ends up in a notebook.")
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ODataError(f"{_redact(base_url)!r} is not an http(s) URL of a Business Central OData service root.")
        if "@" in parts.netloc:
            raise ODataError("The base URL contains a user name or password; remove it and pass a token function "
                             "instead (credentials in a URL would be stored in the workspace).")
        unknown = set(entity_sets or {}) - set(DEFAULT_ENTITY_SETS)
        if unknown:
            raise ODataError(f"entity_sets names unknown table(s) {sorted(unknown)}; use {list(DEFAULT_ENTITY_SETS)}.")
        self.entity_sets = {**DEFAULT_ENTITY_SETS, **(entity_sets or {})}
        self.company = company
        self.environment = environment
        self._path = parts.path.rstrip("/")
        self._origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        # on-premises multi-tenant servers need ?tenant=…; keep the base URL's query on every request
        self._query = parse_qsl(parts.query, keep_blank_values=True)
        self.is_api = "/api/" in self._path + "/"
        self._company_segment: str | None = None
        self._http = _Http(token=token, session=session or requests.Session(), service="Business Central",
                           max_page_size=max_page_size, max_attempts=max_attempts, max_wait=max_wait, timeout=timeout,
                           sleep=sleep, extra_headers={"Data-Access-Intent": "ReadOnly"} if read_only_intent else {},
                           hint=self._hint)
        self._current_table: str | None = None

    def __repr__(self) -> str:
        return (f"BCODataSource({self._origin + self._path!r}, company={self.company!r}, "
                f"entity_sets={self.entity_sets!r})")

    # -- URLs ------------------------------------------------------------------------------------
    def _segment(self) -> str:
        if self._company_segment is not None:
            return self._company_segment
        last = self._path.rsplit("/", 1)[-1]
        if self.company is None or last.startswith(("Company(", "companies(")):
            seg = ""
        elif not self.is_api:
            seg = "/Company('" + quote(self.company.replace("'", "''"), safe="") + "')"
        elif re.match(_GUID_RE, self.company.strip("{}").lower()):
            seg = f"/companies({self.company.strip('{}').lower()})"
        else:
            seg = f"/companies({self._company_id(self.company)})"
        self._company_segment = seg
        return seg

    def _company_id(self, name: str) -> str:
        url = self._with_query(self._origin + self._path + "/companies")
        doc = self._http.get(url, {"$select": "id,name"})
        rows = doc.get("value", [])
        for row in rows:
            if str(row.get("name", "")) == name:
                return str(row["id"]).strip("{}").lower()
        names = sorted(str(r.get("name")) for r in rows)
        raise ODataError(f"Company {name!r} is not among the companies of {_redact(url)} ({names}). "
                         "Pass the exact name or the company id.", url=_redact(url))

    def _with_query(self, url: str) -> str:
        return url + ("?" + urlencode(self._query, quote_via=quote, safe="$'(),:/") if self._query else "")

    @property
    def service_root(self) -> str:
        """The service root including the company segment (no credentials)."""
        return _redact(self._origin + self._path + self._segment())

    def entity_url(self, table: str) -> str:
        """The URL of ``table``'s entity set; also the ``source`` of its loads."""
        if table not in self.entity_sets:
            raise ODataError(f"Unknown table {table!r}; the OData reader reads {list(TABLE_ORDER)}.")
        return _redact(self._with_query(self._origin + self._path + self._segment() + "/" + self.entity_sets[table]))

    def _hint(self, status: int, url: str) -> str:
        table = self._current_table
        if table is None:
            return ""
        name = self.entity_sets[table]
        if status == 404:
            return (f"The entity set {name!r} is not published: publish {_PUBLISH[table]} on the Web Services page "
                    f"with the service name {name!r} (or install your API page with EntitySetName {name!r}), or pass "
                    f"entity_sets={{{table!r}: '<your name>'}}. Check the company name too.")
        if status == 403:
            return (f"Give the user or Microsoft Entra application a permission set that can read {_PUBLISH[table]} "
                    "and its table (e.g. D365 BUS FULL ACCESS), and for an app add it on the Microsoft Entra "
                    "Applications page in BC.")
        return ""

    # -- reading ---------------------------------------------------------------------------------
    def read(self, table: str, since: dt.datetime | None = None) -> pd.DataFrame:
        """Read one table's rows as canonical columns (plus ``environment`` and ``company``).

        Parameters
        ----------
        table
            ``"mappings"``, ``"jobs"``, ``"job_errors"`` or ``"couplings"``.
        since
            Naive UTC timestamp: read only rows whose timestamp field (jobs: Start Date/Time or
            SystemModifiedAt; errors: Date/Time; couplings: SystemModifiedAt) is at or after it.
            Entity sets without such a field are read fully.

        Returns
        -------
        pandas.DataFrame
            Only the canonical columns the entity set provides.
        """
        return self._read(table, since=since).frame

    def _probe(self, url: str) -> list[str]:
        doc = self._http.get(url, {"$top": "1"})
        rows = doc.get("value", [])
        return list(rows[0]) if rows else []

    def _read(self, table: str, *, since: dt.datetime | None = None, since_field: str | None = None,
              progress: bool = False) -> _Read:
        url = self.entity_url(table)
        request_url = self._with_query(self._origin + self._path + self._segment() + "/" + self.entity_sets[table])
        self._current_table = table
        try:
            params: dict[str, str] = {}
            notes: list[str] = []
            if since is not None and pd.notna(since) and not _TIMESTAMPS[table]:
                notes.append("no timestamp field for this table: read fully")
            elif since is not None and pd.notna(since):
                if since_field is None:
                    names = self._probe(request_url)
                    by_norm = {_norm(n): n for n in names if not n.startswith("@")}
                    since_field = next((by_norm[c] for c in _TIMESTAMPS[table] if c in by_norm), None)
                if since_field is not None:
                    params["$filter"] = f"{since_field} ge {_odata_literal(since)}"
                else:
                    notes.append("no timestamp field: read fully")
            if progress:
                params["$count"] = "true"
            pages: list[str] = []
            names: dict[str, None] = {}
            n_pages = 0
            with tqdm(desc=f"{self.entity_sets[table]}", unit="rows", disable=not progress) as bar:
                for doc in self._http.pages(request_url, params):
                    if "value" not in doc or not isinstance(doc["value"], list):
                        raise _err(url, "the answer has no 'value' list; is this an OData collection (entity set)?")
                    if n_pages == 0 and "@odata.count" in doc:
                        bar.total = int(doc["@odata.count"])
                    n_pages += 1
                    if doc["value"]:  # the page as JSON text, read in DuckDB; the first row names the fields
                        pages.append(json.dumps(doc["value"]))
                        names.update(dict.fromkeys(n for n in doc["value"][0] if not n.startswith("@")))
                    bar.update(len(doc["value"]))
        finally:
            self._current_table = None
        out = self._canonical(table, pages, list(names), url, since_field=since_field, since=since, notes=notes)
        out.details["pages"] = n_pages
        return out

    def _canonical(self, table: str, pages: list[str], names: list[str], url: str, *, since_field: str | None,
                   since: dt.datetime | None, notes: list[str]) -> _Read:
        """The canonical rows of a feed: its fields matched, then the typed and canonical stages of a file's part."""
        spec = TABLES[table]
        matched, extras = _match_fields(table, names)
        details: dict[str, Any] = {
            "entity_set": self.entity_sets[table], "url": url, "shape": "api" if self.is_api else "web service",
            "rows": 0, "since": _odata_literal(since) if since is not None and pd.notna(since) else None,
            "fields": dict(matched),
            "ignored_fields": sorted(n for n in names if n not in matched.values() and n not in extras.values()),
            "notes": notes,
        }
        by_norm = {_norm(n): n for n in names}
        ts_field = since_field or next((by_norm[c] for c in _TIMESTAMPS[table] if c in by_norm), None)
        details["timestamp_field"] = ts_field
        if not pages:
            return _Read(table, url, pd.DataFrame(columns=list(spec.key)), None, 0, details)
        missing_keys = [k for k in spec.key if k not in ("environment", "company") and k not in matched]
        if missing_keys:
            wanted = {k: [c.lstrip("=") for c in _FIELDS[table][k]] for k in missing_keys}
            raise _err(url, f"the entity set has no field for {missing_keys} (looked for {wanted}; it has "
                            f"{sorted(names)}). Add the field to the published page / API page or point "
                            f"entity_sets[{table!r}] at the right entity set.")
        con = duckdb.connect()
        temp = Temp(con)
        try:
            con.execute("SET TimeZone = 'UTC'")
            create_macros(con)
            part = read_feed(temp, url, pages, names)
            details["rows"] = part.rows
            watermark = self._watermark(table, con, part, ts_field, matched, url)
            match = _layout_match(table, matched, names, url, notes)
            rejected = _cleaned(temp, part, match, table, extras, url, notes)
            try:
                parsed = typed(con, part, match, temp)
            except SourceError as exc:
                shown = exc.problem.removeprefix("this value ")
                raise _err(url, f"field {exc.column!r} has {exc.value!r} (row {exc.row} of the feed), which "
                                f"{shown}. Is the field mapped to the right column?") from exc
            query = canonical_sql(con, parsed, self.environment or "", self.company or "")
            types = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {query})").fetchall()
            cols = ", ".join(f"CAST({ident(c)} AS VARCHAR) AS {ident(c)}" if t == "UUID" else ident(c) for c, t in types)
            frame = con.execute(f"SELECT {cols} FROM ({query})").df()
        finally:
            temp.close()
            con.close()
        if table == "job_errors":
            if "error_message" not in matched and "message" in matched:
                details["fields"]["error_message"] = details["fields"].pop("message")
            if "job_id" not in matched:
                notes.append("no job id (page 5339 does not expose it): errors are not linked to jobs; "
                             "publish a custom API page over table 5339 to link them")
            if "source_record_id" not in matched:
                notes.append("no record ids (page 5339 shows only 'View'); errors are not linked to couplings")
        frame["environment"], frame["company"] = self.environment, self.company
        return _Read(table, url, frame, watermark, rejected, details)

    @staticmethod
    def _watermark(table: str, con: duckdb.DuckDBPyConnection, part: Part, ts_field: str | None,
                   matched: dict[str, str], url: str) -> dt.datetime | None:
        """The newest timestamp of every row read (held back to a job of the last day still running)."""
        if ts_field is None or ts_field not in part.headers:  # (a field the previous load used may be gone)
            return None
        cell = f"c{part.headers.index(ts_field)}"
        ts = f"CASE WHEN {_blank_datetime(cell)} THEN NULL ELSE TRY_CAST({cell} AS TIMESTAMPTZ) END"
        running = "false"
        if table == "jobs" and _norm(ts_field) == "startdatetime" and "finish_datetime" in matched:
            running = _blank_datetime(f"c{part.headers.index(matched['finish_datetime'])}")
        bad, newest, oldest_running = con.execute(
            f"WITH t AS (SELECT {cell} AS raw, {ts} AS ts, {running} AS running FROM {part.view}) "
            f"SELECT (SELECT any_value(raw) FROM t WHERE ts IS NULL AND NOT {_blank_datetime('raw')}), max(ts), "
            f"min(ts) FILTER (running AND ts >= (SELECT max(ts) FROM t) - INTERVAL {_RUNNING_HORIZON.days} DAY) "
            "FROM t").fetchall()[0]
        if bad is not None:
            raise _err(url, f"field {ts_field!r} has {bad!r}, which is not an ISO 8601 date and time. "
                            "Is the field mapped to the right column?")
        newest = oldest_running or newest
        return None if newest is None else pd.Timestamp(newest).tz_convert(None).to_pydatetime()


# ------------------------------------------------------------------------------------------------
# Loading into the workspace


def _previous(ws: Workspace, source: str, environment: str, company: str) -> tuple[dt.datetime | None, str | None]:
    last = ws.last_load(source, "odata", environment=environment, company=company)
    if not last:
        return None, None
    wm = last.get("watermark")
    wm = None if wm is None or pd.isna(wm) else pd.Timestamp(wm).to_pydatetime()
    details = last.get("details")
    field_name = None
    if isinstance(details, str) and details:
        field_name = json.loads(details).get("timestamp_field")
    elif isinstance(details, dict):
        field_name = details.get("timestamp_field")
    return wm, field_name


def load_odata(ws: Workspace, source: BCODataSource, *, environment: str, company: str | None = None,
               tables: Iterable[str] = TABLE_ORDER, incremental: bool = True, progress: bool = False) -> LoadReport:
    """Read BC's sync history over OData and merge it into the workspace in one transaction.

    Every entity set is read first (network), then all of them are written in one transaction, each
    as its own ``loads`` row whose ``source`` is the entity set URL and whose ``watermark`` is the
    newest timestamp read, so the next incremental load asks only for rows at or after it. A failure
    anywhere writes nothing.

    Parameters
    ----------
    ws
        The workspace.
    source
        The BC service to read.
    environment
        Value of the ``environment`` column (e.g. ``"Production"``).
    company
        Value of the ``company`` column (default: ``source.company``).
    tables
        Canonical tables to read, any of ``mappings``, ``jobs``, ``job_errors``, ``couplings``.
    incremental
        Read only rows at or after the previous load's watermark of each entity set.
    progress
        Show a progress bar per entity set.

    Returns
    -------
    LoadReport
        Per-table counts; ``source`` is the service root, ``load_id`` the last ``loads`` row
        written (``None`` when nothing changed).
    """
    company = company if company is not None else source.company
    if not environment:
        raise ODataError("load_odata needs environment=… (e.g. 'Production') to label the rows.")
    if not company:
        raise ODataError("load_odata needs company=… to label the rows (the source names no company).")
    wanted = list(tables)
    tables = [t for t in TABLE_ORDER if t in wanted] + [t for t in wanted if t not in TABLE_ORDER]
    reads: list[_Read] = []
    for table in tables:
        url = source.entity_url(table)
        since, since_field = _previous(ws, url, environment, company) if incremental else (None, None)
        r = source._read(table, since=since if _TIMESTAMPS[table] else None, since_field=since_field,
                         progress=progress)
        if r.watermark is None and since is not None:
            r.watermark = since  # nothing newer: keep the previous watermark
        elif r.watermark is not None and since is not None and r.watermark < since:
            r.watermark = since
        reads.append(r)
    from .files import FileLoadReport, _relink  # (files builds on the stages this module shares)

    report = LoadReport(source=source.service_root, kind="odata")
    # the links a file load makes, as the exports of the same tables would: inferred page jobs and page-made
    # couplings give way to the real ones, errors without a job are linked by time
    kinds = {_LAYOUT[r.table] for r in reads if len(r.frame)}
    if any(r.table == "job_errors" and len(r.frame) and "job_id" not in r.frame for r in reads):
        kinds.add("page-5339")
    with ws.transaction():
        for r in reads:
            with ws.loading(source=r.source, kind="odata", environment=environment, company=company) as load:
                if len(r.frame):
                    load.upsert(r.table, r.frame.assign(environment=environment, company=company))
                else:
                    load.report.tables[r.table] = UpsertResult(r.table)
                if r is reads[-1] and kinds:
                    links = FileLoadReport(source=r.source, kind="odata")
                    _relink(load, links, environment, company, kinds)
                    r.details["links"] = links.links
                load.rows_rejected = r.rejected
                load.watermark = r.watermark
                load.details = r.details
            report.tables[r.table] = load.report.tables[r.table]
            if load.report.load_id is not None:
                report.load_id = load.report.load_id
    return report


# ------------------------------------------------------------------------------------------------
# Dataverse


class DataverseSource:
    """The Dataverse Web API, to check which coupled rows still exist.

    Parameters
    ----------
    org_url
        ``https://<org>.crm.dynamics.com`` (or the service root ``…/api/data/v9.2``).
    token
        A function returning an access token for the org (scope ``<org_url>/.default``).
    api_version
        Web API version.
    batch_size
        Ids per request (each id adds ~45 characters to the URL).
    session, max_page_size, max_attempts, max_wait, sleep, timeout
        As for :class:`BCODataSource`.
    """

    def __init__(self, org_url: str, *, token: Callable[[], str], api_version: str = "v9.2", batch_size: int = 100,
                 session: requests.Session | None = None, max_page_size: int = 5000, max_attempts: int = 5,
                 max_wait: float = 120.0, sleep: Callable[[float], Any] = time.sleep, timeout: float = 120.0) -> None:
        if isinstance(token, str) or not callable(token):
            raise AuthError("token must be a function that returns an access token (e.g. ClientCredentials(...)), "
                            "not the token itself.")
        parts = urlsplit(org_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            raise ODataError(f"{_redact(org_url)!r} is not the https URL of a Dataverse organization.")
        path = parts.path.rstrip("/")
        if "/api/data/" not in path + "/":
            path += f"/api/data/{api_version}"
        self.service_root = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.batch_size = max(1, int(batch_size))
        self._entities: dict[str, tuple[str, str]] = dict(DATAVERSE_ENTITIES)
        self._logical: str | None = None
        self._http = _Http(token=token, session=session or requests.Session(), service="Dataverse",
                           max_page_size=max_page_size, max_attempts=max_attempts, max_wait=max_wait,
                           timeout=timeout, sleep=sleep, hint=self._hint)

    def __repr__(self) -> str:
        return f"DataverseSource({self.service_root!r}, batch_size={self.batch_size})"

    def _hint(self, status: int, url: str) -> str:
        name = self._logical
        if name is None:
            return ""
        if status == 403:
            return (f"Give the user or application user a security role with organization-level Read on the "
                    f"Dataverse table {name!r}.")
        if status == 404:
            return f"The Dataverse table {name!r} (entity set {self._entities.get(name, ('?',))[0]!r}) does not exist here."
        return ""

    def entity(self, logical_name: str) -> tuple[str, str]:
        """Return ``(entity set, primary id column)`` of a table, from EntityDefinitions when not known."""
        if logical_name not in self._entities:
            self._logical = logical_name
            try:
                doc = self._http.get(f"{self.service_root}/EntityDefinitions(LogicalName='{quote(logical_name)}')",
                                     {"$select": "EntitySetName,PrimaryIdAttribute"})
            finally:
                self._logical = None
            self._entities[logical_name] = (doc["EntitySetName"], doc["PrimaryIdAttribute"])
        return self._entities[logical_name]

    def existing_ids(self, logical_name: str, ids: Iterable[str]) -> set[str]:
        """Return the ids (lower-case GUIDs) of ``logical_name`` rows that exist, querying in batches.

        Rows the caller cannot read look missing: use an identity with organization-level read.

        Parameters
        ----------
        logical_name
            Dataverse table logical name, e.g. ``account``.
        ids
            Row ids (GUIDs, any case, braces allowed).
        """
        s = pd.Series(list(ids), dtype="string").str.strip().str.strip("{}").str.lower().dropna().drop_duplicates()
        bad = ~s.str.match(_GUID_RE)
        if bad.any():
            raise ODataError(f"{s[bad].iloc[0]!r} is not a GUID; Dataverse {logical_name} ids are GUIDs.")
        values = sorted(s.tolist())
        if not values:
            return set()
        entity_set, pk = self.entity(logical_name)
        found: set[str] = set()
        self._logical = logical_name
        try:
            for i in range(0, len(values), self.batch_size):
                batch = values[i:i + self.batch_size]
                listed = ",".join(f"'{v}'" for v in batch)
                params = {"$select": pk,
                          "$filter": f"Microsoft.Dynamics.CRM.In(PropertyName='{pk}',PropertyValues=[{listed}])"}
                for doc in self._http.pages(f"{self.service_root}/{entity_set}", params):
                    found.update(str(row[pk]).lower() for row in doc.get("value", []) if row.get(pk))
        finally:
            self._logical = None
        return found


def check_coupled_rows(ws: Workspace, dataverse: DataverseSource, *, environment: str, company: str,
                       logical_names: Mapping[int, str] | None = None) -> LoadReport:
    """Set ``couplings.crm_record_exists`` of one environment/company from Dataverse.

    Each coupling's Dataverse table is the ``integration_table_id`` of its mapping (via
    :data:`syncanalysis.bc.CRM_TABLES`), else :data:`DEFAULT_LOGICAL_NAMES` by BC table id, else
    ``logical_names``. Only the key columns and ``crm_record_exists`` are written; every other
    column keeps its value. Couplings of tables with no known Dataverse table are left alone and
    listed in the load's details.

    Parameters
    ----------
    ws
        The workspace.
    dataverse
        The Dataverse org the couplings point to.
    environment, company
        Which couplings to check.
    logical_names
        BC table id -> Dataverse logical name, overriding the mappings and defaults.

    Returns
    -------
    LoadReport
        ``couplings`` rows read / updated; kind ``dataverse``.
    """
    per_table = ws.con.execute(
        "SELECT c.table_id, min(m.integration_table_id) AS integration_table_id, count(*) AS n "
        "FROM couplings c LEFT JOIN mappings m ON m.environment = c.environment AND m.company = c.company "
        "AND m.table_id = c.table_id WHERE c.environment = ? AND c.company = ? AND c.crm_id IS NOT NULL "
        "GROUP BY c.table_id ORDER BY c.table_id", [environment, company]).fetchall()
    resolved: dict[int, str] = {}
    unknown: dict[int, int] = {}
    for table_id, int_table, n in per_table:  # one row per BC table, not per coupling
        name = (logical_names or {}).get(table_id) or (bc.CRM_TABLES.get(int_table, (None, None))[1]
                                                       if int_table is not None else None)
        name = name or DEFAULT_LOGICAL_NAMES.get(table_id)
        if name:
            resolved[table_id] = name
        else:
            unknown[table_id] = n
    frames = []
    checked: dict[str, int] = {}
    missing: dict[str, int] = {}
    for name in sorted(set(resolved.values())):
        tids = [t for t, n in resolved.items() if n == name]
        rows = ws.con.execute(
            f"SELECT table_id, CAST(integration_id AS VARCHAR) AS integration_id, CAST(crm_id AS VARCHAR) AS crm_id "
            f"FROM couplings WHERE environment = ? AND company = ? AND crm_id IS NOT NULL "
            f"AND table_id IN ({', '.join('?' * len(tids))})", [environment, company, *tids]).df()
        existing = dataverse.existing_ids(name, rows["crm_id"].unique())
        rows["crm_record_exists"] = rows["crm_id"].str.lower().isin(existing)
        checked[name] = len(rows)
        missing[name] = int((~rows["crm_record_exists"]).sum())
        frames.append(rows.drop(columns="crm_id"))
    details: dict[str, Any] = {"checked": checked, "missing": missing,
                               "unknown_tables": {str(k): v for k, v in unknown.items()}}
    if unknown:
        details["note"] = ("no Dataverse table known for BC table(s) " + ", ".join(map(str, unknown))
                           + "; load the mappings or pass logical_names={table_id: 'logicalname'}")
    frame = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame(columns=["table_id", "integration_id", "crm_record_exists"]))
    frame.insert(0, "company", company)
    frame.insert(0, "environment", environment)
    if frame.empty:
        return LoadReport(source=dataverse.service_root, kind="dataverse", tables={"couplings": UpsertResult("couplings")})
    return ws.ingest({"couplings": frame}, source=dataverse.service_root, kind="dataverse", environment=environment,
                     company=company, details=details)
