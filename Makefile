# rnn-cli: `make demo` installs and trains on the bundled Shakespeare; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
RNN     = $(VENV)/bin/rnn-cli
DEMO_MODEL ?= $(VENV)/demo-shakespeare.npz

.PHONY: venv demo test test-nojit test-cudasim test-gpu test-slow bench clean-cache clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## demo: install, train a char model on corpora/shakespeare.txt for about a minute, then sample
demo: venv
	$(RNN) train corpora/shakespeare.txt -o $(DEMO_MODEL) --max-seconds 60
	$(RNN) sample -m $(DEMO_MODEL) --prime "ROMEO:" --temperature 0.8 -n 600 --seed 1

## test: the whole suite (what .ci/run runs): compiled kernels, then the tiny ones with JIT off
test: venv
	$(PY) -m pytest -q -m "not slow"
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -m "not slow" tests/test_kernels.py tests/test_network.py tests/test_sampling_kernels.py

test-nojit: venv
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -m "not slow" tests/test_kernels.py tests/test_network.py tests/test_sampling_kernels.py

test-slow: venv
	$(PY) -m pytest -q -m slow

## clean-cache: drop numba's compiled-kernel cache (after a numba upgrade or cross-module edits)
clean-cache:
	find rnn_cli -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-cache
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

## test-cudasim: the CUDA kernels under numba's simulator, no GPU needed (.ci/run runs it after
## `test`); it adds the `cuda` extra (numba-cuda, ~17 MB of wheels) to the same venv
$(VENV)/.installed-cuda: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,cuda]'
	touch $@

test-cudasim: $(VENV)/.installed-cuda
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q -m cuda tests/test_cuda.py

## test-gpu: the same tests on a real GPU (skipped cleanly without one: pytest's 5 = none collected)
test-gpu: $(VENV)/.installed-cuda
	$(PY) -m pytest -q -m cuda tests/test_cuda.py || test $$? -eq 5
