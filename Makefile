# Every target creates .venv on first use and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv lint test demo bench e2e clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

# Style (ruff) and declared dependencies against imports (FawltyDeps); CI runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/fawltydeps --check --pyenv $(VENV)

# The test suite (what CI runs).
test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q

# Train on the bundled corpus, export, serve, translate.
demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m demo

# Benchmarks side by side with the peers; writes benchmarks/RESULTS.md.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,benchmarks]'
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) benchmarks/run_all.py

# Only the Attention dashboard's browser tests (part of `make test`; need Debian's chromium and
# chromium-driver, which .ci/run installs).
e2e: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -m e2e tests/e2e

clean:
	rm -rf $(VENV) build *.egg-info
