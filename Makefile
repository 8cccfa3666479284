# pixelprune developer tasks (GNU make). `make` alone lists the targets.
#
# Pipeline pattern: `make out/NAME.arrow` compresses the folder data/NAME/ and
# redoes it only when a file under data/NAME/ is added, removed or changed.
#   make out/docs.arrow PIXELPRUNE_FLAGS='--tau 0.02'
# Make does not track PIXELPRUNE_FLAGS or the code itself: after changing
# either, force a rebuild with `make -B out/NAME.arrow`. File names with
# spaces under data/ cannot be make prerequisites; rename them.

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test
PIXELPRUNE_FLAGS ?=
# The hf and torchvision extras need torch: this exact pair is on the build
# machines' disks (torchvision 0.29.1 is built for torch 2.14.1; the registry's
# torchvision for the CPU torch 2.13.0 does not import with it). Installed before
# the extras so that pip never picks another torch.
TORCH ?= torch==2.14.1 torchvision==0.29.1

BIN := $(VENV)/bin
comma := ,
# One stamp per set of extras, so `make test EXTRAS=test,ray` installs ray
# once and a later plain `make demo` does not reinstall anything heavy.
STAMP := $(VENV)/.installed-$(or $(subst $(comma),-,$(EXTRAS)),base)
# The demo needs only the base package: any install there is will do, else the base one alone.
DEMO_STAMP := $(or $(firstword $(wildcard $(VENV)/.installed-*)),$(VENV)/.installed-base)

.DEFAULT_GOAL := help
.PHONY: help install demo test lint bench bench-model clean distclean

help: ## List the targets.
	@echo "usage: make TARGET [PYTHON=python3] [VENV=.venv] [EXTRAS=test] [PIXELPRUNE_FLAGS=...]"
	@echo
	@grep -E '^[a-zA-Z/%._-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([^:]+):.*## (.*)/\1\t\2/' \
		| awk -F '\t' '{ printf "  %-18s %s\n", $$1, $$2 }'

install: $(STAMP) ## Create the venv, install pixelprune[EXTRAS] editable, warm Numba's cache.

# Numba compiles the coder kernels on first use (several seconds) and caches
# them next to the sources (cache=True): `pixelprune warmup` fills that cache.
# The stamp's name says the extras: .installed-test-hf is '.[test,hf]', .installed-base is '.'.
$(VENV)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(filter hf torchvision train,$(subst -, ,$*)),$(BIN)/python -m pip install --quiet $(TORCH))
	$(BIN)/python -m pip install --quiet -e '.$(if $(filter-out base,$*),[$(subst -,$(comma),$*)])'
	$(BIN)/pixelprune warmup
	touch $@

# The demo names the sample images one by one: samples/ also holds samples.parquet,
# the same ten pictures as a Parquet table, and a folder run would code each twice.
DEMO_OUT ?= out
SAMPLE_IMAGES := $(sort $(wildcard samples/*.png samples/*.jpg))

demo: $(DEMO_STAMP) ## Install the base package, compress the ten sample images to out/samples.arrow, summarise it.
	mkdir -p $(DEMO_OUT)
	cd samples && $(abspath $(BIN))/pixelprune compress $(notdir $(SAMPLE_IMAGES)) -o $(abspath $(DEMO_OUT))/samples.arrow --overwrite
	$(BIN)/pixelprune stats $(DEMO_OUT)/samples.arrow --table summary

test: install ## Run the test suite (the command README and .ci/run use).
	$(BIN)/python -m pytest -q

lint: install ## Check style and likely bugs (ruff) and types (mypy), as configured in pyproject.toml.
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install ## Run the benchmarks in bench/ (ratios against baselines).
	$(BIN)/python bench/run.py

bench-model: ## Time the vision encoder + LLM prefill on pruned vs full inputs (installs the hf extra).
	$(MAKE) install EXTRAS=test,hf
	$(BIN)/python bench/model.py

clean: ## Remove out/, build artefacts and caches (keeps samples/ and the venv).
	rm -rf out/ build/ dist/ *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache bench/_work
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove the venv too.
	rm -rf $(VENV)

# out/NAME.arrow from data/NAME/: every file and folder under data/NAME is a
# prerequisite (second expansion runs `find` only for the target asked for),
# so an added, removed or edited image makes the output stale. The tool
# writes to a temporary file and renames, so an interrupted run leaves no
# half-written target; --overwrite because make has already judged staleness.
.SECONDEXPANSION:
out/%.arrow: $$(shell find data/$$* -print 2>/dev/null) | $(STAMP) ## Compress data/NAME/ into out/NAME.arrow (make out/NAME.arrow).
	@test -d data/$* || { echo "make: no folder data/$*/ to compress into $@" >&2; exit 2; }
	mkdir -p $(@D)
	$(BIN)/pixelprune compress data/$*/ -o $@ --overwrite --table summary $(PIXELPRUNE_FLAGS)
