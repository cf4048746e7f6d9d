# Every target creates or reuses the local virtualenv in .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JOBS   ?= 2
STAMP  := $(VENV)/.installed

SEEDS  ?= 3

.PHONY: setup tables generated report bench test test-all clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the paper benchmark on every case (3 seeds each); write every table in results/ and a plot per case in results/plots/.
tables: setup
	$(BIN)/bugbench run --seeds $(SEEDS) --more-seeds 2 --jobs $(JOBS) --prune
	$(BIN)/bugbench report --plots

## The generated suite: mutants of the zoo's healthy programs (zoo/), each killed or not over 3 seeds, then every
## detector on 2 seeds; tables and figure in results/zoo/ (generated_summary.md first).
generated: setup
	$(BIN)/bugbench mutate --all
	$(BIN)/bugbench kill --seeds 3 --jobs $(JOBS)
	$(BIN)/bugbench run --cases-dir zoo --results results/zoo --seeds 2 --jobs $(JOBS) --prune

## Rebuild results/ tables from the stored result files, without training.
report: setup
	$(BIN)/bugbench report

## Measure the probe's overhead, the whole suite's wall time and diagnose's cost into results/perf.md; diagnose's sensitivity to its constants into results/sensitivity.md.
bench: setup
	$(BIN)/python bench/suite.py --jobs $(JOBS)
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/detector_cost.py
	$(BIN)/python bench/sensitivity.py --out results/sensitivity.md

## Lint (ruff, configured in pyproject.toml), then the fast tests (a few tiny real fits included).
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## Everything, slow end-to-end training tests included.
test-all: setup
	$(BIN)/python -m pytest -q -m ''

clean:
	rm -rf .bugbench .pytest_cache build *.egg-info
