"""Export a list of coupled records, a selection, an action preview or a run result to Excel (xlsx) or CSV.

What a consultant attaches to a ticket: the columns headed with Business Central's own captions in the
user's language (English, French or German), values as BC shows them (Yes/No, Success/Failure), error
causes by their title, times as UTC date/times. Columns BC does not have (the state, the latest error, the
cause, an action's outcome, ...) are headed from a small table of this module's own labels.

Typical use::

    from syncanalysis.export import export_records
    export_records(ws, Selection(mapping="CUSTOMER", state="skipped"), "skipped-customers.xlsx", language="fr")

Formats, chosen by the file's suffix:

``.xlsx``
    One sheet, header row bold and frozen, an autofilter, column widths fitted to the values (capped) and
    long text wrapped; times are real Excel date/times, integers numbers. Needs ``xlsxwriter``. A text
    longer than an Excel cell holds (32,767 characters) is cut, with a note saying so at its end.
``.csv``
    UTF-8 with a byte order mark (so that Excel shows accents right), CRLF line ends, fields quoted where
    they need it; times as ``YYYY-MM-DD HH:MM:SS`` text. The separator is ``,`` for English and ``;`` for
    French and German (the list separator Excel expects there), unless ``delimiter=`` says otherwise.

In both, missing values are empty cells and text a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@``, tab, CR first) is prefixed with ``'`` (:func:`~syncanalysis.actions.planfile.neutralise_formulas`).
Every conversion is a column operation, text ones on a column's distinct texts; the xlsx sheet's cells are
built the same way (100,000 records take a few seconds in either format).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .actions.planfile import neutralise_formulas
from .analysis.causes import cause_info
from .errors import SyncAnalysisError
from .sources.captions import LANGS, P5333, T5331, T5338, TOOLKIT, captions

if TYPE_CHECKING:
    from .actions.base import ActionResult, Plan
    from .analysis.records import Selection
    from .workspace import Workspace

__all__ = ["COLUMNS", "EXCEL_CELL_LIMIT", "INTERNAL", "LANGUAGES", "RECORD_COLUMNS", "ExportError",
           "MissingDependencyError", "check_language", "column_header", "export_frame", "export_plan", "export_records",
           "export_result"]

LANGUAGES = LANGS
"""The languages of the headers and values: ``en``, ``fr``, ``de``."""

EXCEL_CELL_LIMIT = 32_767  # characters an Excel cell holds
EXCEL_MAX_ROWS = 1_048_576  # rows of a sheet, the header included
MAX_WIDTH = 60  # column width cap (characters); wider text wraps
SUFFIXES = (".xlsx", ".csv")


class ExportError(SyncAnalysisError, ValueError):
    """An export asked for an unknown format, language or column."""


class MissingDependencyError(SyncAnalysisError, ImportError):
    """An optional package that an export needs is not installed."""


# -- what each column is ----------------------------------------------------------------------------------
TEXT, BOOL, TIME, INT, NUMBER, CAUSE = "text", "bool", "time", "int", "number", "cause"


@dataclass(frozen=True)
class _Col:
    """How one known column is headed and shown.

    ``caption`` is a row of bc-captions.csv (BC's caption); ``labels`` this module's own (en, fr, de) for a
    column BC does not have. ``values`` names the value translation of a text column (see :func:`_value_maps`).
    """

    kind: str
    caption: tuple[str, str] | None = None
    labels: tuple[str, str, str] | None = None
    values: str | None = None


def _own(en: str, fr: str, de: str, kind: str = TEXT, values: str | None = None) -> _Col:
    return _Col(kind, labels=(en, fr, de), values=values)


def _bc(table: str, field: str, kind: str = TEXT, values: str | None = None) -> _Col:
    return _Col(kind, caption=(table, field), values=values)


COLUMNS: dict[str, _Col] = {
    # coupled records (records(): table 5331 and page 5333)
    "environment": _bc(TOOLKIT, "Environment (column of combined exports)"),
    "company": _bc(TOOLKIT, "Company (column of combined exports)"),
    "table_id": _bc(P5333, "Table ID (column)", INT),
    "table_name": _bc(P5333, "Table Name (column)"),
    "integration_id": _bc(T5331, "Integration ID"),
    "crm_id": _bc(T5331, "CRM ID"),
    "mapping_name": _bc(T5338, "Integration Table Mapping Name"),
    "bc_record_id": _bc(P5333, "Description (column)"),
    "crm_description": _bc(P5333, "Int. Description (column)"),
    "skipped": _bc(T5331, "Skipped", BOOL),
    "bc_record_exists": _bc(P5333, "Record Exists (column)", BOOL),
    "crm_record_exists": _bc(P5333, "Int. Record Exists (column)", BOOL),
    "last_synch_result": _bc(T5331, "Last Synch. Result", values="result"),
    "last_synch_crm_result": _bc(T5331, "Last Synch. CRM Result", values="result"),
    "last_synch_modified_on": _bc(T5331, "Last Synch. Modified On", TIME),
    "last_synch_crm_modified_on": _bc(T5331, "Last Synch. CRM Modified On", TIME),
    "last_synch_job_id": _bc(T5331, "Last Synch. Job ID"),
    "last_synch_crm_job_id": _bc(T5331, "Last Synch. CRM Job ID"),
    "error_message": _bc(P5333, "Error Message (column)"),
    "failed_on": _bc(P5333, "Failed On (column)", TIME),
    "state": _own("State", "État", "Zustand", values="state"),
    "latest_error": _own("Latest Error", "Dernière erreur", "Letzter Fehler"),
    "latest_error_on": _own("Latest Error On", "Dernière erreur le", "Letzter Fehler am", TIME),
    "error_no": _own("Latest Error No.", "N° dernière erreur", "Nr. letzter Fehler", INT),
    "cause": _own("Cause", "Cause", "Ursache", CAUSE),
    "parent": _own("Parent Record", "Enregistrement parent", "Übergeordneter Datensatz"),
    # an action's preview (Plan.targets) and result (ActionResult.outcome)
    "role": _own("Role", "Rôle", "Rolle", values="role"),
    "direction": _bc(T5338, "Synch. Direction", values="direction"),
    "couple_to": _own("Couple To (CRM ID)", "Coupler à (CRM ID)", "Koppeln mit (CRM-ID)"),
    "enabled": _own("Action Enabled", "Action activée", "Aktion aktiviert", BOOL),
    "status": _own("Status", "Statut", "Status", values="status"),
    "outcome": _own("What Will Happen", "Ce qui va se passer", "Was geschehen wird"),
    "prediction": _own("Predicted Outcome", "Résultat prévu", "Voraussichtliches Ergebnis"),
    "destroyed": _own("Deletes", "Supprime", "Löscht"),
    "reason": _own("Reason", "Motif", "Grund"),
    "suggest": _own("Suggested Action", "Action suggérée", "Empfohlene Aktion"),
    "winner": _own("Winning Side", "Côté gagnant", "Gewinnende Seite", values="winner"),
    "fields": _own("Fields Overwritten", "Champs écrasés", "Überschriebene Felder"),
    "result": _own("Result", "Résultat", "Ergebnis", values="result_of_run"),
    "detail": _own("Detail", "Détail", "Details"),
    "new_integration_id": _own("New Integration ID", "Nouvel ID intégration", "Neue Integrations-ID"),
    "new_crm_id": _own("New CRM ID", "Nouvel ID CRM", "Neue CRM-ID"),
}
"""Every column this module knows: how it is headed (BC's caption or an own label) and what its values are."""

INTERNAL = frozenset({"signature", "last_synch_job_id", "last_synch_crm_job_id", "error_job_id", "job_id",
                      "inferred", "found", "mapping_direction", "released_integration_id", "fidelity"})
"""Columns left out unless asked for by ``columns=``: hashes and internal ids (and any column named ``_...``)."""

# records' columns in the order a reviewer reads them (page 5333's first, the keys last)
RECORD_COLUMNS = ("mapping_name", "table_id", "bc_record_id", "crm_description", "state", "skipped",
                  "bc_record_exists", "crm_record_exists", "error_message", "failed_on", "last_synch_result",
                  "last_synch_crm_result", "latest_error", "latest_error_on", "cause", "error_no", "environment",
                  "company", "integration_id", "crm_id")
_SHEETS = {"records": ("Records", "Enregistrements", "Datensätze"), "plan": ("Preview", "Aperçu", "Vorschau"),
           "result": ("Result", "Résultat", "Ergebnis")}
_UTC = " (UTC)"
_TRUNCATED = ("[truncated: {n} characters in all; export to CSV for the whole text]",
              "[tronqué : {n} caractères au total ; exporter en CSV pour le texte complet]",
              "[gekürzt: {n} Zeichen insgesamt; als CSV exportieren für den vollständigen Text]")
_DELIMITERS = {"en": ",", "fr": ";", "de": ";"}


def _first(key: tuple[str, str], lang: str) -> str:
    """BC's (first) caption of a bc-captions.csv row in ``lang``, else its English one."""
    caps = captions(key)
    return (caps[lang] or caps["en"] or [key[1]])[0]


def _value_maps(lang: str) -> dict[str, dict[str, str]]:
    """The value translations of the text columns in ``lang`` (BC's option captions where BC has them)."""
    i = LANGS.index(lang)

    def own(*rows: tuple[str, str, str, str]) -> dict[str, str]:
        return {r[0]: r[1 + i] for r in rows}

    return {
        "result": {"Success": _first((T5331, "Last Synch. Result=Success (option)"), lang),
                   "Failure": _first((T5331, "Last Synch. Result=Failure (option)"), lang)},
        "state": {"ok": "OK", "skipped": _first((T5331, "Skipped"), lang), "failed": _first((T5338, "Failed"), lang),
                  **own(("broken", "Record deleted", "Enregistrement supprimé", "Datensatz gelöscht"))},
        "role": own(("target", "Target", "Cible", "Ziel"), ("parent", "Parent", "Parent", "Übergeordnet")),
        "direction": own(("to-dataverse", "To Dataverse", "Vers Dataverse", "Nach Dataverse"),
                         ("from-dataverse", "From Dataverse", "Depuis Dataverse", "Von Dataverse"),
                         ("merge", "Merge", "Fusionner", "Zusammenführen")),
        "status": own(("change", "Will change", "Sera modifié", "Wird geändert"),
                      ("no-op", "No change", "Aucune modification", "Keine Änderung"),
                      ("refused", "Refused", "Refusé", "Abgelehnt")),
        "result_of_run": own(("changed", "Changed", "Modifié", "Geändert"),
                             ("planned", "In the plan file", "Dans le fichier de plan", "In der Plandatei"),
                             ("no-op", "No change", "Aucune modification", "Keine Änderung"),
                             ("refused", "Refused", "Refusé", "Abgelehnt"),
                             ("failed", "Failed", "Échec", "Fehlgeschlagen")),
        "winner": own(("both (merge)", "both (merge)", "les deux (fusion)", "beide (Zusammenführung)")),
    }


def check_language(language: str) -> str:
    """Return ``language`` as one of :data:`LANGUAGES` (any case; ``fr-FR`` is ``fr``), else raise.

    Examples
    --------
    >>> check_language("FR-ch")
    'fr'
    """
    lang = str(language).strip().lower().replace("_", "-").split("-")[0]
    if lang not in LANGS:
        raise ExportError(f"Unknown language {language!r}; use one of {', '.join(LANGS)}.")
    return lang


def column_header(column: str, language: str = "en") -> str:
    """The header of ``column`` in ``language``: BC's caption, or this module's own label.

    A column this module does not know is headed by its name (``new_column`` -> ``New column``). Time
    columns get `` (UTC)`` in the export itself, not here.

    Examples
    --------
    >>> column_header("crm_description", "fr"), column_header("failed_on", "de"), column_header("cause", "de")
    ('Couplé à', 'Fehlgeschlagen am', 'Ursache')
    """
    lang = check_language(language)
    spec = COLUMNS.get(column)
    if spec is None:
        text = str(column).replace("_", " ").strip()
        return text[:1].upper() + text[1:] if text else str(column)
    if spec.caption is not None:
        return _first(spec.caption, lang)
    assert spec.labels is not None
    return spec.labels[LANGS.index(lang)]


# -- column conversions (vectorised) ----------------------------------------------------------------------
def _kind(name: str, s: pd.Series) -> str:
    spec = COLUMNS.get(name)
    if spec is not None:
        return spec.kind
    if pd.api.types.is_bool_dtype(s):
        return BOOL
    if pd.api.types.is_datetime64_any_dtype(s):
        return TIME
    if pd.api.types.is_integer_dtype(s):
        return INT
    if pd.api.types.is_float_dtype(s):
        return NUMBER
    if s.dtype == object:  # Python values: datetimes, booleans or integers with None among them
        return {"datetime": TIME, "datetime64": TIME, "date": TIME, "boolean": BOOL,
                "integer": INT}.get(pd.api.types.infer_dtype(s, skipna=True), TEXT)
    return TEXT


def _objects(s: pd.Series) -> pd.Series:
    """``s`` as an object column with ``None`` for every missing value."""
    out = s.astype(object)
    return out.where(s.notna(), None)


def _text(s: pd.Series) -> pd.Series:
    """Text cells: non-text values (GUIDs, numbers in an object column) as their text; missing as None."""
    out = s.astype(object)
    missing = out.isna()
    if not missing.all():
        out = out.where(missing, out.astype(str).astype(object))
    return _objects(out)


def _booleans(s: pd.Series, lang: str) -> pd.Series:
    try:
        flags = s.astype("boolean")
    except (TypeError, ValueError):  # not booleans after all: show the text
        return _text(s)
    yes, no = _first(("Boolean", "Yes (value)"), lang), _first(("Boolean", "No (value)"), lang)
    out = pd.Series(np.where(flags.fillna(False).to_numpy(dtype=bool), yes, no), index=s.index, dtype=object)
    return out.where(flags.notna().to_numpy(dtype=bool), None)


def _times(s: pd.Series) -> pd.Series:
    """UTC times to the second (naive times are UTC, as the workspace stores them)."""
    t = s if pd.api.types.is_datetime64_any_dtype(s) else pd.to_datetime(s, errors="coerce", utc=True)
    if isinstance(t.dtype, pd.DatetimeTZDtype):
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.dt.floor("s")


def _integers(s: pd.Series) -> pd.Series | None:
    """``s`` as nullable integers, or ``None`` when it holds other values."""
    if pd.api.types.is_integer_dtype(s):
        return s.astype("Int64")
    try:
        num = pd.to_numeric(s, errors="raise") if not pd.api.types.is_numeric_dtype(s) else s
        if pd.api.types.is_bool_dtype(num):
            return None
        vals = num.dropna().to_numpy(dtype=float)
        if not np.isfinite(vals).all() or not (np.mod(vals, 1) == 0).all():
            return None
        return num.astype("Int64")
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass
class _Prepared:
    """One column ready to write.

    A text column is kept factorized: ``codes`` (-1 for an empty cell) into its distinct texts ``uniques``,
    so that every string operation runs once per distinct text (exports repeat the same texts: mapping names,
    Yes/No, one error message for thousands of records).
    """

    header: str
    kind: str  # TEXT (also Yes/No and option captions), TIME, INT, NUMBER
    values: pd.Series  # TIME: datetime64; INT: Int64; NUMBER: float; TEXT: object with None (as prepared)
    codes: np.ndarray | None = None
    uniques: pd.Series | None = None

    def factorize(self) -> None:
        """Factorize a text column (empty text counts as an empty cell)."""
        codes, uniques = pd.factorize(self.values.where(self.values.fillna("") != "", None))
        self.codes, self.uniques = codes, pd.Series(np.asarray(uniques, dtype=object), dtype=object)

    def text(self) -> np.ndarray:
        """A text column's cells (``None`` where empty)."""
        assert self.codes is not None and self.uniques is not None
        return _spread(self.codes, self.uniques)


def _spread(codes: np.ndarray, uniques: pd.Series) -> np.ndarray:
    out = np.full(len(codes), None, dtype=object)
    has = codes >= 0
    out[has] = uniques.to_numpy(dtype=object)[codes[has]]
    return out


def _prepare(frame: pd.DataFrame, names: Sequence[str], lang: str) -> list[_Prepared]:
    """Header and display values of each column, in ``lang`` (formulas not neutralised yet)."""
    maps = _value_maps(lang)
    out: list[_Prepared] = []
    seen: dict[str, int] = {}
    for name in names:
        s = frame[name].reset_index(drop=True)
        kind = _kind(name, s)
        header = column_header(name, lang)
        spec = COLUMNS.get(name)
        if kind == BOOL:
            values, kind = _booleans(s, lang), TEXT
        elif kind == TIME:
            values = _times(s)
            header += _UTC
        elif kind in (INT, NUMBER):
            ints = _integers(s)
            if ints is not None:
                values, kind = ints, INT
            elif pd.api.types.is_float_dtype(s):
                floats = pd.Series(s.to_numpy(dtype=float, na_value=np.nan))
                values, kind = floats.where(np.isfinite(floats)), NUMBER
            else:
                values, kind = _text(s), TEXT
        elif kind == CAUSE:
            text = _text(s)
            titles = {c: cause_info(c).title for c in text.dropna().unique() if c != ""}
            mapped = text.map(titles)
            values, kind = _objects(mapped.where(mapped.notna(), text)), TEXT
        else:
            values = _text(s)
            if spec is not None and spec.values is not None:
                table = maps[spec.values]
                mapped = values.map(table)
                values = _objects(mapped.where(mapped.notna(), values))
        n = seen.get(header, 0)
        seen[header] = n + 1
        col = _Prepared(header if not n else f"{header} ({name})", kind, values)
        if kind == TEXT:
            col.factorize()
        out.append(col)
    return out


def _neutralise(cols: list[_Prepared]) -> None:
    """Prefix text a spreadsheet would run as a formula (in place, on the distinct texts), with planfile's rule."""
    for c in cols:
        if c.uniques is not None:
            c.uniques = neutralise_formulas(c.uniques.to_frame("v"))["v"].astype(object)


def _columns(frame: pd.DataFrame, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return [c for c in frame.columns if c not in INTERNAL and not str(c).startswith("_")]
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise ExportError(f"Unknown column(s) {', '.join(map(repr, unknown))}; the frame has "
                          f"{', '.join(map(str, frame.columns))}.")
    return list(columns)


def _check_unique(frame: pd.DataFrame, names: Sequence[str]) -> None:
    asked, have = pd.Index(names), frame.columns
    twice = set(asked[asked.duplicated()]) | (set(have[have.duplicated()]) & set(asked))
    if twice:
        raise ExportError(f"Column(s) {', '.join(sorted(map(str, twice)))} appear more than once; give each once.")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ExportError(f"Cannot export to {path.name!r}: unknown suffix {path.suffix or '(none)'!r}; "
                          f"use {' or '.join(SUFFIXES)}.")
    return suffix


# -- writers ----------------------------------------------------------------------------------------------
def export_frame(frame: pd.DataFrame, path: str | os.PathLike[str], *, language: str = "en", sheet: str = "Records",
                 title: str | None = None, columns: Sequence[str] | None = None,
                 delimiter: str | None = None) -> Path:
    r"""Write ``frame`` to an Excel (``.xlsx``) or CSV (``.csv``) file headed with BC's captions in ``language``.

    Parameters
    ----------
    frame
        Any frame; its known columns (:data:`COLUMNS`: those of :func:`~syncanalysis.analysis.records.records`,
        of a plan's targets and of a run's outcome) are headed with BC's caption or an own label, the others
        with their name.
    path
        The file to write; its suffix chooses the format. Its folder is created; the file is replaced at once
        when complete (a failed export leaves no partial file).
    language
        ``en``, ``fr`` or ``de`` (``fr-FR`` works too): the headers, Yes/No and BC's option captions.
    sheet
        Name of the xlsx sheet (cut to Excel's 31 characters, ``[]:*?/\\`` removed).
    title
        What the export shows (e.g. the selection); the xlsx workbook's title and its printed page header.
        Not written to a CSV.
    columns
        The columns to write, in this order (internal ones included); default every column but
        :data:`INTERNAL` ones.
    delimiter
        CSV separator; default ``,`` for English, ``;`` for French and German.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ExportError
        (a ``ValueError``) For an unknown suffix, language or column, or more rows than an Excel sheet holds.
    MissingDependencyError
        (an ``ImportError``) For ``.xlsx`` when ``xlsxwriter`` is not installed.

    Examples
    --------
    >>> frame = pd.DataFrame({"bc_record_id": ["Customer: C1"], "skipped": [True]})
    >>> export_frame(frame, "skipped.xlsx", language="de")  # doctest: +SKIP
    PosixPath('skipped.xlsx')
    """
    target = Path(path)
    suffix = _suffix(target)
    lang = check_language(language)
    names = _columns(frame, columns)
    _check_unique(frame, names)
    if suffix == ".xlsx" and len(frame) >= EXCEL_MAX_ROWS:
        raise ExportError(f"{len(frame):,} rows do not fit an Excel sheet ({EXCEL_MAX_ROWS - 1:,} at most); "
                          "export to .csv, or narrow the selection.")
    writer = _xlsx_writer() if suffix == ".xlsx" else None
    cols = _prepare(frame, names, lang)
    _neutralise(cols)
    if writer is not None:
        _publish(target, lambda tmp: _write_xlsx(cols, tmp, writer, lang=lang, sheet=sheet, title=title,
                                                 rows=len(frame)))
    else:
        sep = delimiter if delimiter is not None else _DELIMITERS[lang]
        _publish(target, lambda tmp: _write_csv(cols, tmp, sep, rows=len(frame)))
    return target


def _publish(target: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file beside ``target``, renamed into place once complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_csv(cols: list[_Prepared], path: Path, sep: str, *, rows: int) -> None:
    data: dict[int, pd.Series] = {}
    for i, c in enumerate(cols):
        if c.kind == TIME:
            data[i] = _objects(c.values.dt.strftime("%Y-%m-%d %H:%M:%S"))
        else:
            data[i] = pd.Series(c.text(), dtype=object) if c.kind == TEXT else c.values
    table = pd.DataFrame(data, index=pd.RangeIndex(rows))
    table.columns = [c.header for c in cols]
    table.to_csv(path, index=False, sep=sep, encoding="utf-8-sig", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL,
                 na_rep="", decimal="," if sep == ";" else ".")


def _xlsx_writer() -> Any:
    try:
        import xlsxwriter
    except ImportError as exc:
        raise MissingDependencyError("Exporting to .xlsx needs the xlsxwriter package: pip install xlsxwriter "
                                     "(or export to .csv).") from exc
    return xlsxwriter


def _sheet_name(name: str) -> str:
    cleaned = "".join(ch for ch in str(name) if ch not in "[]:*?/\\").strip().strip("'")[:31].strip()
    return cleaned or "Sheet1"


_EPOCH = pd.Timestamp("1899-12-30")
_DAY = pd.Timedelta(days=1)
FAST_XLSX = True
"""Write the sheet's cells as column operations (see :func:`_fast_sheet_class`); ``False``: cell by cell."""
_BLOCK = 20_000  # rows of sheet XML built at a time


def _truncate(texts: pd.Series, note: str) -> pd.Series:
    """Texts longer than an Excel cell holds, cut with ``note`` at their end (only those texts are visited)."""
    lengths = texts.str.len()
    long = lengths > EXCEL_CELL_LIMIT
    if not long.any():
        return texts
    tails = [" " + note.format(n=n) for n in lengths[long].astype(int)]
    texts = texts.copy()
    texts[long] = [t[: EXCEL_CELL_LIMIT - len(tail)] + tail for t, tail in zip(texts[long], tails)]
    return texts


def _layout(c: _Prepared) -> tuple[float, bool]:
    """Column width (characters, capped) and whether its text wraps."""
    width = float(len(c.header) + 3)  # room for the autofilter's button
    if c.kind == TIME:
        return max(width, 21.0), False
    if c.kind in (INT, NUMBER):
        values = c.values.dropna()
        return (max(width, float(values.astype(str).str.len().max()) + 2) if len(values) else width), False
    distinct = c.uniques if c.uniques is not None else pd.Series([], dtype=object)
    longest = float(distinct.str.len().max()) if len(distinct) else 0.0
    wrap = longest > MAX_WIDTH or bool(distinct.str.contains("\n", regex=False).any())
    return min(max(width, min(longest, MAX_WIDTH) + 2), MAX_WIDTH + 2), wrap


def _cell_values(c: _Prepared) -> pd.Series:
    """What a cell holds: text, or a number (times as Excel's day numbers); ``None`` for an empty cell."""
    if c.kind == TIME:
        return _objects((c.values - _EPOCH) / _DAY)
    if c.kind in (INT, NUMBER):
        return _objects(c.values)
    return pd.Series(c.text(), dtype=object)


def _write_xlsx(cols: list[_Prepared], path: Path, xlsxwriter: Any, *, lang: str, sheet: str, title: str | None,
                rows: int) -> None:
    note = _TRUNCATED[LANGS.index(lang)]
    for c in cols:
        if c.uniques is not None:
            c.uniques = _truncate(c.uniques, note)
    layout = [_layout(c) for c in cols]
    fast = _fast_sheet_class(xlsxwriter) if FAST_XLSX else None
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": fast is None, "strings_to_numbers": False,
                                         "strings_to_formulas": False, "strings_to_urls": False})
    try:
        if title:
            wb.set_properties({"title": title, "comments": "Exported by syncanalysis"})
        ws = wb.add_worksheet(_sheet_name(sheet), worksheet_class=fast) if fast else wb.add_worksheet(_sheet_name(sheet))
        bold = wb.add_format({"bold": True, "valign": "top"})
        top = wb.add_format({"valign": "top"})
        wrapped = wb.add_format({"valign": "top", "text_wrap": True})
        when = wb.add_format({"valign": "top", "num_format": "yyyy-mm-dd hh:mm:ss"})
        formats = [when if c.kind == TIME else wrapped if wrap else top for c, (_, wrap) in zip(cols, layout)]
        numeric = [c.kind != TEXT for c in cols]
        for j, ((width, _), fmt) in enumerate(zip(layout, formats)):
            ws.set_column(j, j, width, fmt)
        if title:
            ws.set_header("&C" + title[:120].replace("&", "&&"))  # Excel's limit: 255 characters
        ws.freeze_panes(1, 0)
        if cols:
            ws.autofilter(0, 0, max(rows, 1), len(cols) - 1)
        headers = [c.header for c in cols]
        if fast is not None:
            bodies = [_xml_numbers(_cell_values(c)) if c.kind != TEXT else _spread(c.codes, _xml_strings(c.uniques))
                      for c in cols]
            ws.sa_cells(_xml_strings(pd.Series(headers, dtype=object)).tolist(), bodies, bold, formats, rows)
        else:
            for j, h in enumerate(headers):
                ws.write_string(0, j, h, bold)
            lists = [_cell_values(c).tolist() for c in cols]
            pairs = [(ws.write_number if n else ws.write_string, f) for n, f in zip(numeric, formats)]
            for i, row in enumerate(zip(*lists), start=1):
                for j, v in enumerate(row):
                    if v is not None:
                        write, fmt = pairs[j]
                        write(i, j, v, fmt)
    finally:
        wb.close()


_CONTROL = r"[\x00-\x08\x0b-\x1f]"


def _xml_text(s: pd.Series) -> pd.Series:
    """Text for an inline-string cell, escaped as xlsxwriter escapes it (column operations).

    A literal ``_xHHHH_`` gets its underscore escaped, control characters (CR included) become ``_xHHHH_``,
    then ``& < >`` their entities.
    """
    risky = s.str.contains(r"[&<>_\x00-\x08\x0b-\x1f\ufffe\uffff]", regex=True).to_numpy(dtype=bool)
    if not risky.any():
        return s
    t = s[risky].str.replace(r"(_x[0-9a-fA-F]{4}_)", r"_x005F\1", regex=True)
    t = t.str.replace(_CONTROL, lambda m: f"_x{ord(m.group(0)):04X}_", regex=True) \
        .str.replace("\ufffe", "_xFFFE_", regex=False).str.replace("\uffff", "_xFFFF_", regex=False)
    t = t.str.replace("&", "&amp;", regex=False).str.replace("<", "&lt;", regex=False) \
        .str.replace(">", "&gt;", regex=False)
    out = s.copy()
    out[risky] = t
    return out


def _xml_numbers(values: pd.Series) -> np.ndarray:
    """Each number cell's XML after its ``<c r=".." s=".."`` (``None`` where empty)."""
    out = np.full(len(values), None, dtype=object)
    present = values.notna().to_numpy()
    if present.any():
        out[present] = "><v>" + np.char.mod("%.16G", values[present].to_numpy(dtype=float)).astype(object) + "</v></c>"
    return out


def _xml_strings(texts: pd.Series) -> pd.Series:
    """Each text's inline-string cell XML after its ``<c r=".." s=".."``."""
    space = np.where(texts.str.contains(r"^\s|\s$", regex=True).to_numpy(dtype=bool), ' xml:space="preserve"', "")
    return ' t="inlineStr"><is><t' + space + ">" + _xml_text(texts) + "</t></is></c>"


def _fast_sheet_class(xlsxwriter: Any) -> type | None:
    """A worksheet that writes its cells' XML as column operations, or ``None`` if this xlsxwriter lacks the hooks.

    xlsxwriter builds each cell's XML in Python (some microseconds a cell: 100,000 records of 20 columns take
    15 s). This subclass keeps xlsxwriter for everything else (the package, styles, widths, panes, filter) and
    replaces only the writing of the rows inside ``<sheetData>`` (its ``_write_rows``) with XML built per block
    of rows by pandas string operations, escaped as xlsxwriter escapes inline strings. When a version of
    xlsxwriter no longer has the hooks, the export writes cell by cell instead.
    """
    base = getattr(getattr(xlsxwriter, "worksheet", None), "Worksheet", None)
    if base is None or not all(hasattr(base, a) for a in ("_write_rows", "_write_sheet_data", "_xml_start_tag")):
        return None

    class _Sheet(base):  # type: ignore[misc, valid-type]
        sa_data: tuple[Any, ...] | None = None

        def sa_cells(self, headers: list[str], bodies: list[np.ndarray], bold: Any, formats: list[Any],
                     rows: int) -> None:
            """Keep the cells' XML (after ``<c r=".." s=".."``) to write at assembly, when formats have indexes."""
            self.sa_data = (headers, bodies, bold, formats, rows)
            self.dim_rowmin, self.dim_rowmax = 0, rows
            self.dim_colmin, self.dim_colmax = 0, max(len(headers) - 1, 0)

        def _write_rows(self) -> None:
            if self.sa_data is None:  # pragma: no cover - a sheet written through the usual API
                return super()._write_rows()
            head, bodies, bold, formats, rows = self.sa_data
            letters = [xlsxwriter.utility.xl_col_to_name(j) for j in range(len(head))]
            xf = bold._get_xf_index()
            self.fh.write('<row r="1">' + "".join(f'<c r="{a}1" s="{xf}"{b}' for a, b in zip(letters, head))
                          + "</row>")
            # per column: '<c r="' + letter, row number, '" s="<xf>"' and the body; one join per block of rows
            parts = [(f'<c r="{a}', f'" s="{f._get_xf_index()}"', b) for a, b, f in zip(letters, bodies, formats)]
            for start in range(0, rows, _BLOCK):
                stop = min(start + _BLOCK, rows)
                num = np.arange(start + 2, stop + 2).astype(str).astype(object)
                grid = np.full((stop - start, 2 * len(parts) + 2), "", dtype=object)
                grid[:, 0] = '<row r="' + num + '">'
                grid[:, -1] = "</row>"
                for j, (open_, style, bodies) in enumerate(parts):
                    body = bodies[start:stop]
                    present = pd.notna(body)
                    grid[present, 1 + 2 * j] = open_ + num[present] + style
                    grid[present, 2 + 2 * j] = body[present]
                self.fh.write("".join(grid.ravel().tolist()))
            return None

    return _Sheet


# -- what the triage panel and the CLI export ---------------------------------------------------------------
def _sheet(kind: str, lang: str) -> str:
    return _SHEETS[kind][LANGS.index(lang)]


def export_records(ws: Workspace, selection: Selection | None, path: str | os.PathLike[str], *, language: str = "en",
                   order_by: str = "-latest_error_on", columns: Sequence[str] | None = None,
                   delimiter: str | None = None) -> Path:
    """Write every record of ``selection`` (the triage panel's list, all pages) to ``path``.

    Parameters
    ----------
    ws
        The workspace.
    selection
        The filter or the chosen records (``None``: every coupled record).
    path
        ``.xlsx`` or ``.csv``.
    language
        ``en``, ``fr`` or ``de``.
    order_by
        As :func:`~syncanalysis.analysis.records.records` takes it.
    columns
        The columns of ``records()`` to write; default :data:`RECORD_COLUMNS` (page 5333's first, the keys
        last).
    delimiter
        CSV separator (see :func:`export_frame`).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    from .analysis.records import Selection, records

    sel = selection if selection is not None else Selection()
    lang = check_language(language)
    _suffix(Path(path))
    frame = records(ws, sel, order_by=order_by, limit=None)
    cols = list(columns) if columns is not None else [c for c in RECORD_COLUMNS if c in frame.columns]
    return export_frame(frame, path, language=lang, sheet=_sheet("records", lang), title=sel.describe(), columns=cols,
                        delimiter=delimiter)


_PLAN_COLUMNS = ("mapping_name", "bc_record_id", "crm_description", "state", "role", "enabled", "status", "outcome",
                 "prediction", "destroyed", "winner", "fields", "direction", "couple_to")
_OPTIONAL = ("prediction", "destroyed", "winner", "fields", "direction", "couple_to", "new_integration_id",
             "new_crm_id")  # shown when set
_KEY = ("environment", "company", "table_id", "integration_id")


def _action_columns(frame: pd.DataFrame, middle: Sequence[str]) -> list[str]:
    cols = [c for c in (*middle, *_KEY) if c in frame.columns]
    return [c for c in cols if c not in _OPTIONAL or frame[c].notna().any()]


def export_plan(plan: Plan, path: str | os.PathLike[str], *, language: str = "en",
                delimiter: str | None = None) -> Path:
    """Write an action's preview (its dry run: one row per target, what will happen and why) to ``path``.

    The columns of :meth:`Plan.to_frame <syncanalysis.actions.base.Plan.to_frame>` (and the Dataverse row of
    Set Up Coupling); columns that are empty for every target (who wins, when nothing will change) are left
    out. The title is the plan's summary line.

    Parameters
    ----------
    plan
        From :func:`syncanalysis.actions.plan`.
    path
        ``.xlsx`` or ``.csv``.
    language
        ``en``, ``fr`` or ``de`` (headers and values; the outcome texts are English).
    delimiter
        CSV separator (see :func:`export_frame`).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    lang = check_language(language)
    frame = plan.targets
    return export_frame(frame, path, language=lang, sheet=_sheet("plan", lang), title=plan.summary().splitlines()[0],
                        columns=_action_columns(frame, _PLAN_COLUMNS), delimiter=delimiter)


def export_result(result: ActionResult, path: str | os.PathLike[str], *, language: str = "en",
                  delimiter: str | None = None) -> Path:
    """Write what a run did, per target (its result and detail beside the predicted outcome), to ``path``.

    Parameters
    ----------
    result
        From :func:`syncanalysis.actions.execute` or :func:`~syncanalysis.actions.run`.
    path
        ``.xlsx`` or ``.csv``.
    language
        ``en``, ``fr`` or ``de`` (headers and values; the outcome and detail texts are English).
    delimiter
        CSV separator (see :func:`export_frame`).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    lang = check_language(language)
    frame = result.outcome
    middle = [c for c in _PLAN_COLUMNS if c != "outcome"]
    at = middle.index("status") + 1
    middle[at:at] = ["result", "detail", "outcome"]
    middle += ["new_integration_id", "new_crm_id"]
    return export_frame(frame, path, language=lang, sheet=_sheet("result", lang), title=result.summary().splitlines()[0],
                        columns=_action_columns(frame, middle), delimiter=delimiter)
