# The two commands of the README: `make book` and `make test`. Both create the virtual environment
# on first use (python3 -m venv .venv) and install the pinned requirements and the package.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?=
# extra arguments for `jupyter lab`, e.g. LAB_ARGS="--no-browser --port 8890"
LAB_ARGS ?=
JUPYTERLAB_VERSION := 4.6.6
JUPYTERLAB_MYST_VERSION := 2.7.0
# arguments for bench/train_step.py (see `python bench/train_step.py --help`)
BENCH_ARGS ?= --depth-sweep
# ruff for `make format`, pinned, installed into _build/ruff (not a dependency of the package)
RUFF_VERSION := 0.17.6
RUFF_DIR := _build/ruff
# arguments for scripts/format_chapters.py, e.g. FORMAT_ARGS=--check (write nothing, exit 1 on changes)
FORMAT_ARGS ?=
# glibc malloc settings for the processes that train (vae_book.train.HOST_MALLOC_ENV: one home for them);
# evaluated when a recipe uses it, after the virtual environment exists
MALLOC_ENV = $(shell $(PY) -c "from vae_book.train import HOST_MALLOC_ENV as e; print(' '.join(f'{k}={v}' for k, v in e.items()))")

.PHONY: book test lab bench bench-book format venv clean browser site-deps site-assets lock gpu-check

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (vae_book)" > /dev/null
	touch $(STAMP)

venv: $(STAMP)

## site-deps: npm (installs the site's MathJax at build time); CI runs as root on a fresh machine
site-deps:
	@command -v npm > /dev/null || (apt-get update && apt-get install -y nodejs npm)

## site-assets: MathJax from the npm registry (pinned in scripts/site/) into _build/site_static
site-assets: venv site-deps
	$(PY) scripts/site_assets.py

## browser: Debian's Chromium, which the browser tests (tests/test_site.py) drive with Playwright
browser:
	@command -v chromium > /dev/null || (apt-get update && apt-get install -y chromium)

## make book: execute every chapter and build the static site into _build/html
book: venv site-assets
	$(if $(PROFILE),VAE_BOOK_PROFILE=$(PROFILE)) $(PY) scripts/build_book.py

## make test: the test suite (unit tests, notebooks and the site in the smoke profile, browser tests)
test: venv site-deps browser
	env $(MALLOC_ENV) VAE_BOOK_PROFILE=smoke $(PY) -m pytest -q

## make lab: open the chapters in JupyterLab (jupytext opens the .md chapters as notebooks)
lab: venv
	$(PY) -m pip install --quiet jupyterlab==$(JUPYTERLAB_VERSION) jupyterlab-myst==$(JUPYTERLAB_MYST_VERSION) -c constraints.txt
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	env $(MALLOC_ENV) $(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS) chapters/

## make bench: the training-step benchmarks (vae_book vs a JAX reference vs PyTorch eager; where the step's time
## goes, by XLA op; Adam per array vs flat)
bench: venv
	$(PY) -m pip install --quiet torch==2.13.0 -c constraints.txt
	$(PY) -m pytest -q -m bench tests/test_perf_equivalence.py
	env $(MALLOC_ENV) $(PY) bench/train_step.py $(BENCH_ARGS)
	env $(MALLOC_ENV) $(PY) bench/step_profile.py
	env $(MALLOC_ENV) $(PY) bench/optimizer.py

## make bench-book: time the book build (cold, nothing changed, one chapter's prose edited) in a temporary copy
bench-book: venv site-assets
	$(PY) bench/book_build.py $(BENCH_BOOK_ARGS)

## make format: format the code of the chapters' code cells with ruff (line length 88, pyproject.toml)
$(RUFF_DIR)/.ruff-$(RUFF_VERSION): | $(STAMP)
	rm -rf $(RUFF_DIR)
	$(PY) -m pip install --quiet --target $(RUFF_DIR) ruff==$(RUFF_VERSION)
	touch $@

format: venv $(RUFF_DIR)/.ruff-$(RUFF_VERSION)
	PYTHONPATH=$(RUFF_DIR) $(PY) scripts/format_chapters.py $(FORMAT_ARGS)

## make gpu-check: the GPU path end to end (bench/gpu_check.py); says so and exits 0 without a GPU
gpu-check: venv
	$(PY) bench/gpu_check.py $(GPU_CHECK_ARGS)

## make lock: rewrite constraints.txt from a fresh environment of requirements.txt (after editing it)
lock:
	rm -rf _build/lockenv && $(PYTHON) -m venv _build/lockenv
	_build/lockenv/bin/python -m pip install --quiet --upgrade pip
	_build/lockenv/bin/python -m pip install --quiet -r requirements.txt
	{ sed -n '1,3p' constraints.txt; _build/lockenv/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf _build/lockenv

clean:
	rm -rf _build .pytest_cache test-artifacts
