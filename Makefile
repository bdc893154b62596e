# Gatehouse: `make run` serves the Function App locally on Azurite; `make test` runs the whole suite.
# Both install what is missing first (venv + requirements, Azurite pinned by package-lock.json, Debian packages).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071

.PHONY: run test deps system-deps browser bench clean

# Every Debian package the tests and benchmarks need, in one place (`make test`, `make bench` and .ci/run
# install the missing ones):
#   xmlsec1   the `xmlsec1` program: pysaml2's SPConfig looks for it (tests/saml), bench/acs.py compares with it
#   chromium  the browser the Playwright tests drive (/usr/bin/chromium; Playwright cannot download its own here)
#   nodejs, npm  Azurite, the Table Storage emulator the tests and `make run` start (pinned in package-lock.json)
SYSTEM_PACKAGES := xmlsec1 chromium nodejs npm
# The program that shows a package is there (a package is missing when neither it nor dpkg knows it).
command_of = $(if $(filter nodejs,$(1)),node,$(1))
APT_GET ?= apt-get
SUDO ?= $(if $(filter 0,$(shell id -u 2>/dev/null)),,sudo)

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

# Installs the SYSTEM_PACKAGES that are missing (nothing, and no apt-get, when all are there).
system-deps:
	@missing=""; \
	$(foreach package,$(SYSTEM_PACKAGES),command -v $(call command_of,$(package)) >/dev/null 2>&1 \
	  || dpkg -s $(package) >/dev/null 2>&1 || missing="$$missing $(package)"; ) \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages the tests need:$$missing"; \
	  $(SUDO) $(APT_GET) update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) $(APT_GET) install -y -qq $$missing; \
	fi

browser: system-deps  # the old name of the target

run: system-deps deps local.settings.json
	PORT=$(PORT) $(PY) -m tools.dev_server

test: system-deps deps
	$(PY) -m pytest

bench: system-deps deps
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .azurite test-output
