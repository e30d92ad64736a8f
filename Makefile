# citylake — the two commands: `make demo` (main job end to end) and `make test` (whole suite).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
UV := $(PY) -m uv
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench clean

$(STAMP): requirements/lock.txt pyproject.toml publish/portal/vendor.py
	@$(UV) --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv
	$(UV) venv --quiet --allow-existing -p $(PY) $(VENV)
	$(UV) pip install --quiet -p $(VENV) --compile-bytecode -r requirements/lock.txt
	$(UV) pip install --quiet -p $(VENV) --compile-bytecode --no-deps -e .
	$(VENV)/bin/citylake publish vendor
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/citylake demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python bench/bench_ingest.py

clean:
	rm -rf var .pytest_cache
