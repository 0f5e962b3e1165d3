# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch lies on local disk; installing it first keeps pip from pulling a
# multi-GB CUDA build when the package's own `torch` requirement is resolved. `[all]` brings
# every optional command (search, TensorBoard, the HOG baseline, export, ...); `dev` the test tools.
TORCH  ?= torch==2.13.0
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: run test lint setup dev fashion-mnist postgresql bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check $(TORCH)
	$(PIP) install --quiet --disable-pip-version-check -e '.[all]'
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PIP) install --quiet --disable-pip-version-check -e '.[all,dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/resnetlab train preset=quick

# Debian's dataset-fashion-mnist for the tests and benchmarks that use real data; skipped
# quietly when we are not root or apt cannot reach Debian (those tests then skip with a reason).
fashion-mnist:
	@if [ ! -d $(FMNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
		>/dev/null 2>&1 || echo "note: could not install dataset-fashion-mnist; its tests will skip"; \
	fi

# Debian's PostgreSQL server for the test of a search shared across machines; quiet, never failing
# the build (without it that test skips with a reason).
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
		>/dev/null 2>&1 || echo "note: could not install postgresql; the PostgreSQL search test will skip"; \
	fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks

test: $(VENV)/.dev fashion-mnist postgresql lint
	$(VENV)/bin/pytest -q

bench: setup fashion-mnist
	@for script in benchmarks/[!_]*.py; do echo "== $$script"; $(PY) $$script; done  # _name.py: shared helpers

clean:
	rm -rf $(VENV) runs .pytest_cache
