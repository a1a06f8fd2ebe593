# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all bench clean

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

bench: $(STAMP)
	$(PY) benchmarks/step_time.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
