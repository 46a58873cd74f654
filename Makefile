# Two commands: `make bench` and `make test`. Both create .venv, install the package (building the
# Cython kernels once per instruction set) and then run the benchmark report or the test suite.
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SOURCES := $(wildcard kernels/cpu/*.pyx kernels/cpu/*.pxd kernels/cpu/*.h benchmarks/*.pyx benchmarks/*.h) \
           kernels/cpu/isa.py setup.py pyproject.toml
# PyTorch (CPU build) is the baseline of the benchmarks and a cross-check in the tests; optional.
TORCH   ?= torch==2.13.0
BENCH_ARGS ?=
TEST_ARGS  ?=
# where `make test-wheel` builds the wheel and its clean virtual environment
WHEEL_DIR  ?= build/wheel-test

.PHONY: all build test test-isas test-wheel wheel bench clean nvcc-check

all: build

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=64" wheel "Cython>=3" "numpy>=2"
	$(PY) -m pip install -q --no-build-isolation -e ".[test,bench]"
	-$(PY) -m pip install -q "$(TORCH)" || echo "PyTorch not installed: baseline comparisons will be skipped"
	touch $@

# Incremental rebuild of the extensions after the editable install (only changed .pyx recompile).
build: $(STAMP) $(SOURCES)
	$(PY) setup.py -q build_ext --inplace

# The whole suite with the ISA chosen at import, then again under every other ISA this CPU runs.
test: build
	$(PY) -m pytest -q -p no:cacheprovider $(TEST_ARGS) tests
	$(MAKE) --no-print-directory test-isas

test-isas:
	@best=$$($(PY) -c "import kernels; print(kernels.cpu_info()['isa'])"); \
	for isa in $$($(PY) -c "import kernels; i = kernels.cpu_info(); print(' '.join(x for x in i['runnable'] if x in i['built']))"); do \
	  [ "$$isa" = "$$best" ] && continue; \
	  echo "== tests with CONVFORGE_ISA=$$isa"; \
	  CONVFORGE_ISA=$$isa $(PY) -m pytest -q -p no:cacheprovider $(TEST_ARGS) tests || exit 1; \
	done

# A wheel built as a user would (`pip wheel .`, build isolation), installed into a fresh virtual
# environment and tested from outside the source tree, so the installed package is what runs.
wheel:
	rm -rf $(WHEEL_DIR)/dist
	$(PYTHON) -m pip wheel -q --no-deps -w $(WHEEL_DIR)/dist .

test-wheel: wheel
	rm -rf $(WHEEL_DIR)/venv $(WHEEL_DIR)/run
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/python -m pip install -q --upgrade pip
	$(WHEEL_DIR)/venv/bin/python -m pip install -q "$$(ls $(WHEEL_DIR)/dist/*.whl)[test,bench]"
	-$(WHEEL_DIR)/venv/bin/python -m pip install -q "$(TORCH)" || echo "PyTorch not installed: torch cross-checks will be skipped"
	$(WHEEL_DIR)/venv/bin/python .ci/check_wheel.py $(WHEEL_DIR)/dist/*.whl
	mkdir -p $(WHEEL_DIR)/run && cp -r tests README.md pyproject.toml $(WHEEL_DIR)/run/
	cd $(WHEEL_DIR)/run && venv=$$(cd ../venv && pwd) && \
	  $$venv/bin/python -c "import kernels, cnn, os; assert 'site-packages' in kernels.__file__, kernels.__file__; print('testing', os.path.dirname(kernels.__file__), kernels.cpu_info()['isa'])" && \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider $(TEST_ARGS) tests

# The benchmarks' peers, pyproject.toml's [peers] extra (ONNX Runtime, OpenVINO, onnx), for `make bench`
# only: the requirements the installed package's metadata lists for the extra, so nothing is rebuilt.
PEERS_STAMP := $(VENV)/.peers-installed

$(PEERS_STAMP): $(STAMP)
	@$(PY) -c "from importlib.metadata import requires; print('\n'.join(r.split(';')[0] for r in requires('convforge') if 'extra == \"peers\"' in r))" > $(VENV)/peers-requirements.txt
	$(PY) -m pip install -q -r $(VENV)/peers-requirements.txt && touch $@ || echo "peers not installed: the benchmarks run without ONNX Runtime and OpenVINO"

bench: build $(PEERS_STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

# Every CUDA source must compile for Hopper (sm_90); run where nvcc exists (CI runs it when it does).
nvcc-check:
	@set -e; for f in kernels/cuda/*.cu; do \
	  [ -e "$$f" ] || continue; \
	  echo "nvcc $$f"; nvcc -arch=sm_90 -std=c++17 --ptx -o /dev/null "$$f"; \
	done

clean:
	rm -rf build *.egg-info kernels/cpu/*.c kernels/cpu/*.html benchmarks/*.c
	find kernels benchmarks -name '*.so' -delete
