# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: demo test lint typecheck unit package bench soak lock clean

# Exact versions come from the lock file; the project itself is installed on top without resolving again.
$(STAMP): pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# make demo PLAYGROUND_PORT=56160 CONTROL_PORT=56161 when the default ports are taken
PLAYGROUND_PORT ?= 56150
CONTROL_PORT ?= 56151

demo: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m sandbox.demo --playground-port $(PLAYGROUND_PORT) --control-port $(CONTROL_PORT)

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -q

package: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m bot.packaging --out build/rufpool.zip

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.voicemail_memory
	$(BIN)/python -m bench.webhooks

# 1,000 mails, Graph and Teams faults, three SIGKILLs of the bot: lost, duplicate and dead letters must be 0.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# Re-resolve both lock files from pyproject.toml (newest allowed releases, for CPython 3.11 on Linux).
LOCK := $(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	--no-header --annotation-style line
lock: $(STAMP)
	$(LOCK) pyproject.toml -o requirements/prod.txt
	$(LOCK) pyproject.toml --extra dev -o requirements/dev.txt

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache build
