# Service Runtime Lab. Two commands matter: `make lab` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF := proto/node_modules/.bin/buf
LAB_PORT ?= 8888
# JupyterLab refuses to run as root unless told; containers and CI machines often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test test-fast install gen check-gen lint proto-lint polyglot web bench clean dashboard

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[notebook,dev]'
	touch $@

install: $(STAMP)

$(BUF): proto/package.json
	cd proto && npm install --no-audit --no-fund --loglevel=error
	touch $@

## Regenerate every committed stub from proto/ (DO NOT EDIT the output): Python in runtime/v1 and
## calculator/v1, TypeScript (protobuf-es) in calculator/node/src/gen. Tests fail when either is stale.
gen: $(STAMP)
	$(PY) proto/generate.py
	cd calculator/node && (test -d node_modules || npm ci --no-audit --no-fund --loglevel=error) && npm run --silent gen
	cd $(WEB) && (test -d node_modules || npm ci --no-audit --no-fund --loglevel=error) && npm run --silent gen

proto-lint: $(BUF)
	cd proto && ./node_modules/.bin/buf lint

lint: $(STAMP) proto-lint
	$(VENV)/bin/ruff check runtime calculator widgets tests benchmarks proto
	$(VENV)/bin/mypy

WEB := runtime/services/web/page
## The lab's web page (TypeScript, Connect-Web): bundled into $(WEB)/dist, which the `web` service serves.
web: $(WEB)/dist/index.html

# Without Node.js the page is skipped, like a missing polyglot toolchain (lab.yaml then skips `web`).
$(WEB)/dist/index.html: $(WEB)/package.json $(WEB)/package-lock.json $(wildcard $(WEB)/src/*.ts $(WEB)/src/*.html $(WEB)/src/*.css $(WEB)/src/gen/runtime/v1/*.ts)
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build; \
	else echo "web page skipped: install Node.js 20 with npm to build it (make web)"; fi

## Build every calculator client/server whose toolchain is here (says what to install otherwise).
polyglot: $(STAMP)
	$(PY) -m calculator.toolchains build

## Everything CI checks: lint, generated-code staleness, unit/service/integration tests, notebooks.
test: install lint polyglot web
	LAB_PROFILE=ci $(PY) -m pytest tests notebooks --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg

## The pure and in-process tiers only (no process started; tests/tiers.py decides), in under a minute.
test-fast: install
	LAB_PROFILE=ci $(PY) -m pytest tests -m "not integration" -q

## Start JupyterLab on notebooks/ (prints the URL to open).
lab: install polyglot web
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) $(ALLOW_ROOT)

DASHBOARD_PORT ?= 8866
## Serve Mission Control (notebooks/dashboard.ipynb) with Voila for the lab that runs here; it never
## starts or stops one, and says so when none runs. Open http://127.0.0.1:$(DASHBOARD_PORT)/
dashboard: install
	$(VENV)/bin/voila notebooks/dashboard.ipynb --no-browser --port=$(DASHBOARD_PORT) --Voila.ip=127.0.0.1

## Every benchmark, even after one misses a target or fails; the misses and failures at the end.
bench: install polyglot
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .lab .pytest_cache .mypy_cache .ruff_cache calculator/node/dist calculator/cpp/build $(WEB)/dist test-artifacts
