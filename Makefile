# The two commands of the README: `make book` and `make test`. Both create the virtual environment
# on first use (python3 -m venv .venv) and install the pinned requirements and the package.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?=

.PHONY: book test lab bench venv clean browser

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (vae_book)" > /dev/null
	touch $(STAMP)

venv: $(STAMP)

## make book: execute every chapter and build the static site into _build/html
book: venv
	$(if $(PROFILE),VAE_BOOK_PROFILE=$(PROFILE)) $(PY) scripts/build_book.py

## make test: the test suite (unit tests, notebooks in the smoke profile)
test: venv
	VAE_BOOK_PROFILE=smoke $(PY) -m pytest -q

## make lab: open the chapters in JupyterLab (jupytext opens the .md chapters as notebooks)
lab: venv
	$(PY) -m pip install --quiet jupyterlab jupytext
	$(VENV)/bin/jupyter lab chapters/

bench: venv
	$(PY) bench/train_step.py

clean:
	rm -rf _build .pytest_cache
