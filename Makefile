# Two commands: `make demo` runs the whole product offline on synthetic data; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Never reach for a hub during the demo or the tests: missing weights fail fast instead of retrying.
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1

.PHONY: demo test test-all lint bench setup fuzz

setup: $(STAMP)

# The project installs itself (editable): pyproject.toml reads its dependencies from the two files.
$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(BIN)/python pipeline.py demo

# `make test` (what CI runs) leaves out the tests marked slow: full-size models and long kill loops.
test: $(STAMP)
	$(OFFLINE) $(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(OFFLINE) $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

# The full fuzz campaign (>= 5,000 cases per input kind; prints its table into RELIABILITY.md), then
# every metadata byte of the HDF5 inputs zeroed one at a time.
fuzz: $(STAMP)
	$(OFFLINE) PYTHONPATH=tests $(BIN)/python -m fuzz.run --cases 5000
	$(OFFLINE) PYTHONPATH=tests $(BIN)/python -m fuzz.metadata
