# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all test-browser bench clean

# torch==2.13.0 goes in first and alone, so pip takes the CPU wheel already on disk
# instead of resolving a newer (multi-GB CUDA) build for the dependency `torch>=2.9`.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[lab,test]' torch==2.13.0
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m optimlab.demo

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m 'not gpu'

# Renders a report from a small real run store in headless Chromium and writes screenshots to
# optimlab-report/browser/ (look at them). Installs the Debian/Ubuntu package `chromium` with
# apt-get when no Chromium is found (set CHROMIUM=/path/to/chrome to use another). Not part of `test`.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-browser: $(STAMP)
	@if [ -z "$$CHROMIUM" ] && ! command -v chromium >/dev/null 2>&1 && \
	    ! command -v chromium-browser >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends chromium; fi
	$(PY) tests/browser/render_report.py optimlab-report/browser

bench: $(STAMP)
	$(PY) benchmarks/step_time.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
