# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
GATEWAY_MODELS_DIR ?= models
export GATEWAY_MODELS_DIR

.PHONY: serve test setup setup-test js-clients pull lint format bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

# torch is pinned to 2.13.0 in the extras: pip takes the local CPU wheel, never a CUDA build.
$(BIN)/.installed-test: pyproject.toml $(BIN)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

setup: $(BIN)/.installed

setup-test: $(BIN)/.installed-test

# The JavaScript clients the suite runs against the server (tests/test_js_clients.py), exactly
# as the committed lockfile pins them. Needs Node.js 20+ and npm.
tests/js/node_modules/.package-lock.json: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund

js-clients: tests/js/node_modules/.package-lock.json

## Set up, pull the bundled default model and start the server on 127.0.0.1:11434.
serve: setup
	$(BIN)/gateway pull all-minilm
	$(BIN)/gateway serve

pull: setup
	$(BIN)/gateway pull $(MODEL)

## Set up the test environment, lint, and run the whole suite.
test: setup-test js-clients
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench
	$(BIN)/pytest

lint: setup-test
	$(BIN)/ruff check gateway tests bench

format: setup-test
	$(BIN)/ruff format gateway tests bench
	$(BIN)/ruff check --fix gateway tests bench

## Benchmark the gateway against raw ONNX Runtime, sentence-transformers, Infinity and an
## Ollama-style server (~15 min; the first run also builds Infinity's venv). See bench/README.md.
## Options: make bench BENCH_ARGS="--quick" (or --models minilm --systems gateway,loop ...).
bench: setup-test
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
