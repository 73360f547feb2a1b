"""Is there a usable CUDA device, what `--device cpu|cuda|auto` resolves to, and the one import of
numba-cuda.

`numba.cuda` is imported only through `numba_cuda()`, never at module import, so the CPU path
pays nothing for the optional GPU support; every module of this package takes `cuda` from there,
after `numpy_compat()`. Under `NUMBA_ENABLE_CUDASIM=1` (set before Python starts) numba's CUDA
simulator counts as a device: that is how CI tests the kernels without a GPU. The CUDA target must
come from NVIDIA's `numba-cuda` package (the `cuda` extra); numba's built-in `numba.cuda` is
deprecated and is not used.

`probe()` on a real GPU also compiles and launches one tiny kernel (once per process), so that a
toolkit or driver that cannot build or run kernels reads as "no usable GPU" with its reason (one
line, `resolve`), never as a traceback from the first training step. `guard()` does the same for
any later failure of the device path (compiling, allocating, the first launch).

Tuning (environment variables, read when a device network is built; docs/gpu.md):
    RNN_CLI_CUDA_GEMM=auto|cublas|numba   the matrix products: cuBLAS when its library loads
                                          (auto), or numba's tiled kernel (the simulator's)
    RNN_CLI_CUDA_TF32=1                   cuBLAS on TF32 tensor cores (faster; ~1e-3 relative
                                          error per product instead of float32's ~1e-6)
    RNN_CLI_CUDA_GRAPH=0                  launch the training step kernel by kernel (no CUDA graph)
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys

from rnn_cli.errors import RnnCliError

INSTALL_HINT = ("install the GPU extra (`pip install 'rnn-cli[cuda]'`, or 'rnn-cli[cuda12]' / "
                "'rnn-cli[cuda13]' to also get the CUDA toolkit from PyPI), check the NVIDIA "
                "driver with `nvidia-smi`, or use --device cpu")
GUARD_HINT = ("rerun with --traceback for the details, check the GPU set-up (`nvidia-smi`, the "
              "cuda extra), or use --device cpu")


def numpy_compat() -> None:
    """Aliases numba-cuda needs that the installed NumPy removed, set only where missing.

    numba-cuda 0.30.x registers an overload of `np.row_stack` when its CUDA target is first set up
    (the first compile); NumPy 2.5 removed `row_stack` (an alias of `vstack` since 2.0). Without
    it the first kernel launch fails with AttributeError on NumPy >= 2.5.
    """
    import numpy as np

    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack


def numba_cuda():
    """numba-cuda's `numba.cuda` module, imported after `numpy_compat()` (the one import of it)."""
    numpy_compat()
    from numba import cuda

    return cuda


def simulator_enabled() -> bool:
    """True when numba's CUDA simulator is switched on (it must be, before numba is imported):
    numba-cuda's own reading once it is imported, else the environment variable."""
    config = sys.modules.get("numba.cuda.core.config")
    if config is not None and hasattr(config, "ENABLE_CUDASIM"):
        return bool(config.ENABLE_CUDASIM)
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def probe() -> tuple[bool, str]:
    """(usable, reason): whether numba-cuda is installed and finds a GPU (or the simulator)."""
    if importlib.util.find_spec("numba_cuda") is None:
        return False, "the numba-cuda package is not installed"
    try:
        cuda = numba_cuda()
    except Exception as e:  # a broken CUDA install should read as "not available", not crash
        return False, f"numba.cuda failed to import ({_one_line(e)})"
    if getattr(cuda, "implementation", "NVIDIA") != "NVIDIA":
        return False, "numba.cuda is numba's deprecated built-in target, not numba-cuda"
    try:
        ok = bool(cuda.is_available())
    except Exception as e:  # pragma: no cover - driver errors vary
        return False, f"the CUDA driver could not be queried ({_one_line(e)})"
    if not ok:
        return False, "no CUDA driver or GPU was found"
    if simulator_enabled():
        return True, "CUDA simulator"
    failed = _smoke_test()
    if failed:
        return False, f"numba-cuda could not compile and run a kernel ({failed})"
    return True, _device_name(cuda)


@functools.lru_cache(maxsize=1)
def _smoke_test() -> str:
    """'' when a tiny kernel compiles, launches and gives the right answer; else why not."""
    try:
        import numpy as np

        cuda = numba_cuda()
        _quiet_occupancy_warnings()  # its grid of one block is no news to the user

        @cuda.jit
        def add_one(x):
            i = cuda.grid(1)
            if i < x.shape[0]:
                x[i] += 1.0

        d = cuda.to_device(np.arange(4, dtype=np.float32))
        add_one[1, 32](d)
        if not np.array_equal(d.copy_to_host(), np.arange(1, 5, dtype=np.float32)):
            return "a test kernel gave a wrong result"
        return ""
    except Exception as e:  # NVRTC or libdevice missing, driver too old, NumPy too new, ...
        return _one_line(e)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@contextlib.contextmanager
def guard(what: str):
    """Turn any failure of the device path inside the block into one RnnCliError line (with the
    install hint): `what` names the step, e.g. "compiling the kernels"."""
    try:
        yield
    except RnnCliError:
        raise
    except Exception as e:
        raise RnnCliError(f"--device cuda: {what} failed ({_one_line(e)})",
                          hint=GUARD_HINT) from e


def setting(name: str, default: str) -> str:
    """RNN_CLI_CUDA_<name> from the environment (the tuning switches of the module docstring)."""
    return os.environ.get(f"RNN_CLI_CUDA_{name}", default).strip().lower()


def is_available() -> bool:
    """True when `--device cuda` can run here (a GPU with numba-cuda, or the simulator)."""
    return probe()[0]


def device_present_cheaply() -> bool:
    """A guess without importing numba: the simulator is on or an NVIDIA device node exists.

    For test collection, so the CPU suite does not pay numba.cuda's import to learn "no GPU".
    """
    return simulator_enabled() or os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


def resolve(device: str, warn=None) -> str:
    """'cpu' or 'cuda' for a --device value; RnnCliError for 'cuda' without a usable device.

    `auto` takes the GPU when there is one, else falls back to the CPU and calls `warn(notice)`.
    """
    if device == "cpu":
        return "cpu"
    ok, reason = probe()
    if ok:
        _quiet_occupancy_warnings()
        return "cuda"
    if device == "cuda":
        raise RnnCliError(f"--device cuda: no usable GPU ({reason})", hint=INSTALL_HINT)
    if warn is not None:
        warn(f"--device auto: no usable GPU ({reason}); running on the CPU")
    return "cpu"


def for_model(device: str, requested: str, cfg, warn=None, training: bool = False,
              sparse: bool = False) -> str:
    """The device for a model: the CUDA kernels run every cell, depth, embedding, tied weights
    and dropout with the full softmax, updating every row; a class-softmax model, or a run with
    sparse row updates (`sparse`), runs on the CPU (a notice for --device auto, an error for
    --device cuda). `training` is kept for the callers' signature."""
    if device != "cuda":
        return device
    if getattr(cfg, "softmax", "full") == "classes":
        what, hint = ("runs the full softmax only, this model has --softmax classes",
                      "use --device cpu (or auto), or train with --softmax full")
        notice = "the CUDA kernels have no class softmax (--softmax classes)"
    elif sparse:
        what, hint = ("updates every row; --updates sparse runs on the CPU",
                      "use --device cpu (or auto), or pass --updates dense")
        notice = "the CUDA path has no sparse row updates (--updates sparse)"
    else:
        return device
    if requested == "cuda":
        raise RnnCliError(f"--device cuda {what}", hint=hint)
    if warn is not None:
        warn(f"--device auto: {notice}; running on the CPU")
    return "cpu"


def _quiet_occupancy_warnings() -> None:
    """Switch off numba-cuda's "grid size will likely result in GPU under-utilization" warning
    (unless NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS is set): the sampling kernel is one block by design
    and a time step is B*H threads, so it would reach the user's stderr on every run."""
    if "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" in os.environ:
        return
    try:
        from numba.cuda.core import config
    except ImportError:  # pragma: no cover - another numba-cuda layout
        return
    config.CUDA_LOW_OCCUPANCY_WARNINGS = 0


def describe() -> str:
    """One line naming the device in use (for -v)."""
    return probe()[1]


def _device_name(cuda) -> str:
    try:
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        return f"{name} (compute capability {'.'.join(map(str, dev.compute_capability))})"
    except Exception:  # pragma: no cover
        return "CUDA device"
