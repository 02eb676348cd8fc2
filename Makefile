# agentmesh developer commands. Needs only python3 (>= 3.11); everything else goes into .venv.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_DIR := proto
PROTO_OUT := agentmesh/v1
PROTOS := $(wildcard $(PROTO_DIR)/agentmesh/v1/*.proto)
PYTEST_ARGS ?=

.PHONY: help setup env proto fmt lint typecheck check test run bench bench-all clean distclean

help:
	@echo "make run        start the whole mesh locally (creates .venv and .env as needed)"
	@echo "make check      the fast loop (under a minute): lint + typecheck + tests/unit + tests/repo"
	@echo "make test       lint + typecheck + the whole pytest suite (PYTEST_ARGS='-k x' to narrow)"
	@echo "make fmt        ruff check --fix, then ruff format: what make lint finds, fixed where ruff can"
	@echo "make setup      create .venv and install agentmesh with its dev extras"
	@echo "make env        generate JWT_SECRET_KEY into .env if it has none (never overwrites)"
	@echo "make proto      regenerate agentmesh/v1 from proto/ (commit the result)"
	@echo "make bench      the headline figures (overhead, TTFT, worker start spread, req/s, CPU) beside their floor"
	@echo "make lint | typecheck | bench-all | clean | distclean   (pre-commit install: the same ruff and mypy per commit)"

setup: $(STAMP)

# Re-installs only when pyproject.toml changed (or .venv was removed).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "agentmesh needs Python >= 3.11; '$(PYTHON)' is missing or older (try make PYTHON=python3.11 ...)" >&2; exit 1; }
	@test -x $(VPY) || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV) \
		|| { rm -rf $(VENV); echo "'$(PYTHON) -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }; }
	$(VPY) -m pip install --disable-pip-version-check --progress-bar off -q -e '.[dev]'
	@touch $@

env:
	@$(PYTHON) scripts/ensure_env.py

proto: setup
	rm -f $(PROTO_OUT)/*_pb2.py $(PROTO_OUT)/*_pb2.pyi $(PROTO_OUT)/*_pb2_grpc.py $(PROTO_OUT)/*_pb2_grpc.pyi \
		$(PROTO_OUT)/agentmesh.binpb
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VPY) -m grpc_tools.protoc -I$(PROTO_DIR) \
		--python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. \
		--include_source_info --descriptor_set_out=$(PROTO_OUT)/agentmesh.binpb $(PROTOS)

# Fixes first, then formatting, so what --fix rewrites is formatted too (ruff's own advice).
fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

typecheck: setup
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy scripts console_client.py

# Unit tests are pure, repository tests check the files around the code (manifests, compose, stubs, the
# launcher); service, gateway and e2e tests start servers and are for `make test` (CONTRIBUTING.md has timings).
# No test in them uses schemathesis or hypothesis: not loading those plugins saves ~4 s of CPU at start.
check: lint typecheck
	$(VPY) -m pytest -p no:schemathesis -p no:hypothesispytest tests/unit tests/repo $(PYTEST_ARGS)

test: lint typecheck
	$(VPY) -m pytest $(PYTEST_ARGS)

run: setup env
	$(VPY) scripts/run_local.py

# Each bench/<name>.py runs as `python -m bench.<name>` (they import tests.support); BENCH_ARGS go to each.
# bench/_<name>.py are helpers the benches share.
BENCH_ARGS ?=
bench: setup
	$(VPY) -m bench.headline $(BENCH_ARGS)

bench-all: setup
	@shopt -s nullglob; ran=0; \
	for b in bench/*.py; do \
		name=$$(basename "$$b" .py); case "$$name" in __init__|_*) continue;; esac; \
		echo "== bench.$$name"; $(VPY) -m "bench.$$name" $(BENCH_ARGS); ran=1; \
	done; \
	[ $$ran = 1 ] || echo "no benchmarks in bench/"

clean:
	rm -rf .run build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

# Also removes the virtualenv; .env (your secret) is always kept.
distclean: clean
	rm -rf $(VENV)
