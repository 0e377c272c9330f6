# The two commands of the README: `make run` and `make test`. Both set up everything they
# need (virtualenv, package, Debian packages) and are fast when nothing changed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
PORT ?= 8888
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test lint bench system-deps clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv 2>&1 | grep -v 'is ignored' || true

# bytecode is compiled at install time: job processes start much faster with it
$(VENV)/.run-deps: pyproject.toml | $(PY)
	$(UV) pip install --python $(PY) --compile-bytecode -q -e '.[lab]'
	@touch $@

$(VENV)/.test-deps: pyproject.toml | $(PY)
	$(UV) pip install --python $(PY) --compile-bytecode -q -e '.[lab,postgres,dev,test]'
	@touch $@ $(VENV)/.run-deps

# PostgreSQL (for the parity tests) from Debian, only when it is missing
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "Installing Debian postgresql for the parity tests..."; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	fi

run: $(VENV)/.run-deps
	@$(PY) -m compileall -q jupyter_jobctl
	@echo "Starting JupyterLab with jupyter_jobctl on http://127.0.0.1:$(PORT)/lab (the URL with its token follows)"
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) $(ROOT_FLAG)

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: $(VENV)/.test-deps system-deps lint
	@$(PY) -m compileall -q jupyter_jobctl
	$(VENV)/bin/pytest

bench: $(VENV)/.test-deps system-deps
	@$(PY) -m compileall -q jupyter_jobctl
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info
