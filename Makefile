# Every target creates or reuses the local virtualenv in .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JOBS   ?= 2
STAMP  := $(VENV)/.installed

.PHONY: setup tables report test test-all clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the paper benchmark on every case and write results/ (tables from scratch).
tables: setup
	$(BIN)/bugbench run --jobs $(JOBS)

## Rebuild results/ tables from the stored result files, without training.
report: setup
	$(BIN)/bugbench report

## Fast tests (a few tiny real fits included).
test: setup
	$(BIN)/python -m pytest -q

## Everything, slow end-to-end training tests included.
test-all: setup
	$(BIN)/python -m pytest -q -m ''

clean:
	rm -rf .bugbench .pytest_cache build *.egg-info
