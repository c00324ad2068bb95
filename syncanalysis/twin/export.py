"""Turn a finished simulation into canonical frames and into the files a BC user would export.

:func:`canonical_frames` feeds the workspace. :func:`write_sample_data` writes ``sample_data/``:
table-level CSV exports (all fields, GUIDs, field captions as headers) and page-level xlsx exports
(the page's visible columns in page order, spec §8) in English and French. Output is
byte-identical for the same seed: gzip and xlsx carry fixed timestamps.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from .. import bc
from . import operations as ops
from .engine import World
from .messages import CALL_STACKS, MESSAGE_LEN
from .model import BC, DV, FROM, TO
from .scenario import Simulation

_UTC = dt.UTC


def _ts(ms: np.ndarray | list[int]) -> pd.Series:
    """Milliseconds since epoch -> naive UTC timestamps; -1 (blank) -> NaT."""
    a = np.asarray(ms, dtype=np.int64)
    out = pd.to_datetime(np.where(a < 0, np.iinfo(np.int64).min, a * 1_000_000).astype("datetime64[ns]"))
    return pd.Series(out)


def canonical_frames(sim: Simulation, *, since_job: int = 0,
                     coupling_rows: dict[str, np.ndarray] | None = None) -> dict[str, pd.DataFrame]:
    """Return the twin's history as canonical frames (mappings, jobs, job_errors, couplings, incidents).

    ``since_job`` limits jobs to those from that index on; errors are those still in the world's
    log (numbered on from what was dropped). Couplings are a full snapshot, or only the coupled ones
    among ``coupling_rows`` (mapping name to twin rows) when given; mappings are always all of them.
    """
    w = sim.world
    env, company = w.environment, w.company
    job_ids = np.array([j.id for j in w.jobs], dtype=object)
    new_jobs = w.jobs[since_job:]

    jobs = pd.DataFrame({
        "job_id": job_ids[since_job:],
        "start_datetime": _ts([j.start for j in new_jobs]),
        "finish_datetime": _ts([j.finish for j in new_jobs]),
        "message": [j.message for j in new_jobs],
        "mapping_name": [j.mapping for j in new_jobs],
        **{c: [j.counts.get(c, 0) for j in new_jobs]
           for c in ("inserted", "modified", "deleted", "unchanged", "skipped", "failed")},
        "synch_direction": [_job_direction(w, j) for j in new_jobs],
        "job_queue_log_entry_no": [j.job_queue_log_entry_no for j in new_jobs],
        "type": [j.type for j in new_jobs],
        "uncoupled": [j.counts.get("uncoupled", 0) for j in new_jobs],
        "coupled": [j.counts.get("coupled", 0) for j in new_jobs],
    })
    deleted = getattr(w, "deleted_jobs", set())
    if deleted:  # Delete Entries removed them (and their errors); couplings keep pointing at their ids, as in BC
        jobs = jobs[~np.isin(np.arange(since_job, len(w.jobs)), list(deleted))].reset_index(drop=True)

    log = w.errors
    if log.job:
        job_idx = np.concatenate(log.job)
        src = np.concatenate(log.source)
        dst = np.concatenate(log.destination)
        text = np.concatenate(log.text)
        family = np.concatenate(log.family)
        at = np.concatenate(log.at)
    else:
        job_idx = np.empty(0, np.int64)
        src = dst = text = family = np.empty(0, object)
        at = np.empty(0, np.int64)
    numbers = np.arange(log.base + 1, log.base + len(job_idx) + 1)
    purged = getattr(w, "deleted_job_errors", set())
    if purged and len(job_idx):
        live = ~np.isin(job_idx, list(purged))
        job_idx, src, dst, text, family, at, numbers = (a[live] for a in (job_idx, src, dst, text, family, at, numbers))
    src_s, dst_s = pd.Series(src, dtype=object), pd.Series(dst, dtype=object)
    src_table, src_key = bc.split_record_ids(src_s)
    dst_table, dst_key = bc.split_record_ids(dst_s)
    errors = pd.DataFrame({
        "error_no": numbers,
        "job_id": job_ids[job_idx] if len(job_idx) else np.empty(0, object),
        "logged_at": _ts(at),
        "source_record_id": src_s,
        "destination_record_id": dst_s,
        "source_table": src_table,
        "source_key": src_key,
        "destination_table": dst_table,
        "destination_key": dst_key,
        "message": [s[:MESSAGE_LEN] for s in text],
        "error_message": text,
        "exception_detail": [CALL_STACKS[f] for f in family],
    })

    results = np.array([None, *bc.RESULT_NAMES[1:]], dtype=object)  # blank result: NULL, as the loaders store it
    job_or_none = np.append(job_ids, None)  # index -1 (no job) picks the trailing None
    parts = []
    for name, t in w.tables.items():
        if coupling_rows is None:
            rows = np.flatnonzero(t.coupled)
        else:
            rows = np.asarray(coupling_rows.get(name, []), dtype=np.int64)
            rows = rows[(rows >= 0) & t.coupled[np.maximum(rows, 0)]] if len(rows) else rows
        cfg = t.config
        parts.append(pd.DataFrame({
            "table_id": cfg.table_id,
            "integration_id": t.ids[BC][rows],
            "crm_id": t.ids[DV][rows],
            "last_synch_modified_on": _ts(t.wm[BC][rows]),
            "last_synch_crm_modified_on": _ts(t.wm[DV][rows]),
            "last_synch_result": results[t.result[FROM][rows]],
            "last_synch_crm_result": results[t.result[TO][rows]],
            "last_synch_job_id": job_or_none[t.job[FROM][rows]],
            "last_synch_crm_job_id": job_or_none[t.job[TO][rows]],
            "skipped": t.skipped[rows],
            "bc_record_exists": t.exists[BC][rows],
            "crm_record_exists": t.exists[DV][rows],
            "bc_record_id": (cfg.bc_caption + ": ") + pd.Series(t.key[rows], dtype=object),
            "crm_description": t.name[rows],
        }))
    couplings = pd.concat(parts, ignore_index=True)

    mappings = pd.DataFrame([{
        "name": c.name, "table_id": c.table_id, "table_caption": c.bc_caption,
        "integration_table_id": c.crm_table_id, "integration_table_caption": c.dv_caption,
        "direction": c.direction, "synch_only_coupled_records": c.only_coupled,
        "deletion_conflict_resolution": c.deletion_resolution, "update_conflict_resolution": c.update_resolution,
        "dependency_filter": c.dependency_filter, "table_filter": c.table_filter,
        "integration_table_filter": c.integration_table_filter,
        "synch_int_tbl_mod_on_fltr": _ts([w.tables[c.name].mapping_wm[BC]])[0],
        "synch_modified_on_filter": _ts([w.tables[c.name].mapping_wm[DV]])[0],
    } for c in w.configs.values()])

    incidents = pd.DataFrame([{
        "incident_id": i.id, "kind": i.kind,
        "start": _ts([i.start if i.start is not None else -1])[0],
        "end": _ts([i.end if i.end is not None else -1])[0],
        "mapping": i.mapping, "affected_keys": sim.affected.get(i.id, []), "description": i.description,
    } for i in sim.incidents])

    frames = {"mappings": mappings, "jobs": jobs, "job_errors": errors, "couplings": couplings, "incidents": incidents}
    for f in frames.values():
        f.insert(0, "company", company)
        f.insert(0, "environment", env)
    return frames


def _job_direction(w: World, job) -> str:
    if job.type == "Synchronization":
        return (bc.TO_INTEGRATION, bc.FROM_INTEGRATION)[job.direction]
    return w.configs[job.mapping].direction  # couple/uncouple runs carry the mapping's direction


# ------------------------------------------------------------------------------------------------
# Table-level exports: field captions of tables 5338, 5339, 5331, 5335 as headers.
TABLE_EXPORTS = {
    "Integration Synch. Job": ("jobs", {
        "job_id": "ID", "start_datetime": "Start Date/Time", "finish_datetime": "Finish Date/Time",
        "message": "Message", "mapping_name": "Integration Table Mapping Name", "inserted": "Inserted",
        "modified": "Modified", "deleted": "Deleted", "unchanged": "Unchanged", "skipped": "Skipped",
        "failed": "Failed", "synch_direction": "Synch. Direction", "job_queue_log_entry_no": "Job Queue Log Entry No.",
        "type": "Type", "uncoupled": "Uncoupled", "coupled": "Coupled"}),
    "Integration Synch. Job Errors": ("job_errors", {
        "error_no": "No.", "job_id": "Integration Synch. Job ID", "source_record_id": "Source Record ID",
        "destination_record_id": "Destination Record ID", "message": "Message", "logged_at": "Date/Time",
        "exception_detail": "Exception Detail", "error_message": "Error Message"}),
    "CRM Integration Record": ("couplings", {
        "crm_id": "CRM ID", "integration_id": "Integration ID", "last_synch_modified_on": "Last Synch. Modified On",
        "last_synch_crm_modified_on": "Last Synch. CRM Modified On", "table_id": "Table ID",
        "last_synch_result": "Last Synch. Result", "last_synch_crm_result": "Last Synch. CRM Result",
        "last_synch_job_id": "Last Synch. Job ID", "last_synch_crm_job_id": "Last Synch. CRM Job ID",
        "skipped": "Skipped"}),
    "Integration Table Mapping": ("mappings", {
        "name": "Name", "table_id": "Table ID", "integration_table_id": "Integration Table ID",
        "direction": "Direction", "synch_int_tbl_mod_on_fltr": "Synch. Int. Tbl. Mod. On Fltr.",
        "synch_modified_on_filter": "Synch. Modified On Filter", "table_filter": "Table Filter",
        "integration_table_filter": "Integration Table Filter", "synch_only_coupled_records": "Synch. Only Coupled Records",
        "dependency_filter": "Dependency Filter", "deletion_conflict_resolution": "Deletion-Conflict Resolution",
        "update_conflict_resolution": "Update-Conflict Resolution"}),
}

# Page captions in English and French. bc-captions.csv has only a few French column captions;
# the rest are the twin's own rendering (marked in sample_data/README.md).
_FR = {
    "Start Date/Time": "Date/heure de début", "Finish Date/Time": "Date/heure de fin", "Duration": "Durée",
    "Inserted": "Inséré", "Modified": "Modifié", "Deleted": "Supprimé", "Unchanged": "Inchangé",
    "Failed": "Échec", "Skipped": "Ignoré", "Direction": "Sens", "Type": "Type", "Message": "Message",
    "No.": "N°", "Date/Time": "Date/heure", "Error Message": "Message d'erreur", "Help Link": "Lien d'aide",
    "Source": "Source", "Destination": "Destination", "Table ID": "ID table", "Table Name": "Nom de la table",
    "Description": "Description", "Record Exists": "L'enregistrement existe", "Coupled To": "Couplé à",
    "Coupled Record Exists": "L'enregistrement couplé existe", "Failed On": "Échec le",
    # values
    "Synchronization": "Synchronisation", "Uncoupling": "Découplage", "Coupling": "Couplage",
    "Yes": "Oui", "No": "Non", "View": "Afficher", "Insufficient permissions": "Autorisations insuffisantes",
    "Customer": "Client", "Vendor": "Fournisseur", "Contact": "Contact", "Item": "Article", "Currency": "Devise",
    "Unit of Measure": "Unité", "Salesperson/Purchaser": "Vendeur/Acheteur",
    "Dataverse Account": "Compte Dataverse", "Dataverse Contact": "Contact Dataverse",
    "Dataverse Product": "Produit Dataverse", "Dataverse Transactioncurrency": "Devise de transaction Dataverse",
    "Dataverse Uomschedule": "Groupe d'unités Dataverse", "Dataverse Systemuser": "Utilisateur système Dataverse",
}
PAGES = {
    "Integration Synchronization Jobs": ["Start Date/Time", "Finish Date/Time", "Duration", "Inserted", "Modified",
                                         "Deleted", "Unchanged", "Failed", "Skipped", "Direction", "Type", "Message"],
    "Integration Synchronization Errors": ["No.", "Date/Time", "Error Message", "Help Link", "Source", "Destination"],
    "Coupled Data Synchronization Errors": ["Table ID", "Table Name", "Description", "Record Exists", "Coupled To",
                                            "Coupled Record Exists", "Error Message", "Failed On"],
}
PAGE_TITLES_FR = {
    "Integration Synchronization Jobs": "Tâches de synchronisation de l'intégration",
    "Integration Synchronization Errors": "Erreurs de synchronisation d'intégration",
    "Coupled Data Synchronization Errors": "Erreurs de synchronisation des données couplées",
}


def _tr(value: str, lang: str) -> str:
    return _FR.get(value, value) if lang == "fr" else value


def _fmt_dt(ts: pd.Series, lang: str) -> list[str]:
    fmt = "%d/%m/%Y %H:%M:%S" if lang == "fr" else "%m/%d/%Y %I:%M:%S %p"
    out = ts.dt.strftime(fmt)
    if lang == "en":  # BC's en-US formatting has no leading zeros on month/day/hour
        out = out.str.replace(r"(^|/| )0(\d)", r"\1\2", regex=True)
    return out.fillna("").tolist()


def _duration(ms: pd.Series, lang: str) -> list[str]:
    """BC's Duration text, e.g. ``2 seconds 340 milliseconds`` (FR: ``2 secondes 340 millisecondes``)."""
    units = (("hour", "heure", 3_600_000), ("minute", "minute", 60_000), ("second", "seconde", 1000),
             ("millisecond", "milliseconde", 1))
    out = []
    for v in ms:
        if pd.isna(v):
            out.append("")
            continue
        v, parts = int(v), []
        for en, fr, size in units:
            q, v = divmod(v, size)
            if q:
                word = en if lang == "en" else fr
                parts.append(f"{q} {word}{'s' if q > 1 else ''}")
        out.append(" ".join(parts) or "0")
    return out


def page_frames(sim: Simulation, frames: dict[str, pd.DataFrame], lang: str) -> dict[str, pd.DataFrame]:
    """Render pages 5338, 5339 and 5333 as BC shows them, in ``lang`` ("en" or "fr")."""
    w = sim.world
    captions = {c.name: (c.bc_caption, c.dv_caption) for c in w.configs.values()}
    jobs = frames["jobs"].sort_values("start_datetime", ascending=False, kind="stable")
    dur = (jobs["finish_datetime"] - jobs["start_datetime"]).dt.total_seconds().mul(1000).round()
    direction = []
    for name, d, typ in zip(jobs["mapping_name"], jobs["synch_direction"], jobs["type"]):
        if typ != "Synchronization":
            direction.append("")
            continue
        a, b = captions[name] if d == bc.TO_INTEGRATION else captions[name][::-1]
        direction.append(f"{_tr(a, lang)} {'vers' if lang == 'fr' else 'to'} {_tr(b, lang)}.")
    p5338 = pd.DataFrame({
        "Start Date/Time": _fmt_dt(jobs["start_datetime"], lang),
        "Finish Date/Time": _fmt_dt(jobs["finish_datetime"], lang),
        "Duration": _duration(dur, lang),
        **{c.capitalize(): jobs[c].to_numpy() for c in ("inserted", "modified", "deleted", "unchanged", "failed", "skipped")},
        "Direction": direction,
        "Type": [_tr(t, lang) for t in jobs["type"]],
        "Message": jobs["message"].to_numpy(),
    })[PAGES["Integration Synchronization Jobs"]]

    err = frames["job_errors"].sort_values("logged_at", ascending=False, kind="stable")
    exists = _existence(w)
    view = _tr("View", lang)
    p5339 = pd.DataFrame({
        "No.": err["error_no"].to_numpy(),
        "Date/Time": _fmt_dt(err["logged_at"], lang),
        "Error Message": err["error_message"].to_numpy(),
        "Help Link": [_tr("Insufficient permissions", lang) if " prv" in s else "" for s in err["error_message"]],
        "Source": [view if exists.get(r, False) else "" for r in err["source_record_id"]],
        "Destination": [view if exists.get(r, False) else "" for r in err["destination_record_id"]],
    })

    # page 5333 as BC fills it when the user opens it (ops.coupled_data_sync_errors; orphans not listed)
    lines = ops.coupled_data_sync_errors(w, remove_orphans=False)
    yes, no = _tr("Yes", lang), _tr("No", lang)
    p5333 = pd.DataFrame({
        "Table ID": lines["table_id"].to_numpy(),
        "Table Name": [_tr(bc.BC_TABLES[t], lang) for t in lines["table_id"]],
        "Description": lines["description"].to_numpy(),
        "Record Exists": [yes if e else no for e in lines["record_exists"]],
        "Coupled To": lines["coupled_to"].to_numpy(),
        "Coupled Record Exists": [yes if e else no for e in lines["coupled_record_exists"]],
        "Error Message": lines["error_message"].to_numpy(),
        "Failed On": _fmt_dt(_ts(lines["failed_on"].to_numpy(dtype=np.int64)), lang),
    })
    pages = {"Integration Synchronization Jobs": p5338, "Integration Synchronization Errors": p5339,
             "Coupled Data Synchronization Errors": p5333}
    return {name: df.rename(columns=lambda c: _tr(c, lang)) for name, df in pages.items()}


def _existence(w: World) -> dict[str, bool]:
    """Record id text -> whether the record exists now (drives page 5339's "View" links)."""
    out: dict[str, bool] = {}
    for t in w.tables.values():
        cfg = t.config
        for k, e in zip(t.key, t.exists[BC]):
            out[bc.record_id(cfg.bc_caption, k)] = bool(e)
        for g, e in zip(t.ids[DV], t.exists[DV]):
            out[bc.record_id(cfg.dv_caption, bc.format_guid(g))] = bool(e)
    return out


def _write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    data = df.to_csv(index=False, date_format="%Y-%m-%d %H:%M:%S.%f").encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(data)


def _write_xlsx(df: pd.DataFrame, path: Path, sheet: str, created: dt.datetime) -> None:
    try:
        import xlsxwriter
    except ImportError as exc:  # pragma: no cover - depends on the install
        from ..errors import SyncAnalysisError

        raise SyncAnalysisError("Writing xlsx page exports needs xlsxwriter: pip install 'syncanalysis[test]'.") from exc
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"constant_memory": True, "in_memory": True, "strings_to_numbers": False,
                                   "strings_to_urls": False, "strings_to_formulas": False})
    wb.set_properties({"created": created, "author": "Business Central"})
    ws = wb.add_worksheet(sheet[:31].strip("'"))
    bold = wb.add_format({"bold": True})
    ws.write_row(0, 0, list(df.columns), bold)
    cols = [df[c].tolist() for c in df.columns]
    for i, row in enumerate(zip(*cols), start=1):
        for j, v in enumerate(row):
            if isinstance(v, str):
                ws.write_string(i, j, v)
            elif v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            else:
                ws.write_number(i, j, v)
    wb.close()
    path.write_bytes(buf.getvalue())


def write_sample_data(sim: Simulation, out: str | Path, frames: dict[str, pd.DataFrame] | None = None) -> list[Path]:
    """Write the table-level CSV exports and the EN/FR page xlsx exports of ``sim`` into ``out``.

    Returns the paths written. Same seed, same bytes.
    """
    out = Path(out)
    frames = frames or canonical_frames(sim)
    written: list[Path] = []
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for name, (table, cols) in TABLE_EXPORTS.items():
        df = frames[table][list(cols)].rename(columns=cols)
        path = out / "tables" / f"{name}.csv.gz"
        _write_csv_gz(df, path)
        written.append(path)
    truth = frames["incidents"].drop(columns=["environment", "company"]).copy()
    truth["affected_keys"] = truth["affected_keys"].map(lambda ks: "|".join(ks))
    path = out / "ground_truth_incidents.csv"
    path.write_bytes(truth.to_csv(index=False).encode("utf-8"))
    written.append(path)
    created = dt.datetime.fromtimestamp(sim.t_end / 1000, _UTC).replace(tzinfo=None)
    for lang in ("en", "fr"):
        (out / "pages" / lang).mkdir(parents=True, exist_ok=True)
        for name, df in page_frames(sim, frames, lang).items():
            title = PAGE_TITLES_FR[name] if lang == "fr" else name
            path = out / "pages" / lang / f"{title}.xlsx"
            _write_xlsx(df, path, title, created)
            written.append(path)
    return written
