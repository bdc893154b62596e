# Gatehouse: `make run` serves the Function App locally on Azurite; `make test` runs the whole suite.
# Both install what is missing first (venv + requirements, Azurite pinned by package-lock.json, Chromium for tests).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071

.PHONY: run test deps browser bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

local.settings.json:
	cp local.settings.sample.json $@
	@echo "Created local.settings.json from local.settings.sample.json"

deps: $(VENV)/.installed node_modules/.installed

# Debian's Chromium for the browser tests (Playwright drives it; it cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

run: deps local.settings.json
	PORT=$(PORT) $(PY) -m tools.dev_server

test: deps browser
	$(PY) -m pytest

bench: deps
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .azurite test-output
