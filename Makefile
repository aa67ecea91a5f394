# groundqa — the two commands a new user needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
HOST ?= 127.0.0.1
PORT ?= 8000
export GROUNDQA_DATA_DIR ?= $(DATA_DIR)

.PHONY: setup index serve test test-all lint eval-qa clean

# PyTorch's CPU-only wheel index: without it, pip on Linux resolves torch to the CUDA build
# (about 20 nvidia-* packages, several GB). Override with a mirror: make setup TORCH_INDEX=...
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

# torch is installed first and pinned, from the CPU index, so nothing later pulls CUDA.
$(BIN)/groundqa: pyproject.toml
	@echo "==> [1/3] creating the virtual environment $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@echo "==> [2/3] installing PyTorch 2.13.0, CPU build, from $(TORCH_INDEX) (~200 MB)"
	@# A quick reachability probe first: pip retries an unreachable index for every package.
	@if $(BIN)/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip('/') + '/torch/', timeout=8)" "$(TORCH_INDEX)" 2>/dev/null \
	  && $(BIN)/pip install --quiet --retries 2 torch==2.13.0 --index-url $(TORCH_INDEX); then :; else \
	  echo "    $(TORCH_INDEX) could not be reached: installing torch from the default index."; \
	  echo "    On Linux x86_64 that is the CUDA build (several GB) unless a local wheel is"; \
	  echo "    configured; set TORCH_INDEX to a reachable CPU wheel index to avoid it."; \
	  $(BIN)/pip install --quiet torch==2.13.0; fi
	@echo "==> [3/3] installing groundqa and its pinned dependencies (spaCy, FAISS, ONNX Runtime, ...)"
	@# The full pip log (with setuptools' build warnings) is kept, and shown only on failure.
	@$(BIN)/pip install -e '.[dev]' > $(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; echo "setup failed; log: $(VENV)/install.log"; exit 1; }
	@echo "==> setup done: $(VENV)"
	@touch $@

setup: $(BIN)/groundqa

# Builds (or updates: unchanged articles are a no-op) the demo index.
index: setup
	$(BIN)/groundqa ingest corpus/articles

serve: index
	$(BIN)/groundqa serve --host $(HOST) --port $(PORT)

# Unit, HTTP-contract and end-to-end suites (reliability and browser suites: `make test-all`).
test: setup
	$(BIN)/pytest -q -m "not reliability and not browser"

test-all: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check corpus index service eval tests
	$(BIN)/mypy

eval-qa: index
	$(BIN)/groundqa eval qa --questions eval/questions/seed.jsonl --report-dir reports/qa

clean:
	rm -rf $(VENV) $(DATA_DIR) reports
