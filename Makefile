# The two commands of the README. Both create .venv on first use and are no-ops to set up again.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: search test test-slow docs bench

search: $(STAMP)
	$(VENV)/bin/deapnas search

test: $(STAMP)
	$(PY) -m pytest -q
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/bench_fitness.py

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,docs,ray]'
	touch $(STAMP)
