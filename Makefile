# Faro — the two commands a newcomer needs:
#   make run    set everything up and run Faro on its embedded default
#   make test   run the whole test suite (real PostgreSQL and Redis on 127.0.0.1)

PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCK_HASH := $(shell cat requirements.lock requirements-dev.lock pyproject.toml | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
PRISM := tools/prism/node_modules/.bin/prism

.PHONY: setup prism run test lint typecheck bench clean

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Faro needs Python 3.11, found " + sys.version' 
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# Prism serves Twilio's OpenAPI spec to the contract test; needs Node >= 20 and npm.
# Installed when missing, and again when the lock file changes (a new pin).
$(PRISM): tools/prism/package-lock.json
	npm ci --prefix tools/prism --no-audit --no-fund
	touch $@

prism: $(PRISM)

run: setup
	exec $(BIN)/faro run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy api campaigns workers tests bench

test: setup prism lint typecheck
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache tools/prism/node_modules
