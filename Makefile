# The two commands of the README: `make run` and `make test`. Both set up everything they
# need (virtualenv, package, built front end, Debian packages) and are fast when nothing
# changed: each step leaves a stamp in .venv and reruns only when its inputs change.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
BIN := $(abspath $(VENV))/bin
PORT ?= 8888
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
FRONTEND_SRC := $(shell find labextension/src labextension/schema -type f 2>/dev/null) \
	labextension/package.json labextension/tsconfig.json
APT_PKGS := $(if $(wildcard /usr/bin/chromium),,chromium fonts-dejavu-core) \
	$(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql)

.PHONY: run test lint bench screenshots system-deps clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv 2>&1 | grep -v 'is ignored' || true

# the install builds the labextension and the widget (hatch-jupyter-builder runs npm);
# `jupyter-builder develop` then links the build into the venv, so a later front-end
# rebuild needs no reinstall. Bytecode is compiled: job processes start faster with it.
$(VENV)/.run-deps: pyproject.toml labextension/package-lock.json | $(PY)
	PATH=$(BIN):$$PATH $(UV) pip install --python $(PY) --compile-bytecode -q -e '.[lab]'
	PATH=$(BIN):$$PATH $(VENV)/bin/jupyter-builder develop --overwrite . >/dev/null
	@touch $@ $(VENV)/.frontend

$(VENV)/.test-deps: pyproject.toml labextension/package-lock.json | $(PY)
	PATH=$(BIN):$$PATH $(UV) pip install --python $(PY) --compile-bytecode -q -e '.[lab,postgres,dask,dev,test]'
	PATH=$(BIN):$$PATH $(VENV)/bin/jupyter-builder develop --overwrite . >/dev/null
	@touch $@ $(VENV)/.run-deps $(VENV)/.frontend

# the front end again, only when its sources changed since the last build
$(VENV)/.frontend: $(FRONTEND_SRC) | $(VENV)/.run-deps
	cd labextension && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund -q; }
	cd labextension && PATH=$(BIN):$$PATH npm run -s build:prod
	@touch $@

# Chromium (browser tests) and PostgreSQL (parity tests) from Debian, only when missing
system-deps:
	@if [ -n "$(strip $(APT_PKGS))" ]; then \
	  echo "Installing Debian packages for the tests: $(strip $(APT_PKGS))"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PKGS) >/dev/null; \
	fi

run: $(VENV)/.run-deps $(VENV)/.frontend
	@$(PY) -m compileall -q jupyter_jobctl
	@echo "Starting JupyterLab with jupyter_jobctl on http://127.0.0.1:$(PORT)/lab (the URL with its token follows)"
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) $(ROOT_FLAG) \
	  --ServerApp.root_dir=$(CURDIR)/notebooks

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy jupyter_jobctl

# unit, server, notebook and CLI tests (pytest-jupyter, real processes), then the browser
# tests in a session of their own (Playwright's event loop and pytest-jupyter's do not mix)
test: $(VENV)/.test-deps $(VENV)/.frontend system-deps lint
	@$(PY) -m compileall -q jupyter_jobctl
	cd labextension && npm test --silent
	$(VENV)/bin/pytest
	$(VENV)/bin/pytest e2e

# README screenshots, produced by the browser tests
screenshots: $(VENV)/.test-deps $(VENV)/.frontend system-deps
	JOBCTL_README_IMAGES=docs/images $(VENV)/bin/pytest e2e/test_screenshots.py

bench: $(VENV)/.test-deps system-deps
	@$(PY) -m compileall -q jupyter_jobctl
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info labextension/node_modules labextension/lib \
	  jupyter_jobctl/labextension jupyter_jobctl/static/widget.js
