"""The embedded default: a twin of a BC company and a Dataverse org running BC's sync rules."""

from .engine import World, run_mapping, synchronize
from .model import BC, DV, FROM, TO, FieldMapping, MappingConfig, Parent
from .scenario import ScenarioConfig, Simulation, default_mappings, simulate

__all__ = ["BC", "DV", "FROM", "TO", "FieldMapping", "MappingConfig", "Parent", "ScenarioConfig", "Simulation",
           "World", "default_mappings", "run_mapping", "simulate", "synchronize"]
