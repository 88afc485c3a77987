# The two commands: `make up` (deploy the default stack) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= venv
STACK ?= dev
STATE_DIR ?= $(CURDIR)/.pulumi-state
PY := $(VENV)/bin/python

.PHONY: up preview destroy test unit e2e bench venv dev-venv deps clean lint config-docs local-machines local-machines-destroy

# What `pulumi up` needs (requirements.txt), and apart from it what the tests,
# the benchmark and the local machines need (requirements-dev.txt).
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.dev-installed

# Pulumi's local file backend unless the user chose another (PULUMI_BACKEND_URL).
# $(2): what runs before pulumi: scripts/prepare-stack.sh selects or creates the
# stack, offers a key pair and names every decision left; destroy only selects.
# The stack nobody chose (STACK left at its default): prepare-stack.sh may then
# offer the local stack on a machine without AWS credentials.
STACK_DEFAULTED := $(if $(filter file,$(origin STACK)),1,)

define pulumi_stack
	@command -v pulumi >/dev/null || { echo "The Pulumi CLI is not installed: see https://www.pulumi.com/docs/install/ (e.g. 'curl -fsSL https://get.pulumi.com | sh'), then run make $@ again."; exit 1; }
	@if [ -z "$$PULUMI_BACKEND_URL" ]; then mkdir -p "$(STATE_DIR)"; fi
	export PULUMI_BACKEND_URL="$${PULUMI_BACKEND_URL:-file://$(STATE_DIR)}"; \
	  $(2) && pulumi $(1) --stack "$(STACK)"
endef

up: venv
	$(call pulumi_stack,up,PEGASUS_STACK_DEFAULTED=$(STACK_DEFAULTED) ./scripts/prepare-stack.sh "$(STACK)")

preview: venv
	$(call pulumi_stack,preview --diff,PEGASUS_STACK_DEFAULTED=$(STACK_DEFAULTED) ./scripts/prepare-stack.sh "$(STACK)")

destroy: venv
	$(call pulumi_stack,destroy,pulumi stack select "$(STACK)")

# A cluster on this machine (root, systemd-nspawn): a few local machines listed
# as your own servers in stacks/Pulumi.local.yaml, for `make up STACK=local`.
local-machines: dev-venv
	$(PY) -m tools.localcloud create $(if $(PACKAGE),--package "$(PACKAGE)")

local-machines-destroy: dev-venv
	$(PY) -m tools.localcloud destroy

deps:
	./scripts/install-test-deps.sh

# Everything: unit, program (mocks), kazoo against a real ZooKeeper, and the
# end-to-end suite on local machines (it explains its skip where the machine
# cannot host them: not root, no systemd-nspawn).
test: deps dev-venv lint
	$(PY) -m pytest -ra tests

# Code health (pyproject.toml): ruff everywhere, mypy on the program.
lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: dev-venv
	$(PY) -m pytest -ra tests/unit tests/program

e2e: deps dev-venv
	$(PY) -m pytest -ra -m e2e tests/e2e

# BASELINE=<another checkout>: also time that tree's program, side by side.
bench: dev-venv
	BASELINE="$(BASELINE)" $(PY) -m bench

# docs/config.md's table of keys, from their declarations (components/spec/keys.py).
config-docs: venv
	$(PY) -c 'from pathlib import Path; from components.spec.keys import with_reference as w; \
	  p = Path("docs/config.md"); p.write_text(w(p.read_text()))'

clean:
	rm -rf $(VENV) .tools .pytest_cache
