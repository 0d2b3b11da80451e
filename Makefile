# The two set-up commands from the README: `make build` and `make test`.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.ngixi-installed
# The run side also on current Python: a Python 3.12 environment with the ngixi-runtime distribution
# installed from runtime/ with its pull extra (Wasmtime only), where the run side's suite, tests/run/, runs
# again (its bundles built by the 3.10 side; Wasmer-only tests skip). NGIXI_TEST_INSTALLED_RUNTIME has the
# suite check that it tests the installed copy, refreshed whenever a file under runtime/ changes.
LOADER_VENV := .venv-loader
LOADER_STAMP := $(LOADER_VENV)/.ngixi-installed
# And on the newest Python this kind of machine has (3.13), where the standard library behaves otherwise in places
# (a symbolic link loop that Path.resolve returns instead of raising, modules imported at start).
NEWEST_PYTHON := 3.13
NEWEST_VENV := .venv-loader-$(NEWEST_PYTHON)
NEWEST_STAMP := $(NEWEST_VENV)/.ngixi-installed
RUNTIME_FILES := $(shell find runtime \( -name build -o -name '*.egg-info' -o -name __pycache__ \) -prune -o -print)

.PHONY: build test lint toolchain test-loader test-loader-newest

build: $(STAMP)
	$(VENV)/bin/ngixi build

# .ci/run makes the targets two at a time: lint and the 3.12 environment beside the toolchain's install; the
# loader's suite, whose integration tests build their bundles with that toolchain, waits for it. Each suite
# gives its workers whole modules (a module's fixtures are built once), heavy ones first (tests/conftest.py).
test: $(STAMP) lint toolchain test-loader test-loader-newest
	$(VENV)/bin/pytest -n auto

test-loader: $(LOADER_STAMP) $(STAMP) toolchain
	NGIXI_TEST_INSTALLED_RUNTIME=1 $(LOADER_VENV)/bin/pytest -p no:cacheprovider -n auto tests/run

# Its unit tests only, where the standard library's differences show (the integration tests take a minute more of
# the suite's 15); after test-loader: two suites at once would each take both cores.
test-loader-newest: $(NEWEST_STAMP) $(STAMP) toolchain | test-loader
	NGIXI_TEST_INSTALLED_RUNTIME=1 $(NEWEST_VENV)/bin/pytest -p no:cacheprovider -n auto tests/run/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

toolchain: $(STAMP)
	$(VENV)/bin/doit toolchain

$(STAMP): pyproject.toml runtime/pyproject.toml constraints.txt scripts/make-venv
	scripts/make-venv $(VENV)
	touch $@

# After .venv's: both pip installs build runtime/ in place.
$(LOADER_STAMP): constraints.txt scripts/make-loader-venv scripts/find-python $(RUNTIME_FILES) | $(STAMP)
	scripts/make-loader-venv $(LOADER_VENV)
	touch $@

$(NEWEST_STAMP): constraints.txt scripts/make-loader-venv scripts/find-python $(RUNTIME_FILES) | $(LOADER_STAMP)
	scripts/make-loader-venv $(NEWEST_VENV) $(NEWEST_PYTHON)
	touch $@
