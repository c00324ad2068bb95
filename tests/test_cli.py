from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from syncanalysis.cli import main
from syncanalysis.twin.export import TABLE_EXPORTS

ROOT = Path(__file__).resolve().parents[1]


def test_simulate_then_info_json(tmp_path, capsys):
    ws = tmp_path / "w.duckdb"
    assert main(["simulate", "--days", "14", "--scale", "0.05", "--seed", "2", "--workspace", str(ws), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", "--workspace", str(ws), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"]["jobs"] > 100 and info["loads"] == 1
    assert info["environments"][0]["environment"] == "PRODUCTION"
    # the same simulation again changes nothing
    assert main(["simulate", "--days", "14", "--scale", "0.05", "--seed", "2", "--workspace", str(ws), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", "--workspace", str(ws), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["rows"] == info["rows"] and again["loads"] == 1


def test_bad_arguments_give_a_clear_error(tmp_path, capsys):
    assert main(["simulate", "--days", "3", "--workspace", str(tmp_path / "x.duckdb"), "--quiet"]) == 2
    assert "days must be at least 14" in capsys.readouterr().err
    assert main(["info", "--workspace", str(tmp_path / "none.duckdb")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_committed_sample_data_is_complete_small_and_readable():
    sd = ROOT / "sample_data"
    files = [p for p in sd.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 20 * 1024 * 1024
    assert (sd / "README.md").exists()
    for name, (_, captions) in TABLE_EXPORTS.items():
        df = pd.read_csv(sd / "tables" / f"{name}.csv.gz", nrows=5)
        assert list(df.columns) == list(captions.values()), name
    errors = pd.read_csv(sd / "tables" / "Integration Synch. Job Errors.csv.gz", usecols=["No."])
    assert len(errors) > 50_000
    fr = pd.read_excel(sd / "pages" / "fr" / "Erreurs de synchronisation d'intégration.xlsx", engine="calamine", nrows=3)
    assert list(fr.columns) == ["N°", "Date/heure", "Message d'erreur", "Lien d'aide", "Source", "Destination"]
    en = pd.read_excel(sd / "pages" / "en" / "Integration Synchronization Jobs.xlsx", engine="calamine", nrows=3)
    assert en.columns[0] == "Start Date/Time"


def test_committed_sample_data_is_what_the_twin_writes_now(tmp_path):
    """The demo loads sample_data/ and attaches a freshly simulated twin: both must be the same world."""
    import hashlib

    from syncanalysis.demo import DEMO
    from syncanalysis.twin.export import write_sample_data
    from syncanalysis.twin.scenario import Simulation

    sim = Simulation(DEMO)
    sim.run()
    written = write_sample_data(sim, tmp_path)
    committed = ROOT / "sample_data"
    for path in written:
        rel = path.relative_to(tmp_path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == hashlib.sha256((committed / rel).read_bytes()).hexdigest(), (
            f"sample_data/{rel} differs from what the twin writes now: run `make sample-data` and commit it")


def test_a_demo_workspace_of_an_older_version_is_rebuilt(tmp_path):
    """`make demo` after an upgrade: the demo is generated, so a demo of another schema is built anew."""
    import duckdb

    from syncanalysis import Workspace
    from syncanalysis.demo import ensure_demo
    from syncanalysis.schema import SCHEMA_VERSION

    path = tmp_path / "demo.duckdb"
    with Workspace(path):
        pass
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.close()
    assert ensure_demo(path) == path
    with Workspace(path, read_only=True) as ws:
        assert ws.schema_version == SCHEMA_VERSION and ws.count("jobs") > 1000
