# Quick start: `make run` (validate and render the example repository) and `make test`.
# Everything the build needs is installed from here: a virtualenv in .venv and, where the
# machine allows it, Graphviz's dot (for `reconciler graph --format svg` and its test).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    := build/rendered
ENVS   := staging prod

.PHONY: install tools run test lint contracts unit benchmarks clean

install: $(STAMP) tools

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

run: install
	$(BIN)/reconciler validate manifests
	@mkdir -p $(foreach env,$(ENVS),$(OUT)/$(env))
	@for env in $(ENVS); do for file in manifests/pipelines/*.yaml; do \
	  name=$$(basename $$file .yaml); \
	  $(BIN)/reconciler render $$file --env $$env > $(OUT)/$$env/$$name.json || exit 1; \
	  echo "rendered $$file for $$env -> $(OUT)/$$env/$$name.json"; \
	done; done
	$(BIN)/reconciler graph manifests/pipelines/users.yaml --format mermaid

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests benchmarks tools

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest -q

test: lint contracts unit

benchmarks: install
	$(BIN)/python benchmarks/compile.py
	$(BIN)/python benchmarks/emulator.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
