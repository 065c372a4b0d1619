# Dealflow — `make run` serves the demo on http://127.0.0.1:5000, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
FLASK  := $(BIN)/flask --app app

.PHONY: venv run setup test lint serve clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

setup: venv
	$(FLASK) db upgrade
	$(FLASK) setup-demo

run: setup
	DEALFLOW_SCHEDULER=on $(FLASK) run --host 127.0.0.1 --port 5000

lint: venv
	$(BIN)/ruff check .

# Runs on a real SQLite file always, and on PostgreSQL too when DEALFLOW_TEST_DATABASE_URL is set (.ci/run sets it).
test: venv lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
