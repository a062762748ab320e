# Two commands do all the set-up on a fresh machine with only Python:
#   make run   - install, load the reference district, simulate a week of it, walk one complaint through its life,
#                then serve the HTTP API on 127.0.0.1:8000 (Ctrl-C stops)
#   make test  - install with the dev extras and run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev lint schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/gridcase simulate --days 7 --once
	$(BIN)/gridcase walkthrough
	$(BIN)/gridcase serve --host 127.0.0.1 --port 8000

test: install-dev
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

schemas: install
	$(BIN)/python -m adapters.schemas
	$(BIN)/python -m adapters.kafka.schemas

clean:
	rm -rf $(VENV) var
