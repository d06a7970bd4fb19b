# nasbench developer commands. `make demo` and `make test` are the README's quick start.
#
# Torch is never replaced by the resolver: we pin whatever torch is already in .venv (or torch==2.13.0
# where none is, which on CPU-only build machines resolves to a local CPU wheel) through a constraints file.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_DEFAULT ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@v=$$($(PY) -c 'import torch; print(torch.__version__)' 2>/dev/null || echo $(TORCH_DEFAULT)); \
	  echo "torch==$$v" > $(VENV)/constraints.txt; echo "torch pinned: torch==$$v"
	$(PIP) install -q -c $(VENV)/constraints.txt "torch==$$(cut -d= -f3 $(VENV)/constraints.txt)"
	$(PIP) install -q -c $(VENV)/constraints.txt -e ".[dev]"
	touch $(STAMP)

# The main job: a complete search (supernet training, proximal + NSGA-II + random search, Pareto front)
# on scikit-learn's bundled digits with the tiny space; about 6 minutes on 2 CPU cores. The supernet gets 3 of
# the 5 budgeted minutes: that is what it takes to know its whole space, not only its largest and smallest
# subnets (results/BENCHMARKS.md, "A supernet that knows its whole space").
demo: install
	$(VENV)/bin/nasbench search --space tiny --data digits --budget 5min --shares supernet=0.6,search=0.4 \
		--searcher proximal,nsga2,random

# Two workers: the suite is mostly single-threaded tests and waits (Ray start-up, subprocesses).
test: install
	$(PY) -m pytest -q -n 2

test-all: install
	$(PY) -m pytest -q -n 2 -m ""

lint: install
	$(VENV)/bin/ruff check nasbench tests bench notebooks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
