# skybroker — `make test` and `make demo` work from a fresh clone (they create .venv first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PACKAGES := api_types controller apiserver skyctl providers reconcilers skybroker

.PHONY: install lint typecheck test test-stress unit integration demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy $(PACKAGES)

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

test-stress: install
	bash tests/stress.sh

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

demo: install
	$(BIN)/python -m skybroker.demo

bench: install
	$(BIN)/python -m bench.store_limits

clean:
	rm -rf $(VENV) .skybroker .pytest_cache .mypy_cache .ruff_cache
