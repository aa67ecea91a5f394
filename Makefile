# groundqa — the two commands a new user needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
HOST ?= 127.0.0.1
PORT ?= 8000
export GROUNDQA_DATA_DIR ?= $(DATA_DIR)

.PHONY: setup index serve test test-all lint eval-qa clean

# torch is installed first and pinned: the local CPU build (any other spec pulls CUDA).
$(BIN)/groundqa: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/groundqa

# Builds (or updates: unchanged articles are a no-op) the demo index.
index: setup
	$(BIN)/groundqa ingest corpus/articles

serve: index
	$(BIN)/groundqa serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check corpus index service eval tests
	$(BIN)/mypy

eval-qa: index
	$(BIN)/groundqa eval qa --questions eval/questions/seed.jsonl --report-dir reports/qa

clean:
	rm -rf $(VENV) $(DATA_DIR) reports
