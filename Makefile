# The two set-up commands from the README: `make build` and `make test`.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.ngixi-installed
# The run side also on current Python: a Python 3.12 environment with only Wasmtime.
LOADER_VENV := .venv-loader
LOADER_STAMP := $(LOADER_VENV)/.ngixi-installed
LOADER_TESTS := tests/test_engines.py tests/test_enforcement.py tests/test_component_host.py

.PHONY: build test lint toolchain test-loader

build: $(STAMP)
	$(VENV)/bin/doit build

test: $(STAMP) lint toolchain test-loader
	$(VENV)/bin/pytest -n auto --dist loadfile

test-loader: $(LOADER_STAMP)
	PYTHONPATH=. $(LOADER_VENV)/bin/pytest -p no:cacheprovider $(LOADER_TESTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

toolchain: $(STAMP)
	$(VENV)/bin/doit toolchain

$(STAMP): pyproject.toml constraints.txt scripts/make-venv
	scripts/make-venv $(VENV)
	touch $@

$(LOADER_STAMP): constraints.txt scripts/make-loader-venv scripts/find-python
	scripts/make-loader-venv $(LOADER_VENV)
	touch $@
