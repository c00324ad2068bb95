"""syncanalysis: diagnose and triage Business Central <-> Dataverse synchronization from Jupyter."""

from .errors import SyncAnalysisError
from .workspace import LoadReport, Workspace

__version__ = "0.1.0"
__all__ = ["LoadReport", "SyncAnalysisError", "Workspace", "__version__"]
