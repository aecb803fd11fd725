# The one entry point for people and CI. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ENV ?= dev
REGION ?= eu-west-1
VENV := .venv
TOOLS := .venv-tools
PYTHON := $(VENV)/bin/python
SAM := $(TOOLS)/bin/sam
# checkov in a venv of its own: its dependencies clash with the SAM CLI's pins.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
PYTEST := $(PYTHON) -m pytest
# The slowest tests are printed at the end of each run: where CI's minutes go, visible in its log.
PYTEST_ARGS ?= --durations=15
ASL_VALIDATOR := asl-validator@4.0.0
STATE_MACHINES := $(sort $(wildcard statemachines/*.asl.json))
# Job code version: <UTC date>-<git describe --always --dirty>; evaluated once per make run.
VERSION := $(shell scripts/job_version.sh)

# pyenv shims only answer for active versions; this makes python3.11 and python3.13 visible.
export PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= $(REGION)

.PHONY: help setup test test-unit test-spark test-template test-statemachine test-e2e lint \
	build package-jobs deploy verify-aws demo bench calibrate clean distclean

help:
	@echo "make setup              create/update .venv (Python 3.11), .venv-tools (Python 3.13, SAM CLI) and .venv-checkov"
	@echo "make demo               run the whole pipeline locally over the sample days"
	@echo "make test               the whole suite (unit, spark, template, statemachine, e2e)"
	@echo "make test-unit|test-spark|test-template|test-statemachine|test-e2e   one layer"
	@echo "make lint               ruff (with a complexity ceiling), mypy, function length, sam validate --lint, checkov, asl-validator"
	@echo "make build              sam build (every function and the layer)"
	@echo "make package-jobs       build/jobs/<version>/ (Spark job code as published)"
	@echo "make deploy ENV=dev     publish the job code and deploy the stack (ENV=dev|prod)"
	@echo "make verify-aws         deploy a throwaway stack to a sandbox account, run a sample day, check, tear down (never in CI; README)"
	@echo "make bench              benchmarks (figures, not assertions)"
	@echo "make calibrate          every dataset's job and rules over every real file (/work/shared/data); fails on a failing day"
	@echo "make clean / distclean  remove build outputs / also the virtualenvs"

# --- environments ----------------------------------------------------------------------------
# Idempotent: each venv carries a stamp with its requirements file's sha256.
setup:
	@scripts/ensure_venv.sh $(VENV) 3.11 requirements-dev.txt
	@scripts/ensure_venv.sh $(TOOLS) 3.13 requirements-tools.txt
	@scripts/ensure_venv.sh $(CHECKOV_VENV) 3.13 requirements-checkov.txt

# --- tests -----------------------------------------------------------------------------------
# pytest exits 5 when a layer has no tests yet; that is not a failure of the layer.
define run_pytest
	$(PYTEST) $(1) $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "no tests in $(1)" || exit $$rc; }
endef

# The end-to-end layer runs in its own processes: its local stack keeps one moto and imports the
# real handlers with the template's environment, which must not meet the other layers' mocks
# and handler modules (imported there with test environments).
# Every layer runs on two workers (pytest-xdist; CI has two cores and the layers are CPU-bound).
# The Spark and end-to-end layers keep each module on one worker (--dist loadfile: its module
# fixtures are built once); each worker has its own Spark session, or its own local deployment
# (moto, warehouse, warm Spark). Measured on this 2-core machine: Spark layer 14:55 (19:19 in
# one process), end-to-end 17:05 (19:10 on CI in one process).
XDIST := -n 2
test: setup
	$(PYTEST) $(PYTEST_ARGS) $(XDIST) tests/unit tests/template tests/statemachine
	$(PYTEST) $(PYTEST_ARGS) $(XDIST) --dist loadfile tests/spark
	$(PYTEST) $(PYTEST_ARGS) $(XDIST) --dist loadfile tests/e2e

test-unit: setup
	$(call run_pytest,tests/unit)

test-spark: setup
	$(call run_pytest,tests/spark)

test-template: setup
	$(call run_pytest,tests/template)

test-statemachine: setup
	$(call run_pytest,tests/statemachine)

test-e2e: setup
	$(call run_pytest,tests/e2e)

# --- lint ------------------------------------------------------------------------------------
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PYTHON) scripts/check_function_length.py
	$(SAM) validate --lint --region $(REGION)
	$(CHECKOV) --config-file .checkov.yaml
	@command -v npx >/dev/null || { echo "error: npx (Node.js/npm) is needed for $(ASL_VALIDATOR)" >&2; exit 1; }
	@for sm in $(STATE_MACHINES); do \
		echo "npx --yes $(ASL_VALIDATOR) --json-path $$sm"; \
		npx --yes $(ASL_VALIDATOR) --json-path "$$sm"; \
	done

# --- build and deploy ------------------------------------------------------------------------
# sam build needs python3.13 (the Lambda runtime) on PATH: .venv-tools/bin has it.
build: setup
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(SAM) build --parallel --cached

package-jobs: setup
	$(PYTHON) scripts/package_jobs.py $(VERSION)

deploy: build package-jobs
	@case "$(ENV)" in dev|prod) ;; *) echo "error: ENV must be dev or prod" >&2; exit 1;; esac
	$(PYTHON) scripts/deploy.py --env $(ENV) --version $(VERSION) --sam $(SAM)

# A real end-to-end check in a sandbox account; never run by CI. It refuses (exit 2) without
# credentials or without VERIFY_AWS_ACCOUNT / VERIFY_AWS_REGION confirming the target (README,
# "Verify in a sandbox account"). VERIFY_ARGS passes options: --keep, --day, --teardown STACK.
VERIFY_ARGS ?=
verify-aws: package-jobs
	$(PYTHON) -m verify_aws --version $(VERSION) --sam $(SAM) $(VERIFY_ARGS)

# --- local -----------------------------------------------------------------------------------
demo: setup
	$(PYTHON) -m local_runtime demo

bench: setup
	@if [ -f bench/__main__.py ]; then \
		$(PYTHON) -m bench; \
	else \
		shopt -s nullglob; files=(bench/bench_*.py); \
		[ $${#files[@]} -gt 0 ] || { echo "no benchmarks in bench/ yet"; exit 0; }; \
		for f in "$${files[@]}"; do echo "== $$f"; $(PYTHON) "$$f"; done; \
	fi

# The calibration sweeps (not in `make test`: minutes per dataset); CALIBRATE_DATASETS narrows.
CALIBRATE_DATASETS ?= online_retail bank_transactions web_logs shop_events
calibrate: setup
	@rc=0; for d in $(CALIBRATE_DATASETS); do \
		echo "== $$d"; $(PYTHON) bench/calibrate_rules.py --dataset $$d || rc=1; \
	done; exit $$rc

clean:
	rm -rf .aws-sam build .pytest_cache .ruff_cache .hypothesis spark-warehouse metastore_db derby.log
	find . -path ./$(VENV) -prune -o -path ./$(TOOLS) -prune -o -path ./$(CHECKOV_VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(TOOLS) $(CHECKOV_VENV)
