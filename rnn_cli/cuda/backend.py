"""Is there a usable CUDA device, and what `--device cpu|cuda|auto` resolves to.

`numba.cuda` is imported only inside these functions, never at module import, so the CPU path
pays nothing for the optional GPU support. Under `NUMBA_ENABLE_CUDASIM=1` (set before Python
starts) numba's CUDA simulator counts as a device: that is how CI tests the kernels without a GPU.
The CUDA target must come from NVIDIA's `numba-cuda` package (the `cuda` extra); numba's built-in
`numba.cuda` is deprecated and is not used.
"""

from __future__ import annotations

import importlib.util
import os

from rnn_cli.errors import RnnCliError

INSTALL_HINT = ("install the GPU extra (`pip install 'rnn-cli[cuda]'`, or 'rnn-cli[cuda12]' to "
                "also get the CUDA 12 toolkit from PyPI), check the NVIDIA driver with "
                "`nvidia-smi`, or use --device cpu")


def simulator_enabled() -> bool:
    """True when numba's CUDA simulator is switched on (it must be, before numba is imported)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def probe() -> tuple[bool, str]:
    """(usable, reason): whether numba-cuda is installed and finds a GPU (or the simulator)."""
    if importlib.util.find_spec("numba_cuda") is None:
        return False, "the numba-cuda package is not installed"
    try:
        from numba import cuda
    except Exception as e:  # a broken CUDA install should read as "not available", not crash
        return False, f"numba.cuda failed to import ({type(e).__name__}: {e})"
    if getattr(cuda, "implementation", "NVIDIA") != "NVIDIA":
        return False, "numba.cuda is numba's deprecated built-in target, not numba-cuda"
    try:
        ok = bool(cuda.is_available())
    except Exception as e:  # pragma: no cover - driver errors vary
        return False, f"the CUDA driver could not be queried ({type(e).__name__}: {e})"
    if not ok:
        return False, "no CUDA driver or GPU was found"
    return True, "CUDA simulator" if simulator_enabled() else _device_name(cuda)


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
    and dropout (either --dropout-mask) with the full softmax, updating every row; a
    class-softmax model, a run with sparse row updates (`sparse`), or training with
    --embed-dropout or --weight-drop, runs on the CPU (a notice for --device auto, an error for
    --device cuda)."""
    if device != "cuda":
        return device
    regular = [f for f in ("embed_dropout", "weight_drop") if getattr(cfg, f, 0.0)]
    if getattr(cfg, "softmax", "full") == "classes":
        what, hint = ("runs the full softmax only, this model has --softmax classes",
                      "use --device cpu (or auto), or train with --softmax full")
        notice = "the CUDA kernels have no class softmax (--softmax classes)"
    elif training and regular:
        flag = "--" + regular[0].replace("_", "-")
        what, hint = (f"trains without {flag} (it runs on the CPU)",
                      f"use --device cpu (or auto), or pass {flag} 0")
        notice = f"the CUDA trainer has no {flag}"
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
