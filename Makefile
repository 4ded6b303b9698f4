# The README's commands. Each one installs the stack first (seconds once the
# mmcv wheel is cached in ~/.cache/mmdrn/wheels).
# The environment scripts/install.sh installs into: $VENV, the active
# virtual/conda environment, or ./.venv.
VENV ?= $(or $(VIRTUAL_ENV),$(CONDA_PREFIX),.venv)
PYTHON ?= $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-slow lint

install:
	bash scripts/install.sh

demo: install
	$(PYTHON) tools/demo.py

test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-slow: install
	$(PYTHON) -m pytest -m slow $(PYTEST_ARGS)

lint:
	$(PYTHON) -m ruff check setup.py mmdrn tools tests configs
	$(PYTHON) -m ruff format --check setup.py mmdrn tools tests

# DRNs vs MMSegmentation's dilated ResNets on the demo data (README): nine
# trainings of 1,000 iterations, 59 minutes on a quiet 2-core CPU.
# `make compare COMPARE_ARGS=--quick` (3.4 minutes there) is a try-out.
COMPARE_ARGS ?=
.PHONY: compare
compare: install
	$(PYTHON) tools/analysis_tools/compare.py $(COMPARE_ARGS)
