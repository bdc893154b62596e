# Gatehouse: `make run` serves the Function App locally on Azurite; `make test` runs the whole suite.
# Both install what is missing first (venv + requirements, Azurite pinned by package-lock.json, Debian packages).
# Python packages come from the locks (requirements.lock, requirements-dev.lock: every package, with hashes);
# `make lock` regenerates them after requirements.txt or requirements-dev.txt changes.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071

.PHONY: run demo test deps system-deps browser bench clean lock mutants

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

# A lock that no longer matches requirements*.txt stops the install and says to run `make lock`.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock requirements-dev.lock
	$(PYTHON) tools/lock.py check
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	touch $@

# pip-compile (pip-tools, in its own venv) against pip's default index alone: this machine's find-links, extra indexes or
# constraints must not leak into the lock. The dev lock is constrained by the app's, so tests run what Azure runs.
LOCK_VENV := .venv-lock
PIP_TOOLS := pip-tools==7.6.2
PIP_COMPILE = env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links

lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/python -m pip install -q --disable-pip-version-check $(PIP_TOOLS); }
	$(PIP_COMPILE) --output-file requirements.lock requirements.txt
	$(PIP_COMPILE) --constraint requirements.lock --output-file requirements-dev.lock requirements-dev.txt
	$(PYTHON) tools/lock.py check

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

# With `make run` in another terminal: a fresh tenant on the development IdP, Entra's provisioning simulated, and
# the demo product (tools/demo.py); prints the URLs to open. DEMO_PORT picks the demo product's port.
demo: deps local.settings.json
	PORT=$(PORT) $(PY) -m tools.demo

test: system-deps deps
	$(PY) -m pytest

bench: system-deps deps
	$(PY) bench/run_all.py

# Mutation testing (tools/mutants.py; docs/mutation-testing.md): mutmut in a venv of its own, never in `make test`
# or CI. `make mutants MUTANTS="sign_in/sessions oidc/tokens"` runs some modules; without MUTANTS, all (hours on 2 cores).
MUTANTS_VENV := .venv-mutants
MUTMUT := mutmut==2.5.1
MUTANTS ?=
mutants: system-deps deps
	test -x $(MUTANTS_VENV)/bin/mutmut || { $(PYTHON) -m venv $(MUTANTS_VENV) && \
	  $(MUTANTS_VENV)/bin/python -m pip install -q --disable-pip-version-check $(MUTMUT); }
	$(PY) tools/mutants.py $(MUTANTS)

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(MUTANTS_VENV) .mutmut-cache node_modules .azurite test-output .python_packages
