# Everyday tasks. `make fast` is the while-you-work loop (no servers, no Java); `make test` is CI's lane.
PY ?= .venv/bin/python

.PHONY: setup fast test lint format bench demo

setup:  ## install contextgraph with every extra into .venv
	python3 -m pip install -q uv
	[ -x $(PY) ] || uv venv -q .venv
	uv pip install -q -p $(PY) -e '.[dev]'

fast:  ## every test that needs no server (no Neo4j, no Airflow, no Java): ~170 s of CPU, on 2 cores ~95 s
	$(PY) -m pytest -m "not neo4j and not airflow" -n 2

test:  ## the full lane, as CI runs it: starts a real Neo4j and a real Airflow
	$(PY) -m pytest

lint:  ## lint, format check and types
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy contextgraph tests

format:  ## format everything in place
	.venv/bin/ruff format .

bench:  ## a quick benchmark on both stores (see README: Benchmarks for the full run)
	$(PY) -m bench.run --sizes 1000 --stores both --no-fetch

demo:  ## the demo scenario in the embedded store, then a precedent question
	.venv/bin/contextgraph demo
