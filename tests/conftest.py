"""Shared test settings: tolerances (one table), tiny shapes, markers, the report header."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, _ROOT)

# The model store, and the token id cache in it, of every test run that names no other:
# a fresh folder, never the user's (removed at the end of the session).
_HOME = tempfile.mkdtemp(prefix="rnn-cli-tests-")
os.environ["RNN_CLI_HOME"] = _HOME

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# Tiny shapes of STYLE §3.4: hidden, vocabulary, time steps, batch.
H, V, T, B = 5, 7, 4, 3

# Tolerances, the only place they are written. float64 kernels vs their float64 NumPy twins:
FLOAT64_RTOL = 1e-10
FLOAT64_ATOL = 1e-12  # for elements that are sums cancelling to ~0
SERIAL_PARALLEL_RTOL = 1e-12  # the same arithmetic per stream, threads only split the batch
# float32 inputs vs the float64 twin on the same (float32) inputs, by what is compared:
FLOAT32_RTOL = {
    "kernel": 2e-5,  # one kernel, a few float32 roundings per element
    "network": 1e-4,  # loss / gradients of a whole window (BLAS products, BPTT)
    "parallel": 1e-5,  # float32 parallel vs serial network
}
FLOAT32_ATOL = {"kernel": 1e-6, "network": 1e-5, "parallel": 1e-6}
# Central finite differences of the float64 reference loss (umap `test_umap_grads.py` style):
FD_EPS = 1e-5  # STYLE §3.4.2 (1e-6 gave ~5x larger errors here: round-off)
FD_MAX_REL_ERR = 1e-5
FD_MEAN_REL_ERR = 1e-7


def tol(dtype, what: str = "kernel") -> dict:
    """assert_allclose keyword arguments for results computed in `dtype`."""
    if np.dtype(dtype) == np.float64:
        return {"rtol": FLOAT64_RTOL, "atol": FLOAT64_ATOL}
    return {"rtol": FLOAT32_RTOL[what], "atol": FLOAT32_ATOL[what]}


def pytest_unconfigure(config):
    shutil.rmtree(_HOME, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; skipped by `make test-nojit`")
    config.addinivalue_line("markers", "cuda: needs numba.cuda (device or NUMBA_ENABLE_CUDASIM=1)")


def pytest_report_header(config):
    import numba

    return [
        f"numba {numba.__version__}, numpy {np.__version__}",
        f"NUMBA_DISABLE_JIT={'1 (kernels run as Python)' if NOJIT else 'unset'}, "
        f"NUMBA_ENABLE_CUDASIM={'1' if CUDASIM else 'unset'}",
    ]


@pytest.fixture
def rng():
    return np.random.default_rng(20240531)


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


requires_jit = pytest.mark.skipif(NOJIT, reason="NUMBA_DISABLE_JIT=1: kernels are plain Python, "
                                                "no .py_func")
