# The two commands: `make run` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= python3.11
DB ?= data/demo.sqlite3
DEMO_ROWS ?= 1000000
PYTEST_ARGS ?=
LINT_PATHS := service tests bench loadtests docs setup.py

# Two venvs, never shared: .venv holds the project installed as a user installs it (a wheel built
# from this tree, not editable) for `make run`; .venv-dev holds the editable install with the test,
# bench and load extras for everything else. `make test` never makes `make run` reuse its install.
VENV := .venv
PY := $(VENV)/bin/python
DEV := .venv-dev
DEVPY := $(DEV)/bin/python
# What a user's install is built from: `pip install .` builds and re-installs it when any changes.
SOURCES := pyproject.toml setup.py $(shell find service templates -type f -not -name '*.pyc' 2>/dev/null)

.PHONY: run test check lint format venv clean system-deps e2e readme bench bench-quick loadtest \
	loadtest-smoke reliability bench-capacity bench-queries rolling

%/bin/activate:
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; set PYTHON=python3.x" >&2; exit 1; }
	$(PYTHON) -m venv $*
	$*/bin/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(SOURCES) | $(VENV)/bin/activate
	$(PY) -m pip install --quiet .
	touch $@

# The dev install is editable: edits to service/ need no re-install, only pyproject.toml does.
$(DEV)/.installed-test: pyproject.toml setup.py | $(DEV)/bin/activate
	$(DEVPY) -m pip install --quiet -e '.[test,bench]'
	touch $@

venv: $(VENV)/.installed

$(DB): | $(VENV)/.installed
	$(VENV)/bin/tablestream demo-db $(DB) --rows $(DEMO_ROWS)

run: $(VENV)/.installed $(DB)
	TABLESTREAM_DB=$(DB) $(VENV)/bin/tablestream serve

system-deps:
	bash tests/system/install-deps.sh

test: $(DEV)/.installed-test system-deps
	$(DEV)/bin/ruff check $(LINT_PATHS)
	$(DEV)/bin/ruff format --check $(LINT_PATHS)
	$(DEVPY) -m pytest $(PYTEST_ARGS)

# The edit loop (< 1 min): lint, then the tests that need no root, no PostgreSQL, no browser and
# no system package, and that take no more than a second or two each (not marked slow).
CHECK_MARKERS := not slow and not postgres and not browser and not system
check: $(DEV)/.installed-test
	$(DEV)/bin/ruff check $(LINT_PATHS)
	$(DEV)/bin/ruff format --check $(LINT_PATHS)
	$(DEVPY) -m pytest -q -m "$(CHECK_MARKERS)" $(PYTEST_ARGS)

# The real-Prometheus and promtool checks of ops/ alone (make test runs them too).
e2e: $(DEV)/.installed-test system-deps
	$(DEVPY) -m pytest tests/test_ops.py $(PYTEST_ARGS)

# Side-by-side benchmark, the real sources included (phase F); writes docs/BENCHMARKS.md and
# docs/benchmarks.png (~18 min).
bench: $(DEV)/.installed-test system-deps
	$(DEVPY) -m bench.run

# The same targets judged on smaller runs (~5 min); the report goes to runs/bench-quick/.
bench-quick: $(DEV)/.installed-test system-deps
	$(DEVPY) -m bench.run --quick

# The queries' benchmark on a 1M-row demo database: filters, a sort, keyset pages, and issue 32's
# search, facets and time limit (PostgreSQL's search too when it answers), and a facet on a
# 10M-row table while it streams (the file built once under runs/bench-data/); a verdict per
# target, exit 1 when one is missed (~8 min after the 10M build). QUERIES_ARGS is passed on
# (--rows N, --rounds K, --big-rows N with 0 to skip the 10M phase, --limit-only).
QUERIES_ARGS ?=
bench-queries: $(DEV)/.installed-test system-deps
	$(DEVPY) -m bench.queries $(QUERIES_ARGS)

# Issue 30's capacity benchmark: N slow readers at fixed rates from 127.0.2.x, probes throughout;
# prints the table and a verdict per target, exit 1 when one is missed (~2 min with --quick; the
# full N = 8..512 at 2 MB/s and 200 kB/s takes ~5 min). CAPACITY_ARGS is passed on.
CAPACITY_ARGS ?= --quick
bench-capacity: $(DEV)/.installed-test
	$(DEVPY) -m bench.capacity $(CAPACITY_ARGS)

# Load scenarios (loadtests/): start the service, run locust headless against it, stop it, print
# the memory verdict and the report folder (runs/...). Exit status is locust's (3 = verdict failed).
# LOADTEST_ARGS is passed on, e.g. LOADTEST_ARGS="--step-users 10 -- --max-slope-mib-per-min 5".
LOADTEST_ARGS ?=
loadtest: $(DEV)/.installed-test
	$(DEVPY) -m loadtests.run $(LOADTEST_ARGS)

# The short version (< 90 s); make test runs it too (tests/test_loadtest.py).
loadtest-smoke: $(DEV)/.installed-test
	$(DEVPY) -m loadtests.run --smoke $(LOADTEST_ARGS)

# Issue 12's attacks (stalled readers + slowloris, long streams, more streams than slots, SIGTERM
# under load, Expect: 100-continue) against a real server; prints the figures table and a verdict
# per target, writes docs/reliability.md (~5 min). RELIABILITY_ARGS is passed on, e.g. --quick.
RELIABILITY_ARGS ?=
reliability: $(DEV)/.installed-test
	$(DEVPY) -m loadtests.reliability $(RELIABILITY_ARGS)

# Issue 31's rolling deploy: three instances as three hosts (network namespaces; needs root, else
# 127.0.0.x) from the wheel, nginx, Prometheus, distributed locust; every instance replaced, three
# rounds, under mixed load; prints the figures and a verdict per target, exit 1 on a miss (~8 min
# with the 2-minute instance-down alert check). ROLLING_ARGS is passed on, e.g. --rounds 1.
ROLLING_ARGS ?=
rolling: $(DEV)/.installed-test system-deps
	$(DEVPY) -m loadtests.rolling $(ROLLING_ARGS)

# Regenerate the full settings table in docs/settings.md from service/config (tests/test_docs.py
# fails when it is out of date).
readme: $(DEV)/.installed-test
	$(DEVPY) docs/generate_settings.py

lint: $(DEV)/.installed-test
	$(DEV)/bin/ruff check $(LINT_PATHS)
	$(DEV)/bin/ruff format --check $(LINT_PATHS)

format: $(DEV)/.installed-test
	$(DEV)/bin/ruff format $(LINT_PATHS)
	$(DEV)/bin/ruff check --fix $(LINT_PATHS)

clean:
	rm -rf $(VENV) $(DEV) build dist *.egg-info
