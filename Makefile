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

.PHONY: setup test demo proto helm-schema clean

setup:
	@bash scripts/bootstrap.sh

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

demo: setup
	@$(PY) -m outrider.cli.main demo

proto: setup
	@$(PY) -m outrider.proto.generate

clean:
	rm -rf .venv .pytest_cache

helm-schema: setup
	@$(PY) -m outrider.config.helm_schema
