# `make check` is exactly what CI runs (.ci/run calls it): lint, types, migrations on
# PostgreSQL, tests on SQLite and PostgreSQL. `make quick` is the day-to-day subset.
VENV ?= .venv
BIN := $(VENV)/bin
PG_HOST ?= 127.0.0.1
# A name of this run's own, so two checks on one PostgreSQL (two worktrees, CI jobs) never
# drop each other's database.
MIGRATION_DB := idnode_migration_check_$(shell python3 -c 'import secrets; print(secrets.token_hex(4))')
MIGRATION_URL := postgresql+asyncpg://postgres@$(PG_HOST)/$(MIGRATION_DB)
# Tests spread over one worker process per CPU (pytest-xdist); a worker takes the next test
# when it is free, so the long process-starting tests do not queue behind each other.
PARALLEL ?= --numprocesses=auto --dist=worksteal

.PHONY: check quick install lint types migrations test serve browser lighthouse messages

check: install lint types migrations test

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

types: install
	$(BIN)/mypy

# The schema comes only from migrations: upgrade, compare with the models, and prove the
# migrations reverse cleanly.
migrations: install
	psql -h $(PG_HOST) -U postgres -q -c 'DROP DATABASE IF EXISTS $(MIGRATION_DB)' -c 'CREATE DATABASE $(MIGRATION_DB)'
	IDNODE_DATABASE_URL=$(MIGRATION_URL) $(BIN)/alembic upgrade head
	IDNODE_DATABASE_URL=$(MIGRATION_URL) $(BIN)/alembic check
	IDNODE_DATABASE_URL=$(MIGRATION_URL) $(BIN)/alembic downgrade base
	IDNODE_DATABASE_URL=$(MIGRATION_URL) $(BIN)/alembic upgrade head
	psql -h $(PG_HOST) -U postgres -q -c 'DROP DATABASE $(MIGRATION_DB)'

test: install browser lighthouse
	$(BIN)/pytest $(PARALLEL)

# Lint, types and the tests that start no process, on SQLite only.
quick: install lint types
	$(BIN)/pytest $(PARALLEL) -m 'not slow' -k 'not postgresql' -q

# The dashboard's browser test drives Debian's chromium (never a downloaded one); install it
# when missing and we may (root with apt-get). Otherwise the test says how, or fails in CI.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make: installing chromium with apt-get (about 110 packages, 480 MB) for the dashboard's browser test"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

# Lighthouse for the product page's score test, from npm into tests/lighthouse (its lockfile
# pins it); it drives the same Debian chromium.
lighthouse: tests/lighthouse/node_modules/.installed

tests/lighthouse/node_modules/.installed: tests/lighthouse/package-lock.json
	@if command -v npm >/dev/null; then \
		cd tests/lighthouse && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "make: npm is missing, so the Lighthouse test will be skipped (apt-get install npm)"; fi

serve: install
	$(BIN)/idnode serve

# The pages' texts: add new msgids from app/templates to every catalogue in app/locales
# (then translate the empty msgstr lines). A new language: pybabel init ... -l <tag>.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -o $(VENV)/messages.pot --no-location --omit-header .
	$(BIN)/pybabel update -i $(VENV)/messages.pot -d app/locales --no-wrap --ignore-obsolete
