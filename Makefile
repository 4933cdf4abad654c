# Meterline: `make demo` and `make test` set themselves up (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit lint soak bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/meterline demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .

# The crash test with 1M events and 100 kills (the default suite runs 200k and 20).
soak: $(STAMP)
	METERLINE_CRASH_EVENTS=1000000 METERLINE_CRASH_KILLS=100 \
		$(BIN)/pytest -q tests/integration/test_crash.py

clean:
	rm -rf $(VENV) .meterline .demo-data .pytest_cache .ruff_cache
