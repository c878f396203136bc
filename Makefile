# smtpcore: every set-up step lives here, so that a fresh machine needs only
# Python >= 3.10 with venv and pip.  `make demo` runs the main job, `make test`
# the whole test suite (lint, format, types, tests with coverage).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test lint typecheck unit docs matrix fuzz fuzz-smoke bench bench-quick interop-setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

# The strict editable install links files one by one: new modules need a
# reinstall, which is cheap, so every entry point below does it.
install: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict

demo: install
	$(BIN)/python -m smtpcore demo

lint: install
	$(BIN)/ruff check src tests fuzz bench scripts
	$(BIN)/ruff format --check src tests fuzz bench scripts
	$(BIN)/python scripts/unasync.py --check

typecheck: install
	$(BIN)/mypy --strict src tests fuzz scripts

# The tests run in one process per core (pytest-xdist); each test file stays
# on one worker (--dist loadfile), so a file's servers (the private Postfix,
# Celery's redis-server) start once. PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= auto

unit: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --cov --cov-branch --cov-report=term $(PYTEST_ARGS)
	@echo "Coverage of the core (src/smtpcore), lines and branches; must stay >= 95%:"
	$(BIN)/python -m coverage report --include='src/smtpcore/*' --omit='src/smtpcore/__main__.py' --fail-under=95

test: lint typecheck unit

# The documentation site from docs/ (Sphinx), built from scratch with every
# warning an error; open build/docs/html/index.html. Its examples run in
# `make unit` (tests/test_docs.py, tests/test_examples.py).
docs: install
	rm -rf build/docs
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs build/docs/html
	@echo "docs: build/docs/html/index.html"

# The test suite on the oldest and the newest supported Python installed here
# (noxfile.py: each in a fresh virtualenv under build/nox, from a regular
# install; a Python that is missing is skipped with a message). Arguments
# for pytest: make matrix NOX_ARGS="tests/cli -q".
matrix: install
	$(BIN)/nox -s ends $(if $(NOX_ARGS),-- $(NOX_ARGS))

FUZZ_TIME ?= 300

# Coverage-guided fuzzing (atheris, Python < 3.12): FUZZ_TIME seconds per harness.
# New inputs go to fuzz/work/, crashing ones to fuzz/crashes/ (both gitignored).
fuzz: install
	$(BIN)/python -m pip install --quiet 'atheris>=2.3'
	$(BIN)/python -m fuzz.run --time $(FUZZ_TIME)

# The harnesses without atheris: seed corpus plus random and mutated inputs.
fuzz-smoke: install
	$(BIN)/python -m fuzz.run --replay --count 2000

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: install
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .coverage .mypy_cache .pytest_cache .ruff_cache .hypothesis
