"""Sources: turning BC export files (and OData feeds) into canonical rows of the workspace.

A file load is a pipeline of stages: :mod:`.read` -> :mod:`.recognise` -> :mod:`.typed` ->
:mod:`.canonical` -> :mod:`.files` (merge, link, report); captions in :mod:`.captions`, value
parsing in :mod:`.parse`, linking of page exports in :mod:`.link`; OData in :mod:`.odata`.
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
