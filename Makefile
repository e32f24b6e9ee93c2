# Prompting Vision Models: set up, open, test and pre-render the course.
#   make lab       set up .venv and open JupyterLab on the lessons
#   make test      set up, then lint, type check and run every test (notebooks in tiny mode)
#   make unit      the fast lane: every test but the slow, notebook and browser ones
#   make lessons   execute every lesson into build/ (MODE=tiny or MODE=real)
#   make weights   download every model the lessons use, ahead of a workshop
#   make colab     zip the committed course (build/prompting-vision.zip) to upload to Colab
# Set-up is keyed on a hash of the requirement files: when they have not changed, it is a no-op.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
KERNEL := prompting-vision
MODE ?= tiny
LAB_ARGS ?=

LAB_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
TEST_HASH := $(shell cat requirements.txt requirements-dev.txt pyproject.toml system-packages.txt | sha256sum | cut -c1-16)
LAB_STAMP := $(VENV)/.stamp-lab-$(LAB_HASH)
TEST_STAMP := $(VENV)/.stamp-test-$(TEST_HASH)

.PHONY: setup setup-test lab test lint typecheck unit lessons weights colab benchmarks clean

setup: $(LAB_STAMP)

setup-test: $(TEST_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(LAB_STAMP): | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e .
	$(BIN)/python -m ipykernel install --user --name $(KERNEL) \
		--display-name "Python (prompting vision)" > /dev/null
	rm -f $(VENV)/.stamp-lab-*
	touch $@

$(TEST_STAMP): $(LAB_STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	bash .ci/system-packages.sh system-packages.txt
	rm -f $(VENV)/.stamp-test-*
	touch $@

# As root (Docker, cloud machines) JupyterLab refuses to start without --allow-root.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: setup
	@$(if $(ROOT_ARGS),echo "Running as root: starting JupyterLab with --allow-root.",true)
	$(BIN)/jupyter lab notebooks/01_overview.ipynb $(ROOT_ARGS) $(LAB_ARGS)

lint: setup-test
	$(BIN)/ruff check .

typecheck: setup-test
	$(BIN)/mypy

unit: setup-test
	$(BIN)/python -m pytest -m "not slow and not notebook and not browser"

test: setup-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lessons: setup
	$(BIN)/python -m helpers.lessons --mode $(MODE) --out build

weights: setup
	$(BIN)/python -m helpers.models fetch --all

colab:
	mkdir -p build
	git archive --format=zip -o build/prompting-vision.zip HEAD
	@echo "build/prompting-vision.zip: the course as committed (uncommitted changes are not in it)."

benchmarks: setup
	$(BIN)/python benchmarks/import_time.py
	HELPERS_TINY_MODELS=1 $(BIN)/python benchmarks/tracking_overhead.py
	$(BIN)/python benchmarks/sam_latency.py
	$(BIN)/python benchmarks/detect_segment.py
	$(BIN)/python benchmarks/inpaint.py --parts 1
	$(BIN)/python benchmarks/dreambooth.py
	$(BIN)/python benchmarks/lesson_cost.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
