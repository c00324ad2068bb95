"""Which of BC's exports a workspace holds, what each missing one would add, and which figures are estimates.

Decided on the data, not on file names: the same history can come from page or table exports, over
OData or from the twin. A table export is what carries GUIDs, record ids and job ids; the page
exports a customer usually sends (5338, 5339, 5333) carry none of them, so some links are inferred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..schema import FIDELITY_PAGE, FIDELITY_TABLE
from ..sql import scope
from ..workspace import Workspace

# what each missing source adds, in BC's words (the export to make, then what it brings)
_ADDS = {
    "table-5331": "export table 5331 CRM Integration Record (Integration Synch. Job and CRM Integration Record via "
                  "a configuration package, or an API page over it) to get the couplings' GUIDs, both watermarks "
                  "(Last Synch. Modified On / Last Synch. CRM Modified On), each record's last jobs, and the "
                  "coupled records that are not skipped",
    "table-5338": "export table 5338 Integration Synch. Job (configuration package) to get the job IDs and Job "
                  "Queue Log Entry No.: page jobs are matched by mapping and start time, and each is taken for a "
                  "job-queue run",
    "table-5339": "export table 5339 Integration Synch. Job Errors (configuration package) to get each error's "
                  "job and records (Source/Destination Record ID): page errors are linked to jobs by time only",
    "mappings": "export page 5335 Integration Table Mappings to get the mapping names and their Resolve Update / "
                "Deletion Conflicts settings (findings about those settings need it)",
    "page-5338": "export page 5338 Integration Synchronization Jobs to see runs, stops and job health",
    "page-5339": "export page 5339 Integration Synchronization Errors to see the errors and their causes",
    "page-5333": "export page 5333 Coupled Data Synchronization Errors to list the skipped and broken records",
}
_ESTIMATES = {
    "table-5331": ["the records are the page 5333 lines (skipped or broken); couplings that synchronize are not "
                   "known", "a record's latest error is the one page 5333 shows", "actions write plan files "
                   "(filters of page 5333) instead of acting"],
    "table-5338": ["job IDs are made up (uuid5 of mapping, direction, type and start)"],
    "table-5339": ["errors are linked to the job that spans their time (none where jobs overlap)",
                   "records per burst are the most that failed in one run, and a burst of a cause whose message "
                   "names no record starts at its first burst (a record's retries look like new failures)"],
    "mappings": ["mapping names are BC's defaults (CUSTOMER, CONTACT, ...)"],
}


@dataclass
class Coverage:
    """The exports one environment/company has, and what is missing.

    Attributes
    ----------
    environment, company
        The scope.
    have
        Source -> rows, for ``table-5331/5338/5339``, ``mappings``, ``page-5338/5339/5333``
        (page sources only where no table export of the same table is loaded).
    missing
        Source -> what exporting it would add.
    estimates
        The figures that are inferred or estimated because of what is missing.
    """

    environment: str
    company: str
    have: dict[str, int] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    estimates: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every table-level export is there (nothing is estimated)."""
        return not self.missing

    def lines(self) -> list[str]:
        """The coverage as text lines (what the load, ``diagnose`` and the report print)."""
        have = ", ".join(f"{k} ({n:,} rows)" for k, n in self.have.items()) or "nothing"
        out = [f"{self.environment} / {self.company}: loaded {have}"]
        out += [f"  missing: {v}" for v in self.missing.values()]
        out += [f"  estimated: {e}" for e in self.estimates]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"environment": self.environment, "company": self.company, "have": self.have,
                "missing": self.missing, "estimates": self.estimates}


def coverage(ws: Workspace, *, environment: str | None = None, company: str | None = None) -> list[Coverage]:
    """The coverage of each environment/company of ``ws`` (one SQL pass over each history table).

    Parameters
    ----------
    ws
        The workspace.
    environment, company
        Limit to one environment / company.
    """
    cond, params = scope(environment=environment, company=company)
    rows = ws.con.execute(f"""
        SELECT environment, company, 'jobs' AS t, count(*) FILTER (NOT coalesce(inferred, false)) AS tbl,
               count(*) FILTER (inferred) AS page FROM jobs WHERE {cond} GROUP BY ALL
        UNION ALL
        SELECT environment, company, 'job_errors', count(*) FILTER (job_inferred IS NOT true AND
               (job_id IS NOT NULL OR source_record_id IS NOT NULL)), count(*) FILTER (job_inferred IS true OR
               (job_id IS NULL AND source_record_id IS NULL)) FROM job_errors WHERE {cond} GROUP BY ALL
        UNION ALL
        SELECT environment, company, 'couplings', count(*) FILTER (coalesce(fidelity, {FIDELITY_TABLE}) <> {FIDELITY_PAGE}),
               count(*) FILTER (fidelity = {FIDELITY_PAGE}) FROM couplings WHERE {cond} GROUP BY ALL
        UNION ALL
        SELECT environment, company, 'skipped_records', 0, count(*) FROM skipped_records WHERE {cond} GROUP BY ALL
        UNION ALL
        SELECT environment, company, 'mappings', count(*), 0 FROM mappings WHERE {cond} GROUP BY ALL
        ORDER BY ALL""", params * 5).fetchall()
    found: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
    for env, comp, table, tbl, page in rows:
        found.setdefault((env, comp), {})[table] = (int(tbl), int(page))
    out = []
    for (env, comp), t in found.items():
        c = Coverage(env, comp)
        for table, tkind, pkind in (("couplings", "table-5331", None), ("jobs", "table-5338", "page-5338"),
                                    ("job_errors", "table-5339", "page-5339")):
            tbl, page = t.get(table, (0, 0))
            if tbl:
                c.have[tkind] = tbl
            if page and pkind:
                c.have[pkind] = page
            if not tbl and (page or table == "couplings"):
                c.missing[tkind] = _ADDS[tkind]
                c.estimates += _ESTIMATES[tkind]
            if not tbl and not page and pkind:
                c.missing[pkind] = _ADDS[pkind]
        if t.get("skipped_records", (0, 0))[1]:
            c.have["page-5333"] = t["skipped_records"][1]
        elif "table-5331" not in c.have:
            c.missing["page-5333"] = _ADDS["page-5333"]
        if t.get("mappings", (0, 0))[0]:
            c.have["mappings"] = t["mappings"][0]
        else:
            c.missing["mappings"] = _ADDS["mappings"]
            c.estimates += _ESTIMATES["mappings"]
        if "table-5331" in c.missing and "page-5333" not in c.have:
            c.estimates = [e for e in c.estimates if not e.startswith(("the records are", "a record's latest"))]
        out.append(c)
    return out
