"""ipywidgets panels over the library: triage (bulk actions), a record's Synchronization Log, the dashboard.

Each panel is a composition of widgets (``.layout`` is the root, ``.value`` its state) that displays itself
in a notebook; everything it does is a library function a test or the CLI can call.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dashboard", "SyncLogPanel", "TriagePanel"]


def __getattr__(name: str) -> Any:
    # imported on first use: the dashboard pulls in matplotlib and the diagnosis
    if name == "TriagePanel":
        from .triage import TriagePanel

        return TriagePanel
    if name == "SyncLogPanel":
        from .synclog import SyncLogPanel

        return SyncLogPanel
    if name == "Dashboard":
        from .dashboard import Dashboard

        return Dashboard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
