"""Errors a user can cause. Each message names the file, row, column or key and says what to do."""

from __future__ import annotations


class SyncAnalysisError(Exception):
    """Base class of every error caused by input or usage rather than by a bug."""


class SchemaError(SyncAnalysisError):
    """A frame or query does not fit the canonical schema (unknown table or column, bad key)."""


class WorkspaceError(SyncAnalysisError):
    """The workspace file cannot be opened or is of an incompatible schema version."""


class TwinError(SyncAnalysisError):
    """An operation on the embedded twin refers to records or mappings that do not exist."""


class TwinPermissionError(TwinError):
    """BC refuses the whole action for lack of a permission (e.g. deleting Dataverse rows); nothing changed."""
