"""Sources: turning BC export files (and OData feeds) into canonical rows of the workspace.

File loading lives in :mod:`.files` (with captions in :mod:`.captions`, parsing in :mod:`.parse` and
linking of page exports in :mod:`.link`).
"""

from .captions import KINDS
from .errors import (
    DuplicateRowError,
    EnvironmentConflictError,
    SourceError,
    UnreadableFileError,
    UnrecognisedFileError,
    ValueParseError,
)
from .files import FileLoadReport, format_report, load_file, load_files, load_sample_data, report_json

__all__ = [
    "KINDS",
    "DuplicateRowError",
    "EnvironmentConflictError",
    "FileLoadReport",
    "SourceError",
    "UnreadableFileError",
    "UnrecognisedFileError",
    "ValueParseError",
    "format_report",
    "load_file",
    "load_files",
    "load_sample_data",
    "report_json",
]
