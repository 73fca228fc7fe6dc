# Outrider: the two commands.
#   make demo   set up everything, then run the main job
#   make test   set up everything, then run the whole test suite
# Both create/update .venv/ idempotently (scripts/bootstrap.sh).

PY := .venv/bin/python
export DS_ACCELERATOR ?= cpu
export TORCH_EXTENSIONS_DIR ?= $(HOME)/.cache/outrider/torch_extensions
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
PYTEST_ARGS ?=
# Test files run on this many workers (pytest-xdist, a file's tests stay together): many
# tests wait on services they start, so two workers keep a 2-core box busy. 0: one process.
PYTEST_WORKERS ?= 2

.PHONY: setup test demo proto helm-schema catalog clean

setup:
	@bash scripts/bootstrap.sh

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
test: setup
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=30 $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

demo: setup
	@$(PY) -m outrider.cli.main demo

proto: setup
	@$(PY) -m outrider.proto.generate

clean:
	rm -rf .venv .pytest_cache

helm-schema: setup
	@$(PY) -m outrider.config.helm_schema

# Everything derived from the registries and the service list (docs/development.md,
# Generated files): outrider/config/algorithms.json and names.py, docs stubs, the Helm
# values schema and service list. A test fails when one is stale. NO_SETUP=1 skips the
# venv refresh (which also links new modules into the editable install).
catalog: $(if $(NO_SETUP),,setup)
	@$(PY) scripts/generate_catalogs.py
