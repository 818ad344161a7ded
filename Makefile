# Two commands on a fresh clone: `make run` and `make test`. Needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask

.PHONY: run test lint audit install install-dev serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

.env:
	$(PYTHON) scripts/init_env.py

serve: install .env
	mkdir -p instance
	$(FLASK) db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py app:app

# SCHEDULER_EMBEDDED=1: this one process also runs scheduled syncs and health checks (no extra process).
run: install .env
	mkdir -p instance
	$(FLASK) db upgrade
	SCHEDULER_EMBEDDED=1 $(FLASK) run --host 127.0.0.1 --port 5000

lint: install-dev
	$(BIN)/ruff check .

# Static security checks of our code, and the pinned dependencies against the advisory databases
# (an unreachable database is announced, not failed: see scripts/audit_dependencies.py).
audit: install-dev
	$(BIN)/bandit -r crm -q
	$(BIN)/python scripts/audit_dependencies.py requirements.txt

# Two workers (the machine has two cores, and many tests wait on sockets and timers); a file's tests
# stay on one worker (--dist loadfile), and each worker has its own PostgreSQL database.
PYTEST_WORKERS ?= 2

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
