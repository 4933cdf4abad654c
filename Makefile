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

soak: $(STAMP)
	METERLINE_SOAK=1 $(BIN)/pytest -q -m slow

clean:
	rm -rf $(VENV) .meterline .demo-data .pytest_cache .ruff_cache
