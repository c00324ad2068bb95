"""BC's resolution actions on coupled records (page 5333, spec §5.1/§6.4-§6.6): plan, run, audit.

Typical use::

    from syncanalysis.actions import execute, plan
    p = plan(ws, "retry", Selection(mapping="CUSTOMER", state="skipped", signature=sig))  # the dry run
    print(p.summary())
    result = execute(ws, p)  # runs exactly that plan, audited

Backends: the twin stored in the workspace (default when there is one) and a plan file for loaded
customer history (a reviewable change set to apply in BC).
"""

from .audit import action_targets, audit_trail, describe_selection
from .backends import (
    Backend,
    TwinAdvance,
    TwinBackend,
    advance_twin,
    backend_for,
    backlog_counts,
)
from .base import (
    ACTIONS,
    CAPTIONS,
    DESTRUCTIVE,
    DIRECTIONS,
    WHOLE_COMPANY,
    ActionError,
    ActionResult,
    Plan,
)
from .core import audit_dry_run, enabled_actions, execute, plan, run
from .entries import DeleteEntriesResult, delete_entries
from .planfile import PlanFileBackend
from .synclog import SyncLog, sync_log

__all__ = [
    "ACTIONS", "CAPTIONS", "DESTRUCTIVE", "DIRECTIONS", "WHOLE_COMPANY", "ActionError", "ActionResult", "Backend",
    "DeleteEntriesResult", "delete_entries",
    "Plan", "PlanFileBackend", "SyncLog", "TwinAdvance", "TwinBackend", "advance_twin", "audit_dry_run",
    "action_targets", "audit_trail", "backend_for", "describe_selection", "backlog_counts", "enabled_actions", "execute", "plan", "run", "sync_log",
]
