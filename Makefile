# Two entry points: `make repro` (build every artifact on the embedded default) and
# `make test` (the test suite). Both create .venv and install the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# DVC stages call `python -m stages.NAME`: put the venv first so they find the project.
export PATH := $(BIN):$(PATH)

.PHONY: install repro test lint clean-venv

install: $(VENV)/.installed

# torch goes in first and pinned: anything that pulls an unpinned torch gets a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

repro: install
	dvc repro

test: install
	python -m pytest -q

lint: install
	ruff check . && ruff format --check .

clean-venv:
	rm -rf $(VENV)
