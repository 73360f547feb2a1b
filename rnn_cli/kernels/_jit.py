"""The one njit decorator of rnn-cli, and thread helpers.

Every compiled CPU kernel in the project is decorated with `njit` or `njit_parallel` from here, so
the compile options live in one place (stumpy `config.py` habit; a test greps that no other file
sets `fastmath=`):

- `cache=True`: the second run loads machine code from `__pycache__` instead of compiling.
- fastmath: every LLVM flag except `nnan`/`ninf` (`fastmath=True` would let LLVM assume no NaN,
  and the trainer relies on seeing NaN/inf to stop a diverging run).
- `nogil=True`, `error_model="numpy"`: division by zero gives inf/nan instead of raising.

The same Python function may be compiled twice, serial and parallel (umap `layouts.py`): `prange`
is a plain `range` in the serial build.

Cache location: numba notices edits to a kernel's own file but not to the njit functions it calls
from other files. So, unless NUMBA_CACHE_DIR is set, the cache lives in a user cache folder named
after a hash of every kernel source and the numba version: any edit, upgrade or reinstall starts a
fresh cache instead of loading stale machine code.
"""

from __future__ import annotations

import hashlib
import os
import types
from pathlib import Path

import numba


def _cache_dir() -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rnn-cli", "numba-" + digest.hexdigest()[:16])


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _cache_dir()

# The thread pool (numba's `omp` layer, GNU OpenMP) sleeps between parallel regions instead of
# spinning for ever; libgomp reads these when it is loaded, at the first parallel call, so after
# this import. Spinning workers cost a training step 3-5x its time on a machine shared with other
# work (measured on 2 cores at load average 7: a char RNN H 256 --embed 256 step took 185-200 ms
# spinning, 38-64 ms sleeping). But waking a sleeping worker costs 60-90 us a region, and a step
# runs about a dozen regions, most a few microseconds after the last one ended: so a worker
# first spins GOMP_SPINCOUNT = 2,000 pauses (about 0.05-0.1 ms; libgomp honours it over the
# policy) before it sleeps. Char LSTM / GRU H 128 --embed 128, 2 cores, alternating runs: idle
# 1.10-1.19x the tokens/s of 0 spins; at load average ~9 (eight busy loops) 19.0k against 19.6k
# tok/s for an LSTM H 256 (medians of three), where 10,000 spins lost 20 %. Values set in the
# environment win.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "2000")

FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_OPTIONS = dict(cache=True, fastmath=set(FASTMATH_FLAGS), nogil=True, error_model="numpy")


def njit(func):
    """Compile `func` serially with the project's options."""
    return numba.njit(**_OPTIONS)(func)


def njit_parallel(func):
    """Compile `func` with `parallel=True` (its `prange` loops run on numba's thread pool).

    The compiled code goes into the cache under a name of its own: numba's cache files are named
    after the function, and its index does not tell a parallel build from a serial one, so the
    two builds of one function would otherwise load whichever was compiled first.
    """
    return numba.njit(parallel=True, **_OPTIONS)(_renamed(func, "__parallel"))


def _renamed(func, suffix: str):
    code = func.__code__.replace(co_name=func.__code__.co_name + suffix)
    twin = types.FunctionType(code, func.__globals__, func.__name__ + suffix, func.__defaults__,
                              func.__closure__)
    twin.__qualname__ = func.__qualname__ + suffix
    twin.__module__, twin.__doc__ = func.__module__, func.__doc__
    return twin


prange = numba.prange


def set_threads(n: int) -> int:
    """Use `n` threads for parallel kernels (clamped to numba's pool size); returns the count used."""
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def get_threads() -> int:
    return numba.get_num_threads()
