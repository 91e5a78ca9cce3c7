# The two commands of the README: `make run` serves the demo, `make test` checks everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The suite runs on the real PostgreSQL and Redis; `make test` starts no services itself.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pz
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1

.PHONY: run test lint typecheck pytest pytest-embedded chromium evaluate format lock clean

$(VENV)/.runtime-installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

## run: set up and serve the demo shop, the admin and the API on http://$(HOST):$(PORT)
run: $(VENV)/.runtime-installed
	@set -e; export DEBUG=$${DEBUG:-1}; \
	$(BIN)/python manage.py migrate --noinput; \
	$(BIN)/python manage.py collectstatic --noinput -v0; \
	$(BIN)/python manage.py demo_setup --base-url http://$(HOST):$(PORT); \
	if [ -n "$${REDIS_URL:-}" ]; then \
	  $(BIN)/celery -A config worker --beat --loglevel INFO --concurrency 2 & worker=$$!; \
	  $(BIN)/python manage.py consume_events & consumer=$$!; \
	  $(BIN)/python manage.py score_sessions & scorer=$$!; \
	  trap 'kill $$worker $$consumer $$scorer 2>/dev/null || true' EXIT; \
	fi; \
	echo "Serving on http://$(HOST):$(PORT)/ (Ctrl-C stops)"; \
	$(BIN)/granian --interface wsgi --workers 2 --blocking-threads 2 --workers-kill-timeout 5 --host $(HOST) --port $(PORT) config.wsgi:application

## test: lint, type-check, then the suite on PostgreSQL + Redis and its embedded part on SQLite
test: lint typecheck pytest pytest-embedded

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy .

pytest: $(VENV)/.dev-installed chromium
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

## chromium: the browser tests drive Debian's Chromium (never a downloaded one)
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	} || { echo "Could not install chromium: run 'apt-get install -y chromium' as root"; exit 1; }

pytest-embedded: $(VENV)/.dev-installed
	DATABASE_URL=sqlite:///var/embedded-tests.sqlite3 REDIS_URL= $(BIN)/pytest -m embedded $(PYTEST_ARGS)

## evaluate: the offline evaluation of the recommenders on the whole of UCI Online Retail, in a fresh database
EVALUATE_DATABASE ?= var/evaluate.sqlite3
evaluate: $(VENV)/.dev-installed
	@mkdir -p var && rm -f $(EVALUATE_DATABASE)
	DATABASE_URL=sqlite:///$(EVALUATE_DATABASE) REDIS_URL= $(BIN)/python manage.py migrate -v0
	DATABASE_URL=sqlite:///$(EVALUATE_DATABASE) REDIS_URL= $(BIN)/python manage.py load_online_retail \
	  $${PZ_DATASETS_DIR:-../shared/datasets}/online_retail/online_retail.csv.gz --no-progress
	DATABASE_URL=sqlite:///$(EVALUATE_DATABASE) REDIS_URL= $(BIN)/python manage.py evaluate $(EVALUATE_ARGS)

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## lock: re-pin requirements*.txt from requirements*.in
lock: $(VENV)/.dev-installed
	$(BIN)/pip-compile --quiet --strip-extras --no-header --no-emit-find-links --no-emit-index-url -o requirements.txt requirements.in
	$(BIN)/pip-compile --quiet --strip-extras --no-header --no-emit-find-links --no-emit-index-url -o requirements-dev.txt requirements-dev.in

clean:
	rm -rf $(VENV) var staticfiles .mypy_cache .ruff_cache .pytest_cache
