# A6 Pay: `make run` starts the whole stack here, `make test` runs the suite.
# Dependencies come from uv.lock (every package pinned, with hashes): `make lock` after
# changing pyproject.toml's dependencies; `make test` fails while the two disagree.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := $(BIN)/uv
UV_STAMP := $(VENV)/.uv-$(UV_VERSION)
STAMP := $(VENV)/.installed
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test install lock lock-check lint chaos chaos-ha bench bench-ab clean

# uv itself comes from PyPI, pinned, into the project's venv: nothing else to install.
$(UV_STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	@touch $(UV_STAMP)

# Exactly what uv.lock says (--frozen: never re-resolve here); --inexact keeps uv and pip.
$(STAMP): pyproject.toml uv.lock $(UV_STAMP)
	$(UV) sync --frozen --inexact --extra dev
	@touch $(STAMP)

install: $(STAMP)

lock: $(UV_STAMP)
	$(UV) lock

lock-check: $(UV_STAMP)
	@$(UV) lock --check || { echo "uv.lock does not match pyproject.toml: run 'make lock'" >&2; exit 1; }

run: $(STAMP)
	exec $(BIN)/python -m ops.runner

# The browser tests (tests/browser) drive Debian's Chromium through Playwright, which
# cannot download a browser of its own here.
test: lock-check lint
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

# A PostgreSQL primary + synchronous standby and three RabbitMQ nodes built here (root),
# both faults and a failover back under >= 1,000 paid bookings: the ledger and outages.
chaos-ha: $(STAMP)
	$(BIN)/python -m bench.chaos_ha $(CHAOS_HA_ARGS)

# wrk is the load generator and valgrind counts instructions (Debian packages); matplotlib
# (the `bench` extra) draws the plot.
bench: $(STAMP)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(UV) sync --frozen --inexact --extra dev --extra bench
	$(BIN)/python -m bench.load $(BENCH_ARGS)

# The stack as of REF and this checkout side by side, loaded in turn: what a change saved.
bench-ab: $(STAMP)
	@test -n "$(REF)" || { echo "usage: make bench-ab REF=<commit>"; exit 2; }
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m bench.ab $(REF) $(AB_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
