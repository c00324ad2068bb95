"""Shared fixtures; the hand-built worlds live in twinworld.py."""

from __future__ import annotations

import pytest

from syncanalysis.twin.scenario import ScenarioConfig, Simulation


@pytest.fixture(scope="session")
def short_sim() -> Simulation:
    """A short, small scenario (all incidents planted) shared by the scenario tests."""
    sim = Simulation(ScenarioConfig(days=21, scale=0.15, seed=11))
    sim.run()
    return sim
