# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
GATEWAY_MODELS_DIR ?= models
export GATEWAY_MODELS_DIR

.PHONY: serve test test-contended setup setup-test js-clients pull lint format bench gpu-check \
	docker-check clean

# Extras `make serve` installs: OpenVINO is the CPU fast path that `auto` picks (bf16 on AMX or
# AVX512-BF16 CPUs: the gateway 2.9x its ONNX Runtime fp32 mode at 8x32 in `make bench`); openai-tokens (bpe-openai, ~75 MB)
# decodes the tiktoken ids LangChain's OpenAIEmbeddings sends by default. `make serve EXTRAS=`
# leaves both out (delete $(BIN)/.installed to reinstall with other extras).
EXTRAS ?= openvino,openai-tokens
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.$(if $(EXTRAS),[$(EXTRAS)])'
	touch $@

# torch is pinned to 2.13.0 in the extras: pip takes the local CPU wheel, never a CUDA build.
$(BIN)/.installed-test: pyproject.toml $(BIN)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

setup: $(BIN)/.installed

setup-test: $(BIN)/.installed-test

# The JavaScript clients the suite runs against the server (tests/api/test_js_clients.py), exactly
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

## Set up the test environment; lint, type-check, then the unit layer (seconds), then the rest
## (tests/api: real server on loopback; tests/parity: reference implementations; tests/ray: Ray
## Serve and Ray Data). tests/deploy needs a Docker engine and ~6 minutes: `make docker-check`
## runs it. Needs Python 3.11+, Node.js 20+ with npm, apt (promtool) and network for pip/npm/apt.
# promtool checks deploy/prometheus.yml and every dashboard query (tests/unit/test_deploy_config.py):
# Debian's prometheus package, unpacked under .cache (no service is installed or started).
PROMTOOL := .cache/prometheus/usr/bin/promtool
$(PROMTOOL):
	scripts/fetch_prometheus.sh .cache/prometheus

test: setup-test js-clients $(PROMTOOL)
	$(BIN)/ruff check gateway tests bench tools
	$(BIN)/ruff format --check gateway tests bench tools
	$(BIN)/mypy
	PROMTOOL=$(PROMTOOL) $(BIN)/pytest tests/unit
	$(BIN)/pytest --ignore=tests/unit --ignore=tests/deploy

## `make test` while a busy loop keeps HOG_CORES of the cores busy, then stops it: the gate
## must not depend on how busy the machine is. TEST_CMD picks what runs under the hog, e.g.
## make test-contended TEST_CMD="$(BIN)/pytest -x tests/api/test_lifecycle.py"
HOG_CORES ?= 1
TEST_CMD ?= $(MAKE) --no-print-directory test
test-contended: setup-test
	$(BIN)/python -m tools.cpu_hog --cores $(HOG_CORES) --max-seconds 7200 -- $(TEST_CMD)

lint: setup-test
	$(BIN)/ruff check gateway tests bench tools
	$(BIN)/mypy

format: setup-test
	$(BIN)/ruff format gateway tests bench tools
	$(BIN)/ruff check --fix gateway tests bench tools

## Benchmark the gateway against raw ONNX Runtime, sentence-transformers, Infinity and an
## Ollama-style server (695 s, about 12 min, in the last full run: 569a487 on the 2-core machine;
## the first run also builds Infinity's venv). See bench/README.md.
## Options: make bench BENCH_ARGS="--quick" (or --models minilm --systems gateway,loop ...).
bench: setup-test
	$(BIN)/python -m bench $(BENCH_ARGS)

## On a machine with an NVIDIA GPU: swap in the `gpu` extra (onnxruntime-gpu), then check the
## CUDA path (parity per model kind, throughput raw and through the gateway vs the CPU, VRAM
## eviction) into one JSON report under bench/results/ (< 6 min). Without a GPU:
## make gpu-check GPU_CHECK_ARGS=--cpu-dry-run
# The 6 minutes count from here, before setup-test's installs: the time is taken when make
# reads this file, and the check fails a run that ends past it (bench/gpu_check.py).
gpu-check: export GPU_CHECK_STARTED_AT := $(shell date +%s.%N)
gpu-check: setup-test
	$(BIN)/python -m bench.gpu_check $(GPU_CHECK_ARGS)

## For a GPU machine that cannot reach PyPI (the `device` tool's): pack onnxruntime-gpu, the
## dependencies its image lacks and the bundled model into parts of one call's carry each, and
## print the calls that take them over (each runs `python3 -m bench.gpu_carry_step`; the one
## that brings the last part installs and runs the check). bench/gpu_carry.py says how.
gpu-carry: setup-test
	$(BIN)/python -m bench.gpu_carry $(GPU_CARRY_ARGS)

## Build the CPU image from this repo on a Debian machine without a registry (debootstrap base),
## run it non-root with a models volume, wait for its HEALTHCHECK, embed through it with the
## ollama client, print image sizes (root; ~15 min the first time). GPU=1 adds the GPU image.
docker-check: setup-test
	PYTHON=$(abspath $(BIN))/python scripts/docker_check.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
