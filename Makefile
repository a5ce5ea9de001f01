# Every target installs into .venv first when needed (a fresh clone needs only `make test`
# or `make check`).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install test test-wheel check serve report lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium + chromium-driver for the report's headless-browser test, and Prism (npm, into
# .tools/) for tests/peers/test_prism.py; each test skips with the reason when its install failed.
# Five workers on two cores: most tests wait on servers, rate windows and subprocesses (CPU is
# ~1.8 cores busy at five; four left it idle part of the time: 244 s against 223 s).
test: install
	-scripts/ensure-chromium.sh
	-scripts/install-prism.sh >/dev/null
	$(PY) -m pytest -q -n 5 --dist worksteal $(ARGS)

# The built wheel alone in a fresh virtual environment (slow: installs every dependency).
test-wheel: install
	$(PY) -m pytest -q -m wheel tests/test_wheel.py $(ARGS)

check: install
	$(VENV)/bin/harness check $(ARGS)

serve: install
	$(VENV)/bin/harness serve $(ARGS)

# Re-render a run folder: make report RUN=reports/<run-id>
report: install
	$(VENV)/bin/harness report $(RUN)

lint: install
	$(VENV)/bin/ruff check harness tests benchmarks scripts
	$(VENV)/bin/mypy --strict harness

bench: install
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
