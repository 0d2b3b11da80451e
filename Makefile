# The two set-up commands from the README: `make build` and `make test`.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.ngixi-installed
# The run side also on current Python: a Python 3.12 environment with only Wasmtime, where the
# loader, host and CLI suites run again (their bundles built by the 3.10 side; Wasmer-only tests skip).
LOADER_VENV := .venv-loader
LOADER_STAMP := $(LOADER_VENV)/.ngixi-installed
LOADER_TESTS := $(addprefix tests/test_,$(addsuffix .py,abi_docs artifact_safety bundle bundle_artifacts check cli \
	enforcement engines host host_http host_kv hostfuncs layering loader manifest minisign policy rollback smoke \
	tenant_ids wasi_fs wasm wasmtime_calls component_host))

.PHONY: build test lint toolchain test-loader

build: $(STAMP)
	$(VENV)/bin/doit build

test: $(STAMP) lint toolchain test-loader
	$(VENV)/bin/pytest -n auto --dist loadfile

test-loader: $(LOADER_STAMP) $(STAMP)
	PYTHONPATH=$(CURDIR):$(CURDIR)/runtime $(LOADER_VENV)/bin/pytest -p no:cacheprovider $(LOADER_TESTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

toolchain: $(STAMP)
	$(VENV)/bin/doit toolchain

$(STAMP): pyproject.toml runtime/pyproject.toml constraints.txt scripts/make-venv
	scripts/make-venv $(VENV)
	touch $@

$(LOADER_STAMP): constraints.txt scripts/make-loader-venv scripts/find-python
	scripts/make-loader-venv $(LOADER_VENV)
	touch $@
