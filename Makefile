# Meterline: `make demo` and `make test` set themselves up (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit lint typecheck soak bench clean tools
# Debian's prometheus package: `prometheus` and `promtool` for the Prometheus tests (in CI a
# missing binary fails those tests). Installed with apt when missing (root, or through sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/meterline demo

tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || \
		($(SUDO) apt-get update -qq && \
		 $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus)

test: $(STAMP) tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

test-unit: $(STAMP) tools
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .

# mypy, with the settings of pyproject.toml ([tool.mypy]: strict on the pure core).
typecheck: $(STAMP)
	$(BIN)/mypy

# The crash test with 1M events and 100 kills (the default suite runs 200k and 20).
soak: $(STAMP)
	METERLINE_CRASH_EVENTS=1000000 METERLINE_CRASH_KILLS=100 \
		$(BIN)/pytest -q tests/integration/test_crash.py

# Throughput, freshness, INSERT shape, billing reads and RSS against a Faust per-event baseline,
# in one run on the embedded stack, then the machine's ceiling: a columnar happy path on the same
# backlog (see BENCHMARKS.md). E.g. BENCH_ARGS="--events 500000".
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .meterline .demo-data .pytest_cache .ruff_cache .mypy_cache
