# Two commands: `make bench` and `make test`. Both create .venv, install the package (building the
# Cython kernels for this CPU) and then run the benchmark report or the test suite.
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SOURCES := $(wildcard kernels/cpu/*.pyx kernels/cpu/*.pxd kernels/cpu/*.h benchmarks/*.pyx benchmarks/*.h) setup.py pyproject.toml
# PyTorch (CPU build) is the baseline of the benchmarks and a cross-check in the tests; optional.
TORCH   ?= torch==2.13.0
BENCH_ARGS ?=
TEST_ARGS  ?=

.PHONY: all build test bench clean nvcc-check

all: build

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=64" wheel "Cython>=3" "numpy>=2"
	$(PY) -m pip install -q --no-build-isolation -e ".[test,bench]"
	-$(PY) -m pip install -q "$(TORCH)" || echo "PyTorch not installed: baseline comparisons will be skipped"
	touch $@

# Incremental rebuild of the extensions after the editable install (only changed .pyx recompile).
build: $(STAMP) $(SOURCES)
	$(PY) setup.py -q build_ext --inplace -j 2

test: build
	$(PY) -m pytest -q -p no:cacheprovider $(TEST_ARGS) tests

bench: build
	$(PY) -m benchmarks $(BENCH_ARGS)

# Every CUDA source must compile for Hopper (sm_90); run where nvcc exists (CI runs it when it does).
nvcc-check:
	@set -e; for f in kernels/cuda/*.cu; do \
	  [ -e "$$f" ] || continue; \
	  echo "nvcc $$f"; nvcc -arch=sm_90 -std=c++17 --ptx -o /dev/null "$$f"; \
	done

clean:
	rm -rf build *.egg-info kernels/cpu/*.so kernels/cpu/*.c kernels/cpu/*.html benchmarks/*.so benchmarks/*.c
