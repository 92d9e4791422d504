# Two commands for a newcomer (see README): `make run` and `make test`.
# Both create the virtualenv on first use; nothing else needs installing first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded defaults: simulate sessions, analyze them, print the reports.
run: $(STAMP)
	mkdir -p out
	$(BIN)/rapport simulate --sessions 3 --minutes 10 --seed 1 --style mixed -o out/events.jsonl
	$(BIN)/rapport analyze out/events.jsonl

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check models streams services tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
