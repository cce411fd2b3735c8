# Quick start: `make run` (validate and render the example repository) and `make test`.
# Everything the build needs is installed from here: a virtualenv in .venv and, where the
# machine allows it, Graphviz's dot (for `reconciler graph --format svg` and its test).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install tools wheelhouse seed run test lint types contracts unit benchmarks clean

install: $(STAMP) tools wheelhouse

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Outside tools the tests use. Installed with apt where we are root; otherwise the tests that
# need them skip with a message naming them (and fail under CI=true).
tools:
	@if ! command -v dot >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing graphviz (dot)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) \
	      || echo "could not install graphviz; svg tests will skip"; \
	  else echo "graphviz's dot is missing and cannot be installed here; svg tests will skip"; fi; \
	fi

# The QA runner's driver wheels for the pipelines' EC2 resources (Linux x86-64, CPython
# 3.11-3.13), uploaded next to the runner's wheel so the resources install without an index.
WHEELHOUSE := build/wheelhouse
wheelhouse: $(WHEELHOUSE)/.complete

$(WHEELHOUSE)/.complete: $(STAMP) tools/build_wheelhouse.py
	$(BIN)/python tools/build_wheelhouse.py $(WHEELHOUSE)
	touch $@

# The example repository's seed data, into the local PostgreSQL and MySQL (README: "Run a step
# locally"). RECONCILER_DSN and RECONCILER_SOURCE_DSN point elsewhere.
seed: $(STAMP)
	$(BIN)/python tools/load_seed.py

# The controller's pass, twice, on the embedded AWS (no account needed): the first creates the
# example pipelines in staging and prod, the second finds everything in sync. The embedded
# service keeps its state in build/ between the two; the secrets are demo values.
EMBEDDED_STATE := build/embedded-state.json
DEMO_SECRETS := MAESTRO_PASSWORD=demo-maestro REDSHIFT_PASSWORD=demo-redshift POSTGRES_PASSWORD=demo-postgres

run: install
	$(BIN)/reconciler validate manifests
	@mkdir -p build && rm -f $(EMBEDDED_STATE)
	@echo "== first pass"
	RECONCILER_EMBEDDED_STATE=$(EMBEDDED_STATE) $(DEMO_SECRETS) $(BIN)/reconciler sync --once manifests 2>build/sync.log
	@echo "== second pass"
	RECONCILER_EMBEDDED_STATE=$(EMBEDDED_STATE) $(DEMO_SECRETS) $(BIN)/reconciler sync --once manifests 2>>build/sync.log
	@echo "(JSON logs of both passes: build/sync.log)"

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests benchmarks tools

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest -q

test: lint types contracts unit

benchmarks: install
	$(BIN)/python benchmarks/compile.py
	$(BIN)/python benchmarks/emulator.py
	$(BIN)/python benchmarks/steady_state.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
