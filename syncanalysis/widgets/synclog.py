"""The Synchronization Log of one record: jobs and errors that touched it and its coupling over time.

On the twin it also shows both apps' versions side by side with the differing fields marked.

A thin view over :func:`syncanalysis.actions.sync_log`; every text shown is escaped. Labels are BC's
captions of the fields (``syncanalysis/data/bc-captions.csv``, in English, French or German, English
where the catalogue has no translation); what BC has no field for (the toolkit's diagnosis, the twin's
state) has its own label in the same three languages. Dates and times are shown to the second, in UTC;
booleans as BC's Yes/No; GUIDs as BC formats them; the twin's stored field values as texts
(:func:`~syncanalysis.actions.synclog.field_value_text`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd
from IPython.display import display

from .. import actions as act
from .. import bc
from .. import html as h
from ..actions.synclog import field_value_text
from ..analysis.causes import cause_info
from ..sources import captions as cap
from ..workspace import Workspace

Key = tuple[str, str]

# -- labels --------------------------------------------------------------------------------------------------
# The toolkit's own labels and texts (what BC has no caption for), in English, French and German.
_OWN: dict[str, tuple[str, str, str]] = {
    "state": ("Coupling state (diagnosis)", "État du couplage (diagnostic)", "Kopplungsstatus (Diagnose)"),
    "cause": ("Cause (diagnosis)", "Cause (diagnostic)", "Ursache (Diagnose)"),
    "latest": ("Latest error, either direction", "Dernière erreur, dans les deux sens", "Letzter Fehler, beide Richtungen"),
    "inferred": ("Reconstructed from other exports (errors, page 5333)",
                 "Reconstitué à partir d'autres exports (erreurs, page 5333)",
                 "Aus anderen Exporten rekonstruiert (Fehler, Seite 5333)"),
    "twin_bc_exists": ("Exists in Business Central (twin)", "Existe dans Business Central (jumeau)",
                       "Vorhanden in Business Central (Zwilling)"),
    "twin_dataverse_exists": ("Exists in Dataverse (twin)", "Existe dans Dataverse (jumeau)",
                              "Vorhanden in Dataverse (Zwilling)"),
    "twin_bc_modified_at": ("Last modified in Business Central (twin)",
                            "Dernière modification dans Business Central (jumeau)",
                            "Zuletzt geändert in Business Central (Zwilling)"),
    "twin_dataverse_modified_on": ("Last modified in Dataverse (twin)", "Dernière modification dans Dataverse (jumeau)",
                                   "Zuletzt geändert in Dataverse (Zwilling)"),
    "made_up_id": ("Integration ID (made up: the page export has none)",
                   "ID intégration (reconstitué : l'export de page n'en a pas)",
                   "Integrations-ID (rekonstruiert: der Seitenexport enthält keine)"),
    "trigger": ("Started by", "Démarré par", "Gestartet von"),
    "job_made_up": ("Job ID made up (page export without IDs)", "ID de projet reconstitué (export de page sans ID)",
                    "Auftrags-ID rekonstruiert (Seitenexport ohne IDs)"),
    "job_by_time": ("Job found by its time (page export)", "Projet trouvé par son heure (export de page)",
                    "Auftrag über die Uhrzeit gefunden (Seitenexport)"),
    "why": ("Why it is listed", "Raison de sa présence", "Grund der Anzeige"),
    "event": ("Event", "Événement", "Ereignis"),
    "detail": ("Detail", "Détail", "Details"),
    "field": ("Field (Business Central)", "Champ (Business Central)", "Feld (Business Central)"),
    "dataverse_field": ("Field (Dataverse)", "Champ (Dataverse)", "Feld (Dataverse)"),
    "bc_text": ("Value in Business Central", "Valeur dans Business Central", "Wert in Business Central"),
    "dataverse_text": ("Value in Dataverse", "Valeur dans Dataverse", "Wert in Dataverse"),
    "bc_length": ("Length in Business Central", "Longueur dans Business Central", "Länge in Business Central"),
    "dataverse_length": ("Length in Dataverse", "Longueur dans Dataverse", "Länge in Dataverse"),
    "differs": ("Differs", "Diffère", "Abweichend"),
    "differs_mark": ("≠ differs", "≠ diffère", "≠ abweichend"),
    "same_text": ("same text, different stored values", "même texte, valeurs stockées différentes",
                  "gleicher Text, andere gespeicherte Werte"),
    "tab_timeline": ("Coupling over time", "Couplage dans le temps", "Kopplung im Zeitverlauf"),
    "tab_versions": ("Both apps' versions", "Versions des deux applications", "Versionen beider Apps"),
    "refresh": ("Refresh", "Actualiser", "Aktualisieren"),
    "no_errors": ("No error was logged for this record.", "Aucune erreur n'a été journalisée pour cet enregistrement.",
                  "Für diesen Datensatz wurde kein Fehler protokolliert."),
    "no_jobs": ("No job touched this record.", "Aucun projet n'a traité cet enregistrement.",
                "Kein Auftrag hat diesen Datensatz verarbeitet."),
    "no_history": ("No coupling history.", "Aucun historique de couplage.", "Kein Kopplungsverlauf."),
    "no_twin": ("No twin behind this workspace: the apps' current versions are unknown.",
                "Aucun jumeau derrière cet espace de travail : les versions actuelles des applications sont inconnues.",
                "Kein Zwilling hinter diesem Arbeitsbereich: Die aktuellen Versionen der Apps sind unbekannt."),
    "gone": ("Neither app holds this record any more.", "Aucune des deux applications ne détient plus cet enregistrement.",
             "Keine der beiden Apps enthält diesen Datensatz noch."),
    "same": ("Both apps hold the same values.", "Les deux applications détiennent les mêmes valeurs.",
             "Beide Apps enthalten dieselben Werte."),
    "n_differ": ("{n} field(s) differ", "{n} champ(s) diffèrent", "{n} Feld(er) abweichend"),
    "marked": ("(marked)", "(marqués)", "(markiert)"),
}

_UTC = "UTC"
# Columns of the record that mean nothing to a user (their content is shown elsewhere, or nowhere).
_INTERNAL = frozenset({"signature", "error_job_id", "fidelity", "table_caption"})
_LATEST_PREFIX = "latest"  # record fields of the latest error of either direction: "<latest>: <5339 caption>"

# The coupling's fields in the order page 5333 and table 5331 show them: (column, caption row | own label,
# caption row after the "latest error" prefix).
_RECORD: list[tuple[str, Key | str]] = [
    ("environment", (cap.TOOLKIT, "Environment (column of combined exports)")),
    ("company", (cap.TOOLKIT, "Company (column of combined exports)")),
    ("mapping_name", (cap.T5338, "Integration Table Mapping Name")),
    ("table_id", (cap.P5333, "Table ID (column)")),
    ("table_name", (cap.P5333, "Table Name (column)")),
    ("description", (cap.P5333, "Description (column)")),
    ("integration_table_caption", (cap.P5335, "IntegrationTableCaptionValue (column)")),
    ("crm_description", (cap.P5333, "Int. Description (column)")),
    ("state", "state"),
    ("skipped", (cap.T5331, "Skipped")),
    ("bc_record_exists", (cap.P5333, "Record Exists (column)")),
    ("crm_record_exists", (cap.P5333, "Int. Record Exists (column)")),
    ("last_synch_result", (cap.T5331, "Last Synch. Result")),
    ("last_synch_crm_result", (cap.T5331, "Last Synch. CRM Result")),
    ("failed_on", (cap.P5333, "Failed On (column)")),
    ("error_message", (cap.P5333, "Error Message (column)")),
    ("latest_error_on", (cap.T5339, "Date/Time")),
    ("latest_error", (cap.T5339, "Error Message")),
    ("error_no", (cap.T5339, "No.")),
    ("cause", "cause"),
    ("last_synch_job_id", (cap.T5331, "Last Synch. Job ID")),
    ("last_synch_crm_job_id", (cap.T5331, "Last Synch. CRM Job ID")),
    ("last_synch_modified_on", (cap.T5331, "Last Synch. Modified On")),
    ("last_synch_crm_modified_on", (cap.T5331, "Last Synch. CRM Modified On")),
    ("integration_id", (cap.T5331, "Integration ID")),
    ("crm_id", (cap.T5331, "CRM ID")),
    ("inferred", "inferred"),
    ("twin_bc_exists", "twin_bc_exists"),
    ("twin_dataverse_exists", "twin_dataverse_exists"),
    ("twin_bc_modified_at", "twin_bc_modified_at"),
    ("twin_dataverse_modified_on", "twin_dataverse_modified_on"),
]
_LATEST = frozenset({"latest_error_on", "latest_error", "error_no"})

_JOBS: list[tuple[str, Key | str]] = [
    ("start_datetime", (cap.T5338, "Start Date/Time")),
    ("finish_datetime", (cap.T5338, "Finish Date/Time")),
    ("duration", (cap.P5338, "Duration (page column)")),
    ("mapping_name", (cap.T5338, "Integration Table Mapping Name")),
    ("synch_direction", (cap.T5338, "Synch. Direction")),
    ("type", (cap.T5338, "Type")),
    ("trigger", "trigger"),
    ("inserted", (cap.T5338, "Inserted")),
    ("modified", (cap.T5338, "Modified")),
    ("deleted", (cap.T5338, "Deleted")),
    ("unchanged", (cap.T5338, "Unchanged")),
    ("skipped", (cap.T5338, "Skipped")),
    ("failed", (cap.T5338, "Failed")),
    ("uncoupled", (cap.T5338, "Uncoupled")),
    ("coupled", (cap.T5338, "Coupled")),
    ("message", (cap.T5338, "Message")),
    ("inferred", "job_made_up"),
    ("why", "why"),
]
_ERRORS: list[tuple[str, Key | str]] = [
    ("error_no", (cap.T5339, "No.")),
    ("logged_at", (cap.T5339, "Date/Time")),
    ("synch_direction", (cap.T5338, "Synch. Direction")),
    ("source_record_id", (cap.T5339, "Source Record ID")),
    ("destination_record_id", (cap.T5339, "Destination Record ID")),
    ("error_message", (cap.T5339, "Error Message")),
    ("cause", "cause"),
    ("job_inferred", "job_by_time"),
]
_TIMELINE: list[tuple[str, Key | str]] = [
    ("time", (cap.T5339, "Date/Time")),
    ("event", "event"),
    ("direction", (cap.P5338, "Direction (page column)")),
    ("detail", "detail"),
    ("state", "state"),
]
_VERSIONS: list[tuple[str, Key | str]] = [
    ("field", "field"),
    ("dataverse_field", "dataverse_field"),
    ("direction", (cap.T5335, "Direction")),
    ("bc_text", "bc_text"),
    ("bc_length", "bc_length"),
    ("dataverse_text", "dataverse_text"),
    ("dataverse_length", "dataverse_length"),
    ("differs", "differs"),
]
# Flag columns shown only when one row has them set (a page export's made-up links).
_SPARSE = frozenset({"inferred", "job_inferred"})
# BC's captions of option values: column -> the caption row of a value.
_OPTIONS: dict[str, Callable[[str], Key]] = {
    "last_synch_result": lambda v: (cap.T5331, f"Last Synch. Result={v} (option)"),
    "last_synch_crm_result": lambda v: (cap.T5331, f"Last Synch. Result={v} (option)"),
    "type": lambda v: (cap.T5338, f"Type={v} (option)"),
    "synch_direction": lambda v: (cap.T5338, f"Synch. Direction={v} (option)"),
}
_GUIDS = frozenset({"integration_id", "crm_id", "last_synch_job_id", "last_synch_crm_job_id", "job_id"})


def _language(language: str) -> str:
    lang = str(language).lower()
    if lang not in cap.LANGS:
        raise ValueError(f"language must be one of {', '.join(cap.LANGS)}, not {language!r}")
    return lang


def own(name: str, language: str = "en") -> str:
    """The toolkit's own label or text ``name`` in ``language`` (``en``, ``fr`` or ``de``)."""
    return _OWN[name][cap.LANGS.index(_language(language))]


def caption(key: Key, language: str = "en") -> str:
    """BC's caption of one ``(table, field)`` row of bc-captions.csv in ``language``, else in English."""
    caps = cap.captions(key)
    return (caps.get(_language(language)) or caps["en"] or [key[1]])[0]


def label(spec: Key | str, language: str = "en") -> str:
    """A column's label: BC's caption of its caption row, or the toolkit's own label of that name."""
    return own(spec, language) if isinstance(spec, str) else caption(spec, language)


def _labels(spec: list[tuple[str, Key | str]], language: str) -> dict[str, str]:
    return {col: label(s, language) for col, s in spec}


# -- values --------------------------------------------------------------------------------------------------
def when(value: Any) -> str:
    """A date and time as shown here: to the second, in UTC (``2026-10-02 14:33:49 UTC``); blank if missing.

    The workspace keeps times as naive UTC; an aware time is converted to UTC first.

    Examples
    --------
    >>> when(pd.Timestamp("2026-10-02 14:33:49.123456")), when(pd.NaT), when(None)
    ('2026-10-02 14:33:49 UTC', '', '')
    """
    if h.is_missing(value):
        return ""
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return ""
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return f"{ts:%Y-%m-%d %H:%M:%S} {_UTC}"


def yes_no(value: Any, language: str = "en") -> str:
    """BC's Yes/No for a boolean (``Oui``/``Non``, ``Ja``/``Nein``); blank if unknown."""
    if h.is_missing(value):
        return ""
    return caption(("Boolean", "Yes (value)" if bool(value) else "No (value)"), language)


def duration(start: Any, finish: Any, language: str = "en") -> str:
    """Page 5338's Duration of a job (``2 seconds 689 milliseconds``); blank while it runs."""
    if h.is_missing(start) or h.is_missing(finish) or pd.isna(start) or pd.isna(finish):
        return ""
    ms = int((pd.Timestamp(finish) - pd.Timestamp(start)) / pd.Timedelta(milliseconds=1))
    parts = []
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000), ("second", 1000),
                       ("millisecond", 1)):
        n, ms = divmod(ms, size)
        if n:
            names = cap.captions(("Duration", f"{unit} (unit)"))
            forms = names.get(_language(language)) or names["en"]
            parts.append(f"{n} {forms[0] if n == 1 or len(forms) == 1 else forms[1]}")
    if not parts:
        names = cap.captions(("Duration", "millisecond (unit)"))
        parts.append(f"0 {(names.get(_language(language)) or names['en'])[-1]}")
    return " ".join(parts)


def _table_caption(caption_text: Any, language: str) -> str:
    """A table caption in ``language`` (BC's and Dataverse tables of the default mappings), else as given."""
    if h.is_missing(caption_text):
        return ""
    tid = cap.caption_to_table().get(cap.normalize(caption_text))
    caps = cap.table_captions().get(tid, {}) if tid is not None else {}
    return (caps.get(language) or [str(caption_text)])[0]


def _option(column: str, value: Any, language: str) -> str:
    try:
        return caption(_OPTIONS[column](str(value)), language)
    except KeyError:  # a value the catalogue has no caption for
        return str(value)


def value_text(column: str, value: Any, language: str = "en") -> str:
    """One value as shown in the Synchronization Log (not escaped: the table templates escape it)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(value_text(column, v, language) for v in value)
    if h.is_missing(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return yes_no(value, language)
    if isinstance(value, (pd.Timestamp, dt.datetime, np.datetime64)):
        return when(value)
    if column in _GUIDS or isinstance(value, uuid.UUID):
        return bc.format_guid(str(value))
    if column in _OPTIONS:
        return _option(column, value, language)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _display(frame: pd.DataFrame, spec: list[tuple[str, Key | str]], language: str,
             formatters: Mapping[str, Callable[[Any], str]] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """The shown columns of ``frame`` as display texts, with their labels (empty flag columns left out)."""
    cols = [c for c, _ in spec if c in frame.columns
            and not (c in _SPARSE and not any(not h.is_missing(v) and bool(v) for v in frame[c]))]
    shown = pd.DataFrame(index=frame.index)
    for c in cols:
        fmt = (formatters or {}).get(c) or (lambda v, c=c: value_text(c, v, language))
        shown[c] = [fmt(v) for v in frame[c].astype(object)]
    return shown, _labels(spec, language)


# -- HTML ------------------------------------------------------------------------------------------------------
def record_html(record: dict[str, Any], language: str = "en") -> str:
    """The coupling's fields as an escaped two-column table, under BC's captions (empty ones left out).

    Fields the toolkit adds (its diagnosis, the twin's state) have their own labels; internal columns
    (signature, the latest error's job) are left out, and any other column is shown under a readable label.
    The BC record id is shown as page 5333 does: Table Name and Description (its key).

    Parameters
    ----------
    record
        :attr:`SyncLog.record <syncanalysis.actions.SyncLog>`.
    language
        ``en``, ``fr`` or ``de``.

    Returns
    -------
    str
        The HTML.

    Raises
    ------
    ValueError
        For another language.
    """
    lang = _language(language)
    rec = dict(record)
    table, key = bc.split_record_id(rec.get("bc_record_id"))
    if table is None:
        rec.setdefault("description", rec.get("bc_record_id"))
    else:
        rec.setdefault("table_name", table)
        rec.setdefault("description", key)
    rec.pop("bc_record_id", None)
    labels = {col: label(spec, lang) for col, spec in _RECORD}
    for col in _LATEST:
        labels[col] = f"{own(_LATEST_PREFIX, lang)}: {labels[col]}"
    if rec.get("inferred") and _made_up(rec.get("integration_id")):  # a coupling made from a page 5333 line
        labels["integration_id"] = own("made_up_id", lang)
    rows: dict[str, str] = {}
    for col in [c for c, _ in _RECORD] + [c for c in rec if c not in labels]:
        if col not in rec or col in _INTERNAL:
            continue
        value = rec[col]
        if col in ("table_name", "integration_table_caption"):
            text = _table_caption(value, lang)
        else:
            text = value_text(col, value, lang)
        if text:
            rows[labels.get(col) or col.replace("_", " ").capitalize()] = text
    return h.key_values(rows)


def _made_up(guid: Any) -> bool:
    """Whether an Integration ID is one the loaders made up (a uuid5; BC's SystemIds are random uuid4s)."""
    try:
        return uuid.UUID(str(guid).strip("{}")).version == 5
    except ValueError:
        return False


def jobs_html(jobs: pd.DataFrame, language: str = "en", *, max_rows: int = 200) -> str:
    """The jobs that touched the record (page 5338's columns, with why each is listed), newest first.

    Parameters
    ----------
    jobs
        :attr:`SyncLog.jobs <syncanalysis.actions.SyncLog>`.
    language
        ``en``, ``fr`` or ``de``.
    max_rows
        Show at most this many.
    """
    lang = _language(language)
    frame = jobs.copy()
    if {"start_datetime", "finish_datetime"} <= set(frame.columns):
        frame["duration"] = [duration(s, f, lang) for s, f in zip(frame["start_datetime"], frame["finish_datetime"])]
    shown, headers = _display(frame, _JOBS, lang)
    return h.table(shown, headers=headers, max_rows=max_rows, empty=own("no_jobs", lang))


def errors_html(errors: pd.DataFrame, language: str = "en", *, max_rows: int = 200) -> str:
    """The errors logged for the record (page 5339's columns and the record ids), newest first.

    Parameters
    ----------
    errors
        :attr:`SyncLog.errors <syncanalysis.actions.SyncLog>`.
    language
        ``en``, ``fr`` or ``de``.
    max_rows
        Show at most this many.
    """
    lang = _language(language)
    # causes by title, messages in full (BC keeps up to 2,048 characters; the decisive part is often at the end)
    shown, headers = _display(errors, _ERRORS, lang,
                              {"cause": lambda v: "" if h.is_missing(v) else cause_info(str(v)).title})
    return h.table(shown, headers=headers, max_rows=max_rows, wrap=True, clip_width=4000,
                   empty=own("no_errors", lang))


def timeline_html(timeline: pd.DataFrame, language: str = "en", *, max_rows: int = 200) -> str:
    """The coupling's state over time.

    Parameters
    ----------
    timeline
        :attr:`SyncLog.timeline <syncanalysis.actions.SyncLog>`.
    language
        ``en``, ``fr`` or ``de``.
    max_rows
        Show at most this many.
    """
    lang = _language(language)
    shown, headers = _display(timeline, _TIMELINE, lang)
    return h.table(shown, headers=headers, max_rows=max_rows, empty=own("no_history", lang))


def _texts(versions: pd.DataFrame) -> pd.DataFrame:
    """The versions with the value texts (rendered here when the frame only has the stored codes)."""
    out = versions.copy()
    for side in ("bc", "dataverse"):
        if f"{side}_text" not in out.columns and f"{side}_value" in out.columns:
            out[f"{side}_text"] = [
                field_value_text(str(f), None if h.is_missing(c) else int(c), None if h.is_missing(n) else int(n))
                for f, c, n in zip(out["field"], out[f"{side}_value"], out.get(f"{side}_length", [None] * len(out)))]
    return out


def versions_html(versions: pd.DataFrame | None, language: str = "en") -> str:
    """Both apps' versions side by side as texts; rows whose values differ carry the ``sa-diff`` mark.

    The stored values are shown as :func:`~syncanalysis.actions.synclog.field_value_text` renders them,
    with their lengths (the codes themselves are not shown); the mark follows ``differs`` (the stored
    values), and the differing value cells are marked too. Two different values of a few characters can
    read alike (see :func:`~syncanalysis.actions.synclog.field_value_text`): the mark then says so.

    Parameters
    ----------
    versions
        :attr:`SyncLog.versions <syncanalysis.actions.SyncLog>` (``None``: no twin); a frame with only the
        stored codes and lengths gets its texts rendered here.
    language
        ``en``, ``fr`` or ``de``.

    Returns
    -------
    str
        The HTML.
    """
    lang = _language(language)
    if versions is None:
        return h.fragment('<div class="sa-note">{{ t }}</div>', t=own("no_twin", lang))
    if versions.empty:
        return h.fragment('<div class="sa-note">{{ t }}</div>', t=own("gone", lang))
    frame = _texts(versions)
    marks = frame["differs"].fillna(False).astype(bool) if "differs" in frame else pd.Series(False, index=frame.index)
    same = [bool(m) and f.get("bc_text") == f.get("dataverse_text") and f.get("bc_length") == f.get("dataverse_length")
            for m, (_, f) in zip(marks, frame.iterrows())]

    def dv_field(row: pd.Series) -> str:
        name, dv_caption = row.get("dataverse_field"), row.get("dataverse_caption")
        return f"{dv_caption} ({name})" if not h.is_missing(dv_caption) and dv_caption and dv_caption != name \
            else value_text("", name)

    frame["dataverse_field"] = [dv_field(r) for _, r in frame.iterrows()] if "dataverse_field" in frame else None
    frame["differs"] = [(own("differs_mark", lang) + (f" ({own('same_text', lang)})" if s else "")) if m else ""
                        for m, s in zip(marks, same)]
    def direction(value: Any) -> str:
        return "" if h.is_missing(value) else caption((cap.T5335, f"Direction={value} (option)"), lang)

    shown, headers = _display(frame, _VERSIONS, lang, formatters={
        "direction": direction, "dataverse_field": lambda v: "" if v is None else str(v),
        "differs": str, "bc_text": lambda v: "" if h.is_missing(v) else str(v),
        "dataverse_text": lambda v: "" if h.is_missing(v) else str(v)})
    cells = pd.DataFrame("", index=shown.index, columns=shown.columns)
    for c in ("bc_text", "dataverse_text"):
        if c in cells:
            cells.loc[marks.to_numpy(), c] = "sa-diff"
    n = int(marks.sum())
    note = (h.fragment('<div class="sa-note"><span class="sa-badge sa-warn">{{ n }}</span> {{ m }}</div>',
                       n=own("n_differ", lang).format(n=n), m=own("marked", lang))
            if n else h.fragment('<div class="sa-note">{{ t }}</div>', t=own("same", lang)))
    return note + h.table(shown, headers=headers, row_classes=marks.map({True: "sa-diff", False: ""}).tolist(),
                          cell_classes=cells, max_rows=200)


class SyncLogPanel:
    """One record's Synchronization Log (page 5333's action, with the whole history instead of the last job).

    Parameters
    ----------
    ws
        The workspace.
    environment, company
        Where the record lives.
    bc_record_id
        The BC record as BC formats it, e.g. ``Customer: 10000``.
    language
        Language of the labels: ``en`` (default), ``fr`` or ``de`` (English where BC's caption catalogue
        has no translation).

    Raises
    ------
    ValueError
        For another language.
    """

    def __init__(self, ws: Workspace, *, environment: str, company: str, bc_record_id: str,
                 language: str = "en") -> None:
        self.ws = ws
        self.language = _language(language)
        self.value = {"environment": environment, "company": company, "bc_record_id": bc_record_id}
        self.log: Any = None
        self.title = w.HTML()
        self.record_html = w.HTML()
        self.record_html.add_class("sa-log-record")
        self.jobs_html = w.HTML()
        self.errors_html = w.HTML()
        self.timeline_html = w.HTML()
        self.versions_html = w.HTML()
        self.versions_html.add_class("sa-log-versions")
        self.tabs = w.Tab(children=[self.errors_html, self.jobs_html, self.timeline_html, self.versions_html])
        lang = self.language
        for i, name in enumerate((caption((cap.P5339, "(page caption)"), lang), caption((cap.P5338, "(page caption)"), lang),
                                  own("tab_timeline", lang), own("tab_versions", lang))):
            self.tabs.set_title(i, name)
        self.refresh_btn = w.Button(description=own("refresh", lang), layout=w.Layout(width="auto"))
        self.refresh_btn.on_click(lambda _: self.refresh())
        self.layout = w.VBox([w.HTML(h.STYLE), self.title, self.record_html, self.tabs, self.refresh_btn])
        self.layout.add_class("sa-synclog")
        self.refresh()

    def _ipython_display_(self) -> None:
        display(self.layout)

    def refresh(self) -> None:
        """Read the log again (e.g. after an action or a twin run) and redraw it."""
        log = act.sync_log(self.ws, **self.value)
        self.log = log
        lang = self.language
        self.title.value = h.fragment("<h4>{{ t }} — {{ id }}</h4>", t=caption((cap.P5333, "ShowLog (action)"), lang),
                                      id=self.value["bc_record_id"])
        self.record_html.value = record_html(log.record or {}, lang)
        self.errors_html.value = errors_html(log.errors, lang)
        self.jobs_html.value = jobs_html(log.jobs, lang)
        self.timeline_html.value = timeline_html(log.timeline, lang)
        self.versions_html.value = versions_html(log.versions, lang)


__all__ = ["SyncLogPanel", "caption", "errors_html", "jobs_html", "label", "own", "record_html", "timeline_html",
           "value_text", "versions_html", "when", "yes_no"]
