# Dealflow — `make run` serves the demo on http://127.0.0.1:5000, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml tests/plugin_example/pyproject.toml | sha1sum | cut -c1-12)
FLASK  := $(BIN)/flask --app app

.PHONY: venv run setup demo test lint serve bench bench-quick clean

$(STAMP): pyproject.toml tests/plugin_example/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The example handler plugin (entry point `dealflow.handlers`) that tests/test_handler_plugins.py relies on.
	$(BIN)/python -m pip install --quiet -e tests/plugin_example
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

setup: venv
	$(FLASK) db upgrade
	$(FLASK) setup-demo

run: setup
	DEALFLOW_SCHEDULER=on $(FLASK) run --host 127.0.0.1 --port 5000

# Five deals through the shipped sales process on a simulated clock, against a fresh SQLite file (web/sales_demo.py).
demo: venv
	$(BIN)/python -m web.sales_demo

# Production serving: gunicorn, DEALFLOW_WORKERS processes (default 2), the job sweep in every worker (claims are
# leased, so that is safe). Set DEALFLOW_DATABASE_URL (PostgreSQL) and DEALFLOW_SECRET_KEY; see README "Production".
serve: venv
	$(FLASK) db upgrade
	DEALFLOW_SCHEDULER=on $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# The benchmark (bench/run.py; README "Benchmark"): needs the PostgreSQL of DEALFLOW_BENCH_PG_URL (default: the
# local server CI uses). Results go to bench/results/ as JSON.
BENCH_PG_URL ?= $(or $(DEALFLOW_BENCH_PG_URL),postgresql+psycopg://postgres@127.0.0.1:5432/test)
BENCH_STAMP := $(VENV)/.bench-$(shell sha1sum pyproject.toml | cut -c1-12)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	rm -f $(VENV)/.bench-* && touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --pg-url $(BENCH_PG_URL) $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick --pg-url $(BENCH_PG_URL) $(BENCH_ARGS)

lint: venv
	$(BIN)/ruff check .

# Runs on a real SQLite file always, and on PostgreSQL too when DEALFLOW_TEST_DATABASE_URL is set (.ci/run sets it).
test: venv lint
	$(BIN)/python -m pytest -q -p no:cacheprovider
	@echo "Again on SQLite, every engine keeping its workflows between commands (every dump verified):"
	DEALFLOW_TEST_DATABASE_URL= DEALFLOW_TEST_WORKFLOW_CACHE=8 $(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
