# Headwater: `make run` starts the service on SQLite; `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck unit browser bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/headwater serve

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -n 2

# The console's browser tests drive the OS's Chromium (never a downloaded one).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test: browser lint typecheck unit

# Schemathesis, long: FUZZ_EXAMPLES examples per operation of the admin API
# and of a Production spec file, with a new seed each run; several minutes.
# `make test` runs the same tests with 8 examples. docs/reliability.md.
FUZZ_EXAMPLES ?= 300
fuzz: install
	HEADWATER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HEADWATER_FUZZ_SEED=random \
		$(BIN)/pytest -q --timeout=3600 tests/badinput/test_schemathesis.py

# Benchmarks: Headwater beside a plain peer, rebuilds, lag, costs and a
# profile; about half an hour (docs/performance.md).
bench: install
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench.ingest --store postgres
	$(BIN)/python -m bench.ingest --store sqlite
	$(BIN)/python -m bench.lag --store postgres
	$(BIN)/python -m bench.lag --store sqlite
	$(BIN)/python -m bench.rebuild --store postgres --events 1000000
	$(BIN)/python -m bench.rebuild --store sqlite --events 1000000
	$(BIN)/python -m bench.costs --events 20000
	$(BIN)/python -m bench.profile --store postgres
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache test-output
