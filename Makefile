# Two commands for everyone: `make demo` and `make test`. Each creates .venv and installs the
# project (with its dev extras) when pyproject.toml is newer than the last install.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test soak bench lint typecheck clean bundle

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sumppump demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

soak: $(STAMP)
	SUMPPUMP_SOAK=1 $(PY) -m pytest -m "slow" -q

bench: $(STAMP)
	$(PY) bench/actors.py
	$(PY) bench/pricing.py
	$(PY) bench/strategies.py
	$(PY) bench/chain.py
	$(PY) bench/tools.py
	$(PY) bench/serve.py
	$(PY) bench/load.py
	$(PY) bench/reliability.py
	$(PY) bench/ticket.py
	$(PY) bench/context.py
	$(PY) bench/report.py

lint: $(STAMP)
	$(VENV)/bin/ruff check sumppump tests bench
	$(VENV)/bin/ruff format --check sumppump tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# dist/sumppump-<version>.mcpb, the MCP Bundle Claude Desktop installs (bundle/build.py says how;
# the mcpb CLI is pinned in bundle/package-lock.json and installed there by npm ci).
bundle: $(STAMP)
	$(PY) bundle/build.py

clean:
	rm -rf $(VENV) build dist *.egg-info
