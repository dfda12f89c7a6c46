# Two commands for a fresh machine with Python 3.11:
#   make run    install, then reproduce the whole pipeline on the built-in phantom data (dvc repro)
#   make test   install, then lint and run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint clean

$(BIN)/controlbreast: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/controlbreast

run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

lint: install
	$(BIN)/ruff check src tests benchmarks

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

clean:
	rm -rf $(VENV) data/prepared data/controls metrics mlruns
