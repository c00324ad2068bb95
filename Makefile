PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lab bench lint sample-data clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,lab]'
	touch $(STAMP)

# Loads sample_data/ (the twin's exports, as a customer's would be) into build/demo.duckdb, keeps the
# twin behind it for the actions, prints the diagnosis and writes build/report.html.
demo: $(STAMP)
	$(BIN)/syncanalysis demo

# Everything: ruff, unit tests, the notebooks (nbmake) and the JupyterLab end-to-end tests.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q --nbmake --nbmake-timeout=900
	$(BIN)/pytest -q --doctest-modules syncanalysis -p no:cacheprovider

# Without notebooks and browser tests.
test-fast: $(STAMP)
	$(BIN)/pytest -q tests --ignore=tests/e2e -m "not notebooks"
	$(BIN)/pytest -q --doctest-modules syncanalysis -p no:cacheprovider

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_signatures.py
	$(BIN)/python benchmarks/bench_classify_real.py
	$(BIN)/python benchmarks/bench_diagnose.py
	$(BIN)/python benchmarks/bench_actions.py
	$(BIN)/python benchmarks/bench_panel.py
	$(BIN)/python benchmarks/bench_export.py

lint: $(STAMP)
	$(BIN)/ruff check .

sample-data: $(STAMP)
	rm -rf sample_data/tables sample_data/pages
	$(BIN)/syncanalysis simulate --out sample_data --quiet

clean:
	rm -rf build artifacts .pytest_cache
