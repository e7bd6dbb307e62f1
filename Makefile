# Two entry points: `make run` (the main job) and `make test` (install + test suite).
# Both create .venv on first use. TORCH picks the PyTorch build: the default is the CPU wheel
# that these machines carry; on a CUDA machine use e.g. `make test TORCH=torch`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
SPEC ?=
BIN := $(VENV)/bin
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: run test test-gpu data lint bench notebooks clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

run: $(BIN)/.installed
	$(BIN)/pyro-bbb run $(SPEC)

data:
	@test -d $(FASHION_MNIST) || { \
	  echo "installing Debian's dataset-fashion-mnist into $(FASHION_MNIST)"; \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }

test: $(BIN)/.installed data
	$(BIN)/python -m pytest -q

# On a CUDA machine (e.g. `make test-gpu TORCH=torch`): the tests of tests/gpu alone (the
# captured training step on a real CUDA graph); `make test` there runs them too.
test-gpu: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests/gpu

# blitz and bayesian-torch declare torchvision, which the layers we time never import: install
# them without dependencies so that the CPU torch build stays as it is.
bench: $(BIN)/.installed
	$(BIN)/python -m pip install -q --no-deps blitz-bayesian-pytorch==0.2.8 bayesian-torch==0.5.0
	$(BIN)/python benchmarks/speed.py --markdown --repeats 9

# Execute every notebook at full size and store its outputs (figures) in place.
notebooks: $(BIN)/.installed
	for nb in notebooks/*.ipynb; do \
	  $(BIN)/python -c "import nbclient, nbformat, sys; nb = nbformat.read(sys.argv[1], 4); \
	  nbclient.NotebookClient(nb, timeout=3600, kernel_name='python3').execute(); \
	  nbformat.write(nb, sys.argv[1])" "$$nb" || exit 1; done

lint: $(BIN)/.installed
	$(BIN)/ruff check pyro_bbb tests benchmarks

clean:
	rm -rf $(VENV) runs
