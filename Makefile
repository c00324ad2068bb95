PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lab bench lint sample-data clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,lab]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncanalysis demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py

sample-data: $(STAMP)
	rm -rf sample_data/tables sample_data/pages
	$(BIN)/syncanalysis simulate --out sample_data --quiet

clean:
	rm -rf build .pytest_cache
