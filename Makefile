# rnn-cli: `make demo` installs and trains on the bundled Shakespeare; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
RNN     = $(VENV)/bin/rnn-cli
DEMO_MODEL ?= $(VENV)/demo-shakespeare.npz

.PHONY: venv demo test test-nojit test-cudasim test-gpu test-slow bench bench-gpu bench-quality bench-parity bench-venv bench-bigcorpus clean-cache clean

# pip's chatter goes to $(PIPLOG); on a failure its last lines are shown and make stops.
PIPLOG  = $(VENV)/pip.log
PIP     = $(PY) -m pip --disable-pip-version-check --no-input
pip_quiet = $(PIP) $(1) >>$(PIPLOG) 2>&1 || { tail -n 25 $(PIPLOG) >&2; \
	echo "make: pip $(1) failed (the whole log: $(PIPLOG))" >&2; exit 1; }

# in a variable: a literal comma would split $(call)'s arguments
TEST_CUDA = '.[test,cuda,dask,mt]'

$(VENV)/.installed: pyproject.toml
	@echo "installing rnn-cli and its dependencies into $(VENV) (pip's log: $(PIPLOG))"
	@$(PYTHON) -m venv $(VENV)
	@: >$(PIPLOG)
	@$(call pip_quiet,install --upgrade pip)
	@$(call pip_quiet,install -e '.[test]')
	@touch $@

venv: $(VENV)/.installed

## demo: install, train a char model on corpora/shakespeare.txt for about a minute, then sample
demo: venv
	$(RNN) train corpora/shakespeare.txt -o $(DEMO_MODEL) --max-seconds 60
	$(RNN) sample -m $(DEMO_MODEL) --prime "ROMEO:" --temperature 0.8 -n 600 --seed 1

## test: the whole suite (what .ci/run runs), four passes (tests/passes.py): compiled kernels
## (with the dask extra, for the LocalCluster tests of `score --dask`), the tiny kernel tests again
## with JIT off, the CUDA kernels on numba's simulator (no GPU needed), and the tests that wait on
## processes they start; on 2+ CPUs the last three run beside the first. TEST_ARGS=--serial: one
## after another
TEST_ARGS ?=
test: $(VENV)/.installed-cuda
	$(PY) tests/passes.py $(TEST_ARGS)

test-nojit: venv
	$(PY) tests/passes.py jit-off

test-slow: venv
	$(PY) -m pytest -q -m slow

## bench-quality: our defaults vs torch in the same minutes, side by side (3 x 10 + 2 x 30 min);
##                writes bench/QUALITY.md
bench-quality: venv bench-venv
	$(PY) bench/quality.py --threads 2 --peer-python $(BENCH_VENV)/bin/python $(QUALITY_ARGS)

## bench-bigcorpus: a 2 GB char corpus next to a 10 MB one (id cache build, tok/s, peak RSS);
##                  writes bench/results/bigcorpus.md
bench-bigcorpus: venv
	$(PY) bench/bigcorpus.py $(BIGCORPUS_ARGS)

## bench-parity: equal-token quality vs torch with the same network (hours on 2 cores; resumable);
##               writes bench/PARITY.md
bench-parity: venv bench-venv
	$(PY) bench/parity.py --peer-python $(BENCH_VENV)/bin/python $(PARITY_ARGS)

## clean-cache: drop numba's compiled-kernel cache (after a numba upgrade or cross-module edits)
##              and the token id cache of the model store ($RNN_CLI_HOME/cache)
clean-cache:
	find rnn_cli -name '*.nbi' -delete -o -name '*.nbc' -delete
	rm -rf "$${XDG_CACHE_HOME:-$$HOME/.cache}/rnn-cli"
	rm -rf "$$($(PY) -c 'from rnn_cli.idcache import cache_dir; print(cache_dir())' 2>/dev/null || echo "$${RNN_CLI_HOME:-$$HOME/.local/share/rnn-cli}/cache")"

clean: clean-cache
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

## bench: rnn-cli next to the PyTorch and NumPy peers of ../shared/bench (writes bench/RESULTS.md)
##        make bench BENCH_ARGS=--quick is a 3-second smoke test; see bench/README.md
BENCH_VENV ?= .venv-bench
BENCH_ARGS ?=
bench-venv:
	@$(BENCH_VENV)/bin/python -c "import torch, numpy" 2>/dev/null || \
	  { echo "bench: creating $(BENCH_VENV) with torch==2.13.0 numpy (the peers' venv)" >&2 && \
	    $(PYTHON) -m venv $(BENCH_VENV) && $(BENCH_VENV)/bin/pip install -q torch==2.13.0 numpy; } || \
	  echo "bench: could not set up $(BENCH_VENV); the peer rows will say so and be skipped" >&2

bench: venv bench-venv
	$(PY) bench/speed.py --peer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

## test-cudasim: the CUDA kernels under numba's simulator, no GPU needed (.ci/run runs it after
## `test`); it adds the `cuda` extra (numba-cuda, ~17 MB of wheels) and the `dask` extra (dask +
## distributed, for tests/test_dask.py) to the same venv
$(VENV)/.installed-cuda: $(VENV)/.installed
	@echo "adding numba-cuda and dask (the cuda and dask extras, for the simulator and Dask tests) to $(VENV)"
	@$(call pip_quiet,install -e $(TEST_CUDA))
	@touch $@

test-cudasim: $(VENV)/.installed-cuda
	$(PY) tests/passes.py cuda-sim

## bench-gpu: on a GPU machine, under 5 minutes: rnn-cli's GPU path beside PyTorch's cuDNN cells
##            (torch must be importable: it is never a dependency), rnn/gru/lstm at H 512 and
##            1024, B 64, T 64, 5 s a run, the CUDA tests, the losses at equal steps; writes
##            bench/GPU.md (bench/gpu.py says what is measured). PY=python3: a Python that
##            already has numba-cuda and torch (no venv is made). BENCH_GPU_ARGS=--dry-run:
##            every step on the simulator, no timings (the report goes to a temporary file)
BENCH_GPU_ARGS ?=
bench-gpu: $(if $(filter command line,$(origin PY)),,venv)
	$(PY) bench/gpu.py $(BENCH_GPU_ARGS)

## test-gpu: the CUDA tests on a real GPU (skipped cleanly without one: pytest's 5 = none
##           collected); PY=python3 runs them with that Python, no venv made
test-gpu: $(if $(filter command line,$(origin PY)),,$(VENV)/.installed-cuda)
	$(PY) -m pytest -q -m cuda tests/test_cuda.py || test $$? -eq 5
