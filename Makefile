# Two commands a new user needs: `make demo` and `make test`.
# Each creates (or reuses) the local virtualenv .venv and installs requirements.txt into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: demo test venv bench bench-input docs clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m rl_repr.demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --durations=15 tests

# The API reference: Sphinx (autodoc + napoleon) over every module, the README's sections as
# guides; any warning fails the build. Open docs/_build/html/index.html.
$(DOCS_STAMP): $(STAMP) requirements-docs.txt
	$(PY) -m pip install -q -c requirements.txt -r requirements-docs.txt
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
	@echo "API reference: docs/_build/html/index.html"

bench: $(STAMP)
	$(PY) benchmarks/contrastive_loss.py

# The input pipeline against torchvision (benchmarks/input_pipeline.py). torchvision runs from its
# own environment, .venv-bench (requirements-bench.txt), so torch never enters .venv.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): requirements-bench.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -r requirements-bench.txt
	@touch $(BENCH_STAMP)

bench-input: $(STAMP) $(BENCH_STAMP)
	$(PY) benchmarks/input_pipeline.py --peer-python $(BENCH_VENV)/bin/python \
		--out benchmarks/results/input_pipeline-cpu.json

clean:
	rm -rf $(VENV) workdirs docs/_build
