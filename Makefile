# The two set-up commands from the README: `make build` and `make test`.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.ngixi-installed

.PHONY: build test lint toolchain

build: $(STAMP)
	$(VENV)/bin/doit build

test: $(STAMP) lint toolchain
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

toolchain: $(STAMP)
	$(VENV)/bin/doit toolchain

$(STAMP): pyproject.toml constraints.txt scripts/make-venv
	scripts/make-venv $(VENV)
	touch $@
