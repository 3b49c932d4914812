# Two commands on a fresh machine: `make train` and `make test`. Each creates .venv (if missing) and
# installs the project into it (editable, with test extras) first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lit_gans-installed
# torch/torchvision pinned for the install step only (constraints.txt): a fresh venv never pulls a
# different multi-GB build. pyproject.toml keeps loose ranges for users elsewhere.
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install browser train test test-fast test-perf figures tensorboard lint format clean gpu-check gpu-check-dry wheels official

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || { echo "make: creating $(VENV) ($(PYTHON) -m venv)"; $(PYTHON) -m venv $(VENV); }
	@echo "make: installing lit_gans[test] into $(VENV) with pip (about 2 min the first time; pip's log: $(VENV)/install.log)"
	@$(PIP_INSTALL) -e '.[test]' > $(VENV)/install.log 2>&1 || { tail -n 20 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

## Train the default model (StarGAN v2) on the built-in shapes data, ~5 min on a 2-core CPU; more overrides: make train ARGS="trainer.max_epochs=30"
train: $(STAMP)
	$(PY) train.py experiment=quickstart $(ARGS)

## Run the whole test suite (what CI runs)
test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

## Debian's Chromium for the web page's browser test (as root with apt-get; else that test is skipped, saying why)
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && echo "make: installing Debian's chromium for tests/test_serve_browser.py (apt-get, a few minutes once)" \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: /usr/bin/chromium is missing and could not be installed: tests/test_serve_browser.py will skip"; }

## The suite without tests marked slow
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not perf" $(PYTEST_ARGS)

## Timed throughput checks (data loaders), on this machine
test-perf: $(STAMP)
	$(PY) -m pytest -m perf $(PYTEST_ARGS)

## Regenerate the README figures (sample grid, curves, judge and hallmarks per seed) from quickstart runs, seeds 0 1 2 (SEEDS=...)
figures: $(STAMP)
	PY=$(PY) bash scripts/make_figures.sh

## One-shot GPU check (scripts/gpu_check.sh): every model x precision x eager/compiled, DDP, speed vs the official StarGAN v2
gpu-check: $(STAMP)
	PY=$(PY) bash scripts/gpu_check.sh $(ARGS)

## The same plan on this CPU at tiny sizes (proves the script; no GPU figures)
gpu-check-dry: $(STAMP)
	PY=$(PY) bash scripts/gpu_check.sh --dry-run $(ARGS)

## Offline wheels for a GPU machine without hydra/omegaconf/antlr4/munch (git-ignored wheels/, carried by the device run)
GPU_CHECK_WHEELS := hydra-core==1.3.8 omegaconf==2.3.1 munch==4.0.0
wheels: $(STAMP)
	@mkdir -p wheels
	$(PY) -m pip download --disable-pip-version-check --no-deps --only-binary=:all: -d wheels $(GPU_CHECK_WHEELS)
	$(PY) -m pip wheel --disable-pip-version-check --no-deps -w wheels antlr4-python3-runtime==4.9.3

## The official StarGAN v2 code for the speed comparison, into git-ignored third_party/ (CC BY-NC: never committed)
STARGAN_V2_REPO ?= https://github.com/clovaai/stargan-v2
official:
	@rm -rf third_party/stargan-v2 && mkdir -p third_party
	git clone -q --depth 1 $(STARGAN_V2_REPO) third_party/stargan-v2 || test -f third_party/stargan-v2/core/solver.py
	rm -rf third_party/stargan-v2/.git third_party/stargan-v2/assets
	@test -f third_party/stargan-v2/core/solver.py && echo "official code in third_party/stargan-v2 ($$(du -sh third_party/stargan-v2 | cut -f1))"

## TensorBoard over every run (outputs/ and multirun/)
tensorboard: $(STAMP)
	@mkdir -p outputs multirun
	$(VENV)/bin/tensorboard --logdir_spec outputs:outputs,multirun:multirun $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lit_gans tests train.py

format: $(STAMP)
	$(VENV)/bin/ruff format lit_gans tests train.py

## Remove run outputs and caches (keeps .venv)
clean:
	rm -rf outputs multirun lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
