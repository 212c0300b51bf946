# thalia — `make demo` runs the main job, `make test` the test suite. Both create .venv if missing.
# PyTorch: the pinned CPU build is installed first (it is a local file on these machines);
# override for a CUDA build, e.g. `make TORCH_SPEC="torch==2.11.0" test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.thalia-installed
PYTEST_ARGS ?=

.PHONY: demo test test-all lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/thalia demo --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/tcm_forward.py
	$(BIN)/python benchmarks/spm_forward.py
	$(BIN)/python benchmarks/inference.py --batch 100
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/demo.py --json out/bench/demo.json

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache build dist src/*.egg-info
