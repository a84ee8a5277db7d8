# gs-jax: every user target installs what it needs first (`setup` is a no-op once the lock is installed).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
UV_VERSION := 0.5.11
LATEST := .venv-latest
# PyTorch peers of the benchmarks (benchmarks/peers/): their own venv, never a dependency of the library
PEERS       := .venv-peers
PEERS_PY    := $(PEERS)/bin/python
PEERS_PKGS  := torch==2.13.0 numpy==2.4.6
PEERS_STAMP := $(PEERS)/.installed
# the core's tests, run by `make test-latest` on the newest jax without neural-tangents
LATEST_TESTS := tests/test_ntk.py tests/test_nt_compat.py tests/test_features.py tests/test_dynamics.py \
                tests/test_fixed_points.py tests/test_precision.py tests/test_trainer.py tests/test_metrics.py \
                tests/test_adapters.py tests/test_multiclass.py
# `make test-package`: the newest Python that runs here (override: make test-package PYTHON_NEWEST=python3.14)
PYTHON_NEWEST ?= $(shell for p in python3.14 python3.13 python3.12 python3.11 python3; do \
                   $$p -c 'import venv' 2>/dev/null && { echo $$p; break; }; done)
PACKAGE_VENV  := .venv-package
ARGS   ?=

# test processes for `make test` (pytest-xdist; one per core here; whole files per process, so module fixtures are
# built once)
TEST_WORKERS ?= 2
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: help setup setup-gpu device-check lock test test-latest test-package test-slow lint format theorem2 primal-dual train-cmnist moons robustness robustness-table robustness-fig2 worst-group worst-group-calibrate starvation starvation-controlled notebooks \
        data-mnist data-fashion data-cifar data-celeba bench bench-jax bench-peers clean

help:  ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv and install the locked stack + gs_jax (editable); no-op when the lock is unchanged

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@# sync = exactly the lock: packages of an older lock (TensorFlow & co.) are removed, nothing is re-resolved
	$(VENV)/bin/uv pip sync -q --python $(PY) --require-hashes requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps --no-build-isolation -e .
	@touch $@
	@echo "setup: .venv ready"

setup-gpu: $(STAMP)  ## add jax's CUDA 12 plugin of the locked jax version (a Linux machine with an NVIDIA GPU)
	$(VENV)/bin/uv pip install -q --python $(PY) "jax[cuda12]==$$(sed -n 's/^jax==\([^ ]*\).*/\1/p' requirements.lock)"

device-check: setup-gpu  ## on a GPU machine: gpu tests, CMNIST 10-restart benchmark, NTK top-20 at n=20k, one table
	$(PY) benchmarks/device_check.py

lock:  ## re-resolve requirements.in into requirements.lock (exact versions + hashes)
	@test -x $(VENV)/bin/uv || { python3 -m venv $(VENV) && $(VENV)/bin/pip install -q uv==$(UV_VERSION); }
	$(VENV)/bin/uv pip compile -q requirements.in --override requirements-overrides.txt --python-version 3.11 \
	  --generate-hashes -o requirements.lock

test: $(STAMP)  ## fast test suite (< 10 min on 2 CPU cores; `slow` tests deselected); installs Fashion-MNIST first
	@$(MAKE) --no-print-directory data-fashion || echo "test: Fashion-MNIST could not be installed; its tests skip"
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)

test-latest:  ## the core's tests on the newest jax/flax/optax/diffrax (unlocked, no neural-tangents) in .venv-latest
	@test -x $(LATEST)/bin/python || python3 -m venv $(LATEST)
	$(LATEST)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(LATEST)/bin/uv pip install -q --python $(LATEST)/bin/python --upgrade -r requirements-latest.in
	$(LATEST)/bin/uv pip install -q --python $(LATEST)/bin/python --no-deps -e .
	@$(LATEST)/bin/python -c "import jax, flax, optax, diffrax; print('test-latest: jax', jax.__version__, \
	  '| flax', flax.__version__, '| optax', optax.__version__, '| diffrax', diffrax.__version__)"
	$(LATEST)/bin/python -m pytest -q $(LATEST_TESTS) $(ARGS)

test-package: $(STAMP)  ## the wheel in a fresh venv of the newest Python: `gs-jax theorem2:small` in an empty dir, the core's tests against it
	rm -rf $(PACKAGE_VENV) build/package && $(PY) -m pip wheel -q --no-deps --no-build-isolation -w build/package .
	$(PYTHON_NEWEST) -m venv $(PACKAGE_VENV)
	$(PACKAGE_VENV)/bin/pip install -q --disable-pip-version-check build/package/gs_jax-*.whl pytest
	@# from an empty directory, so that nothing of the checkout is imported
	d=$$(mktemp -d) && cd $$d && $(CURDIR)/$(PACKAGE_VENV)/bin/python -c "import sys, jax, flax, gs_jax; \
	  print('test-package: Python', sys.version.split()[0], '| jax', jax.__version__, '| flax', flax.__version__, \
	  '| gs_jax from', gs_jax.__file__)" && $(CURDIR)/$(PACKAGE_VENV)/bin/gs-jax --help >/dev/null \
	  && $(CURDIR)/$(PACKAGE_VENV)/bin/gs-jax theorem2:small >/dev/null && test -f runs/theorem2/latest/summary.json \
	  && echo "test-package: gs-jax theorem2:small wrote $$d/runs/theorem2/latest/"
	cd $$(mktemp -d) && $(CURDIR)/$(PACKAGE_VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir $(CURDIR) \
	  -c $(CURDIR)/pyproject.toml $(addprefix $(CURDIR)/,$(LATEST_TESTS) tests/test_commands.py) $(ARGS)

test-slow: $(STAMP)  ## only the slow tests (paper-scale runs)
	$(PY) -m pytest -q -m slow $(ARGS)

lint: $(STAMP)  ## ruff check + ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)  ## ruff format + autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

theorem2: $(STAMP)  ## Theorem 2 sweep: z2*, dz2*/ds1^2 (implicit + FD), Lemma 1, phase map -> runs/theorem2/latest
	$(PY) analysis/theorem2.py $(ARGS)

primal-dual: $(STAMP)  ## Fig. 5: primal vs dual trajectories with and without SD -> runs/primal_dual/latest
	$(PY) analysis/primal_dual.py $(ARGS)

train-cmnist: $(STAMP)  ## Colored MNIST Table 2 + Fig. 3 (ERM, SD, IRM, V-REx, oracle) -> runs/cmnist/latest
	$(PY) train/cmnist.py $(ARGS)

moons: $(STAMP)  ## two-moons Fig. 1 (a-d) + Appendix B grid -> runs/moons/latest
	$(PY) train/moons.py $(ARGS)

robustness: $(STAMP) data-fashion  ## Table 1 + Fig. 2 analogues on Fashion-MNIST (both parts, one summary) -> runs/robustness/latest
	$(PY) train/robustness.py $(ARGS)

robustness-table: $(STAMP) data-fashion  ## the Table 1 part alone (saturated ERM/SD, correct vs authors' attack) -> runs/robustness/latest
	$(PY) train/robustness.py --config.fig2.enabled=false $(ARGS)

robustness-fig2: $(STAMP) data-fashion  ## the Fig. 2 part alone (batch 1 × 40 epochs, 3 seeds, foolbox-2 margins) -> runs/robustness/latest
	$(PY) train/robustness.py --config.table.enabled=false $(ARGS)

worst-group: $(STAMP) data-fashion  ## Table 3 analogue: avg / worst-group acc of ERM, SD, controls, Group DRO, JTT, DFR (dominoes; CelebA via ARGS) -> runs/worst_group/latest
	$(PY) train/worst_group.py $(ARGS)

worst-group-calibrate: $(STAMP) data-fashion  ## ERM's worst group against the dominoes' ρ (picks the starved regime) -> runs/worst_group_calibrate/latest
	$(PY) train/worst_group.py --config configs/worst_group.py:calibrate $(ARGS)

starvation: $(STAMP)  ## the starvation monitor on Colored MNIST (ERM vs SD responses) + Theorem 2 on the network -> runs/starvation/latest
	$(PY) train/starvation.py $(ARGS)

starvation-controlled: $(STAMP)  ## make starvation + Theorem 2 controlled (one singular value moved, Eq. 5 / Eq. 17) -> runs/starvation/latest
	$(PY) train/starvation.py --config configs/starvation.py:controlled $(ARGS)

notebooks: $(STAMP)  ## pair every notebooks/*.py with a generated .ipynb (jupytext)
	$(VENV)/bin/jupytext --to ipynb notebooks/*.py

data-mnist: $(STAMP)  ## download the MNIST IDX files into GS_DATA_DIR (default data/mnist; needs internet)
	@$(PY) -m gs_jax.data.mnist download $${GS_DATA_DIR:-data/mnist} --dataset mnist

data-fashion: $(STAMP)  ## install Fashion-MNIST IDX files (Debian package, else download into data/fashion-mnist)
	@if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
	  echo "data-fashion: Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist"; \
	elif command -v apt-get >/dev/null && { apt-cache show dataset-fashion-mnist >/dev/null 2>&1 \
	     || { apt-get update -qq >/dev/null 2>&1 && apt-cache show dataset-fashion-mnist >/dev/null 2>&1; }; } \
	     && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null; then \
	  echo "data-fashion: Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist"; \
	else $(PY) -m gs_jax.data.mnist download data/fashion-mnist --dataset fashion-mnist \
	  && echo "data-fashion: use --config.data.dir=data/fashion-mnist"; fi

data-cifar: $(STAMP)  ## download CIFAR-10 and CIFAR-100 (python pickle batches) into GS_DATA_DIR (default data/; needs internet)
	@$(PY) -m gs_jax.data.cifar download $${GS_DATA_DIR:-data} --dataset cifar10
	@$(PY) -m gs_jax.data.cifar download $${GS_DATA_DIR:-data} --dataset cifar100

data-celeba: $(STAMP)  ## download CelebA (aligned images + attribute and partition lists) into GS_DATA_DIR/celeba (default data/; needs internet)
	@$(PY) -m gs_jax.data.celeba_download download $${GS_DATA_DIR:-data}/celeba

bench: $(STAMP) $(PEERS_STAMP)  ## gs-jax and its PyTorch peer back to back, one table (ratios, GFLOP/s, peak fraction, memory); ARGS=--quick: small sizes
	$(PY) benchmarks/side_by_side.py $(ARGS)

bench-jax: $(STAMP)  ## the gs-jax-only benchmarks under benchmarks/ (NTK backends, CMNIST, moons, robustness), each its own table
	@for b in benchmarks/*.py; do case $$b in */device_check.py|*/side_by_side.py) continue;; esac; \
	  echo "== $$b"; $(PY) $$b || exit 1; done

# PyTorch peers of the benchmarks (benchmarks/peers/): their own venv, never a dependency of the library.
# pip (not uv) so that a CPU wheel of torch already on the machine is used.
PEER_ARGS   ?=

$(PEERS_STAMP):
	python3 -m venv $(PEERS)
	$(PEERS)/bin/pip install -q --disable-pip-version-check $(PEERS_PKGS)
	@touch $@

bench-peers: $(STAMP) $(PEERS_STAMP)  ## PyTorch peers (cmnist, moons, ntk, pgd, fig2), one JSON line each; PEER_ARGS=--small: smoke run
	$(PY) benchmarks/peers/export_data.py
	$(PY) benchmarks/peers/export_data.py --skip-cmnist --skip-moons --fig2
	@for h in cmnist moons ntk pgd fig2; do echo "== benchmarks/peers/torch_$$h.py"; \
	  $(PEERS_PY) benchmarks/peers/torch_$$h.py $(PEER_ARGS) || exit 1; done

clean:  ## remove caches and generated notebooks (keeps .venv and runs/)
	rm -rf .pytest_cache .ruff_cache notebooks/*.ipynb
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
