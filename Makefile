# The two commands users need: `make demo` and `make test`. Everything installs itself.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
INSTALLED := $(VENV)/.installed
AZURITE := .local/azurite/node_modules/.bin/azurite-blob

.PHONY: install test test-distributed demo bench lint lock clean

install: $(INSTALLED) $(AZURITE)

# The venv is rebuilt from the lock whenever the lock or the packaging changes.
$(INSTALLED): requirements.txt pyproject.toml simulator/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e . -e simulator
	@touch $@

$(AZURITE): scripts/install-azurite.sh
	bash scripts/install-azurite.sh

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# A whole CeleryExecutor Airflow on this machine (PostgreSQL and Redis from Debian, installed when
# missing; API server, scheduler, DAG processor, triggerer, two workers): a few minutes.
test-distributed: install
	$(PY) -m pytest -m distributed tests/distributed $(PYTEST_ARGS)

demo: install
	$(PY) scripts/demo.py $(DEMO_ARGS)

# Bytecode first: `uv pip sync` installs without .pyc files, and with PYTHONDONTWRITEBYTECODE set every
# process would compile Airflow, the Kubernetes client and boto3 from source (seconds per task start).
# restic (Debian package, 0.14) is installed by the benchmark with apt-get when missing, or it says how.
bench: install
	$(PY) -m compileall -q -j 0 $(VENV)/lib include dags > /dev/null || true
	$(PY) -m benchmarks $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Regenerate the lock from requirements.in (needs network access to the package index).
lock: $(INSTALLED)
	$(UV) pip compile requirements.in --python-version 3.11 --no-header -o requirements.txt

clean:
	rm -rf $(VENV) .local
