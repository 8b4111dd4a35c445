# Two commands do everything on a fresh machine with Python >= 3.10:
#   make demo   - the main job: every inference procedure on built-in models (< 5 min on 2 CPUs)
#   make test   - lint and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.avf-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/avf demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/inference_gap.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache
