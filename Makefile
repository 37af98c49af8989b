# The two commands of the README. Both create .venv on first use and are no-ops to set up again.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: search test test-slow docs bench figures tiny-figures

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

# Every measured figure the docs print, rewritten in docs/figures (commit them). tiny-figures
# rewrites the deterministic ones, which the slow tests and each script's --check compare with
# the committed files: the methods' tiny runs, the parity tables, the macro space's invalid and
# branching genomes and parameter-cap examples, and what the docs' examples print or find. The
# rest are timings and benchmarks over many seeds, each run with the options its committed
# figures record (their "command").
tiny-figures: $(STAMP)
	$(PY) benchmarks/parity.py
	$(PY) benchmarks/tiny_runs.py
	$(PY) benchmarks/bench_macro_validity.py
	$(PY) benchmarks/example_output.py

figures: tiny-figures
	$(PY) benchmarks/bench_first_evaluation.py --repeats 3 --write
	$(PY) benchmarks/bench_journal.py --write
	$(PY) benchmarks/bench_startup.py --repeats 5 --write
	$(PY) benchmarks/bench_proxies_nb201.py --n 3500 --no-naswot
	$(PY) benchmarks/bench_nb201_anytime.py --seeds 20 --queries 500 \
		--methods random re egnas re+params renas
	$(PY) benchmarks/bench_nb201_anytime.py --seeds 20 --queries 100 \
		--methods re re+params:8 --proposals 4 --name nb201_anytime_proposals
	$(PY) benchmarks/bench_egnas_eq7.py
	$(PY) benchmarks/minigen_selection.py
	$(PY) benchmarks/nasgep_budget.py
	$(PY) benchmarks/bench_nasgep_sharing.py
	$(PY) benchmarks/bench_inheritance.py
	$(PY) experiments/renas_nb201_comparison.py --write-figures
	$(PY) benchmarks/bench_table_steps.py --repeats 3 --write
	$(PY) benchmarks/bench_parallel.py --write
	$(PY) benchmarks/bench_supernet.py --threads 1 --repeats 5 --write supernet_speed
	$(PY) benchmarks/bench_supernet.py --threads 1 --repeats 5 --channels 4 --layers 5 \
		--image-size 8 --batch-size 64 --steps 4 --train-images 718 --samplings 2 --popsize 4 \
		--score-batch-size 256 --write supernet_speed_small
	$(PY) benchmarks/bench_trained_guidance.py --seeds 2 --time-limit 120 --evaluations 30 --write

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,docs,ray]'
	touch $(STAMP)
