# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch first and pinned: this pin is served from local disk as the CPU build; an unpinned torch
# pulled by a dependency would be a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
DEMO_MODEL ?= mobilenetv2
DEMO_RUN   := runs/$(DEMO_MODEL)-w1.0-r224

.PHONY: demo test lint test-all benchmark venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgecv models
	$(VENV)/bin/edgecv export $(DEMO_MODEL) --int8 --fp16
	$(VENV)/bin/edgecv benchmark $(DEMO_RUN) --report $(DEMO_RUN)/report
	@echo
	@echo "report: $(DEMO_RUN)/report/report.html (also report.md and results.json)"

lint: $(STAMP)
	$(PY) -m ruff check edgecv tests benchmarks
	$(PY) -m ruff format --check edgecv tests benchmarks

test: lint
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(PY) -m pytest -q -m benchmark -p no:cacheprovider

clean:
	rm -rf runs .pytest_cache
