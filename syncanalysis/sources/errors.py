"""Errors of the file readers: each names the file, sheet, row, column and value, and says what to do."""

from __future__ import annotations

from ..errors import SyncAnalysisError


class SourceError(SyncAnalysisError):
    """A source file cannot be loaded as it is; nothing was written to the workspace.

    The message starts with where the problem is (file, sheet, row, column, value) and ends with what
    to do; the parts are also kept as attributes for programs.
    """

    def __init__(self, problem: str, *, path: object = None, sheet: str | None = None, row: int | None = None,
                 column: str | None = None, value: object = None, hint: str | None = None) -> None:
        self.problem, self.path, self.sheet, self.row, self.column, self.value, self.hint = (
            problem, path, sheet, row, column, value, hint)
        where = [str(path)] if path is not None else []
        if sheet is not None:
            where.append(f"sheet {sheet!r}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        text = ", ".join(where)
        text = f"{text}: {problem}" if text else problem
        if value is not None:
            shown = str(value)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            text += f" (value {shown!r})"
        if hint:
            text += f". {hint}"
        super().__init__(text)


class UnreadableFileError(SourceError):
    """The file is empty, truncated, corrupt, binary or in an encoding that cannot be read."""


class UnrecognisedFileError(SourceError):
    """The file is not an export of a known page or table (or lacks columns the layout needs)."""


class ValueParseError(SourceError):
    """A value does not fit its column: a date that fits no locale, text in a number column, ..."""


class DuplicateRowError(SourceError):
    """Two rows of one export give different values for the same key."""


class EnvironmentConflictError(SourceError):
    """A load would mix environments or companies, or contradicts the ones asked for."""
