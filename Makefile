# ideaweave: `make run` sets up and runs the daemon, `make test` sets up and runs the tests.
# Both are idempotent: the virtualenv, llama-cpp-python (compiled once, then taken from pip's wheel
# cache) and the models are only rebuilt when their inputs change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.bench-installed
# torch's CPU-only wheels (about 200 MB); where this index cannot be reached, PyPI's torch is installed,
# which runs the same CPU kernels but also brings the CUDA libraries (several GB).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PLUGIN := plugins/obsidian-bridge
SCRATCH := .scratch
DIST := dist
VAULT ?=
ARGS ?=

# llama-cpp-python compiles from source: use every core for it.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
# Keep the model tooling and llama.cpp quiet and offline.
export HF_HUB_OFFLINE := 1

.PHONY: all install models test test-python test-plugin plugin run bench bench-install bench-threads bench-full dist clean

all: install models

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	@echo "Installing ideaweave and its dependencies (llama-cpp-python compiles once, ~9 min on 2 cores)..."
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(INSTALLED)

models: $(INSTALLED)
	@$(BIN)/python models/build.py

# The plugin first: a Python test runs the plugin's own test against the real API, with its node modules.
test: test-plugin test-python

test-python: install models
	$(BIN)/python -m pytest $(ARGS)

plugin:
	cd $(PLUGIN) && npm ci --no-audit --no-fund && npm run build

test-plugin: plugin
	cd $(PLUGIN) && npm test

# With no VAULT, run on a scratch copy of the bundled example vault so the repository stays clean.
run: install models
	@if [ -n "$(VAULT)" ]; then \
		$(BIN)/ideaweave watch -v --vault "$(VAULT)" $(ARGS); \
	else \
		mkdir -p $(SCRATCH); \
		[ -d $(SCRATCH)/example-vault ] || cp -Rp examples/vault $(SCRATCH)/example-vault; \
		echo "Running on a copy of the example vault: $(SCRATCH)/example-vault"; \
		$(BIN)/ideaweave watch -v --vault $(SCRATCH)/example-vault $(ARGS); \
	fi

# The quick benchmarks (a few minutes): embedder throughput on real chunks against sentence-transformers,
# embedding threads (fixed and auto, idle and contended), then every scale figure on a
# generated 2,000-note vault with precomputed vectors. The full runs (10k notes embedded for real, 100k
# notes) are in bench/RESULTS.md with their commands.
# The baseline the figures are compared with (sentence-transformers on torch, CPU) is the `bench` extra.
$(BENCH_INSTALLED): pyproject.toml $(INSTALLED)
	@$(BIN)/python -c 'import torch' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet --retries 0 --timeout 20 --index-url $(TORCH_CPU_INDEX) 'torch>=2.2' || \
		echo "PyTorch's CPU-only index is not reachable: torch comes from PyPI (with its CUDA libraries)"
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

bench-install: $(BENCH_INSTALLED)

bench: install models bench-install
	$(BIN)/python bench/embed_throughput.py --quick --require-baseline
	$(BIN)/python bench/embed_threads.py --chunks 200
	@test -d $(SCRATCH)/bench-2k || { rm -rf $(SCRATCH)/bench-2k.part && \
		$(BIN)/python bench/make_vault.py $(SCRATCH)/bench-2k.part --notes 2000 --seed 0 && \
		mv $(SCRATCH)/bench-2k.part $(SCRATCH)/bench-2k; }
	$(BIN)/python bench/scale_bench.py $(SCRATCH)/bench-2k --precomputed --queries 50 --edits 5 --idle-seconds 20

# Every "fast on a real laptop" figure with its value before and its ratio to a baseline of the same run
# (bench/laptop_figures.py; hours on two cores: the first pass embeds a 10,003-note vault for real, then
# the embedder alone does it again). NOTES=2000 makes it shorter. See bench/RESULTS.md.
NOTES ?= 10003
bench-full: install models bench-install
	@test -d $(SCRATCH)/bench-100k || { rm -rf $(SCRATCH)/bench-100k.part && \
		$(BIN)/python bench/make_vault.py $(SCRATCH)/bench-100k.part --notes 100000 --seed 0 && \
		mv $(SCRATCH)/bench-100k.part $(SCRATCH)/bench-100k; }
	$(BIN)/python bench/embed_throughput.py --require-baseline
	$(BIN)/python bench/laptop_figures.py --notes $(NOTES)

# Embedding threads, fixed 1 and 2 against "auto", idle and with a busy process competing (a few minutes).
bench-threads: install models
	$(BIN)/python bench/embed_threads.py

# Release artefacts in dist/: the wheel and the sdist (version from daemon/ideaweave/__init__.py), and the
# plugin zip to unpack into a vault's .obsidian/plugins/ (manifest.json, main.js, styles.css, versions.json:
# what community plugins publish), packed by the plugin's release.mjs, which its release-zip test also
# unpacks and loads. versions.json must map the plugin's version to its minAppVersion.
dist: install plugin
	$(BIN)/python -m pip install --quiet 'build>=1.2'
	rm -rf $(DIST) && mkdir -p $(DIST)
	$(BIN)/python -m build --outdir $(DIST) .
	cd $(PLUGIN) && node release.mjs $(abspath $(DIST))
	@ls -l $(DIST)

clean:
	rm -rf $(VENV) models/build models/download $(SCRATCH) $(DIST)
