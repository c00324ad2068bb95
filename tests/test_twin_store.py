"""The twin stored as data (twin.store): a faithful round trip, and nothing else is read (issue 13)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import duckdb
import numpy as np
import pytest

from syncanalysis import Workspace
from syncanalysis.errors import TwinError, WorkspaceError
from syncanalysis.twin import store
from syncanalysis.twin.scenario import ScenarioConfig, Simulation
from syncanalysis.twin.state import load_twin, publish

ROOT = Path(__file__).resolve().parents[1]


def _sim() -> Simulation:
    sim = Simulation(ScenarioConfig(days=14, scale=0.05, seed=3))
    sim.run()
    return sim


def test_a_stored_twin_reads_back_and_goes_on_exactly_as_the_original():
    sim = _sim()
    doc, buffers = store.dumps(sim)
    again = store.loads(doc, buffers)
    assert again.rng is again.world.rng  # shared once, shared again
    for name, t in sim.world.tables.items():
        u = again.world.table(name)
        assert u.config == t.config and (u.key == t.key).all() and (u.vals[0] == t.vals[0]).all()
        assert list(u.last_msg[0]) == list(t.last_msg[0]) and u.ids[1].dtype == t.ids[1].dtype
    sim.advance(12, activity=True)
    again.advance(12, activity=True)
    assert [(j.mapping, j.direction, j.start, j.counts) for j in again.world.jobs] == [
        (j.mapping, j.direction, j.start, j.counts) for j in sim.world.jobs]
    assert json.loads(doc)["format"] == store.FORMAT


def test_a_document_naming_another_type_is_refused():
    doc, buffers = store.dumps(_sim())
    evil = doc.replace(b'"$object":"Simulation"', b'"$object":"Popen"', 1)
    with pytest.raises(TwinError, match="unknown type 'Popen'"):
        store.loads(evil, buffers)


def test_an_old_pickled_twin_is_not_read():
    blob = pickle.dumps({"a": 1})
    with pytest.raises(TwinError, match="could run code when read, so it is not read"):
        store.loads(blob, [])


def test_a_workspace_from_before_with_a_twin_is_refused_with_how_to_rebuild(tmp_path):
    path = tmp_path / "old.duckdb"
    with Workspace(path) as ws:
        publish(ws, _sim(), scenario="t")
        assert load_twin(ws).world.jobs
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(WorkspaceError, match=r"stores a twin in the format of an older syncanalysis.*syncanalysis demo"):
        Workspace(path)


def test_nothing_in_the_package_uses_pickle():
    hits = [p for p in (ROOT / "syncanalysis").rglob("*.py") if "pickle" in p.read_text(encoding="utf-8")]
    assert hits == []


def test_text_columns_keep_none_and_unicode():
    arr = np.array(["Société", None, "", "x" * 3000], dtype=object)
    enc = store._Encoder()
    back = store._Decoder(enc.buffers).array(enc.array(arr))
    assert back.tolist() == arr.tolist()


def test_a_text_column_changed_in_place_is_encoded_again_and_the_workspace_owns_the_encodings():
    # the encodings kept between saves are checked against the values: an array edited in place (as an
    # action edits the twin's columns) must not be stored with its old text
    arr = np.array(["C00010", "C00020", None], dtype=object)
    kept: store.Encodings = {}
    first = store._Encoder(kept)
    assert store._Decoder(first.buffers).array(first.array(arr)).tolist() == ["C00010", "C00020", None]
    arr[1] = "Société"
    again = store._Encoder(kept)
    assert store._Decoder(again.buffers).array(again.array(arr)).tolist() == ["C00010", "Société", None]
    del arr
    assert not kept, "an array's encoding goes with the array (a long session keeps no old twins' texts)"
    sim = _sim()
    ws = Workspace()
    publish(ws, sim, scenario="t")
    assert ws.memo("twin-encodings", None, lambda: None, across_writes=True), "the store's encodings live in the workspace"
    assert not store.__dict__.get("_TEXT_CACHE"), "no module-wide cache"


def test_a_twin_read_back_keeps_its_text_encodings_until_a_column_changes():
    doc, buffers = store.dumps(_sim())
    kept: store.Encodings = {}
    back = store.loads(doc, buffers, kept)
    assert kept, "the text arrays read are remembered with the bytes they were read from"
    assert store.dumps(back, kept) == (doc, buffers)  # saved unchanged: the same document and bytes
    name, table = next(iter(back.world.tables.items()))
    attr = next(k for k, a in vars(table).items() if isinstance(a, np.ndarray) and a.dtype == object
                and id(a) in kept and len(a) and isinstance(a[0], str))
    getattr(table, attr)[0] += " (changed)"  # edited in place, as actions edit the twin
    again = store.loads(*store.dumps(back, kept))
    assert getattr(again.world.tables[name], attr)[0].endswith(" (changed)")


def test_the_workspace_keeps_its_twin_while_the_stored_one_is_unchanged_and_drops_it_on_a_rollback():
    sim = _sim()
    ws = Workspace()
    publish(ws, sim, scenario="t")
    env, comp = sim.world.environment, sim.world.company
    assert load_twin(ws, env, comp, cached=True) is sim  # the published object is the stored twin
    with ws.transaction() as con:  # another write: the twin's stored revision is unchanged
        con.execute("INSERT INTO meta VALUES ('x', 'y')")
    assert load_twin(ws, env, comp, cached=True) is sim
    assert load_twin(ws, env, comp) is not sim  # not cached: read from the store
    with pytest.raises(RuntimeError), ws.transaction():
        raise RuntimeError("rolled back")
    again = load_twin(ws, env, comp, cached=True)
    assert again is not sim and len(again.world.jobs) == len(sim.world.jobs)
