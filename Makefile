# The two entry points of the README: `make demo` (the main job) and `make test`.
# Both create the virtualenv and install what they need, Debian packages included, idempotently.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-quick lint bench clean system-deps

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

system-deps:
	bash scripts/system-deps

demo: $(BIN)/.installed
	$(BIN)/vsplab run scenarios/three-tier.yaml

test: $(BIN)/.installed system-deps
	$(BIN)/ruff check daemonconf openflow vsd vsc vrs vsplab tests benchmarks
	$(BIN)/pytest -q

test-quick: $(BIN)/.installed
	$(BIN)/pytest -q -m 'not slow'

lint: $(BIN)/.installed
	$(BIN)/ruff check daemonconf openflow vsd vsc vrs vsplab tests benchmarks

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/vsd_api.py

clean:
	rm -rf $(VENV) *.egg-info
