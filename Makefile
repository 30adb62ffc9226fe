# Sentinelle — common commands. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: help venv demo test lint unit integration bench clean

help:            ## list the commands
	@grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*##/\t/'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed  ## create .venv and install Sentinelle with its test tools

demo: venv       ## install, then replay real mail through the whole pipeline (embedded broker, DNS, SMTP)
	$(VENV)/bin/sentinelle demo

test: lint       ## install, then run lint, type checks and every test tier (starts what tests need)
	$(PY) -m pytest -q

lint: venv       ## ruff and mypy over the code, tests, tools and benchmarks
	$(VENV)/bin/ruff check streams tests tools bench
	$(VENV)/bin/mypy

unit: venv       ## fast tests of the pure cores only
	$(PY) -m pytest -q tests/unit tests/contract tests/agents streams

integration: venv  ## tests against a real broker, DNS server and SMTP sink
	$(PY) -m pytest -q tests/integration

bench: venv      ## detection benchmark on the Enron timelines, and the embedded-broker comparison
	$(PY) bench/detect.py --bursts 50 --demo streams/replay/data/demo-replay.jsonl.gz
	$(PY) bench/broker_compare.py

clean:           ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
