# The two commands: `make run` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DB ?= data/demo.sqlite3
DEMO_ROWS ?= 1000000
PYTEST_ARGS ?=
LINT_PATHS := service tests bench loadtests

.PHONY: run test check lint format venv clean system-deps e2e readme bench bench-quick loadtest \
	loadtest-smoke reliability

$(VENV)/bin/activate:
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; set PYTHON=python3.x" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files re-run the install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install --quiet .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

$(DB): | $(VENV)/.installed
	$(VENV)/bin/tablestream demo-db $(DB) --rows $(DEMO_ROWS)

run: $(VENV)/.installed $(DB)
	TABLESTREAM_DB=$(DB) $(VENV)/bin/tablestream serve

system-deps:
	bash tests/system/install-deps.sh

test: $(VENV)/.installed-test system-deps
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(PY) -m pytest $(PYTEST_ARGS)

# The edit loop (< 1 min): lint, then the tests that need no root, no PostgreSQL, no browser and
# no system package, and that take no more than a second or two each (not marked slow).
CHECK_MARKERS := not slow and not postgres and not browser and not system
check: $(VENV)/.installed-test
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(PY) -m pytest -q -m "$(CHECK_MARKERS)" $(PYTEST_ARGS)

# The real-Prometheus and promtool checks of ops/ alone (make test runs them too).
e2e: $(VENV)/.installed-test system-deps
	$(PY) -m pytest tests/test_ops.py $(PYTEST_ARGS)

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.installed

# Side-by-side benchmark, the real sources included (phase F); writes docs/BENCHMARKS.md and
# docs/benchmarks.png (~18 min).
bench: $(VENV)/.installed-bench system-deps
	$(PY) -m bench.run

# The same targets judged on smaller runs (~5 min); the report goes to runs/bench-quick/.
bench-quick: $(VENV)/.installed-bench system-deps
	$(PY) -m bench.run --quick

# Load scenarios (loadtests/): start the service, run locust headless against it, stop it, print
# the memory verdict and the report folder (runs/...). Exit status is locust's (3 = verdict failed).
# LOADTEST_ARGS is passed on, e.g. LOADTEST_ARGS="--step-users 10 -- --max-slope-mib-per-min 5".
LOADTEST_ARGS ?=
loadtest: $(VENV)/.installed-test
	$(PY) -m loadtests.run $(LOADTEST_ARGS)

# The short version (< 90 s); make test runs it too (tests/test_loadtest.py).
loadtest-smoke: $(VENV)/.installed-test
	$(PY) -m loadtests.run --smoke $(LOADTEST_ARGS)

# Issue 12's attacks (stalled readers + slowloris, long streams, more streams than slots, SIGTERM
# under load, Expect: 100-continue) against a real server; prints the figures table and a verdict
# per target, writes docs/reliability.md (~5 min). RELIABILITY_ARGS is passed on, e.g. --quick.
RELIABILITY_ARGS ?=
reliability: $(VENV)/.installed-test
	$(PY) -m loadtests.reliability $(RELIABILITY_ARGS)

# Regenerate the full settings table in docs/settings.md from service/config (tests/test_docs.py
# fails when it is out of date).
readme: $(VENV)/.installed
	$(PY) docs/generate_settings.py

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

clean:
	rm -rf $(VENV) build *.egg-info
