# Everything runs from a project-local virtualenv (.venv), made on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: all venv test test-fast lint demo bench clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,fleet]'
	touch $@

venv: $(BIN)/.installed

## test: lint, type-check and the whole test suite (real rsync daemons on 127.0.0.1)
test: venv lint
	$(BIN)/pytest

## test-fast: the suite without tests marked slow
test-fast: venv
	$(BIN)/pytest -m "not slow"

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

## demo: sync a generated Debian-like tree from a local rsync daemon, twice, with stats
demo: venv
	$(BIN)/mirrorkeeper demo --workdir demo-run

## bench: issue #12's figures: sync overhead against bare rsync, naive rsync and ftpsync (100,000
## files, 5 interleaved repetitions; BENCH_ARGS="--large" adds 1M files), then the dashboard under
## 20 clients (50 mirrors x 10,000 runs). See docs/benchmarks.md.
bench: venv
	$(BIN)/python bench/bench_overhead.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_web.py

clean:
	rm -rf $(VENV) demo-run .pytest_cache .mypy_cache .ruff_cache
