"""`--device cpu|cuda|auto` without a GPU: the CPU suite's side of the optional CUDA target.

These run in the normal suite (no GPU, no simulator needed): the availability probe is replaced by
a stub, so nothing here imports numba.cuda. The device kernels themselves are in test_cuda.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rnn_cli.cuda import backend
from rnn_cli.errors import RnnCliError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(backend, "probe", lambda: (False, "no CUDA driver or GPU was found"))


def test_importing_the_backend_does_not_import_numba_cuda():
    code = ("import sys, rnn_cli.cuda, rnn_cli.cuda.backend as b; b.resolve('cpu'); "
            "print(any(m == 'numba.cuda' or m.startswith(('numba.cuda.', 'numba_cuda')) "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cuda_without_gpu_is_one_error_with_a_hint(no_gpu):
    with pytest.raises(RnnCliError) as e:
        backend.resolve("cuda")
    assert "no usable GPU" in e.value.message and "no CUDA driver" in e.value.message
    assert "rnn-cli[cuda]" in e.value.hint and "nvidia-smi" in e.value.hint
    assert "\n" not in e.value.message + e.value.hint


def test_auto_falls_back_to_cpu_with_a_notice(no_gpu):
    notices = []
    assert backend.resolve("auto", notices.append) == "cpu"
    assert len(notices) == 1 and "running on the CPU" in notices[0]
    assert backend.resolve("cpu", notices.append) == "cpu" and len(notices) == 1


def test_probe_without_numba_cuda_says_so(monkeypatch):
    real = backend.importlib.util.find_spec
    monkeypatch.setattr(backend.importlib.util, "find_spec",
                        lambda name: None if name == "numba_cuda" else real(name))
    assert backend.probe() == (False, "the numba-cuda package is not installed")


@pytest.mark.parametrize("command", ("train", "sample"))
def test_cli_device_cuda_without_gpu_exits_1(no_gpu, command, tmp_path, capsys):
    from rnn_cli.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("abc\n" * 20)
    args = ["train", str(corpus), "-o", str(tmp_path / "m.npz")] if command == "train" \
        else ["sample", "-m", str(tmp_path / "missing.npz")]
    assert main([*args, "--device", "cuda", "--no-color"]) == 1
    err = capsys.readouterr().err
    assert "rnn-cli: error: --device cuda: no usable GPU" in err and "rnn-cli[cuda]" in err


@pytest.mark.parametrize("kw", [dict(cell="gru"), dict(cell="lstm", layers=2),
                                dict(cell="gru", embed=8, tie_weights=True, hidden=8),
                                dict(cell="rnn", dropout=0.3)])
def test_every_full_softmax_model_runs_on_the_device(kw):
    from rnn_cli.config import ModelConfig

    cfg = ModelConfig(vocab_size=10, **{"hidden": 4, **kw}).validate()
    notices = []
    assert backend.for_model("cuda", "cuda", cfg, notices.append, training=True) == "cuda"
    assert backend.for_model("cuda", "auto", cfg, notices.append) == "cuda" and not notices


# ------------------------------------------------- NumPy >= 2.5 and failures of the device path

numba_cuda_missing = pytest.mark.skipif(
    backend.importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda not installed")


@numba_cuda_missing
def test_numba_cuda_target_sets_up_on_a_numpy_without_row_stack():
    """numba-cuda 0.30 overloads np.row_stack when its CUDA target is set up (the first compile);
    NumPy 2.5 removed it. Here NumPy loses it before anything else runs; the target's array
    module (what the first compile imports) must still import, through backend.numba_cuda()."""
    code = ("import numpy as np\n"
            "had = hasattr(np, 'row_stack')\n"
            "if had: del np.row_stack\n"
            "from rnn_cli.cuda import backend\n"
            "cuda = backend.numba_cuda()\n"
            "import numba.cuda.np.arrayobj\n"
            "assert np.row_stack is np.vstack\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_alias_leaves_a_numpy_that_has_row_stack_alone(monkeypatch):
    import numpy as np

    mine = object()
    monkeypatch.setattr(np, "row_stack", mine, raising=False)
    backend.numpy_compat()
    assert np.row_stack is mine


def test_only_the_backend_imports_numba_cuda():
    """The alias must run before numba-cuda's first import: so there is one import, backend's."""
    pkg = Path(backend.__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*(from numba import cuda|import numba\.cuda|from numba\.cuda)", re.M)
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                 if p.name != "backend.py" and pattern.search(p.read_text())]
    assert not offenders, offenders


def test_guard_turns_any_failure_into_one_line_with_a_hint():
    with pytest.raises(RnnCliError) as e:
        with backend.guard("compiling the GPU kernels"):
            raise OSError("libnvrtc.so.13: cannot open shared object file\nsecond line")
    assert e.value.message.startswith("--device cuda: compiling the GPU kernels failed (OSError: ")
    assert "\n" not in e.value.message + e.value.hint and "--device cpu" in e.value.hint
    with pytest.raises(RnnCliError, match="^mine$"):  # our own errors pass through unchanged
        with backend.guard("x"):
            raise RnnCliError("mine")


def test_probe_reports_a_failed_smoke_test_as_no_usable_gpu(monkeypatch):
    monkeypatch.setattr(backend, "simulator_enabled", lambda: False)
    monkeypatch.setattr(backend.importlib.util, "find_spec", lambda name: object())
    fake = type("FakeCuda", (), {"implementation": "NVIDIA", "is_available": staticmethod(
        lambda: True)})
    monkeypatch.setattr(backend, "numba_cuda", lambda: fake)
    monkeypatch.setattr(backend, "_smoke_test", lambda: "AttributeError: module 'numpy' has no "
                                                        "attribute 'row_stack'")
    ok, why = backend.probe()
    assert not ok and why == ("numba-cuda could not compile and run a kernel (AttributeError: "
                              "module 'numpy' has no attribute 'row_stack')")
    with pytest.raises(RnnCliError, match="no usable GPU .*row_stack"):
        backend.resolve("cuda")


@numba_cuda_missing
@pytest.mark.skipif(backend.device_present_cheaply(), reason="needs a machine without a GPU")
def test_cli_train_on_a_device_that_cannot_run_kernels_is_one_error_line(tmp_path, monkeypatch):
    """The probe says yes (as on a machine whose driver answers but cannot run our kernels): the
    first compile fails inside numba-cuda, and the user sees one line and a hint, exit 1."""
    from clihelp import assert_clean_error, run_cli

    monkeypatch.setattr(backend, "probe", lambda: (True, "a GPU that cannot run kernels"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc\n" * 20)
    proc = run_cli("train", corpus, "-o", tmp_path / "m.npz", "--device", "cuda", "--steps", "1",
                   "--hidden", "4")
    err = assert_clean_error(proc, 1, "--device cuda: ")
    assert "failed (" in err and "--traceback" in err
