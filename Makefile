# Entry points on a fresh clone: `make demo` (ARGS=... passes flags), `make test` (everything: what CI runs),
# `make test-fast` (the inner loop: without the slow end-to-end tests), `make lint`, `make figure`.
# Each creates .venv when missing and installs the project into it. TORCH is installed first so that pip never
# swaps it: on a CPU-only machine point TORCH_INDEX at a CPU wheel index
# (e.g. https://download.pytorch.org/whl/cpu) to avoid a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo figure test test-fast lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	# --no-deps: imagecorruptions pins the GUI opencv build, torchattacks torchvision. The first ships the frost
	# photographs and is a reference the corruption tests read; the second cross-checks the attacks in the tests
	$(BIN)/pip install --no-deps "imagecorruptions==1.1.2" "torchattacks==3.5.1"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python recipes/demo.py $(ARGS)

figure: $(STAMP)
	$(BIN)/python tools/path_figure.py

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
